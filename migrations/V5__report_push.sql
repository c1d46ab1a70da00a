-- The daily county report pushed upstream (a provincial monitoring platform): one row per push,
-- with the exact body sent, so every retry carries the same bytes under the same delivery id and
-- a restart neither skips nor repeats a day. The schedule pushes each local day once (the partial
-- unique index); an admin may push a day again by hand, as a delivery of its own.
CREATE SEQUENCE report_push_manual;

CREATE TABLE report_push (
    id              bigserial PRIMARY KEY,
    day             date        NOT NULL,
    trigger         text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    delivery_id     text        NOT NULL UNIQUE,
    format          text        NOT NULL,
    content_type    text        NOT NULL,
    body            bytea       NOT NULL,
    requested_by    text,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text
);
CREATE UNIQUE INDEX report_push_scheduled_day ON report_push (day) WHERE trigger = 'schedule';
CREATE INDEX report_push_due ON report_push (next_attempt_at) WHERE status = 'pending';

-- Every attempt and how it ended.
CREATE TABLE report_push_attempts (
    id          bigserial PRIMARY KEY,
    push_id     bigint      NOT NULL REFERENCES report_push (id),
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL CHECK (outcome IN ('delivered', 'retried', 'dead')),
    http_status integer,
    error       text,
    latency_ms  double precision
);
CREATE INDEX report_push_attempts_push ON report_push_attempts (push_id, id);

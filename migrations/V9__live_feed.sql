-- The live feed to the provincial platform (report::live): one row per delivery, with the exact
-- body, recorded before the first attempt, so every retry and every catch-up after an outage sends
-- the figures as they were at the period's boundary under the same delivery id, and a restart
-- neither repeats nor loses a period. A sibling of report_push (same delivery columns, same
-- attempt record) rather than rows in it: a period is an instant, not a local day, there are 288
-- of them a day where the daily report has one, and they are pruned after `keep_days` while the
-- daily pushes stay as the record of what the platform was sent.
CREATE TABLE live_feed (
    id              bigserial PRIMARY KEY,
    -- 'period': every interval_s; 'event': at once on a change to red or a closure.
    trigger         text        NOT NULL CHECK (trigger IN ('period', 'event')),
    period_start    timestamptz NOT NULL,
    -- Events only: the area and the alert transition announced.
    space_id        text,
    transition_id   bigint,
    delivery_id     text        NOT NULL UNIQUE,
    content_type    text        NOT NULL,
    body            bytea       NOT NULL,
    -- 'skipped': a boundary no instance was running at; no figures, nothing sent.
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text
);
-- One delivery per period, whoever takes it on.
CREATE UNIQUE INDEX live_feed_period ON live_feed (period_start) WHERE trigger = 'period';
CREATE INDEX live_feed_pending ON live_feed (trigger, period_start) WHERE status = 'pending';
CREATE INDEX live_feed_event ON live_feed (transition_id) WHERE trigger = 'event';
CREATE INDEX live_feed_created ON live_feed (created_at);

-- Every attempt and how it ended (as report_push_attempts).
CREATE TABLE live_feed_attempts (
    id          bigserial PRIMARY KEY,
    push_id     bigint      NOT NULL REFERENCES live_feed (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL CHECK (outcome IN ('delivered', 'retried', 'dead')),
    http_status integer,
    error       text,
    latency_ms  double precision
);
CREATE INDEX live_feed_attempts_push ON live_feed_attempts (push_id, id);

-- Capacity warnings, their delivery and the evidence Tourism Law art. 45 asks for.

-- One row per alert: a stable identity (space + kind) while it is open. Re-crossing a level while
-- the alert is open updates it; a new row starts only after it resolved.
CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    space_id        text        NOT NULL,
    kind            text        NOT NULL,
    severity        text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    level           text,
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    ack_comment     text,
    escalated_at    timestamptz,
    details         jsonb       NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX alerts_open_identity ON alerts (space_id, kind) WHERE state <> 'resolved';
CREATE INDEX alerts_space_time ON alerts (space_id, started_at DESC);

-- Every change of an alert, in order: the level history of a space and the audit of who did what.
CREATE TABLE alert_transitions (
    id         bigserial PRIMARY KEY,
    alert_id   bigint      NOT NULL REFERENCES alerts (id),
    at         timestamptz NOT NULL,
    change     text        NOT NULL,
    state      text        NOT NULL,
    severity   text        NOT NULL,
    level      text,
    load       double precision,
    actor      text,
    message_zh text,
    message_en text,
    details    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, id);

-- The transactional outbox: written in the same transaction as the transition it announces, so a
-- transition is never lost nor sent without being recorded. Workers deliver per subscription.
CREATE TABLE webhook_outbox (
    id              bigserial PRIMARY KEY,
    delivery_id     text        NOT NULL UNIQUE,
    subscription_id text        NOT NULL,
    transition_id   bigint      REFERENCES alert_transitions (id),
    space_id        text        NOT NULL,
    event           jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text,
    latency_ms      double precision
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (subscription_id, next_attempt_at) WHERE status = 'pending';

-- Policy caps on capacity (e.g. 75% of the approved value in an epidemic season): the approved
-- value is never changed; every cap ever set stays here as the audit trail.
CREATE TABLE policy_caps (
    id         bigserial PRIMARY KEY,
    space_id   text             NOT NULL,
    percent    double precision NOT NULL CHECK (percent > 0 AND percent <= 100),
    reason     text             NOT NULL,
    starts_at  timestamptz      NOT NULL,
    ends_at    timestamptz,
    created_by text             NOT NULL,
    created_at timestamptz      NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_by text
);
CREATE INDEX policy_caps_space ON policy_caps (space_id, starts_at);

-- External hazard signals (a flash-flood warning for a canyon): they close a space for dispatch.
CREATE TABLE hazards (
    id         bigserial PRIMARY KEY,
    space_id   text        NOT NULL,
    kind       text        NOT NULL,
    severity   text        NOT NULL,
    message    text        NOT NULL DEFAULT '',
    since      timestamptz NOT NULL,
    until      timestamptz,
    source     text        NOT NULL,
    cleared_at timestamptz
);
CREATE INDEX hazards_active ON hazards (space_id) WHERE cleared_at IS NULL;

-- The rule engine's state (levels, dwell timers, open conditions), so a restart neither re-sends
-- nor forgets.
CREATE TABLE rule_state (
    id         smallint PRIMARY KEY CHECK (id = 1),
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Who changed what through the API.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    details jsonb       NOT NULL DEFAULT '{}'
);

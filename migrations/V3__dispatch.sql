-- Dispatch advice per distribution centre, kept whenever it changes, and what dispatchers did
-- with it (followed or overridden, with a reason): the record the daily report counts from.
CREATE TABLE dispatch_advice (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL,
    hub_id          text        NOT NULL,
    advice          jsonb       NOT NULL,
    change          jsonb,
    shuttles        integer     NOT NULL DEFAULT 0,
    diversions      integer     NOT NULL DEFAULT 0,
    decision        text CHECK (decision IN ('followed', 'overridden')),
    decided_by      text,
    decided_at      timestamptz,
    decision_reason text
);
CREATE INDEX dispatch_advice_hub_time ON dispatch_advice (hub_id, at DESC);

-- The ingester's state journal (docs/performance.md, "State checkpoints"). Under sustained load a
-- batch no longer upserts one device_state, space_state and space_series_1m row per device, space
-- and minute it touched: it appends what it changed as one packed row here (src/store/journal.rs),
-- in the transaction of its reports. Every few seconds, and as soon as input pauses, a batch writes
-- everything changed since into those tables, a slice per batch, and deletes the rows it covered
-- with its last slice (a checkpoint). A session's start
-- folds whatever a crash left here into the tables before it loads them, so the restart state is
-- exactly what was committed.
CREATE TABLE state_journal (
    id         bigserial   PRIMARY KEY,
    -- The writing session's row number: a checkpoint deletes the rows it covers by it.
    seq        bigint      NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    body       bytea       NOT NULL
);
-- Written once, read only after a crash: compressing it would cost the hot path for nothing.
ALTER TABLE state_journal ALTER COLUMN body SET STORAGE EXTERNAL;

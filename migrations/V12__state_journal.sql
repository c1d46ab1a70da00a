-- The ingester's state journal (docs/performance.md, "State checkpoints"). Under sustained load a
-- batch no longer upserts one device_state, space_state and space_series_1m row per device, space
-- and minute it touched: it appends the state it changed and its minute-bucket deltas as one row of
-- arrays here, in the transaction of its reports. Every few seconds, and as soon as input pauses, a
-- batch writes everything changed since into those tables and empties this one, in its own
-- transaction (a checkpoint). A session's start folds whatever a crash left here into the tables
-- before it loads them, so the restart state is exactly what was committed.
CREATE TABLE state_journal (
    id          bigserial PRIMARY KEY,
    written_at  timestamptz NOT NULL DEFAULT now(),
    -- device_state columns, one element per device the batch changed
    d_device_id text[] NOT NULL, d_high_seq int8[] NOT NULL, d_window_hi int8[] NOT NULL,
    d_window_lo int8[] NOT NULL, d_last_ts timestamptz[] NOT NULL, d_run_start timestamptz[] NOT NULL,
    d_totals_in int8[] NOT NULL, d_totals_out int8[] NOT NULL, d_missing int8[] NOT NULL,
    d_gaps_total int8[] NOT NULL, d_repaired_total int8[] NOT NULL, d_resets_total int8[] NOT NULL,
    d_last_received timestamptz[] NOT NULL, d_online bool[] NOT NULL, d_repaired_hi int8[] NOT NULL,
    d_repaired_lo int8[] NOT NULL, d_prev_run_start timestamptz[] NOT NULL, d_jumps_total int8[] NOT NULL,
    d_last_jump_at timestamptz[] NOT NULL, d_last_jump_seq int8[] NOT NULL, d_jumped_in int8[] NOT NULL,
    d_jumped_out int8[] NOT NULL, d_high_ts timestamptz[] NOT NULL,
    -- space_state columns, one element per space the batch changed
    s_space_id text[] NOT NULL, s_day date[] NOT NULL, s_entries int8[] NOT NULL, s_exits int8[] NOT NULL,
    s_base int8[] NOT NULL, s_minute int8[] NOT NULL, s_min_in int8[] NOT NULL, s_min_out int8[] NOT NULL,
    s_closed_drift int8[] NOT NULL, s_peak int8[] NOT NULL, s_peak_at timestamptz[] NOT NULL,
    s_last_report timestamptz[] NOT NULL, s_adjust int8[] NOT NULL, s_corrected int8[] NOT NULL,
    -- space_series_1m deltas, one element per (space, minute) the batch changed
    b_space_id text[] NOT NULL, b_bucket timestamptz[] NOT NULL, b_entries int8[] NOT NULL,
    b_exits int8[] NOT NULL, b_occupancy int8[] NOT NULL, b_correction int8[] NOT NULL,
    b_peak int8[] NOT NULL
);

-- The arrays are written once and read only after a crash: compressing them would cost the hot
-- path CPU for nothing.
ALTER TABLE state_journal
    ALTER COLUMN d_device_id SET STORAGE EXTERNAL, ALTER COLUMN d_high_seq SET STORAGE EXTERNAL,
    ALTER COLUMN d_window_hi SET STORAGE EXTERNAL, ALTER COLUMN d_window_lo SET STORAGE EXTERNAL,
    ALTER COLUMN d_last_ts SET STORAGE EXTERNAL, ALTER COLUMN d_run_start SET STORAGE EXTERNAL,
    ALTER COLUMN d_totals_in SET STORAGE EXTERNAL, ALTER COLUMN d_totals_out SET STORAGE EXTERNAL,
    ALTER COLUMN d_missing SET STORAGE EXTERNAL, ALTER COLUMN d_gaps_total SET STORAGE EXTERNAL,
    ALTER COLUMN d_repaired_total SET STORAGE EXTERNAL, ALTER COLUMN d_resets_total SET STORAGE EXTERNAL,
    ALTER COLUMN d_last_received SET STORAGE EXTERNAL, ALTER COLUMN d_online SET STORAGE EXTERNAL,
    ALTER COLUMN d_repaired_hi SET STORAGE EXTERNAL, ALTER COLUMN d_repaired_lo SET STORAGE EXTERNAL,
    ALTER COLUMN d_prev_run_start SET STORAGE EXTERNAL, ALTER COLUMN d_jumps_total SET STORAGE EXTERNAL,
    ALTER COLUMN d_last_jump_at SET STORAGE EXTERNAL, ALTER COLUMN d_last_jump_seq SET STORAGE EXTERNAL,
    ALTER COLUMN d_jumped_in SET STORAGE EXTERNAL, ALTER COLUMN d_jumped_out SET STORAGE EXTERNAL,
    ALTER COLUMN d_high_ts SET STORAGE EXTERNAL,
    ALTER COLUMN s_space_id SET STORAGE EXTERNAL, ALTER COLUMN s_day SET STORAGE EXTERNAL,
    ALTER COLUMN s_entries SET STORAGE EXTERNAL, ALTER COLUMN s_exits SET STORAGE EXTERNAL,
    ALTER COLUMN s_base SET STORAGE EXTERNAL, ALTER COLUMN s_minute SET STORAGE EXTERNAL,
    ALTER COLUMN s_min_in SET STORAGE EXTERNAL, ALTER COLUMN s_min_out SET STORAGE EXTERNAL,
    ALTER COLUMN s_closed_drift SET STORAGE EXTERNAL, ALTER COLUMN s_peak SET STORAGE EXTERNAL,
    ALTER COLUMN s_peak_at SET STORAGE EXTERNAL, ALTER COLUMN s_last_report SET STORAGE EXTERNAL,
    ALTER COLUMN s_adjust SET STORAGE EXTERNAL, ALTER COLUMN s_corrected SET STORAGE EXTERNAL,
    ALTER COLUMN b_space_id SET STORAGE EXTERNAL, ALTER COLUMN b_bucket SET STORAGE EXTERNAL,
    ALTER COLUMN b_entries SET STORAGE EXTERNAL, ALTER COLUMN b_exits SET STORAGE EXTERNAL,
    ALTER COLUMN b_occupancy SET STORAGE EXTERNAL, ALTER COLUMN b_correction SET STORAGE EXTERNAL,
    ALTER COLUMN b_peak SET STORAGE EXTERNAL;

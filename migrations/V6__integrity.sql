-- Counting integrity (issue 13): head counts by hand, repaired gaps that late originals fill, and
-- finished days that late reports revise.

-- What a report's repaired counts stand for (NULL: it repaired nothing): the reports of seqs
-- [gap_from, seq), counted between the device's previous report (`repair_from`) and this one.
-- A late original inside moves its share out of the repair into its own minute: found by time
-- when the device stamps its reports (so even a run that restarted unseen maps right), by seq
-- when they are stamped on receipt.
ALTER TABLE reports ADD COLUMN gap_from bigint;
ALTER TABLE reports ADD COLUMN repair_from timestamptz;
-- Only the reports that repaired a gap: the lookup of a late original's repair stays small.
CREATE INDEX reports_repairs ON reports (device_id, ts) WHERE gap_from IS NOT NULL;

-- Occupancy corrections by hand (a head count), per minute: visible next to the counts, never
-- folded into them. Occupancy = entries − exits + drift + correction.
ALTER TABLE space_series_1m ADD COLUMN correction bigint NOT NULL DEFAULT 0;

-- The open minute's correction (folded into `base` when the minute closes) and the day's sum.
ALTER TABLE space_state ADD COLUMN adjust bigint NOT NULL DEFAULT 0;
ALTER TABLE space_state ADD COLUMN corrected bigint NOT NULL DEFAULT 0;

-- Repaired gaps still open to late originals: bit i set = seq `high_seq - i` is covered by a
-- repair, not (yet) by its own report.
ALTER TABLE device_state ADD COLUMN repaired_hi bigint NOT NULL DEFAULT 0;
ALTER TABLE device_state ADD COLUMN repaired_lo bigint NOT NULL DEFAULT 0;
-- Timestamp of the report at high_seq (a repair's time starts there).
ALTER TABLE device_state ADD COLUMN high_ts timestamptz;
-- Start of the run before the current one (a report older than `run_start` belongs to it).
ALTER TABLE device_state ADD COLUMN prev_run_start timestamptz;
ALTER TABLE device_state ADD COLUMN jumps_total bigint NOT NULL DEFAULT 0;
-- The last implausible forward jump of seq, for the data-quality alert.
ALTER TABLE device_state ADD COLUMN last_jump_at timestamptz;
ALTER TABLE device_state ADD COLUMN last_jump_seq bigint;
-- Counts of jump reports since the highest seq last moved (the next repair leaves them out).
ALTER TABLE device_state ADD COLUMN jumped_in bigint NOT NULL DEFAULT 0;
ALTER TABLE device_state ADD COLUMN jumped_out bigint NOT NULL DEFAULT 0;

-- A head count ("inside now: N") asked for through the API; the ingester that counts the space
-- applies it in the transaction of its next batch and fills in what it changed.
CREATE TABLE recounts (
    id           bigserial PRIMARY KEY,
    space_id     text        NOT NULL,
    inside       bigint      NOT NULL CHECK (inside >= 0),
    reason       text        NOT NULL,
    actor        text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz,
    -- Occupancy shown just before, and the correction applied (inside − before).
    before       bigint,
    delta        bigint
);
CREATE INDEX recounts_pending ON recounts (id) WHERE applied_at IS NULL;
CREATE INDEX recounts_space ON recounts (space_id, id);

-- A finished local day whose figures changed after it ended (a backlog sent late): when, and how
-- many reports. The daily report shows it.
CREATE TABLE day_revisions (
    space_id   text        NOT NULL,
    day        date        NOT NULL,
    revised_at timestamptz NOT NULL,
    reports    bigint      NOT NULL,
    entries    bigint      NOT NULL,
    exits      bigint      NOT NULL,
    PRIMARY KEY (space_id, day)
);

-- The plain hourly and daily views gain the correction column (appended, so CREATE OR REPLACE
-- keeps their other columns). On TimescaleDB they are continuous aggregates, rebuilt at start by
-- src/store/timescale.rs (its spec version changed): those are left alone here.
DO $$
DECLARE
    caggs boolean := to_regclass('_timescaledb_catalog.continuous_agg') IS NOT NULL;
    is_cagg boolean;
BEGIN
    IF caggs THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema() AND view_name = ''space_series_1h'')'
            INTO is_cagg;
    ELSE
        is_cagg := false;
    END IF;
    IF NOT is_cagg THEN
        CREATE OR REPLACE VIEW space_series_1h AS
        SELECT space_id,
               date_trunc('hour', bucket) AS bucket,
               sum(entries)::bigint AS entries,
               sum(exits)::bigint AS exits,
               (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1] AS occupancy,
               max(peak) AS peak,
               sum(correction)::bigint AS correction
        FROM space_series_1m
        GROUP BY 1, 2;
    END IF;
    IF caggs THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema() AND view_name = ''space_series_1d'')'
            INTO is_cagg;
    ELSE
        is_cagg := false;
    END IF;
    IF NOT is_cagg THEN
        CREATE OR REPLACE VIEW space_series_1d AS
        SELECT space_id,
               date_trunc('day', bucket, vf_time_zone()) AS bucket,
               sum(entries)::bigint AS entries,
               sum(exits)::bigint AS exits,
               (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1] AS occupancy,
               max(peak) AS peak,
               sum(correction)::bigint AS correction
        FROM space_series_1m
        GROUP BY 1, 2;
    END IF;
END
$$;

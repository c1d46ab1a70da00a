-- visitorflow schema, plain PostgreSQL form. When TimescaleDB is available the service converts
-- reports and space_series_1m to hypertables and replaces the hourly/daily views with continuous
-- aggregates of the same names and columns (src/store/timescale.rs), so readers never branch.

-- Every accepted count report, for audit and recomputation. Entries/exits are in the space's frame
-- (a reversed device already swapped); repaired_* are counts recovered for a gap before this report.
CREATE TABLE reports (
    device_id        text        NOT NULL,
    seq              bigint      NOT NULL,
    ts               timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    space_id         text        NOT NULL,
    entries          integer     NOT NULL,
    exits            integer     NOT NULL,
    repaired_entries integer     NOT NULL DEFAULT 0,
    repaired_exits   integer     NOT NULL DEFAULT 0,
    total_in         bigint,
    total_out        bigint,
    period_s         integer,
    -- The time column is part of the key so the same table can become a hypertable.
    PRIMARY KEY (device_id, seq, ts)
);
-- Retention deletes by time; BRIN costs almost nothing on an append-mostly table.
CREATE INDEX reports_ts_brin ON reports USING brin (ts);

-- One row per space per minute: people (or vehicles) in and out during the minute, the occupancy
-- at the end of the minute as far as it was seen, and the highest occupancy seen in it.
CREATE TABLE space_series_1m (
    space_id  text        NOT NULL,
    bucket    timestamptz NOT NULL,
    entries   bigint      NOT NULL DEFAULT 0,
    exits     bigint      NOT NULL DEFAULT 0,
    occupancy bigint,
    peak      bigint,
    PRIMARY KEY (space_id, bucket)
);

-- The ingester's restart state, written in the same transaction as the reports it reflects.
CREATE TABLE device_state (
    device_id      text PRIMARY KEY,
    high_seq       bigint      NOT NULL,
    window_hi      bigint      NOT NULL,
    window_lo      bigint      NOT NULL,
    last_ts        timestamptz,
    run_start      timestamptz,
    totals_in      bigint,
    totals_out     bigint,
    missing        bigint      NOT NULL DEFAULT 0,
    gaps_total     bigint      NOT NULL DEFAULT 0,
    repaired_total bigint      NOT NULL DEFAULT 0,
    resets_total   bigint      NOT NULL DEFAULT 0,
    last_received  timestamptz,
    online         boolean
);

CREATE TABLE space_state (
    space_id     text PRIMARY KEY,
    day          date        NOT NULL,
    entries      bigint      NOT NULL,
    exits        bigint      NOT NULL,
    base         bigint      NOT NULL,
    minute       bigint      NOT NULL,
    min_in       bigint      NOT NULL,
    min_out      bigint      NOT NULL,
    closed_drift bigint      NOT NULL,
    peak         bigint      NOT NULL,
    peak_at      timestamptz,
    last_report  timestamptz
);

-- The county's time zone for daily buckets; the service rewrites it at start from its config.
CREATE FUNCTION vf_time_zone() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'Asia/Shanghai'::text $$;

CREATE VIEW space_series_1h AS
SELECT space_id,
       date_trunc('hour', bucket) AS bucket,
       sum(entries)::bigint AS entries,
       sum(exits)::bigint AS exits,
       (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1] AS occupancy,
       max(peak) AS peak
FROM space_series_1m
GROUP BY 1, 2;

CREATE VIEW space_series_1d AS
SELECT space_id,
       date_trunc('day', bucket, vf_time_zone()) AS bucket,
       sum(entries)::bigint AS entries,
       sum(exits)::bigint AS exits,
       (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1] AS occupancy,
       max(peak) AS peak
FROM space_series_1m
GROUP BY 1, 2;

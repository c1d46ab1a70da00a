//! Every SQL statement the service runs, in one place. `tests/store.rs` prepares each one against
//! a freshly migrated database, so a schema change that breaks a statement fails a test.

pub const COPY_REPORTS: &str = "COPY reports (device_id, seq, ts, received_at, space_id, entries, exits, \
     repaired_entries, repaired_exits, total_in, total_out, period_s) FROM STDIN (FORMAT binary)";

pub const UPSERT_BUCKETS: &str = "INSERT INTO space_series_1m (space_id, bucket, entries, exits, occupancy, peak) \
     SELECT s, b, e, x, o, o FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[]) \
         AS t(s, b, e, x, o) \
     ON CONFLICT (space_id, bucket) DO UPDATE SET \
         entries = space_series_1m.entries + EXCLUDED.entries, \
         exits = space_series_1m.exits + EXCLUDED.exits, \
         occupancy = COALESCE(EXCLUDED.occupancy, space_series_1m.occupancy), \
         peak = GREATEST(space_series_1m.peak, EXCLUDED.peak)";

pub const UPSERT_DEVICE_STATE: &str = "INSERT INTO device_state (device_id, high_seq, window_hi, window_lo, last_ts, \
         run_start, totals_in, totals_out, missing, gaps_total, repaired_total, resets_total, last_received, online) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], $6::timestamptz[], \
         $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::timestamptz[], $14::bool[]) \
     ON CONFLICT (device_id) DO UPDATE SET high_seq = EXCLUDED.high_seq, window_hi = EXCLUDED.window_hi, \
         window_lo = EXCLUDED.window_lo, last_ts = EXCLUDED.last_ts, run_start = EXCLUDED.run_start, \
         totals_in = EXCLUDED.totals_in, totals_out = EXCLUDED.totals_out, missing = EXCLUDED.missing, \
         gaps_total = EXCLUDED.gaps_total, repaired_total = EXCLUDED.repaired_total, \
         resets_total = EXCLUDED.resets_total, last_received = EXCLUDED.last_received, online = EXCLUDED.online";

pub const UPSERT_SPACE_STATE: &str = "INSERT INTO space_state (space_id, day, entries, exits, base, minute, min_in, \
         min_out, closed_drift, peak, peak_at, last_report) \
     SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], \
         $8::int8[], $9::int8[], $10::int8[], $11::timestamptz[], $12::timestamptz[]) \
     ON CONFLICT (space_id) DO UPDATE SET day = EXCLUDED.day, entries = EXCLUDED.entries, exits = EXCLUDED.exits, \
         base = EXCLUDED.base, minute = EXCLUDED.minute, min_in = EXCLUDED.min_in, min_out = EXCLUDED.min_out, \
         closed_drift = EXCLUDED.closed_drift, peak = EXCLUDED.peak, peak_at = EXCLUDED.peak_at, \
         last_report = EXCLUDED.last_report";

pub const LOAD_DEVICE_STATE: &str = "SELECT device_id, high_seq, window_hi, window_lo, last_ts, run_start, totals_in, \
     totals_out, missing, gaps_total, repaired_total, resets_total, last_received, online FROM device_state";

pub const LOAD_SPACE_STATE: &str = "SELECT space_id, day, entries, exits, base, minute, min_in, min_out, closed_drift, \
     peak, peak_at, last_report FROM space_state";

pub const SERIES_1M: &str = "SELECT bucket, entries, exits, occupancy, peak FROM space_series_1m \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";
pub const SERIES_1H: &str = "SELECT bucket, entries, exits, occupancy, peak FROM space_series_1h \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";
pub const SERIES_1D: &str = "SELECT bucket, entries, exits, occupancy, peak FROM space_series_1d \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";

pub const PING: &str = "SELECT 1";

/// The ingester's fence: ends the server side of connections that earlier sessions of the same
/// ingester (same `application_name`) left behind, e.g. a transaction whose client vanished into a
/// network black hole and that still holds row locks the new session needs.
pub const FENCE: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
     WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid() \
     AND datname = current_database()";
pub const FENCED_LEFT: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid() \
     AND datname = current_database()";

pub const PRUNE_REPORTS_PLAIN: &str = "DELETE FROM reports WHERE ts < $1";
pub const PRUNE_REPORTS_TIMESCALE: &str =
    "SELECT count(*) FROM drop_chunks('reports', older_than => $1::timestamptz)";

/// Sets the county time zone used by the daily view (a literal: functions cannot take parameters
/// in DDL); the caller has validated `tz` as an IANA name.
pub fn set_time_zone(tz: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION vf_time_zone() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '{}'::text $$",
        tz.replace('\'', "''")
    )
}

/// Statements the plain-PostgreSQL path runs, for the prepare-everything test.
pub const ALL_PLAIN: &[&str] = &[
    UPSERT_BUCKETS,
    UPSERT_DEVICE_STATE,
    UPSERT_SPACE_STATE,
    LOAD_DEVICE_STATE,
    LOAD_SPACE_STATE,
    SERIES_1M,
    SERIES_1H,
    SERIES_1D,
    PING,
    FENCE,
    FENCED_LEFT,
    PRUNE_REPORTS_PLAIN,
];

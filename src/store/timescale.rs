//! The TimescaleDB path: when the extension can be created, `reports` and `space_series_1m`
//! become hypertables and `space_series_1h` / `space_series_1d` become continuous aggregates with
//! the same columns, types and values as the plain views they replace. Idempotent: safe on every
//! start.
//!
//! How the aggregates stay equal to the plain views at every moment:
//! - they are real-time (`materialized_only = false`): buckets after the last materialised one
//!   are aggregated from the minutes at query time;
//! - only buckets that can no longer change are materialised: the ingester refuses reports older
//!   than `ingest.max_age_days`, so the refresh policies stop a day beyond that (the horizon).
//!   A late report — a device flushing its backlog, a replayed day — lands in a bucket that is
//!   still aggregated at query time, and shows at once, as on plain PostgreSQL;
//! - the policies have no start offset, so a change behind the horizon (a correction by hand) is
//!   folded in by their next run;
//! - every aggregate carries a spec (a comment with the definition's version, its bucket — for the
//!   daily one, the county time zone — and the horizon): one built by an older release, for
//!   another zone or another `max_age_days` is dropped and rebuilt from the minutes at start.

use tokio_postgres::Client;

use super::{Mode, StoreError};

const AVAILABLE: &str = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'";

/// The spec comment of the continuous aggregate `$1` in the current schema: no row when there is
/// no such aggregate, a NULL comment when it was built without one.
const CAGG_SPEC: &str = "SELECT obj_description(format('%I.%I', view_schema, view_name)::regclass, 'pg_class') \
     FROM timescaledb_information.continuous_aggregates \
     WHERE view_schema = current_schema() AND view_name = $1";

const HYPERTABLES: [&str; 2] = [
    "SELECT create_hypertable('reports', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE)",
    "SELECT create_hypertable('space_series_1m', 'bucket', chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE, migrate_data => TRUE)",
];

/// Bump when an aggregate's definition or policy changes: existing ones are then rebuilt.
const SPEC_VERSION: u32 = 3;

/// One continuous aggregate over `space_series_1m`.
struct Cagg {
    name: &'static str,
    /// The bucket expression over `space_series_1m.bucket`.
    bucket: String,
    /// Days behind now that the policy materialises up to; newer buckets are real-time.
    horizon_days: i64,
}

impl Cagg {
    fn spec(&self) -> String {
        format!(
            "visitorflow v{SPEC_VERSION}: {}, materialised up to {} days ago",
            self.bucket, self.horizon_days
        )
    }

    /// The statements that build the aggregate, one by one: TimescaleDB refuses some of them
    /// inside a (multi-statement, implicit) transaction. The spec is written last, so a start
    /// interrupted half-way rebuilds the aggregate next time.
    fn create_sql(&self) -> [String; 4] {
        let Cagg {
            name,
            bucket,
            horizon_days,
        } = self;
        [
            // The plain view's occupancy is the last non-NULL one of the period (only a batch's
            // newest minute carries occupancy): the FILTER keeps `last` from returning NULL.
            format!(
                "CREATE MATERIALIZED VIEW {name} \
                 WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS \
                 SELECT space_id, {bucket} AS bucket, sum(entries)::bigint AS entries, \
                        sum(exits)::bigint AS exits, \
                        last(occupancy, bucket) FILTER (WHERE occupancy IS NOT NULL) AS occupancy, \
                        max(peak) AS peak, sum(correction)::bigint AS correction \
                 FROM space_series_1m GROUP BY space_id, {bucket} WITH NO DATA"
            ),
            // Materialise what exists up to the horizon before the policy exists: a policy run
            // overlapping a manual refresh makes the refresh fail. Never up to now: a
            // materialised bucket no longer sees reports added to it until a refresh.
            format!(
                "CALL refresh_continuous_aggregate('{name}', NULL, now() - INTERVAL '{horizon_days} days')"
            ),
            format!(
                "SELECT add_continuous_aggregate_policy('{name}', start_offset => NULL, \
                 end_offset => INTERVAL '{horizon_days} days', schedule_interval => INTERVAL '1 hour')"
            ),
            format!(
                "COMMENT ON VIEW {name} IS '{}'",
                self.spec().replace('\'', "''")
            ),
        ]
    }
}

fn caggs(time_zone: &str, max_age_days: i64) -> [Cagg; 2] {
    let tz = time_zone.replace('\'', "''");
    // A report may be max_age_days old when it arrives; a day more covers the minute it is
    // counted in, the local day around it and clock differences between service and database.
    let horizon_days = max_age_days.max(0) + 1;
    [
        Cagg {
            name: "space_series_1h",
            bucket: "time_bucket(INTERVAL '1 hour', bucket)".into(),
            horizon_days,
        },
        Cagg {
            name: "space_series_1d",
            bucket: format!("time_bucket(INTERVAL '1 day', bucket, '{tz}')"),
            horizon_days,
        },
    ]
}

/// Returns the mode the database runs in. A missing or unloadable extension is not an error: the
/// plain views stay and the service says so at start.
/// `max_age_days` is the ingester's `ingest.max_age_days`: no report older than that is stored.
pub async fn setup(
    client: &Client,
    time_zone: &str,
    max_age_days: i64,
) -> Result<Mode, StoreError> {
    if client.query_opt(AVAILABLE, &[]).await?.is_none() {
        return Ok(Mode::Plain);
    }
    if let Err(e) = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .await
    {
        tracing::warn!(error = %e, "timescaledb is installed but cannot be created (is it in shared_preload_libraries?); using plain PostgreSQL");
        return Ok(Mode::Plain);
    }
    for stmt in HYPERTABLES {
        client.batch_execute(stmt).await?;
    }
    for cagg in caggs(time_zone, max_age_days) {
        let existing = client.query_opt(CAGG_SPEC, &[&cagg.name]).await?;
        match existing.map(|row| row.get::<_, Option<String>>(0)) {
            Some(Some(spec)) if spec == cagg.spec() => continue,
            Some(old) => {
                tracing::info!(
                    view = cagg.name,
                    old = old.as_deref().unwrap_or("none"),
                    new = %cagg.spec(),
                    "rebuilding continuous aggregate"
                );
                client
                    .batch_execute(&format!("DROP MATERIALIZED VIEW {}", cagg.name))
                    .await?;
            }
            None => {
                client
                    .batch_execute(&format!("DROP VIEW IF EXISTS {}", cagg.name))
                    .await?;
            }
        }
        for stmt in cagg.create_sql() {
            client.batch_execute(&stmt).await?;
        }
    }
    Ok(Mode::Timescale)
}

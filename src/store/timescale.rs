//! The TimescaleDB path: when the extension can be created, `reports` and `space_series_1m`
//! become hypertables and `space_series_1h` / `space_series_1d` become continuous aggregates with
//! the same columns as the plain views they replace. Idempotent: safe on every start.

use tokio_postgres::Client;

use super::{Mode, StoreError};

const AVAILABLE: &str = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'";
const IS_CAGG: &str =
    "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = $1";

const HYPERTABLES: [&str; 2] = [
    "SELECT create_hypertable('reports', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE)",
    "SELECT create_hypertable('space_series_1m', 'bucket', chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE, migrate_data => TRUE)",
];

/// The statements that replace the plain view `name` with a continuous aggregate; run one by one,
/// since TimescaleDB refuses some of them inside a (multi-statement, implicit) transaction.
fn cagg_sql(
    name: &str,
    bucket: &str,
    start_offset: &str,
    end_offset: &str,
    schedule: &str,
) -> [String; 4] {
    [
        format!("DROP VIEW IF EXISTS {name}"),
        format!(
            "CREATE MATERIALIZED VIEW {name} WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT space_id, {bucket} AS bucket, sum(entries)::bigint AS entries, sum(exits)::bigint AS exits,
       last(occupancy, bucket) AS occupancy, max(peak) AS peak
FROM space_series_1m GROUP BY space_id, {bucket} WITH NO DATA"
        ),
        format!(
            "SELECT add_continuous_aggregate_policy('{name}', start_offset => INTERVAL '{start_offset}', \
             end_offset => INTERVAL '{end_offset}', schedule_interval => INTERVAL '{schedule}')"
        ),
        format!("CALL refresh_continuous_aggregate('{name}', NULL, NULL)"),
    ]
}

/// Returns the mode the database runs in. A missing or unloadable extension is not an error: the
/// plain views stay and the service says so at start.
pub async fn setup(client: &Client, time_zone: &str) -> Result<Mode, StoreError> {
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
    let tz = time_zone.replace('\'', "''");
    let daily = format!("time_bucket(INTERVAL '1 day', bucket, '{tz}')");
    for (name, bucket, start, end, every) in [
        (
            "space_series_1h",
            "time_bucket(INTERVAL '1 hour', bucket)".to_string(),
            "3 days",
            "1 hour",
            "5 minutes",
        ),
        ("space_series_1d", daily, "35 days", "1 day", "1 hour"),
    ] {
        if client.query_opt(IS_CAGG, &[&name]).await?.is_some() {
            continue;
        }
        for stmt in cagg_sql(name, &bucket, start, end, every) {
            client.batch_execute(&stmt).await?;
        }
    }
    Ok(Mode::Timescale)
}

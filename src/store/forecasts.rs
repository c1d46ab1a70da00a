//! Stored forecast runs, each space's forecast of each local day, and the inputs known in
//! advance (closures, weather factors). SQL text is in [`super::sql`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;

use super::row::{from_row, query_as, query_scalar};
use super::{StoreError, sql};

/// One space's forecast of one day, as a run stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDay {
    pub space: String,
    pub day: NaiveDate,
    pub day_kind: String,
    pub holiday: Option<String>,
    /// A `forecast::Band` as JSON.
    pub entries: Value,
    pub peak: Value,
    /// `[{"entries": band, "occupancy": band}; 24]`, local hours from 0.
    pub hourly: Value,
    pub run_id: i64,
    pub made_at: DateTime<Utc>,
    pub trigger: String,
}
from_row!(StoredDay {
    space = "space_id",
    day,
    day_kind,
    holiday,
    entries,
    peak,
    hourly,
    run_id,
    made_at,
    trigger,
});

/// A day to store: the columns of `day_forecasts` but the run.
#[derive(Debug, Clone)]
pub struct NewDay {
    pub space: String,
    pub day: NaiveDate,
    pub day_kind: &'static str,
    pub holiday: Option<String>,
    pub entries: Value,
    pub peak: Value,
    pub hourly: Value,
}

/// Records a run and its days in `tx`; the run's id and time.
pub async fn insert_run(
    tx: &impl GenericClient,
    trigger: &str,
    first_day: NaiveDate,
    days: i32,
    requested_by: Option<&str>,
    rows: &[NewDay],
) -> Result<(i64, DateTime<Utc>), StoreError> {
    let row = tx
        .query_one(
            sql::INSERT_FORECAST_RUN,
            &[&trigger, &first_day, &days, &requested_by],
        )
        .await?;
    let (id, made_at): (i64, DateTime<Utc>) = (row.try_get("id")?, row.try_get("made_at")?);
    let col = |f: fn(&NewDay) -> Value| rows.iter().map(f).collect::<Vec<Value>>();
    let spaces: Vec<&str> = rows.iter().map(|r| r.space.as_str()).collect();
    let days_: Vec<NaiveDate> = rows.iter().map(|r| r.day).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.day_kind).collect();
    let holidays: Vec<Option<&str>> = rows.iter().map(|r| r.holiday.as_deref()).collect();
    let (entries, peaks, hourly) = (
        col(|r| r.entries.clone()),
        col(|r| r.peak.clone()),
        col(|r| r.hourly.clone()),
    );
    tx.execute(
        sql::INSERT_DAY_FORECASTS,
        &[
            &id, &spaces, &days_, &kinds, &holidays, &entries, &peaks, &hourly,
        ],
    )
    .await?;
    Ok((id, made_at))
}

/// For each of `spaces` and each day in `from..=to`, the last forecast made before `made_before`.
pub async fn latest(
    client: &impl GenericClient,
    spaces: &[&str],
    from: NaiveDate,
    to: NaiveDate,
    made_before: DateTime<Utc>,
) -> Result<Vec<StoredDay>, StoreError> {
    query_as(
        client,
        sql::LATEST_FORECASTS,
        &[&spaces, &from, &to, &made_before],
    )
    .await
}

/// The latest run's id (a cheap check for a new run).
pub async fn last_run(client: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    query_scalar(client, sql::LAST_RUN, &[]).await
}

pub async fn last_nightly(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    query_scalar(client, sql::LAST_NIGHTLY_RUN, &[]).await
}

/// Keeps, for days before `before`, only the last forecast made before each day began; drops
/// runs left empty that were made before `runs_before`. The rows removed.
pub async fn prune(
    client: &impl GenericClient,
    before: NaiveDate,
    runs_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let n = client.execute(sql::PRUNE_DAY_FORECASTS, &[&before]).await?;
    client
        .execute(sql::PRUNE_FORECAST_RUNS, &[&runs_before])
        .await?;
    Ok(n)
}

/// What is known in advance about a day at a space.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InputRow {
    pub space_id: String,
    pub day: NaiveDate,
    pub closed: bool,
    pub factor: Option<f64>,
    pub note: Option<String>,
    pub set_by: Option<String>,
    pub set_at: DateTime<Utc>,
}
from_row!(InputRow {
    space_id,
    day,
    closed,
    factor,
    note,
    set_by,
    set_at,
});

/// Stores a day's input with its audit entry (`set_forecast_input`).
pub async fn set_input(
    client: &mut tokio_postgres::Client,
    space: &str,
    day: NaiveDate,
    closed: bool,
    factor: Option<f64>,
    note: Option<&str>,
    by: &str,
) -> Result<InputRow, StoreError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            sql::UPSERT_FORECAST_INPUT,
            &[&space, &day, &closed, &factor, &note, &by],
        )
        .await?;
    let row = <InputRow as super::row::FromRow>::from_row(&row)?;
    let details =
        serde_json::json!({ "day": day, "closed": closed, "factor": factor, "note": note });
    tx.execute(
        sql::INSERT_AUDIT,
        &[&by, &"set_forecast_input", &space, &details],
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn clear_input(
    client: &impl GenericClient,
    space: &str,
    day: NaiveDate,
) -> Result<bool, StoreError> {
    Ok(client
        .execute(sql::DELETE_FORECAST_INPUT, &[&space, &day])
        .await?
        > 0)
}

pub async fn inputs(
    client: &impl GenericClient,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<InputRow>, StoreError> {
    query_as(client, sql::FORECAST_INPUTS, &[&from, &to]).await
}

//! Head counts by hand ("inside now: N"): the API records one as pending, the ingester that counts
//! the space applies it in its next batch and fills in `applied_at`, `before` and `delta`. Also the
//! daily report's corrections and revised days. SQL text is in [`super::sql`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};
use utoipa::ToSchema;

use super::row::{from_row, query_as, query_one_as, query_opt_as};
use super::{StoreError, sql};

/// One head count, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Recount {
    pub id: i64,
    /// The space counted.
    pub space: String,
    /// The head count: occupancy continues from it.
    pub inside: i64,
    pub reason: String,
    /// The token that asked for it.
    pub actor: String,
    pub requested_at: DateTime<Utc>,
    /// When the ingester applied it (null: pending).
    pub applied_at: Option<DateTime<Utc>>,
    /// Occupancy shown just before it was applied.
    pub before: Option<i64>,
    /// The correction applied, `inside − before` (also added to the space's ancestors).
    pub delta: Option<i64>,
}

impl Recount {
    pub fn applied(&self) -> bool {
        self.applied_at.is_some()
    }
}

from_row!(Recount {
    id,
    space = "space_id",
    inside,
    reason,
    actor,
    requested_at,
    applied_at,
    before,
    delta,
});

pub struct NewRecount<'a> {
    pub space: &'a str,
    pub inside: i64,
    pub reason: &'a str,
    pub by: &'a str,
}

/// Records a pending head count and its audit entry (action `recount`) in one transaction.
pub async fn insert(client: &mut Client, n: &NewRecount<'_>) -> Result<Recount, StoreError> {
    let tx = client.transaction().await?;
    let rec: Recount = query_one_as(
        &tx,
        sql::INSERT_RECOUNT,
        &[&n.space, &n.inside, &n.reason, &n.by],
    )
    .await?;
    let details = serde_json::json!({ "recount": rec.id, "inside": n.inside, "reason": n.reason });
    tx.execute(sql::INSERT_AUDIT, &[&n.by, &"recount", &n.space, &details])
        .await?;
    tx.commit().await?;
    Ok(rec)
}

pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Recount>, StoreError> {
    query_opt_as(client, sql::GET_RECOUNT, &[&id]).await
}

/// A space's head counts, newest first.
pub async fn list(
    client: &impl GenericClient,
    space: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Recount>, StoreError> {
    query_as(client, sql::LIST_RECOUNTS, &[&space, &limit, &offset]).await
}

/// The audit entry of an applied head count: what it changed.
pub fn applied_details(r: &Recount) -> Value {
    serde_json::json!({
        "recount": r.id, "inside": r.inside, "before": r.before, "delta": r.delta,
        "applied_at": r.applied_at,
    })
}

/// Per space, the sum of the head-count corrections of the minutes in `[from, to)` (spaces
/// without any are left out).
pub async fn day_corrections(
    client: &impl GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, StoreError> {
    client
        .query(sql::DAY_CORRECTIONS, &[&from, &to])
        .await?
        .iter()
        .map(|r| -> Result<_, StoreError> {
            Ok((r.try_get("space_id")?, r.try_get("correction")?))
        })
        .collect()
}

/// A finished local day of a space that late reports changed after it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRevision {
    pub space: String,
    /// When the figures last changed.
    pub revised_at: DateTime<Utc>,
    /// How many reports changed them.
    pub reports: i64,
}
from_row!(DayRevision {
    space,
    revised_at,
    reports,
});

pub async fn day_revisions(
    client: &impl GenericClient,
    day: NaiveDate,
) -> Result<Vec<DayRevision>, StoreError> {
    query_as(client, sql::DAY_REVISIONS, &[&day]).await
}

//! Dispatch advice history and dispatchers' decisions. SQL text is in [`super::sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};

use super::row::{from_row, query_as, query_opt_as, query_opt_scalar, query_scalar};
use super::{StoreError, sql};

pub struct NewAdvice<'a> {
    pub at: DateTime<Utc>,
    pub hub: &'a str,
    pub advice: &'a Value,
    pub change: Option<&'a Value>,
    pub shuttles: i32,
    pub diversions: i32,
}

pub async fn insert(client: &impl GenericClient, a: &NewAdvice<'_>) -> Result<i64, StoreError> {
    query_scalar(
        client,
        sql::INSERT_ADVICE,
        &[
            &a.at,
            &a.hub,
            a.advice,
            &a.change,
            &a.shuttles,
            &a.diversions,
        ],
    )
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct AdviceRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub hub: String,
    pub advice: Value,
    pub change: Option<Value>,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
}

from_row!(AdviceRow {
    id,
    at,
    hub = "hub_id",
    advice,
    change,
    decision,
    decided_by,
    decided_at,
    decision_reason,
});

/// The newest advice of every hub.
pub async fn latest(client: &Client) -> Result<Vec<AdviceRow>, StoreError> {
    query_as(client, sql::LATEST_ADVICE, &[]).await
}

pub async fn history(
    client: &Client,
    hub: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdviceRow>, StoreError> {
    query_as(
        client,
        sql::ADVICE_HISTORY,
        &[&hub, &from, &to, &limit, &offset],
    )
    .await
}

/// One advice, as the history shows it.
pub async fn get(client: &Client, id: i64) -> Result<Option<AdviceRow>, StoreError> {
    query_opt_as(client, sql::GET_ADVICE, &[&id]).await
}

/// The hub an advice belongs to.
pub async fn hub_of(client: &Client, id: i64) -> Result<Option<String>, StoreError> {
    query_opt_scalar(client, sql::ADVICE_HUB, &[&id]).await
}

/// Records a dispatcher's decision once; returns the hub, `None` when unknown or already decided.
pub async fn decide(
    client: &Client,
    id: i64,
    decision: &str,
    by: &str,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<Option<String>, StoreError> {
    query_opt_scalar(
        client,
        sql::DECIDE_ADVICE,
        &[&id, &decision, &by, &at, &reason],
    )
    .await
}

/// Advice followed since `since`, with when: the shuttles it sent are on the road or back.
pub async fn followed_since(
    client: &impl GenericClient,
    since: DateTime<Utc>,
) -> Result<Vec<(Value, DateTime<Utc>)>, StoreError> {
    client
        .query(sql::FOLLOWED_SINCE, &[&since])
        .await?
        .iter()
        .map(|r| -> Result<_, StoreError> { Ok((r.try_get("advice")?, r.try_get("decided_at")?)) })
        .collect()
}

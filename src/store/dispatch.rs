//! Dispatch advice history and dispatchers' decisions. SQL text is in [`super::sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient, Row};

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
    Ok(client
        .query_one(
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
        .await?
        .get(0))
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

fn row(r: &Row) -> AdviceRow {
    AdviceRow {
        id: r.get(0),
        at: r.get(1),
        hub: r.get(2),
        advice: r.get(3),
        change: r.get(4),
        decision: r.get(5),
        decided_by: r.get(6),
        decided_at: r.get(7),
        decision_reason: r.get(8),
    }
}

/// The newest advice of every hub.
pub async fn latest(client: &Client) -> Result<Vec<AdviceRow>, StoreError> {
    Ok(client
        .query(sql::LATEST_ADVICE, &[])
        .await?
        .iter()
        .map(row)
        .collect())
}

pub async fn history(
    client: &Client,
    hub: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdviceRow>, StoreError> {
    Ok(client
        .query(sql::ADVICE_HISTORY, &[&hub, &from, &to, &limit, &offset])
        .await?
        .iter()
        .map(row)
        .collect())
}

/// One advice, as the history shows it.
pub async fn get(client: &Client, id: i64) -> Result<Option<AdviceRow>, StoreError> {
    Ok(client
        .query_opt(sql::GET_ADVICE, &[&id])
        .await?
        .map(|r| row(&r)))
}

/// The hub an advice belongs to.
pub async fn hub_of(client: &Client, id: i64) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(sql::ADVICE_HUB, &[&id])
        .await?
        .map(|r| r.get(0)))
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
    Ok(client
        .query_opt(sql::DECIDE_ADVICE, &[&id, &decision, &by, &at, &reason])
        .await?
        .map(|r| r.get(0)))
}

/// Advice followed since `since`, with when: the shuttles it sent are on the road or back.
pub async fn followed_since(
    client: &impl GenericClient,
    since: DateTime<Utc>,
) -> Result<Vec<(Value, DateTime<Utc>)>, StoreError> {
    Ok(client
        .query(sql::FOLLOWED_SINCE, &[&since])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

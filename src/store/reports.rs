//! The daily report's figures beyond the series (notices, deliveries, dispatch advice) and the
//! record of its pushes upstream. SQL text is in [`super::sql`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};

use super::row::{from_row, query_as, query_opt_as, query_opt_scalar, query_scalar};
use super::{StoreError, sql};

/// One space's alert notices on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCounts {
    pub space: String,
    pub alerts: i64,
    pub art45: i64,
    pub art45_confirmed: i64,
}
from_row!(NoticeCounts {
    space = "space_id",
    alerts,
    art45,
    art45_confirmed,
});

pub async fn day_notices(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<NoticeCounts>, StoreError> {
    query_as(client, sql::DAY_NOTICES, &[&from, &to]).await
}

/// One space's webhook deliveries of a day's notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub space: String,
    pub delivered: i64,
    pub dead: i64,
    pub pending: i64,
}
from_row!(DeliveryCounts {
    space = "space_id",
    delivered,
    dead,
    pending,
});

pub async fn day_deliveries(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DeliveryCounts>, StoreError> {
    query_as(client, sql::DAY_DELIVERIES, &[&from, &to]).await
}

/// One recorded dispatch advice.
#[derive(Debug, Clone, PartialEq)]
pub struct DayAdvice {
    pub hub: String,
    pub advice: Value,
    pub decision: Option<String>,
}

from_row!(DayAdvice {
    hub = "hub_id",
    advice,
    decision
});

/// The advice recorded in `[from, to)`, oldest first.
pub async fn day_advice(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DayAdvice>, StoreError> {
    query_as(client, sql::DAY_ADVICE, &[&from, &to]).await
}

/// Each hub's advice in force at `at` (its last one before).
pub async fn advice_before(
    client: &Client,
    at: DateTime<Utc>,
) -> Result<Vec<DayAdvice>, StoreError> {
    query_as(client, sql::ADVICE_BEFORE, &[&at]).await
}

/// A push's body as recorded: what every attempt sends.
pub struct NewPush<'a> {
    pub day: NaiveDate,
    pub format: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Records the scheduled push of `push.day` under `delivery_id`; `None` when the day already
/// has one.
pub async fn insert_scheduled(
    client: &impl GenericClient,
    delivery_id: &str,
    push: &NewPush<'_>,
) -> Result<Option<i64>, StoreError> {
    query_opt_scalar(
        client,
        sql::INSERT_SCHEDULED_PUSH,
        &[
            &push.day,
            &delivery_id,
            &push.format,
            &push.content_type,
            &push.body,
        ],
    )
    .await
}

/// Records an admin's push; `None` while a push of that day is still pending. Returns the id and
/// the delivery id.
pub async fn insert_manual(
    client: &impl GenericClient,
    push: &NewPush<'_>,
    by: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let row = client
        .query_opt(
            sql::INSERT_MANUAL_PUSH,
            &[&push.day, &push.format, &push.content_type, &push.body, &by],
        )
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("id")?, r.try_get("delivery_id")?)),
        None => None,
    })
}

pub async fn last_scheduled_day(
    client: &impl GenericClient,
) -> Result<Option<NaiveDate>, StoreError> {
    query_scalar(client, sql::LAST_SCHEDULED_DAY, &[]).await
}

/// A push claimed for one attempt: a row of either push table (the daily report's, the live
/// feed's), read the same way.
#[derive(Debug, Clone)]
pub struct DuePush {
    pub id: i64,
    pub delivery_id: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub attempts: i32,
}
from_row!(DuePush {
    id,
    delivery_id,
    content_type,
    body,
    attempts,
});

/// Claims the next due push for `lease_s` seconds.
pub async fn claim(
    client: &impl GenericClient,
    lease_s: f64,
) -> Result<Option<DuePush>, StoreError> {
    query_opt_as(client, sql::CLAIM_PUSH, &[&lease_s]).await
}

pub async fn next_due(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    query_scalar(client, sql::NEXT_PUSH_DUE, &[]).await
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PushOutcome {
    Delivered,
    /// Tried again in this many seconds.
    Retry(f64),
    /// A dead letter: permanent failure, or out of attempts.
    Dead,
}

impl PushOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Retry(_) => "retried",
            PushOutcome::Dead => "dead",
        }
    }
}

/// One attempt, for the attempts table.
pub struct AttemptRecord<'a> {
    pub attempt: i32,
    pub outcome: PushOutcome,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub latency_ms: Option<f64>,
}

/// Records an attempt and the push's new state in one transaction, in `table` (the daily
/// report's [`sql::REPORT_PUSH`] or the live feed's [`sql::LIVE_FEED`]).
pub async fn record_attempt(
    client: &mut Client,
    table: &sql::PushTable,
    push_id: i64,
    a: &AttemptRecord<'_>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        table.insert_attempt,
        &[
            &push_id,
            &a.attempt,
            &a.outcome.as_str(),
            &a.http_status,
            &a.error,
            &a.latency_ms,
        ],
    )
    .await?;
    match a.outcome {
        PushOutcome::Delivered => {
            tx.execute(table.mark_delivered, &[&push_id, &a.http_status])
                .await?
        }
        PushOutcome::Retry(in_s) => {
            tx.execute(
                table.mark_retry,
                &[&push_id, &in_s, &a.http_status, &a.error],
            )
            .await?
        }
        PushOutcome::Dead => {
            tx.execute(table.mark_dead, &[&push_id, &a.http_status, &a.error])
                .await?
        }
    };
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct PushRow {
    pub id: i64,
    pub day: NaiveDate,
    pub trigger: String,
    pub delivery_id: String,
    pub format: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub requested_by: Option<String>,
}
from_row!(PushRow {
    id,
    day,
    trigger,
    delivery_id,
    format,
    status,
    attempts,
    created_at,
    last_attempt_at,
    delivered_at,
    last_status,
    last_error,
    requested_by,
});

pub async fn list_pushes(
    client: &Client,
    limit: i64,
    offset: i64,
) -> Result<Vec<PushRow>, StoreError> {
    query_as(client, sql::LIST_PUSHES, &[&limit, &offset]).await
}

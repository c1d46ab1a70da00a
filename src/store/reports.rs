//! The daily report's figures beyond the series (notices, deliveries, dispatch advice) and the
//! record of its pushes upstream. SQL text is in [`super::sql`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};

use super::{StoreError, sql};

/// One space's alert notices on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCounts {
    pub space: String,
    pub alerts: i64,
    pub art45: i64,
    pub art45_confirmed: i64,
}

pub async fn day_notices(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<NoticeCounts>, StoreError> {
    Ok(client
        .query(sql::DAY_NOTICES, &[&from, &to])
        .await?
        .iter()
        .map(|r| NoticeCounts {
            space: r.get(0),
            alerts: r.get(1),
            art45: r.get(2),
            art45_confirmed: r.get(3),
        })
        .collect())
}

/// One space's webhook deliveries of a day's notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub space: String,
    pub delivered: i64,
    pub dead: i64,
    pub pending: i64,
}

pub async fn day_deliveries(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DeliveryCounts>, StoreError> {
    Ok(client
        .query(sql::DAY_DELIVERIES, &[&from, &to])
        .await?
        .iter()
        .map(|r| DeliveryCounts {
            space: r.get(0),
            delivered: r.get(1),
            dead: r.get(2),
            pending: r.get(3),
        })
        .collect())
}

/// One recorded dispatch advice.
#[derive(Debug, Clone, PartialEq)]
pub struct DayAdvice {
    pub hub: String,
    pub advice: Value,
    pub decision: Option<String>,
}

fn day_advice_row(r: &tokio_postgres::Row) -> DayAdvice {
    DayAdvice {
        hub: r.get(0),
        advice: r.get(1),
        decision: r.get(2),
    }
}

/// The advice recorded in `[from, to)`, oldest first.
pub async fn day_advice(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DayAdvice>, StoreError> {
    Ok(client
        .query(sql::DAY_ADVICE, &[&from, &to])
        .await?
        .iter()
        .map(day_advice_row)
        .collect())
}

/// Each hub's advice in force at `at` (its last one before).
pub async fn advice_before(
    client: &Client,
    at: DateTime<Utc>,
) -> Result<Vec<DayAdvice>, StoreError> {
    Ok(client
        .query(sql::ADVICE_BEFORE, &[&at])
        .await?
        .iter()
        .map(day_advice_row)
        .collect())
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
    Ok(client
        .query_opt(
            sql::INSERT_SCHEDULED_PUSH,
            &[
                &push.day,
                &delivery_id,
                &push.format,
                &push.content_type,
                &push.body,
            ],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Records an admin's push; `None` while a push of that day is still pending. Returns the id and
/// the delivery id.
pub async fn insert_manual(
    client: &impl GenericClient,
    push: &NewPush<'_>,
    by: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(client
        .query_opt(
            sql::INSERT_MANUAL_PUSH,
            &[&push.day, &push.format, &push.content_type, &push.body, &by],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub async fn last_scheduled_day(
    client: &impl GenericClient,
) -> Result<Option<NaiveDate>, StoreError> {
    Ok(client.query_one(sql::LAST_SCHEDULED_DAY, &[]).await?.get(0))
}

/// A push claimed for one attempt.
#[derive(Debug, Clone)]
pub struct DuePush {
    pub id: i64,
    pub day: NaiveDate,
    pub delivery_id: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub attempts: i32,
}

/// Claims the next due push for `lease_s` seconds.
pub async fn claim(
    client: &impl GenericClient,
    lease_s: f64,
) -> Result<Option<DuePush>, StoreError> {
    Ok(client
        .query_opt(sql::CLAIM_PUSH, &[&lease_s])
        .await?
        .map(|r| DuePush {
            id: r.get(0),
            day: r.get(1),
            delivery_id: r.get(2),
            content_type: r.get(3),
            body: r.get(4),
            attempts: r.get(5),
        }))
}

pub async fn next_due(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(client.query_one(sql::NEXT_PUSH_DUE, &[]).await?.get(0))
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

/// Records an attempt and the push's new state in one transaction.
pub async fn record_attempt(
    client: &mut Client,
    push_id: i64,
    a: &AttemptRecord<'_>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        sql::INSERT_PUSH_ATTEMPT,
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
            tx.execute(sql::MARK_PUSH_DELIVERED, &[&push_id, &a.http_status])
                .await?
        }
        PushOutcome::Retry(in_s) => {
            tx.execute(
                sql::MARK_PUSH_RETRY,
                &[&push_id, &in_s, &a.http_status, &a.error],
            )
            .await?
        }
        PushOutcome::Dead => {
            tx.execute(sql::MARK_PUSH_DEAD, &[&push_id, &a.http_status, &a.error])
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

pub async fn list_pushes(
    client: &Client,
    limit: i64,
    offset: i64,
) -> Result<Vec<PushRow>, StoreError> {
    Ok(client
        .query(sql::LIST_PUSHES, &[&limit, &offset])
        .await?
        .iter()
        .map(|r| PushRow {
            id: r.get(0),
            day: r.get(1),
            trigger: r.get(2),
            delivery_id: r.get(3),
            format: r.get(4),
            status: r.get(5),
            attempts: r.get(6),
            created_at: r.get(7),
            last_attempt_at: r.get(8),
            delivered_at: r.get(9),
            last_status: r.get(10),
            last_error: r.get(11),
            requested_by: r.get(12),
        })
        .collect())
}

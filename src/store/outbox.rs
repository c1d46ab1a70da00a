//! The webhook outbox: what is queued for each subscription, its delivery attempts, dead
//! letters and their replay. The decisions (when to retry, when to give up) are `crate::retry`'s.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, Transaction};

use super::row::{from_row, query_as, query_opt_scalar, query_scalar};
use super::{StoreError, sql};

pub async fn enqueue(
    tx: &Transaction<'_>,
    delivery_id: &str,
    subscription: &str,
    transition_id: Option<i64>,
    space_id: &str,
    event: &Value,
) -> Result<(), StoreError> {
    tx.execute(
        sql::INSERT_OUTBOX,
        &[
            &delivery_id,
            &subscription,
            &transition_id,
            &space_id,
            event,
        ],
    )
    .await?;
    Ok(())
}

/// One due delivery of a subscription.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub delivery_id: String,
    pub event: Value,
    pub attempts: i32,
}
from_row!(Due {
    id,
    delivery_id,
    event,
    attempts
});

pub async fn due_deliveries(
    client: &Client,
    subscription: &str,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    query_as(client, sql::DUE_DELIVERIES, &[&subscription, &limit]).await
}

pub async fn next_due(
    client: &Client,
    subscription: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    query_scalar(client, sql::NEXT_DUE, &[&subscription]).await
}

pub async fn mark_delivered(
    client: &Client,
    id: i64,
    status: u16,
    latency_ms: f64,
) -> Result<(), StoreError> {
    client
        .execute(sql::MARK_DELIVERED, &[&id, &i32::from(status), &latency_ms])
        .await?;
    Ok(())
}

pub async fn mark_retry(
    client: &Client,
    id: i64,
    after_s: f64,
    status: Option<u16>,
    error: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            sql::MARK_RETRY,
            &[&id, &after_s, &status.map(i32::from), &error],
        )
        .await?;
    Ok(())
}

pub async fn mark_dead(
    client: &Client,
    id: i64,
    status: Option<u16>,
    error: &str,
) -> Result<(), StoreError> {
    client
        .execute(sql::MARK_DEAD, &[&id, &status.map(i32::from), &error])
        .await?;
    Ok(())
}

/// Puts a dead letter back in the queue; returns its subscription when it was dead.
pub async fn replay_dead(client: &Client, id: i64) -> Result<Option<String>, StoreError> {
    query_opt_scalar(client, sql::REPLAY_DEAD, &[&id]).await
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub delivery_id: String,
    pub subscription: String,
    pub space_id: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub latency_ms: Option<f64>,
    pub alert_id: Option<String>,
}
from_row!(DeliveryRow {
    id,
    delivery_id,
    subscription = "subscription_id",
    space_id,
    status,
    attempts,
    created_at,
    last_attempt_at,
    delivered_at,
    last_status,
    last_error,
    latency_ms,
    alert_id,
});

pub async fn list_deliveries(
    client: &Client,
    status: Option<&str>,
    subscription: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    query_as(
        client,
        sql::LIST_DELIVERIES,
        &[&status, &subscription, &limit, &offset],
    )
    .await
}

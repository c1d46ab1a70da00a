//! Operators' controls on a space and their trail: policy caps (effective capacity below the
//! approved value), hazards (weather, closures) and the audit log of every change.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};

use super::row::{from_row, query_as, query_scalar};
use super::{StoreError, sql};

#[derive(Debug, Clone, Serialize)]
pub struct CapRow {
    pub id: i64,
    pub space_id: String,
    pub percent: f64,
    pub reason: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}
from_row!(CapRow {
    id,
    space_id,
    percent,
    reason,
    starts_at,
    ends_at,
    created_by,
    created_at,
    revoked_at,
    revoked_by,
});

/// Caps in force now or later (not revoked, not ended).
pub async fn active_caps(client: &impl GenericClient) -> Result<Vec<CapRow>, StoreError> {
    query_as(client, sql::ACTIVE_CAPS, &[]).await
}

/// Every cap ever set on a space: the audit trail of effective capacity.
pub async fn list_caps(
    client: &Client,
    space: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<CapRow>, StoreError> {
    query_as(client, sql::LIST_CAPS, &[&space, &limit, &offset]).await
}

pub struct NewCap<'a> {
    pub space: &'a str,
    pub percent: f64,
    pub reason: &'a str,
    pub starts: DateTime<Utc>,
    pub ends: Option<DateTime<Utc>>,
    pub by: &'a str,
}

pub async fn insert_cap(client: &mut Client, c: &NewCap<'_>) -> Result<i64, StoreError> {
    let tx = client.transaction().await?;
    let id: i64 = query_scalar(
        &tx,
        sql::INSERT_CAP,
        &[&c.space, &c.percent, &c.reason, &c.starts, &c.ends, &c.by],
    )
    .await?;
    let details = serde_json::json!({ "cap": id, "percent": c.percent, "reason": c.reason, "starts": c.starts, "ends": c.ends });
    tx.execute(
        sql::INSERT_AUDIT,
        &[&c.by, &"set_policy_cap", &c.space, &details],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn revoke_cap(
    client: &mut Client,
    space: &str,
    id: i64,
    by: &str,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    let done = tx
        .query_opt(sql::REVOKE_CAP, &[&id, &space, &by])
        .await?
        .is_some();
    if done {
        tx.execute(
            sql::INSERT_AUDIT,
            &[
                &by,
                &"revoke_policy_cap",
                &space,
                &serde_json::json!({ "cap": id }),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}

#[derive(Debug, Clone, Serialize)]
pub struct HazardRow {
    pub id: i64,
    pub space_id: String,
    pub kind: String,
    pub severity: String,
    pub message: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}
from_row!(HazardRow {
    id,
    space_id,
    kind,
    severity,
    message,
    since,
    until
});

pub async fn active_hazards(client: &impl GenericClient) -> Result<Vec<HazardRow>, StoreError> {
    query_as(client, sql::ACTIVE_HAZARDS, &[]).await
}

/// A hazard signal (from MQTT or the API): raising one replaces any open hazard of the same kind.
pub struct HazardWrite<'a> {
    pub space: &'a str,
    pub kind: &'a str,
    pub severity: &'a str,
    pub message: &'a str,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub source: &'a str,
    pub active: bool,
}

pub async fn write_hazard(
    client: &impl GenericClient,
    h: &HazardWrite<'_>,
) -> Result<Option<i64>, StoreError> {
    client
        .execute(sql::CLEAR_HAZARDS, &[&h.space, &h.kind, &h.since])
        .await?;
    if !h.active {
        return Ok(None);
    }
    let id: i64 = query_scalar(
        client,
        sql::INSERT_HAZARD,
        &[
            &h.space,
            &h.kind,
            &h.severity,
            &h.message,
            &h.since,
            &h.until,
            &h.source,
        ],
    )
    .await?;
    Ok(Some(id))
}

pub async fn clear_hazard(client: &Client, space: &str, id: i64) -> Result<bool, StoreError> {
    Ok(client
        .query_opt(sql::CLEAR_HAZARD_BY_ID, &[&id, &space])
        .await?
        .is_some())
}

pub async fn audit(
    client: &impl GenericClient,
    actor: &str,
    action: &str,
    target: &str,
    details: &Value,
) -> Result<(), StoreError> {
    client
        .execute(sql::INSERT_AUDIT, &[&actor, &action, &target, details])
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Value,
}
from_row!(AuditRow {
    id,
    at,
    actor,
    action,
    target,
    details
});

pub async fn list_audit(
    client: &Client,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    query_as(client, sql::LIST_AUDIT, &[&limit, &offset]).await
}

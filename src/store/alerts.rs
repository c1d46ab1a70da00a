//! Alert storage: the rule engine's persisted state, alert records and their transitions, the
//! webhook outbox, policy caps, hazards and the audit log. SQL text is in [`super::sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient, Row, Transaction};

use super::{StoreError, sql};

/// An alert transition to record, with what to send to each subscription.
#[derive(Debug, Clone)]
pub struct TransitionWrite {
    pub space_id: String,
    pub kind: String,
    pub change: &'static str,
    pub severity: &'static str,
    pub level: Option<&'static str>,
    pub at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub load_pct: Option<f64>,
    pub message_zh: String,
    pub message_en: String,
    pub details: Value,
}

/// What a recorded transition became: ids for the deliveries and the alert's state.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub alert_id: i64,
    pub transition_id: i64,
    pub state: String,
    pub started_at: DateTime<Utc>,
}

pub async fn load_rule_state(client: &Client) -> Result<Option<Value>, StoreError> {
    Ok(client
        .query_opt(sql::LOAD_RULE_STATE, &[])
        .await?
        .map(|r| r.get(0)))
}

pub async fn save_rule_state(
    tx: &Transaction<'_>,
    state: &Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(sql::SAVE_RULE_STATE, &[state, &at]).await?;
    Ok(())
}

/// Records one transition: the alert row (opened, updated or resolved) and the transition row.
pub async fn record_transition(
    tx: &Transaction<'_>,
    t: &TransitionWrite,
) -> Result<Option<Recorded>, StoreError> {
    let row = if t.change == "resolve" {
        tx.query_opt(sql::RESOLVE_ALERT, &[&t.space_id, &t.kind, &t.at])
            .await?
    } else {
        let refire = t.change == "escalate";
        Some(
            tx.query_one(
                sql::UPSERT_OPEN_ALERT,
                &[
                    &t.space_id,
                    &t.kind,
                    &t.severity,
                    &t.level,
                    &t.since,
                    &t.at,
                    &t.details,
                    &refire,
                ],
            )
            .await?,
        )
    };
    let Some(row) = row else {
        // Resolving an alert the database never saw open (e.g. state from before a wipe).
        return Ok(None);
    };
    let alert_id: i64 = row.get(0);
    let state: String = row.get(1);
    let transition_id: i64 = tx
        .query_one(
            sql::INSERT_TRANSITION,
            &[
                &alert_id,
                &t.at,
                &t.change,
                &state,
                &t.severity,
                &t.level,
                &t.load_pct,
                &None::<String>,
                &t.message_zh,
                &t.message_en,
                &t.details,
            ],
        )
        .await?
        .get(0);
    Ok(Some(Recorded {
        alert_id,
        transition_id,
        state,
        started_at: row.get(2),
    }))
}

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

/// Alerts at major or above, firing and unacknowledged since before `before`, not yet escalated:
/// each with its last transition's id and details.
pub async fn due_escalations(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<Vec<(i64, i64, Value)>, StoreError> {
    let mut out = Vec::new();
    for r in client.query(sql::DUE_ESCALATIONS, &[&before]).await? {
        let id: i64 = r.get(0);
        if let Some(t) = client.query_opt(sql::LAST_TRANSITION, &[&id]).await? {
            out.push((id, t.get(0), t.get(1)));
        }
    }
    Ok(out)
}

pub async fn mark_escalated(
    tx: &Transaction<'_>,
    alert_id: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(sql::MARK_ESCALATED, &[&alert_id, &at]).await?;
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

pub async fn due_deliveries(
    client: &Client,
    subscription: &str,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    Ok(client
        .query(sql::DUE_DELIVERIES, &[&subscription, &limit])
        .await?
        .iter()
        .map(|r| Due {
            id: r.get(0),
            delivery_id: r.get(1),
            event: r.get(2),
            attempts: r.get(3),
        })
        .collect())
}

pub async fn next_due(
    client: &Client,
    subscription: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(client
        .query_one(sql::NEXT_DUE, &[&subscription])
        .await?
        .get(0))
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
    Ok(client
        .query_opt(sql::REPLAY_DEAD, &[&id])
        .await?
        .map(|r| r.get(0)))
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

pub async fn list_deliveries(
    client: &Client,
    status: Option<&str>,
    subscription: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(client
        .query(
            sql::LIST_DELIVERIES,
            &[&status, &subscription, &limit, &offset],
        )
        .await?
        .iter()
        .map(|r| DeliveryRow {
            id: r.get(0),
            delivery_id: r.get(1),
            subscription: r.get(2),
            space_id: r.get(3),
            status: r.get(4),
            attempts: r.get(5),
            created_at: r.get(6),
            last_attempt_at: r.get(7),
            delivered_at: r.get(8),
            last_status: r.get(9),
            last_error: r.get(10),
            latency_ms: r.get(11),
            alert_id: r.get(12),
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub space_id: String,
    pub kind: String,
    pub severity: String,
    pub state: String,
    pub level: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub details: Value,
}

fn alert_row(r: &Row) -> AlertRow {
    AlertRow {
        id: r.get(0),
        space_id: r.get(1),
        kind: r.get(2),
        severity: r.get(3),
        state: r.get(4),
        level: r.get(5),
        started_at: r.get(6),
        updated_at: r.get(7),
        ended_at: r.get(8),
        acknowledged_by: r.get(9),
        acknowledged_at: r.get(10),
        ack_comment: r.get(11),
        escalated_at: r.get(12),
        details: r.get(13),
    }
}

/// Filters of the alert list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub space: Option<String>,
    pub state: Option<String>,
    pub severities: Option<Vec<String>>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn list_alerts(client: &Client, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
    Ok(client
        .query(
            sql::LIST_ALERTS,
            &[
                &f.space,
                &f.state,
                &f.severities,
                &f.from,
                &f.to,
                &f.limit,
                &f.offset,
            ],
        )
        .await?
        .iter()
        .map(alert_row)
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub change: String,
    pub state: String,
    pub severity: String,
    pub level: Option<String>,
    pub load_pct: Option<f64>,
    pub actor: Option<String>,
    pub message_zh: Option<String>,
    pub message_en: Option<String>,
}

pub async fn get_alert(
    client: &Client,
    id: i64,
) -> Result<Option<(AlertRow, Vec<TransitionRow>)>, StoreError> {
    let Some(row) = client.query_opt(sql::GET_ALERT, &[&id]).await? else {
        return Ok(None);
    };
    let transitions = client
        .query(sql::ALERT_TRANSITIONS, &[&id])
        .await?
        .iter()
        .map(|r| TransitionRow {
            id: r.get(0),
            at: r.get(1),
            change: r.get(2),
            state: r.get(3),
            severity: r.get(4),
            level: r.get(5),
            load_pct: r.get(6),
            actor: r.get(7),
            message_zh: r.get(8),
            message_en: r.get(9),
        })
        .collect();
    Ok(Some((alert_row(&row), transitions)))
}

/// Acknowledges a firing alert and records who did it; `false` when it was not firing.
pub async fn acknowledge(
    client: &mut Client,
    id: i64,
    by: &str,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(sql::ACK_ALERT, &[&id, &by, &at, &comment])
        .await?
    else {
        return Ok(false);
    };
    let severity: String = row.get(1);
    let level: Option<String> = row.get(2);
    let details = serde_json::json!({ "comment": comment });
    tx.execute(
        sql::INSERT_TRANSITION,
        &[
            &id,
            &at,
            &"acknowledge",
            &"acknowledged",
            &severity,
            &level,
            &None::<f64>,
            &Some(by),
            &None::<String>,
            &None::<String>,
            &details,
        ],
    )
    .await?;
    tx.execute(
        sql::INSERT_AUDIT,
        &[&by, &"acknowledge_alert", &id.to_string(), &details],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelChange {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub change: String,
    pub severity: String,
    pub level: Option<String>,
    pub load_pct: Option<f64>,
    pub message_zh: Option<String>,
    pub message_en: Option<String>,
}

pub async fn level_history(
    client: &Client,
    space: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<LevelChange>, StoreError> {
    Ok(client
        .query(sql::LEVEL_HISTORY, &[&space, &from, &to, &limit, &offset])
        .await?
        .iter()
        .map(|r| LevelChange {
            at: r.get(0),
            kind: r.get(1),
            change: r.get(2),
            severity: r.get(3),
            level: r.get(4),
            load_pct: r.get(5),
            message_zh: r.get(6),
            message_en: r.get(7),
        })
        .collect())
}

/// The instantaneous level a space was at when `at` began (`None`: no level transition before).
pub async fn level_before(
    client: &Client,
    space: &str,
    at: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(sql::LEVEL_BEFORE, &[&space, &at])
        .await?
        .and_then(|r| r.get(0)))
}

#[derive(Debug, Clone, Serialize)]
pub struct ComplianceRow {
    pub announced_at: DateTime<Utc>,
    pub kind: String,
    pub change: String,
    pub severity: String,
    pub level: Option<String>,
    pub message_zh: Option<String>,
    pub sent_to: Option<String>,
    pub delivery_status: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub receiver_status: Option<i32>,
    pub attempts: Option<i32>,
}

pub async fn compliance(
    client: &Client,
    space: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ComplianceRow>, StoreError> {
    Ok(client
        .query(sql::COMPLIANCE, &[&space, &from, &to, &limit, &offset])
        .await?
        .iter()
        .map(|r| ComplianceRow {
            announced_at: r.get(0),
            kind: r.get(1),
            change: r.get(2),
            severity: r.get(3),
            level: r.get(4),
            message_zh: r.get(5),
            sent_to: r.get(6),
            delivery_status: r.get(7),
            confirmed_at: r.get(8),
            receiver_status: r.get(9),
            attempts: r.get(10),
        })
        .collect())
}

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

/// Caps in force now or later (not revoked, not ended).
pub async fn active_caps(client: &impl GenericClient) -> Result<Vec<CapRow>, StoreError> {
    Ok(client
        .query(sql::ACTIVE_CAPS, &[])
        .await?
        .iter()
        .map(|r| CapRow {
            id: r.get(0),
            space_id: r.get(1),
            percent: r.get(2),
            reason: r.get(3),
            starts_at: r.get(4),
            ends_at: r.get(5),
            created_by: None,
            created_at: None,
            revoked_at: None,
            revoked_by: None,
        })
        .collect())
}

/// Every cap ever set on a space: the audit trail of effective capacity.
pub async fn list_caps(
    client: &Client,
    space: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<CapRow>, StoreError> {
    Ok(client
        .query(sql::LIST_CAPS, &[&space, &limit, &offset])
        .await?
        .iter()
        .map(|r| CapRow {
            id: r.get(0),
            space_id: r.get(1),
            percent: r.get(2),
            reason: r.get(3),
            starts_at: r.get(4),
            ends_at: r.get(5),
            created_by: r.get(6),
            created_at: r.get(7),
            revoked_at: r.get(8),
            revoked_by: r.get(9),
        })
        .collect())
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
    let id: i64 = tx
        .query_one(
            sql::INSERT_CAP,
            &[&c.space, &c.percent, &c.reason, &c.starts, &c.ends, &c.by],
        )
        .await?
        .get(0);
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

pub async fn active_hazards(client: &impl GenericClient) -> Result<Vec<HazardRow>, StoreError> {
    Ok(client
        .query(sql::ACTIVE_HAZARDS, &[])
        .await?
        .iter()
        .map(|r| HazardRow {
            id: r.get(0),
            space_id: r.get(1),
            kind: r.get(2),
            severity: r.get(3),
            message: r.get(4),
            since: r.get(5),
            until: r.get(6),
        })
        .collect())
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
    let id = client
        .query_one(
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
        .await?
        .get(0);
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

pub async fn list_audit(
    client: &Client,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(client
        .query(sql::LIST_AUDIT, &[&limit, &offset])
        .await?
        .iter()
        .map(|r| AuditRow {
            id: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            target: r.get(4),
            details: r.get(5),
        })
        .collect())
}

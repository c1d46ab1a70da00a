//! Alert storage: the rule engine's persisted state, alert records and their transitions,
//! escalations, the level history and the art. 45 evidence. The outbox that carries alerts out is
//! `outbox.rs`; caps, hazards and the audit log are `controls.rs`. SQL text is in [`super::sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::row::{from_row, query_as, query_opt_as, query_opt_scalar};
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

/// The whole-engine document earlier versions saved (`rule_state`), if any.
pub async fn load_rule_state(client: &Client) -> Result<Option<Value>, StoreError> {
    query_opt_scalar(client, sql::LOAD_RULE_STATE, &[]).await
}

/// The per-space rule states saved so far: (version, state) each.
pub async fn load_space_rule_states(client: &Client) -> Result<Vec<(i32, Value)>, StoreError> {
    let rows = client.query(sql::LOAD_SPACE_RULE_STATES, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Saves these spaces' rule states (`spaces[i]`'s is `states[i]`), written by `version`.
pub async fn save_space_rule_states(
    tx: &Transaction<'_>,
    spaces: &[&str],
    version: i32,
    states: &[Value],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !spaces.is_empty() {
        tx.execute(
            sql::SAVE_SPACE_RULE_STATES,
            &[&spaces, &version, &states, &at],
        )
        .await?;
    }
    Ok(())
}

/// [`record_transition`]'s statements, prepared once for a transaction that records many (an
/// evaluation of a province can change thousands of alerts at once).
pub struct TransitionStatements {
    resolve: tokio_postgres::Statement,
    open: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

impl TransitionStatements {
    pub async fn prepare(tx: &Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            resolve: tx.prepare(sql::RESOLVE_ALERT).await?,
            open: tx.prepare(sql::UPSERT_OPEN_ALERT).await?,
            insert: tx.prepare(sql::INSERT_TRANSITION).await?,
        })
    }
}

/// Records one transition: the alert row (opened, updated or resolved) and the transition row.
pub async fn record_transition(
    tx: &Transaction<'_>,
    st: &TransitionStatements,
    t: &TransitionWrite,
) -> Result<Option<Recorded>, StoreError> {
    let row = if t.change == "resolve" {
        tx.query_opt(&st.resolve, &[&t.space_id, &t.kind, &t.at])
            .await?
    } else {
        let refire = t.change == "escalate";
        Some(
            tx.query_one(
                &st.open,
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
    let alert_id: i64 = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let transition_id: i64 = tx
        .query_one(
            &st.insert,
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
        .try_get(0)?;
    Ok(Some(Recorded {
        alert_id,
        transition_id,
        state,
        started_at: row.try_get("started_at")?,
    }))
}

/// Alerts at major or above, firing and unacknowledged since before `before`, not yet escalated:
/// each with its last transition's id and details.
pub async fn due_escalations(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<Vec<(i64, i64, Value)>, StoreError> {
    let mut out = Vec::new();
    for r in client.query(sql::DUE_ESCALATIONS, &[&before]).await? {
        let id: i64 = r.try_get("id")?;
        if let Some(t) = client.query_opt(sql::LAST_TRANSITION, &[&id]).await? {
            out.push((id, t.try_get("id")?, t.try_get("details")?));
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

from_row!(AlertRow {
    id,
    space_id,
    kind,
    severity,
    state,
    level,
    started_at,
    updated_at,
    ended_at,
    acknowledged_by,
    acknowledged_at,
    ack_comment,
    escalated_at,
    details,
});

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
    query_as(
        client,
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
    .await
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
from_row!(TransitionRow {
    id,
    at,
    change,
    state,
    severity,
    level,
    load_pct = "load",
    actor,
    message_zh,
    message_en,
});

pub async fn get_alert(
    client: &Client,
    id: i64,
) -> Result<Option<(AlertRow, Vec<TransitionRow>)>, StoreError> {
    let Some(alert) = query_opt_as(client, sql::GET_ALERT, &[&id]).await? else {
        return Ok(None);
    };
    let transitions = query_as(client, sql::ALERT_TRANSITIONS, &[&id]).await?;
    Ok(Some((alert, transitions)))
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
    let severity: String = row.try_get("severity")?;
    let level: Option<String> = row.try_get("level")?;
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
from_row!(LevelChange {
    at,
    kind,
    change,
    severity,
    level,
    load_pct = "load",
    message_zh,
    message_en,
});

pub async fn level_history(
    client: &Client,
    space: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<LevelChange>, StoreError> {
    query_as(
        client,
        sql::LEVEL_HISTORY,
        &[&space, &from, &to, &limit, &offset],
    )
    .await
}

/// The instantaneous level a space was at when `at` began (`None`: no level transition before).
pub async fn level_before(
    client: &Client,
    space: &str,
    at: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(query_opt_scalar(client, sql::LEVEL_BEFORE, &[&space, &at])
        .await?
        .flatten())
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
from_row!(ComplianceRow {
    announced_at = "at",
    kind,
    change,
    severity,
    level,
    message_zh,
    sent_to = "subscription_id",
    delivery_status = "status",
    confirmed_at = "delivered_at",
    receiver_status = "last_status",
    attempts,
});

pub async fn compliance(
    client: &Client,
    space: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ComplianceRow>, StoreError> {
    query_as(
        client,
        sql::COMPLIANCE,
        &[&space, &from, &to, &limit, &offset],
    )
    .await
}

/// An open `admission` or `oversold` alert.
#[derive(Debug, Clone)]
pub struct OpenAdmission {
    pub space_id: String,
    pub kind: String,
    /// The event last sent, with its `admission` signal.
    pub details: Value,
    pub started_at: DateTime<Utc>,
}
from_row!(OpenAdmission {
    space_id,
    kind,
    details,
    started_at
});

impl OpenAdmission {
    /// The signal last sent with it.
    pub fn signal(&self) -> Option<crate::admission::Signal> {
        serde_json::from_value(self.details.get("admission")?.clone()).ok()
    }
}

pub async fn open_admission(client: &impl GenericClient) -> Result<Vec<OpenAdmission>, StoreError> {
    query_as(client, sql::OPEN_ADMISSION, &[]).await
}

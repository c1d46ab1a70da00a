//! Dispatch routes: each distribution centre's current advice (with the numbers it came from),
//! the advice history, and dispatchers marking advice as followed or overridden.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::{StoreError, dispatch as db};

pub async fn current(State(st): State<AppState>) -> Result<Response, ApiError> {
    let client = st.pool.get().await.map_err(StoreError::from)?;
    Ok(Json(serde_json::json!({ "hubs": db::latest(&client).await? })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    hub: Option<String>,
    from: Option<DateTime<FixedOffset>>,
    to: Option<DateTime<FixedOffset>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn history(
    State(st): State<AppState>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (limit, offset) = (q.limit.unwrap_or(100), q.offset.unwrap_or(0));
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(
            "limit must be 1–1000 and offset ≥ 0".into(),
        ));
    }
    if let Some(h) = &q.hub
        && st.registry.space_idx(h).is_none()
    {
        return Err(ApiError::NotFound(format!("no hub {h:?}")));
    }
    let to = q.to.map(|t| t.with_timezone(&Utc)).unwrap_or_else(Utc::now);
    let from = q
        .from
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(to - TimeDelta::days(1));
    let client = st.pool.get().await.map_err(StoreError::from)?;
    let rows = db::history(&client, q.hub.as_deref(), from, to, limit, offset).await?;
    Ok(Json(serde_json::json!({ "advice": rows, "from": from, "to": to, "limit": limit, "offset": offset })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `followed` or `overridden`.
    decision: String,
    #[serde(default)]
    reason: String,
    by: String,
}

pub async fn decide(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    if !["followed", "overridden"].contains(&b.decision.as_str()) {
        return Err(ApiError::Unprocessable(
            "decision must be followed or overridden".into(),
        ));
    }
    if b.decision == "overridden" && b.reason.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "overriding advice needs a reason".into(),
        ));
    }
    if b.by.trim().is_empty() || b.reason.len() > 2000 {
        return Err(ApiError::Unprocessable(
            "`by` is required; `reason` at most 2000 characters".into(),
        ));
    }
    let client = st.pool.get().await.map_err(StoreError::from)?;
    let Some(hub) = db::decide(
        &client,
        id,
        &b.decision,
        b.by.trim(),
        Utc::now(),
        b.reason.trim(),
    )
    .await?
    else {
        return Err(ApiError::Conflict(format!(
            "advice {id} does not exist or was already decided"
        )));
    };
    crate::store::alerts::audit(
        &**client,
        b.by.trim(),
        "decide_dispatch_advice",
        &hub,
        &serde_json::json!({ "advice": id, "decision": b.decision, "reason": b.reason }),
    )
    .await?;
    // Followed shuttles are on the road: the next advice must count them.
    st.wake.wake();
    Ok(Json(serde_json::json!({ "id": id, "hub": hub, "decision": b.decision })).into_response())
}

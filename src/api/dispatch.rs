//! Dispatch routes: each distribution centre's current advice (with the numbers it came from),
//! the advice history, and dispatchers marking advice as followed or overridden — as the caller's
//! token, for the hubs it operates.

use super::extract::{ApiJson, ApiPath, ApiQuery, DbConn};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::{ApiError, AppState, ErrorBody, page};
use crate::store::dispatch as db;

/// Each hub's newest advice.
#[utoipa::path(get, path = "/api/v1/dispatch", tag = "dispatch",
    responses((status = 200, description = "`{hubs: [{id, at, hub, advice, change, decision, …}]}`", body = Object)))]
pub async fn current(client: DbConn) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "hubs": db::latest(&client).await? })).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// A hub's space id; all hubs when absent.
    hub: Option<String>,
    /// RFC 3339; default one day before `to`.
    from: Option<DateTime<FixedOffset>>,
    /// RFC 3339; default now.
    to: Option<DateTime<FixedOffset>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Advice as it changed, newest first.
#[utoipa::path(get, path = "/api/v1/dispatch/history", tag = "dispatch", params(HistoryQuery),
    responses((status = 200, description = "`{advice, from, to, limit, offset}`", body = Object),
        (status = 400, description = "Bad range or page", body = ErrorBody),
        (status = 404, description = "No such hub", body = ErrorBody)))]
pub async fn history(
    State(st): State<AppState>,
    client: DbConn,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
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
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let rows = db::history(&client, q.hub.as_deref(), from, to, limit, offset).await?;
    Ok(Json(serde_json::json!({ "advice": rows, "from": from, "to": to, "limit": limit, "offset": offset }))
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `followed` or `overridden`.
    decision: String,
    /// Why (required when overriding; at most 2000 characters).
    #[serde(default)]
    reason: String,
}

/// Records what the hub's dispatcher did with one advice, once. Followed shuttles count as on
/// the road in the next advice.
#[utoipa::path(post, path = "/api/v1/dispatch/advice/{id}/decision", tag = "dispatch",
    params(("id" = i64, Path, description = "Advice id")),
    request_body = DecisionBody,
    responses((status = 200, description = "`{id, hub, decision}`", body = Object),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 403, description = "Not the caller's hub", body = ErrorBody),
        (status = 404, description = "No such advice", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody)))]
pub async fn decide(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> Result<Response, ApiError> {
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
    if b.reason.len() > 2000 {
        return Err(ApiError::Unprocessable(
            "`reason` is at most 2000 characters".into(),
        ));
    }
    // The hub decides on its own advice: check the caller may operate it before recording.
    let hub = db::hub_of(&client, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no advice {id}")))?;
    if let Some(s) = st.registry.space_idx(&hub) {
        caller.operate(&st.registry, s)?;
    } else {
        caller.admin()?;
    }
    let by = caller.id.to_string();
    if db::decide(&client, id, &b.decision, &by, Utc::now(), b.reason.trim())
        .await?
        .is_none()
    {
        return Err(ApiError::Conflict(format!(
            "advice {id} was already decided"
        )));
    }
    crate::store::controls::audit(
        &*client,
        &by,
        "decide_dispatch_advice",
        &hub,
        &serde_json::json!({ "advice": id, "decision": b.decision, "reason": b.reason }),
    )
    .await?;
    // The control rooms see the decision at once (and the buttons go).
    if let Some(row) = db::get(&client, id).await? {
        st.live.note_dispatch(row);
    }
    st.wake.wake();
    Ok(Json(serde_json::json!({ "id": id, "hub": hub, "decision": b.decision })).into_response())
}

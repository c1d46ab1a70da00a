//! Alert routes: list, show, acknowledge; a space's level history, policy caps and hazards; the
//! art. 45 compliance log; webhook deliveries and dead-letter replay; the audit log. Changes are
//! made as the caller's token (its id is the actor recorded), within the spaces it may operate.

use super::extract::{ApiJson, ApiPath, ApiQuery, DbConn, HistoryConn, read_from};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::spaces::find_space;
use super::{ApiError, AppState, ErrorBody, day_param, page, text_ok, time_param};
use crate::live::AlertNote;
use crate::store::alerts::{self as db, AlertFilter};
use crate::store::controls::{self, HazardWrite, NewCap};
use crate::store::outbox;

/// A time in a request body: as [`time_param`], but the body's error (422).
fn body_time(
    t: Option<DateTime<FixedOffset>>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    time_param(t, name).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

fn space_id(st: &AppState, id: &str) -> Result<String, ApiError> {
    find_space(st, id).map(|s| st.registry.space(s).id.to_string())
}

/// The space `id` if the caller may operate it (404 before 403: space ids are no secret).
fn operated_space(st: &AppState, caller: &Caller, id: &str) -> Result<String, ApiError> {
    let s = find_space(st, id)?;
    caller.operate(&st.registry, s)?;
    Ok(st.registry.space(s).id.to_string())
}

/// `[start, end)` of a local day in UTC.
pub(super) fn local_day(
    tz: Tz,
    day: NaiveDate,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    match (start(day), day.succ_opt().and_then(start)) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(ApiError::BadRequest("day out of range".into())),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Space id.
    space: Option<String>,
    /// firing, acknowledged or resolved.
    #[param(pattern = "^(firing|acknowledged|resolved)$")]
    state: Option<String>,
    /// Lowest severity to include: info, warning, major, critical.
    #[param(pattern = "^(info|warning|major|critical)$")]
    severity: Option<String>,
    /// Updated at or after (RFC 3339).
    from: Option<DateTime<FixedOffset>>,
    /// Updated before (RFC 3339).
    to: Option<DateTime<FixedOffset>>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

const SEVERITIES: [&str; 4] = ["info", "warning", "major", "critical"];

/// Alerts, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, description = "`{alerts, limit, offset}`", body = Object),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    client: HistoryConn,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.state
        && !["firing", "acknowledged", "resolved"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(
            "state must be firing, acknowledged or resolved".into(),
        ));
    }
    let severities = match &q.severity {
        None => None,
        Some(min) => {
            let i = SEVERITIES.iter().position(|s| s == min).ok_or_else(|| {
                ApiError::BadRequest("severity must be info, warning, major or critical".into())
            })?;
            Some(SEVERITIES[i..].iter().map(|s| (*s).to_owned()).collect())
        }
    };
    let space = match &q.space {
        Some(s) => Some(space_id(&st, s)?),
        None => None,
    };
    let f = AlertFilter {
        space,
        state: q.state,
        severities,
        from: time_param(q.from, "from")?,
        to: time_param(q.to, "to")?,
        limit,
        offset,
    };
    let rows = db::list_alerts(&client, &f).await?;
    let body = Json(serde_json::json!({ "alerts": rows, "limit": limit, "offset": offset }));
    Ok(read_from(body.into_response(), client.1))
}

/// One alert with its transitions.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, description = "`{alert, transitions}`", body = Object),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody)))]
pub async fn show(
    State(_st): State<AppState>,
    client: DbConn,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let (alert, transitions) = db::get_alert(&client, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(Json(serde_json::json!({ "alert": alert, "transitions": transitions })).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// What was done (at most 2000 bytes).
    #[serde(default)]
    #[schema(max_length = 2000)]
    comment: String,
}

/// Acknowledges a firing alert as the caller (operator of its space, or admin).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = AckBody,
    responses((status = 200, description = "`{alert, transitions}` after the acknowledgement", body = Object),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not firing", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody)))]
pub async fn acknowledge(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<AckBody>,
) -> Result<Response, ApiError> {
    let Some((alert, _)) = db::get_alert(&client, id).await? else {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    };
    match st.registry.space_idx(&alert.space_id) {
        Some(s) => caller.operate(&st.registry, s)?,
        // A space removed from the registry since: only an admin may close its alerts.
        None => caller.admin()?,
    }
    text_ok(&b.comment, "comment", 2000, ApiError::Unprocessable)?;
    let now = Utc::now();
    if !db::acknowledge(&mut client, id, &caller.id, &b.comment, now).await? {
        return Err(ApiError::Conflict(format!(
            "alert {id} is {}, not firing",
            alert.state
        )));
    }
    let (alert, transitions) = db::get_alert(&client, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    st.live.note_alerts([AlertNote {
        alert_id: Some(id),
        space: alert.space_id.clone(),
        kind: alert.kind.clone(),
        change: "acknowledge".into(),
        state: alert.state.clone(),
        severity: alert.severity.clone(),
        level: alert.level.clone(),
        at: now,
        by: Some(caller.id.to_string()),
        message_zh: None,
        message_en: None,
    }]);
    Ok(Json(serde_json::json!({ "alert": alert, "transitions": transitions })).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LevelsQuery {
    /// RFC 3339; default `to` minus one day.
    from: Option<DateTime<FixedOffset>>,
    /// RFC 3339; default now.
    to: Option<DateTime<FixedOffset>>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// A space's level changes (instantaneous and daily) in a time range, oldest first.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/levels", tag = "alerts",
    params(("id" = String, Path, description = "Space id"), LevelsQuery),
    responses((status = 200, description = "`{space, from, to, changes, limit, offset}`", body = Object),
        (status = 400, description = "Bad range", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn levels(
    State(st): State<AppState>,
    client: HistoryConn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LevelsQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let space = space_id(&st, &id)?;
    let to = time_param(q.to, "to")?.unwrap_or_else(Utc::now);
    let from = time_param(q.from, "from")?.unwrap_or(to - TimeDelta::days(1));
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let rows = db::level_history(&client, &space, from, to, limit, offset).await?;
    let body = Json(
        serde_json::json!({ "space": space, "from": from, "to": to, "changes": rows, "limit": limit, "offset": offset }),
    );
    Ok(read_from(body.into_response(), client.1))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ComplianceQuery {
    /// Space id.
    space: String,
    /// Local day (county time zone), default today.
    day: Option<NaiveDate>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// "When did we announce, to whom, and when was it confirmed received" for one space and day.
#[utoipa::path(get, path = "/api/v1/compliance", tag = "alerts", params(ComplianceQuery),
    responses((status = 200, description = "`{space, day, time_zone, announcements, limit, offset}`", body = Object),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn compliance(
    State(st): State<AppState>,
    client: DbConn,
    ApiQuery(q): ApiQuery<ComplianceQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let space = space_id(&st, &q.space)?;
    let tz = st.registry.tz;
    let day = match q.day {
        Some(d) => day_param(d)?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let (from, to) = local_day(tz, day)?;
    let rows = db::compliance(&client, &space, from, to, limit, offset).await?;
    Ok(Json(serde_json::json!({ "space": space, "day": day, "time_zone": tz.name(), "announcements": rows, "limit": limit, "offset": offset })).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// Every policy cap ever set on a space, newest first: the audit trail of effective capacity.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/caps", tag = "alerts",
    params(("id" = String, Path, description = "Space id"), PageQuery),
    responses((status = 200, description = "`{space, caps, limit, offset}`", body = Object),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn list_caps(
    State(st): State<AppState>,
    client: DbConn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let space = space_id(&st, &id)?;
    let caps = controls::list_caps(&client, &space, limit, offset).await?;
    Ok(
        Json(serde_json::json!({ "space": space, "caps": caps, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    /// Percent of the approved capacity admitted (e.g. 75), within (0, 100].
    #[schema(exclusive_minimum = 0.0, maximum = 100.0)]
    percent: f64,
    /// Why (the order it follows); required, at most 2000 bytes.
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    reason: String,
    /// RFC 3339; default now.
    starts: Option<DateTime<FixedOffset>>,
    /// RFC 3339; default open-ended.
    ends: Option<DateTime<FixedOffset>>,
}

/// Sets a policy cap on a space (operator of the space, or admin).
#[utoipa::path(post, path = "/api/v1/spaces/{id}/caps", tag = "alerts",
    params(("id" = String, Path, description = "Space id")),
    request_body = CapBody,
    responses((status = 201, description = "`{id, space}`", body = Object),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody)))]
pub async fn set_cap(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CapBody>,
) -> Result<Response, ApiError> {
    let space = operated_space(&st, &caller, &id)?;
    let starts = body_time(b.starts, "starts")?.unwrap_or_else(Utc::now);
    let ends = body_time(b.ends, "ends")?;
    if !(b.percent.is_finite() && b.percent > 0.0 && b.percent <= 100.0) {
        return Err(ApiError::Unprocessable(
            "percent must be within (0, 100]".into(),
        ));
    }
    if ends.is_some_and(|e| e <= starts) {
        return Err(ApiError::Unprocessable(
            "a cap must end after it starts".into(),
        ));
    }
    if b.reason.trim().is_empty() {
        return Err(ApiError::Unprocessable("`reason` is required".into()));
    }
    text_ok(&b.reason, "reason", 2000, ApiError::Unprocessable)?;
    let cap = NewCap {
        space: &space,
        percent: b.percent,
        reason: b.reason.trim(),
        starts,
        ends,
        by: &caller.id,
    };
    let cap_id = controls::insert_cap(&mut client, &cap).await?;
    st.wake.wake();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": cap_id, "space": space })),
    )
        .into_response())
}

/// Revokes a policy cap (operator of the space, or admin).
#[utoipa::path(delete, path = "/api/v1/spaces/{id}/caps/{cap}", tag = "alerts",
    params(("id" = String, Path, description = "Space id"), ("cap" = i64, Path, description = "Cap id")),
    responses((status = 204, description = "Revoked"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such space or active cap", body = ErrorBody)))]
pub async fn revoke_cap(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath((id, cap)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let space = operated_space(&st, &caller, &id)?;
    if !controls::revoke_cap(&mut client, &space, cap, &caller.id).await? {
        return Err(ApiError::NotFound(format!(
            "no active cap {cap} on {space}"
        )));
    }
    st.wake.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The hazards standing on a space now.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/hazards", tag = "alerts",
    params(("id" = String, Path, description = "Space id")),
    responses((status = 200, description = "`{space, hazards}`", body = Object),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn list_hazards(
    State(st): State<AppState>,
    client: DbConn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let space = space_id(&st, &id)?;
    let rows: Vec<_> = controls::active_hazards(&*client)
        .await?
        .into_iter()
        .filter(|h| h.space_id == space)
        .collect();
    Ok(Json(serde_json::json!({ "space": space, "hazards": rows })).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HazardBody {
    /// Stable kind, 1–40 of a–z 0–9 _: flash_flood, landslide, storm, ….
    #[schema(pattern = "^[a-z0-9_]{1,40}$")]
    kind: String,
    /// info, warning, major or critical (default critical).
    #[serde(default = "default_hazard_severity")]
    #[schema(pattern = "^(info|warning|major|critical)$")]
    severity: String,
    /// Shown to operators (at most 2000 bytes).
    #[serde(default)]
    #[schema(max_length = 2000)]
    message: String,
    /// RFC 3339; default until cleared.
    until: Option<DateTime<FixedOffset>>,
}

fn default_hazard_severity() -> String {
    "critical".into()
}

/// Raises a hazard on a space, closing it for dispatch (operator of the space, or admin).
#[utoipa::path(post, path = "/api/v1/spaces/{id}/hazards", tag = "alerts",
    params(("id" = String, Path, description = "Space id")),
    request_body = HazardBody,
    responses((status = 201, description = "`{id, space}`", body = Object),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody)))]
pub async fn set_hazard(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<HazardBody>,
) -> Result<Response, ApiError> {
    let space = operated_space(&st, &caller, &id)?;
    if !SEVERITIES.contains(&b.severity.as_str()) {
        return Err(ApiError::Unprocessable(
            "severity must be info, warning, major or critical".into(),
        ));
    }
    if !valid_kind(&b.kind) {
        return Err(ApiError::Unprocessable(
            "kind must be 1–40 of a–z 0–9 _".into(),
        ));
    }
    text_ok(&b.message, "message", 2000, ApiError::Unprocessable)?;
    let until = body_time(b.until, "until")?;
    let h = HazardWrite {
        space: &space,
        kind: &b.kind,
        severity: &b.severity,
        message: &b.message,
        since: Utc::now(),
        until,
        source: &caller.id,
        active: true,
    };
    let hid = controls::write_hazard(&*client, &h).await?;
    controls::audit(
        &*client,
        &caller.id,
        "set_hazard",
        &space,
        &serde_json::json!({ "hazard": hid, "kind": b.kind }),
    )
    .await?;
    st.wake.wake();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": hid, "space": space })),
    )
        .into_response())
}

pub fn valid_kind(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 40
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Clears a hazard (operator of the space, or admin).
#[utoipa::path(delete, path = "/api/v1/spaces/{id}/hazards/{hazard}", tag = "alerts",
    params(("id" = String, Path, description = "Space id"), ("hazard" = i64, Path, description = "Hazard id")),
    responses((status = 204, description = "Cleared"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such space or active hazard", body = ErrorBody)))]
pub async fn clear_hazard(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath((id, hazard)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let space = operated_space(&st, &caller, &id)?;
    if !controls::clear_hazard(&client, &space, hazard).await? {
        return Err(ApiError::NotFound(format!(
            "no active hazard {hazard} on {space}"
        )));
    }
    controls::audit(
        &*client,
        &caller.id,
        "clear_hazard",
        &space,
        &serde_json::json!({ "hazard": hazard }),
    )
    .await?;
    st.wake.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// pending, delivered or dead.
    #[param(pattern = "^(pending|delivered|dead)$")]
    status: Option<String>,
    /// Subscription id.
    #[param(max_length = 200)]
    subscription: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// Webhook deliveries, newest first (admin).
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "admin", params(DeliveryQuery),
    responses((status = 200, description = "`{deliveries, limit, offset}`", body = Object),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody)))]
pub async fn deliveries(
    State(_st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(sub) = &q.subscription {
        text_ok(sub, "subscription", 200, ApiError::BadRequest)?;
    }
    if let Some(s) = &q.status
        && !["pending", "delivered", "dead"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(
            "status must be pending, delivered or dead".into(),
        ));
    }
    let rows = outbox::list_deliveries(
        &client,
        q.status.as_deref(),
        q.subscription.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(
        Json(serde_json::json!({ "deliveries": rows, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

/// Sends a dead letter again (admin).
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/replay", tag = "admin",
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued again"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody)))]
pub async fn replay(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let Some(sub) = outbox::replay_dead(&client, id).await? else {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    };
    controls::audit(
        &*client,
        &caller.id,
        "replay_delivery",
        &id.to_string(),
        &serde_json::json!({ "subscription": sub }),
    )
    .await?;
    if let Some(n) = st.outbox.get(&sub) {
        n.notify_one();
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Every state-changing request, newest first: who, what, when (admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(PageQuery),
    responses((status = 200, description = "`{entries, limit, offset}`", body = Object),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody)))]
pub async fn audit(
    State(_st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let entries = controls::list_audit(&client, limit, offset).await?;
    Ok(
        Json(serde_json::json!({ "entries": entries, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

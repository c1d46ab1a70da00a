//! Alert routes: list, show, acknowledge; a space's level history, policy caps and hazards; the
//! art. 45 compliance log; webhook deliveries and dead-letter replay; the audit log.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, TimeZone, Utc};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::alerts::{self as db, AlertFilter, HazardWrite, NewCap};

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

fn bad_json(e: JsonRejection) -> ApiError {
    ApiError::Unprocessable(e.body_text())
}

fn utc(t: Option<DateTime<FixedOffset>>) -> Option<DateTime<Utc>> {
    t.map(|t| t.with_timezone(&Utc))
}

fn space_id(st: &AppState, id: &str) -> Result<String, ApiError> {
    st.registry
        .space_idx(id)
        .map(|s| st.registry.space(s).id.to_string())
        .ok_or_else(|| ApiError::NotFound(format!("no space {id:?}")))
}

fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(100);
    let offset = offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(
            "limit must be 1–1000 and offset ≥ 0".into(),
        ));
    }
    Ok((limit, offset))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    space: Option<String>,
    state: Option<String>,
    /// Lowest severity to include: info, warning, major, critical.
    severity: Option<String>,
    from: Option<DateTime<FixedOffset>>,
    to: Option<DateTime<FixedOffset>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const SEVERITIES: [&str; 4] = ["info", "warning", "major", "critical"];

pub async fn list(
    State(st): State<AppState>,
    q: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
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
        from: utc(q.from),
        to: utc(q.to),
        limit,
        offset,
    };
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows = db::list_alerts(&client, &f).await?;
    Ok(
        Json(serde_json::json!({ "alerts": rows, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

pub async fn show(State(st): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let (alert, transitions) = db::get_alert(&client, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(Json(serde_json::json!({ "alert": alert, "transitions": transitions })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who acknowledges (until tokens identify the caller).
    by: String,
    #[serde(default)]
    comment: String,
}

pub async fn acknowledge(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let by = b.by.trim();
    if by.is_empty() || by.len() > 100 || b.comment.len() > 2000 {
        return Err(ApiError::Unprocessable(
            "`by` must be 1–100 characters and `comment` at most 2000".into(),
        ));
    }
    let mut client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    if !db::acknowledge(&mut client, id, by, &b.comment, Utc::now()).await? {
        return match db::get_alert(&client, id).await? {
            None => Err(ApiError::NotFound(format!("no alert {id}"))),
            Some((a, _)) => Err(ApiError::Conflict(format!(
                "alert {id} is {}, not firing",
                a.state
            ))),
        };
    }
    let (alert, transitions) = db::get_alert(&client, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(Json(serde_json::json!({ "alert": alert, "transitions": transitions })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<DateTime<FixedOffset>>,
    to: Option<DateTime<FixedOffset>>,
}

pub async fn levels(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let space = space_id(&st, &id)?;
    let to = utc(q.to).unwrap_or_else(Utc::now);
    let from = utc(q.from).unwrap_or(to - TimeDelta::days(1));
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows = db::level_history(&client, &space, from, to).await?;
    Ok(
        Json(serde_json::json!({ "space": space, "from": from, "to": to, "changes": rows }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceQuery {
    space: String,
    /// Local day (county time zone), default today.
    day: Option<NaiveDate>,
}

/// "When did we announce, to whom, and when was it confirmed received" for one space and day.
pub async fn compliance(
    State(st): State<AppState>,
    q: Result<Query<ComplianceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let space = space_id(&st, &q.space)?;
    let tz = st.registry.tz;
    let day = q
        .day
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (start(day), day.succ_opt().and_then(start)) else {
        return Err(ApiError::BadRequest("day out of range".into()));
    };
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows = db::compliance(&client, &space, from, to).await?;
    Ok(Json(serde_json::json!({ "space": space, "day": day, "time_zone": tz.name(), "announcements": rows })).into_response())
}

pub async fn list_caps(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let space = space_id(&st, &id)?;
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(
        Json(serde_json::json!({ "space": space, "caps": db::list_caps(&client, &space).await? }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    /// Percent of the approved capacity admitted (e.g. 75).
    percent: f64,
    reason: String,
    starts: Option<DateTime<FixedOffset>>,
    ends: Option<DateTime<FixedOffset>>,
    by: String,
}

pub async fn set_cap(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CapBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let space = space_id(&st, &id)?;
    let starts = utc(b.starts).unwrap_or_else(Utc::now);
    let ends = utc(b.ends);
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
    if b.reason.trim().is_empty() || b.by.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "`reason` and `by` are required".into(),
        ));
    }
    let mut client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let cap = NewCap {
        space: &space,
        percent: b.percent,
        reason: b.reason.trim(),
        starts,
        ends,
        by: b.by.trim(),
    };
    let cap_id = db::insert_cap(&mut client, &cap).await?;
    st.wake.wake();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": cap_id, "space": space })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByBody {
    by: String,
}

pub async fn revoke_cap(
    State(st): State<AppState>,
    Path((id, cap)): Path<(String, i64)>,
    body: Result<Json<ByBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let space = space_id(&st, &id)?;
    let mut client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    if !db::revoke_cap(&mut client, &space, cap, b.by.trim()).await? {
        return Err(ApiError::NotFound(format!(
            "no active cap {cap} on {space}"
        )));
    }
    st.wake.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_hazards(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let space = space_id(&st, &id)?;
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows: Vec<_> = db::active_hazards(&**client)
        .await?
        .into_iter()
        .filter(|h| h.space_id == space)
        .collect();
    Ok(Json(serde_json::json!({ "space": space, "hazards": rows })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardBody {
    /// Stable kind: flash_flood, landslide, storm, ….
    kind: String,
    #[serde(default = "default_hazard_severity")]
    severity: String,
    #[serde(default)]
    message: String,
    until: Option<DateTime<FixedOffset>>,
    by: String,
}

fn default_hazard_severity() -> String {
    "critical".into()
}

pub async fn set_hazard(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<HazardBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let space = space_id(&st, &id)?;
    if !SEVERITIES.contains(&b.severity.as_str()) {
        return Err(ApiError::Unprocessable(
            "severity must be info, warning, major or critical".into(),
        ));
    }
    if !valid_kind(&b.kind) || b.by.trim().is_empty() || b.message.len() > 2000 {
        return Err(ApiError::Unprocessable(
            "kind must be 1–40 of a–z 0–9 _; `by` is required".into(),
        ));
    }
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let h = HazardWrite {
        space: &space,
        kind: &b.kind,
        severity: &b.severity,
        message: &b.message,
        since: Utc::now(),
        until: utc(b.until),
        source: b.by.trim(),
        active: true,
    };
    let hid = db::write_hazard(&**client, &h).await?;
    db::audit(
        &**client,
        b.by.trim(),
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

pub async fn clear_hazard(
    State(st): State<AppState>,
    Path((id, hazard)): Path<(String, i64)>,
    body: Result<Json<ByBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let space = space_id(&st, &id)?;
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    if !db::clear_hazard(&client, &space, hazard).await? {
        return Err(ApiError::NotFound(format!(
            "no active hazard {hazard} on {space}"
        )));
    }
    db::audit(
        &**client,
        b.by.trim(),
        "clear_hazard",
        &space,
        &serde_json::json!({ "hazard": hazard }),
    )
    .await?;
    st.wake.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    status: Option<String>,
    subscription: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn deliveries(
    State(st): State<AppState>,
    q: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.status
        && !["pending", "delivered", "dead"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(
            "status must be pending, delivered or dead".into(),
        ));
    }
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows = db::list_deliveries(
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

pub async fn replay(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<ByBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let Some(sub) = db::replay_dead(&client, id).await? else {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    };
    db::audit(
        &**client,
        b.by.trim(),
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn audit(
    State(st): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let client = st
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(Json(serde_json::json!({ "entries": db::list_audit(&client, limit, offset).await?, "limit": limit, "offset": offset })).into_response())
}

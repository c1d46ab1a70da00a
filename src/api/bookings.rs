//! Timed-entry reservations over HTTP: ticketing systems report bookings
//! (`POST /api/v1/spaces/{id}/bookings`, token role `ticketing` for its own areas) and everyone
//! reads the day's slots (`GET /api/v1/spaces/{id}/slots`): quota, sold, checked in, no-shows,
//! expected arrivals, remaining, over-sold, and whether the booking data is fresh.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::extract::{ApiJson, ApiQuery, DbConn};
use super::spaces::find_space;
use super::{ApiError, AppState, ErrorBody};
use crate::admission::{self, AreaPlan, Refused, SlotState, TicketMessage};
use crate::ids::SpaceIdx;
use crate::store::bookings as db;
use crate::telemetry::events::{InternalEvent, TicketIntake};

#[derive(Debug, Serialize, ToSchema)]
pub struct IntakeReply {
    space: String,
    inserted: u32,
    updated: u32,
    /// The same version again: ignored.
    duplicates: u32,
    /// Older than the stored version (arrived out of order): ignored.
    stale: u32,
    /// Refused items with the list they were in and the reason; the others were applied.
    #[schema(value_type = Vec<Object>)]
    refused: Vec<Refused>,
    received_at: Option<DateTime<Utc>>,
}

fn plan_of(st: &AppState, s: SpaceIdx) -> Result<&AreaPlan, ApiError> {
    st.reservations.plan(s).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{} sells no timed entry (no [admission.spaces.{}])",
            st.registry.space(s).id,
            st.registry.space(s).id
        ))
    })
}

/// Reports bookings of an area (ticketing token of the area, or admin): each version is applied
/// once — a retry or an older version arriving late changes nothing, a cancellation after
/// check-in keeps the visitor counted. Answers 200 when every version was valid, 422 when some
/// were refused (listed with the reason; the valid ones were applied, so resending the whole
/// request is harmless).
#[utoipa::path(post, path = "/api/v1/spaces/{id}/bookings", tag = "admission",
    params(("id" = String, Path, description = "Scenic area id")),
    request_body(content = serde_json::Value, description = "A ticketing message, the same as over MQTT: `{\"bookings\": [{id, version, day, slot, people, status}], \"slots\": [{day, slot, booked, checked_in, cancelled, as_of}], \"channel\"}` (README, Ticketing contract)"),
    responses((status = 200, description = "Applied", body = IntakeReply),
        (status = 403, description = "Not the caller's area", body = ErrorBody),
        (status = 404, description = "No such area, or it sells no timed entry", body = ErrorBody),
        (status = 422, description = "Some versions refused (listed); the rest applied", body = IntakeReply)))]
pub async fn report(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketMessage>,
) -> Result<Response, ApiError> {
    let s = find_space(&st, &id)?;
    caller.sell(&st.registry, s)?;
    let plan = plan_of(&st, s)?;
    let space = st.registry.space(s).id.as_str();
    let now = Utc::now();
    let today = admission::today(&st.registry, s, now);
    let mut checked = match body.check(plan, today, now, &caller.id) {
        Ok(c) => c,
        Err(reason) => {
            TicketIntake::message_refused(space, &caller.id, body.items(), &reason).emit();
            return Err(ApiError::Unprocessable(reason));
        }
    };
    let applied = db::apply(&mut client, space, &caller.id, &checked).await?;
    let refused = std::mem::take(&mut checked.refused);
    applied.event(space, &caller.id, &refused).emit();
    // The daily level counts booked visitors: evaluate now rather than at the next tick.
    st.wake.wake();
    let status = if refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let reply = IntakeReply {
        space: space.to_owned(),
        inserted: applied.inserted,
        updated: applied.updated,
        duplicates: applied.duplicates,
        stale: applied.stale,
        refused,
        received_at: applied.received_at,
    };
    Ok((status, Json(reply)).into_response())
}

/// A day's slots of an area with what they were computed from.
struct DayView {
    slots: Vec<SlotState>,
    effective: Option<u32>,
    last: Option<DateTime<Utc>>,
}

async fn day_slots(
    st: &AppState,
    client: &tokio_postgres::Client,
    s: SpaceIdx,
    plan: &AreaPlan,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DayView, ApiError> {
    let space = st.registry.space(s);
    let rows = db::slot_counts(client, &[(space.id.as_str(), day)]).await?;
    let last = db::intake_last(client).await?.remove(space.id.as_str());
    // The effective daily capacity the rules last used (caps included); the approved one before
    // the first evaluation.
    let effective = st
        .live
        .status(s)
        .and_then(|status| status.daily.effective_capacity)
        .or(space.daily_capacity);
    let counts: Vec<_> = rows.iter().map(db::SlotRow::counts).collect();
    let slots = admission::tally(
        plan,
        &plan.quotas(effective.unwrap_or(0)),
        &counts,
        st.registry.tz,
        day,
        st.reservations.no_show_grace,
        now,
    );
    Ok(DayView {
        slots,
        effective,
        last,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    /// Local day, `YYYY-MM-DD`; default the area's current business day.
    day: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotsView {
    space: String,
    day: NaiveDate,
    /// The daily capacity quotas derive from: approved, and effective under a policy cap.
    approved_daily: Option<u32>,
    effective_daily: Option<u32>,
    walk_in_share: f64,
    /// Booking data not refreshed within `stale_after_s`: the figures may be behind, not zero.
    stale: bool,
    last_received: Option<DateTime<Utc>>,
    expected_arrivals: u64,
    #[schema(value_type = Vec<Object>)]
    slots: Vec<SlotState>,
}

/// The area's slots of a day: quota, sold, checked in, cancelled, no-shows, expected arrivals,
/// remaining (余票) and over-sold places, with the freshness of the booking data.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/slots", tag = "admission",
    params(("id" = String, Path, description = "Scenic area id"), SlotsQuery),
    responses((status = 200, description = "The day's slots", body = SlotsView),
        (status = 404, description = "No such area, or it sells no timed entry", body = ErrorBody)))]
pub async fn slots(
    State(st): State<AppState>,
    client: DbConn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SlotsQuery>,
) -> Result<Json<SlotsView>, ApiError> {
    let s = find_space(&st, &id)?;
    let plan = plan_of(&st, s)?;
    let now = Utc::now();
    let day = q
        .day
        .unwrap_or_else(|| admission::current_day(&st.registry, s, st.live.space(s).day, now));
    let space = st.registry.space(s);
    let day_view = day_slots(&st, &client, s, plan, day, now).await?;
    let slots = day_view.slots;
    Ok(Json(SlotsView {
        space: space.id.to_string(),
        day,
        approved_daily: space.daily_capacity,
        effective_daily: day_view.effective,
        walk_in_share: plan.walk_in_share,
        stale: st.reservations.is_stale(day_view.last, now),
        last_received: day_view.last,
        expected_arrivals: admission::expected_arrivals(&slots),
        slots,
    }))
}

/// One slot as a ticketing system sells it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotSales {
    /// `"08:00-10:00"`.
    slot: String,
    /// `open`, `paused` (the area paused, or the slot's quota is sold: 约满) or `closed` (the
    /// area closed, or the slot is over).
    sales: &'static str,
    remaining: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionView {
    space: String,
    /// `open`, `paused` or `closed`: what every online channel does now.
    sales: &'static str,
    /// Why: `instant_level.red`, `daily_level.red`, `hazard`, `sold_out`.
    reasons: Vec<String>,
    /// Since when sales are paused or closed; `null` while open.
    since: Option<DateTime<Utc>>,
    /// Online places left today in the slots still to come.
    remaining_today: u64,
    /// Booking data not refreshed within `stale_after_s`.
    stale: bool,
    slots: Vec<SlotSales>,
}

/// Whether to sell now — the signal a ticketing system obeys, per area and slot, with the
/// reason and since when. The same signal is pushed as an `admission` webhook on every change.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/admission", tag = "admission",
    params(("id" = String, Path, description = "Scenic area id")),
    responses((status = 200, description = "The area's ticket-sales state", body = AdmissionView),
        (status = 404, description = "No such area, or it sells no timed entry", body = ErrorBody)))]
pub async fn admission_state(
    State(st): State<AppState>,
    client: DbConn,
    Path(id): Path<String>,
) -> Result<Json<AdmissionView>, ApiError> {
    let s = find_space(&st, &id)?;
    let plan = plan_of(&st, s)?;
    let now = Utc::now();
    let space = st.registry.space(s);
    let day = admission::current_day(&st.registry, s, st.live.space(s).day, now);
    let view = day_slots(&st, &client, s, plan, day, now).await?;
    let open = crate::store::alerts::open_admission(&*client).await?;
    let (signal, since) = open
        .into_iter()
        .find(|o| o.space_id == space.id.as_str() && o.kind == "admission")
        .and_then(|o| Some((o.signal()?, Some(o.started_at))))
        .unwrap_or((admission::Signal::open(), None));
    let slots: Vec<SlotSales> = view
        .slots
        .iter()
        .map(|sl| SlotSales {
            slot: sl.slot.to_string(),
            sales: if sl.ends_at <= now {
                "closed"
            } else if signal.state != admission::Sales::Open {
                signal.state.as_str()
            } else if sl.remaining == 0 {
                "paused"
            } else {
                "open"
            },
            remaining: sl.remaining,
        })
        .collect();
    Ok(Json(AdmissionView {
        space: space.id.to_string(),
        sales: signal.state.as_str(),
        reasons: signal.reasons,
        since,
        remaining_today: admission::remaining_today(&view.slots, now),
        stale: st.reservations.is_stale(view.last, now),
        slots,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Why (for the compliance log and the audit; 1–500 characters).
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PauseReply {
    space: String,
    held_at: DateTime<Utc>,
    reason: String,
}

/// Pauses an area's ticket sales by hand (operator of the area, admin), whatever the figures say:
/// the signal turns `paused` with the reason `manual` at the next evaluation and stays so until
/// `POST …/admission/resume`. Audited as `pause_sales`.
#[utoipa::path(post, path = "/api/v1/spaces/{id}/admission/pause", tag = "admission",
    params(("id" = String, Path, description = "Scenic area id")),
    request_body = PauseBody,
    responses((status = 202, description = "Held; the signal follows at the next evaluation", body = PauseReply),
        (status = 403, description = "Not the caller's area", body = ErrorBody),
        (status = 404, description = "No such area, or it sells no timed entry", body = ErrorBody),
        (status = 422, description = "No reason, or one too long", body = ErrorBody)))]
pub async fn pause(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Response, ApiError> {
    let s = find_space(&st, &id)?;
    caller.operate(&st.registry, s)?;
    plan_of(&st, s)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Unprocessable(
            "reason: 1–500 characters".to_owned(),
        ));
    }
    let space = st.registry.space(s).id.as_str();
    let held_at = db::hold_sales(&mut client, space, &caller.id, reason).await?;
    st.wake.wake();
    let reply = PauseReply {
        space: space.to_owned(),
        held_at,
        reason: reason.to_owned(),
    };
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeReply {
    space: String,
    confirmed_at: DateTime<Utc>,
}

/// Confirms that an area's sales may resume (operator of the area, admin): releases a hold set
/// with `…/admission/pause`, and confirms a resumption where `[admission]` asks for one. Sales
/// resume at the next evaluation if the figures allow it (no red level, no hazard, places left);
/// the confirmation is in the audit log (`confirm_sales_resume`).
#[utoipa::path(post, path = "/api/v1/spaces/{id}/admission/resume", tag = "admission",
    params(("id" = String, Path, description = "Scenic area id")),
    responses((status = 202, description = "Recorded; sales resume when the figures allow", body = ResumeReply),
        (status = 403, description = "Not the caller's area", body = ErrorBody),
        (status = 404, description = "No such area, or it sells no timed entry", body = ErrorBody)))]
pub async fn resume(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = find_space(&st, &id)?;
    caller.operate(&st.registry, s)?;
    plan_of(&st, s)?;
    let space = st.registry.space(s).id.as_str();
    let confirmed_at = db::confirm_resume(&mut client, space, &caller.id).await?;
    st.wake.wake();
    let reply = ResumeReply {
        space: space.to_owned(),
        confirmed_at,
    };
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

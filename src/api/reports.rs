//! The daily county report, `GET /api/v1/reports/daily` (JSON or CSV; built by
//! [`crate::report`]), its push upstream by hand (`POST /api/v1/reports/daily/{date}/push`,
//! admins) and the record of pushes (`GET /api/v1/reports/pushes`, admins); and the live feed's
//! deliveries upstream (`GET /api/v1/live-feed/deliveries`, admins).

use super::extract::{ApiPath, ApiQuery, DbConn, read_from};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::spaces::{Format, csv_response};
use super::{ApiError, AppState, ErrorBody, page, wants_csv};
use crate::report::{self, DailyReport, ReportError, push};
use crate::store::{controls as audit_db, live_feed, reports as db};

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::DayOutOfRange(d) => {
                ApiError::BadRequest(format!("day {d} is out of range"))
            }
            ReportError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// Local day (county time zone), `YYYY-MM-DD`; default today.
    day: Option<NaiveDate>,
    /// One space only (no county totals); default every scenic area and the county.
    space: Option<String>,
    /// `csv` for a CSV file (also `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

/// One local day per scenic area — entries, exits, peak and its local time, minutes at each
/// level, notices sent, shuttles advised and followed, diversions, head-count corrections by hand
/// and whether late reports revised the day — and the county's totals.
#[utoipa::path(get, path = "/api/v1/reports/daily", tag = "reports", params(DailyQuery),
    responses((status = 200, description = "The day's report (JSON, or CSV with one row per area and a county row)",
            content((DailyReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad day or format", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn daily(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DailyQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let day = match q.day {
        Some(d) => super::day_param(d)?,
        None => now.with_timezone(&st.registry.tz).date_naive(),
    };
    let only = match &q.space {
        Some(id) => Some(super::spaces::find_space(&st, id)?),
        None => None,
    };
    let (pool, read) = st.reads.choose();
    let report = report::build(pool, &st.registry, &st.forecaster.calendar, day, only, now).await?;
    if wants_csv(q.format, &headers) {
        let csv = csv_response(&format!("daily-{day}.csv"), report::to_csv(&report));
        return Ok(read_from(csv, read));
    }
    Ok(read_from(Json(report).into_response(), read))
}

/// Pushes a finished local day's county report upstream now, in the configured format, as a
/// delivery of its own (admins): retried, signed and recorded like the scheduled push.
#[utoipa::path(post, path = "/api/v1/reports/daily/{date}/push", tag = "reports",
    params(("date" = String, Path, description = "Local day `YYYY-MM-DD`, before today")),
    responses((status = 202, description = "Queued: `{id, day, delivery_id}`", body = Object),
        (status = 400, description = "Bad date", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 409, description = "No push configured, or a push of that day is still pending", body = ErrorBody),
        (status = 422, description = "The day is not over yet", body = ErrorBody)))]
pub async fn push_day(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiPath(day): ApiPath<NaiveDate>,
) -> Result<Response, ApiError> {
    let day = super::day_param(day)?;
    caller.admin()?;
    let Some(handle) = st.report_push.as_ref() else {
        return Err(ApiError::Conflict(
            "the report push is not enabled ([report_push] in the configuration)".into(),
        ));
    };
    let now = Utc::now();
    if day >= now.with_timezone(&st.registry.tz).date_naive() {
        return Err(ApiError::Unprocessable(format!(
            "{day} is not over yet: only finished days are pushed"
        )));
    }
    let report = report::build(
        &st.pool,
        &st.registry,
        &st.forecaster.calendar,
        day,
        None,
        now,
    )
    .await?;
    let body = push::render(&report, handle.format);
    let by = caller.id.to_string();
    let Some((id, delivery_id)) = db::insert_manual(
        &*client,
        &db::NewPush {
            day,
            format: handle.format.as_str(),
            content_type: handle.format.content_type(),
            body: &body,
        },
        &by,
    )
    .await?
    else {
        return Err(ApiError::Conflict(format!(
            "a push of {day} is still pending: see /api/v1/reports/pushes"
        )));
    };
    audit_db::audit(
        &*client,
        &by,
        "push_daily_report",
        &day.to_string(),
        &serde_json::json!({ "push": id, "delivery_id": delivery_id }),
    )
    .await?;
    handle.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": id, "day": day, "delivery_id": delivery_id })),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PushesQuery {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// Every push of the daily report, newest day first: scheduled or by hand, its delivery id,
/// status (pending, delivered, dead), attempts and the last error (admins).
#[utoipa::path(get, path = "/api/v1/reports/pushes", tag = "reports", params(PushesQuery),
    responses((status = 200, description = "`{pushes, limit, offset}`", body = Object),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody)))]
pub async fn pushes(
    State(_st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiQuery(q): ApiQuery<PushesQuery>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let pushes = db::list_pushes(&client, limit, offset).await?;
    Ok(
        Json(serde_json::json!({ "pushes": pushes, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiveDeliveriesQuery {
    /// pending, delivered, dead (dead letters: out of attempts, refused, or given up beyond
    /// `catch_up_periods`) or skipped (no instance was sending at the boundary).
    #[param(pattern = "^(pending|delivered|dead|skipped)$")]
    status: Option<String>,
    /// period or event (an immediate push: a change to red, a closure).
    #[param(pattern = "^(period|event)$")]
    trigger: Option<String>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

/// The live feed's deliveries to the provincial platform, newest period first: trigger, period,
/// delivery id, status, attempts and the last error (admins).
#[utoipa::path(get, path = "/api/v1/live-feed/deliveries", tag = "reports", params(LiveDeliveriesQuery),
    responses((status = 200, description = "`{deliveries, limit, offset}`", body = Object),
        (status = 400, description = "Bad filter or paging", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody)))]
pub async fn live_deliveries(
    State(_st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    ApiQuery(q): ApiQuery<LiveDeliveriesQuery>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.status
        && !["pending", "delivered", "dead", "skipped"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(
            "status must be pending, delivered, dead or skipped".into(),
        ));
    }
    if let Some(t) = &q.trigger
        && !["period", "event"].contains(&t.as_str())
    {
        return Err(ApiError::BadRequest(
            "trigger must be period or event".into(),
        ));
    }
    let rows = live_feed::list(
        &client,
        q.status.as_deref(),
        q.trigger.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(
        Json(serde_json::json!({ "deliveries": rows, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

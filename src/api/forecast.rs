//! Forecast routes: a space's day-ahead and week-ahead forecast (JSON or CSV) from the stored
//! runs, a run on request, and the inputs known in advance (closures, weather factors).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::extract::{ApiJson, DbConn};
use super::spaces::{Format, csv_response, find_space};
use super::{ApiError, AppState, ErrorBody, wants_csv};
use crate::calendar::local_instant;
use crate::forecasting::{RunSummary, Trigger};
use crate::registry::SpaceKind;
use crate::store::forecasts::{self as db, InputRow, StoredDay};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Days from `from` (1–14, default 7).
    days: Option<u32>,
    /// First local day (YYYY-MM-DD); default tomorrow.
    from: Option<NaiveDate>,
    /// `csv` for a CSV file (also `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

/// A band as stored: the mean with its 80 % and 95 % prediction intervals.
#[derive(ToSchema)]
#[schema(as = Band)]
#[allow(dead_code)] // documentation only
struct BandSchema {
    mean: f64,
    lo80: f64,
    hi80: f64,
    lo95: f64,
    hi95: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastHour {
    /// Local hour of the day (0–23).
    hour: u8,
    /// The hour's start, local time with its offset.
    start: String,
    #[schema(value_type = BandSchema)]
    entries: Value,
    /// The hour's highest occupancy.
    #[schema(value_type = BandSchema)]
    occupancy: Value,
    /// The expected occupancy as a share of the approved instantaneous maximum (percent).
    load_pct: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastDay {
    date: NaiveDate,
    /// `workday`, `weekend`, `holiday` or `make_up_workday` (调休上班).
    day_kind: String,
    holiday: Option<String>,
    /// The day's entries.
    #[schema(value_type = BandSchema)]
    entries: Value,
    /// Expected entries as a share of the approved daily maximum (percent).
    daily_load_pct: Option<f64>,
    /// The day's highest hourly occupancy.
    #[schema(value_type = BandSchema)]
    peak_occupancy: Value,
    run_id: i64,
    made_at: DateTime<Utc>,
    hours: Vec<ForecastHour>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceForecast {
    space: String,
    name_zh: String,
    name_en: String,
    time_zone: String,
    instant_capacity: Option<u32>,
    daily_capacity: Option<u32>,
    days: Vec<ForecastDay>,
}

fn pct(v: f64, cap: Option<u32>) -> Option<f64> {
    cap.filter(|c| *c > 0)
        .map(|c| (v / f64::from(c) * 1000.0).round() / 10.0)
}

fn mean(v: &Value) -> f64 {
    v.get("mean").and_then(Value::as_f64).unwrap_or(0.0)
}

fn day_view(st: &AppState, instant: Option<u32>, daily: Option<u32>, d: StoredDay) -> ForecastDay {
    let tz = st.registry.tz;
    let hours = match d.hourly {
        Value::Array(hours) => hours,
        _ => Vec::new(),
    };
    let hours = hours
        .into_iter()
        .enumerate()
        .map(|(h, mut v)| {
            let start = chrono::NaiveTime::from_hms_opt(h as u32, 0, 0)
                .and_then(|t| local_instant(tz, d.day, t))
                .map(|t| {
                    t.with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                })
                .unwrap_or_default();
            let occupancy = v.get_mut("occupancy").map(Value::take).unwrap_or_default();
            ForecastHour {
                hour: h as u8,
                start,
                entries: v.get_mut("entries").map(Value::take).unwrap_or_default(),
                load_pct: pct(mean(&occupancy), instant),
                occupancy,
            }
        })
        .collect();
    ForecastDay {
        date: d.day,
        day_kind: d.day_kind,
        holiday: d.holiday,
        daily_load_pct: pct(mean(&d.entries), daily),
        entries: d.entries,
        peak_occupancy: d.peak,
        run_id: d.run_id,
        made_at: d.made_at,
        hours,
    }
}

/// A scenic area's (or the county's) forecast for `days` local days from `from` (default
/// tomorrow): the day's entries and the hourly entries and occupancy, each with 80 % and 95 %
/// prediction intervals, from the latest stored run. With no stored run covering the days, one
/// is made first.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/forecast", tag = "forecast",
    params(("id" = String, Path, description = "Scenic area or county id"), ForecastQuery),
    responses((status = 200, description = "Forecast days (JSON, or CSV: date,hour,start,day_kind,holiday,entries_*,occupancy_*)",
            content((SpaceForecast = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad days or from", body = ErrorBody),
        (status = 404, description = "No such space, or not an area or the county", body = ErrorBody)))]
pub async fn get_forecast(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; expected days = 1..14, from = YYYY-MM-DD, format = json|csv",
            e.body_text()
        ))
    })?;
    let s = find_space(&st, &id)?;
    let space = st.registry.space(s);
    if !matches!(space.kind, SpaceKind::County | SpaceKind::ScenicArea) {
        return Err(ApiError::NotFound(format!(
            "{id} is a {}: forecasts are made for scenic areas and the county",
            space.kind.as_str()
        )));
    }
    let days = q.days.unwrap_or(7);
    if !(1..=14).contains(&days) {
        return Err(ApiError::BadRequest(format!("days = {days}: 1 to 14")));
    }
    let now = Utc::now();
    let today = now.with_timezone(&st.registry.tz).date_naive();
    let from = q.from.unwrap_or(today + TimeDelta::days(1));
    let to = from + TimeDelta::days(i64::from(days) - 1);
    let ids = [space.id.as_str()];
    let mut stored = {
        let client = st
            .pool
            .get()
            .await
            .map_err(crate::store::StoreError::from)?;
        db::latest(&**client, &ids, from, to, now).await?
    };
    let horizon = today + TimeDelta::days(i64::from(st.forecaster.plan.days));
    if stored.len() < days as usize && from >= today && to <= horizon {
        st.forecaster.on_request(now).await?;
        let client = st
            .pool
            .get()
            .await
            .map_err(crate::store::StoreError::from)?;
        stored = db::latest(&**client, &ids, from, to, Utc::now()).await?;
    }
    let view = SpaceForecast {
        space: space.id.to_string(),
        name_zh: space.name_zh.clone(),
        name_en: space.name_en.clone(),
        time_zone: st.registry.tz.to_string(),
        instant_capacity: space.instant_capacity,
        daily_capacity: space.daily_capacity,
        days: stored
            .into_iter()
            .map(|d| day_view(&st, space.instant_capacity, space.daily_capacity, d))
            .collect(),
    };
    if wants_csv(q.format, &headers) {
        return Ok(csv_response(
            &format!("{}-forecast.csv", view.space),
            to_csv(&view),
        ));
    }
    Ok(Json(view).into_response())
}

fn to_csv(f: &SpaceForecast) -> String {
    let mut out = String::from(
        "date,hour,start,day_kind,holiday,entries_mean,entries_lo80,entries_hi80,entries_lo95,entries_hi95,\
         occupancy_mean,occupancy_lo80,occupancy_hi80,occupancy_lo95,occupancy_hi95\n",
    );
    let band = |v: &Value| -> String {
        ["mean", "lo80", "hi80", "lo95", "hi95"]
            .iter()
            .map(|k| {
                v.get(k)
                    .and_then(Value::as_f64)
                    .map_or(String::new(), |x| format!("{x:.1}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    for d in &f.days {
        for h in &d.hours {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                d.date,
                h.hour,
                h.start,
                d.day_kind,
                crate::report::csv_field(d.holiday.as_deref().unwrap_or("")),
                band(&h.entries),
                band(&h.occupancy)
            );
        }
    }
    out
}

/// Makes a forecast run now for the county and every scenic area (admin).
#[utoipa::path(post, path = "/api/v1/forecast/run", tag = "forecast",
    responses((status = 200, description = "The run", body = RunSummary),
        (status = 403, description = "Not an admin token", body = ErrorBody)))]
pub async fn run(
    State(st): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let summary = st
        .forecaster
        .once(Trigger::Manual, Some(&caller.id), Utc::now())
        .await?;
    Ok(Json(summary).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    /// The area is closed that day: it forecasts no visitors.
    #[serde(default)]
    closed: bool,
    /// A factor on the expected level (a weather outlook: 0.6 for heavy rain), 0–5.
    factor: Option<f64>,
    /// Why (shown in the audit; up to 500 characters).
    note: Option<String>,
}

/// Sets what is known in advance about a day at an area (operator of the area, admin): a
/// closure or a factor on the expected level. Audited as `set_forecast_input`; a new run
/// follows at once.
#[utoipa::path(put, path = "/api/v1/spaces/{id}/forecast/inputs/{day}", tag = "forecast",
    params(("id" = String, Path, description = "Scenic area id"), ("day" = NaiveDate, Path, description = "Local day")),
    request_body = InputBody,
    responses((status = 202, description = "Stored; the forecast is made again", body = InputRow),
        (status = 403, description = "Not the caller's area", body = ErrorBody),
        (status = 404, description = "No such area", body = ErrorBody),
        (status = 422, description = "Factor out of range, or a note too long", body = ErrorBody)))]
pub async fn set_input(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path((id, day)): Path<(String, NaiveDate)>,
    ApiJson(body): ApiJson<InputBody>,
) -> Result<Response, ApiError> {
    let s = find_space(&st, &id)?;
    caller.operate(&st.registry, s)?;
    if let Some(f) = body.factor
        && !(0.0..=5.0).contains(&f)
    {
        return Err(ApiError::Unprocessable(format!("factor {f}: 0 to 5")));
    }
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::Unprocessable("note: up to 500 characters".into()));
    }
    let space = st.registry.space(s).id.as_str();
    let row = db::set_input(
        &mut client,
        space,
        day,
        body.closed,
        body.factor,
        body.note.as_deref(),
        &caller.id,
    )
    .await?;
    st.forecaster.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(row)).into_response())
}

/// Removes a day's input (operator of the area, admin); a new run follows at once.
#[utoipa::path(delete, path = "/api/v1/spaces/{id}/forecast/inputs/{day}", tag = "forecast",
    params(("id" = String, Path, description = "Scenic area id"), ("day" = NaiveDate, Path, description = "Local day")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not the caller's area", body = ErrorBody),
        (status = 404, description = "No such area, or no input that day", body = ErrorBody)))]
pub async fn clear_input(
    State(st): State<AppState>,
    client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path((id, day)): Path<(String, NaiveDate)>,
) -> Result<Response, ApiError> {
    let s = find_space(&st, &id)?;
    caller.operate(&st.registry, s)?;
    let space = st.registry.space(s).id.as_str();
    if !db::clear_input(&*client, space, day).await? {
        return Err(ApiError::NotFound(format!("no input for {space} on {day}")));
    }
    st.forecaster.wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InputsQuery {
    /// First local day; default today.
    from: Option<NaiveDate>,
    /// Last local day; default `from` plus 30 days.
    to: Option<NaiveDate>,
}

/// The inputs known in advance, every area.
#[utoipa::path(get, path = "/api/v1/forecast/inputs", tag = "forecast",
    params(InputsQuery),
    responses((status = 200, description = "Inputs by area and day", body = Vec<InputRow>)))]
pub async fn list_inputs(
    State(st): State<AppState>,
    client: DbConn,
    q: Result<Query<InputsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let today = Utc::now().with_timezone(&st.registry.tz).date_naive();
    let from = q.from.unwrap_or(today);
    let to = q.to.unwrap_or(from + TimeDelta::days(30));
    Ok(Json(db::inputs(&*client, from, to).await?).into_response())
}

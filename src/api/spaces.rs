//! Space and device routes: live figures from [`crate::live::Live`] (no database round trip), a
//! space's time series from PostgreSQL as JSON or CSV, and the views shared with the live feed.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::read_from;
use super::{ApiError, AppState, ErrorBody, time_param, wants_csv};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::live::{DeviceNow, Live, SpaceNow};
use crate::registry::{DeviceKind, PayloadFormat, SpaceKind};
use crate::registry::{Registry, Unit};
use crate::rules::Status;
use crate::store::replica::ReadFrom;
use crate::store::{self, SeriesPoint, Step};

#[derive(Debug, Serialize)]
pub struct SpaceView<'a> {
    pub id: &'a str,
    pub kind: SpaceKind,
    pub parent: Option<&'a str>,
    pub name_zh: &'a str,
    pub name_en: &'a str,
    pub unit: Unit,
    pub instant_capacity: Option<u32>,
    pub daily_capacity: Option<u32>,
    /// occupancy ÷ instant_capacity (LB/T 034's instantaneous load).
    pub utilisation: Option<f64>,
    /// entries today ÷ daily_capacity.
    pub daily_utilisation: Option<f64>,
    /// False when the space has no counters of its own and shows its parts' sum.
    pub measured: bool,
    #[serde(flatten)]
    pub now: SpaceNow,
    /// The capacity rules' view: level and action per load, effective capacity, forecast,
    /// stale and closed flags, open alerts. Absent until the first evaluation.
    pub status: Option<Arc<Status>>,
}

pub(super) fn ratio(n: u64, d: Option<u32>) -> Option<f64> {
    d.filter(|d| *d > 0)
        .map(|d| (n as f64 / f64::from(d) * 1000.0).round() / 1000.0)
}

pub fn space_view<'a>(
    reg: &'a Registry,
    s: SpaceIdx,
    now: SpaceNow,
    status: Option<Arc<Status>>,
) -> SpaceView<'a> {
    let sp = reg.space(s);
    SpaceView {
        id: sp.id.as_str(),
        kind: sp.kind,
        parent: sp.parent.map(|p| reg.space(p).id.as_str()),
        name_zh: &sp.name_zh,
        name_en: &sp.name_en,
        unit: sp.unit,
        instant_capacity: sp.instant_capacity,
        daily_capacity: sp.daily_capacity,
        utilisation: ratio(now.occupancy, sp.instant_capacity),
        daily_utilisation: ratio(now.entries_today, sp.daily_capacity),
        measured: sp.measured,
        now,
        status,
    }
}

/// Every space as `/api/v1/spaces` (and the live feed's snapshot) shows it.
pub fn all_spaces_json(reg: &Registry, live: &Live) -> String {
    let now = live.spaces();
    let statuses = live.statuses();
    let views: Vec<_> = reg
        .spaces
        .iter()
        .map(|s| space_view(reg, s.idx, now[s.idx.get()], statuses[s.idx.get()].clone()))
        .collect();
    serde_json::to_string(&views).unwrap_or_else(|_| "[]".into())
}

/// One space as in `/api/v1/spaces` (the live feed's `space` event).
pub fn space_json(reg: &Registry, live: &Live, s: SpaceIdx) -> String {
    serde_json::to_string(&space_view(reg, s, live.space(s), live.status(s)))
        .unwrap_or_else(|_| "{}".into())
}

#[derive(Debug, Serialize)]
pub struct DeviceView<'a> {
    pub id: &'a str,
    pub space: &'a str,
    pub kind: DeviceKind,
    pub format: PayloadFormat,
    #[serde(flatten)]
    pub now: DeviceNow,
}

fn device_view(reg: &Registry, d: DeviceIdx, now: DeviceNow) -> DeviceView<'_> {
    let dev = reg.device(d);
    DeviceView {
        id: dev.id.as_str(),
        space: reg.space(dev.space).id.as_str(),
        kind: dev.kind,
        format: dev.format,
        now,
    }
}

pub(super) fn find_space(st: &AppState, id: &str) -> Result<SpaceIdx, ApiError> {
    st.registry
        .space_idx(id)
        .ok_or_else(|| ApiError::NotFound(format!("no space {id:?}")))
}

/// Every space: live occupancy, entries/exits today, drift, peak, capacities, utilisation and
/// the capacity rules' status.
#[utoipa::path(get, path = "/api/v1/spaces", tag = "spaces",
    responses((status = 200, description = "Every space, registry order", body = Vec<Object>, content_type = "application/json")))]
pub async fn list_spaces(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        all_spaces_json(&st.registry, &st.live),
    )
        .into_response()
}

#[derive(Serialize)]
struct SpaceDetail<'a> {
    #[serde(flatten)]
    space: SpaceView<'a>,
    children: Vec<SpaceView<'a>>,
    devices: Vec<DeviceView<'a>>,
}

/// One space with its direct children and its devices.
#[utoipa::path(get, path = "/api/v1/spaces/{id}", tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses((status = 200, description = "The space, its children and devices", body = Object),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn get_space(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reg = &st.registry;
    let s = find_space(&st, &id)?;
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let own: Vec<DeviceIdx> = reg
        .devices
        .iter()
        .filter(|d| d.space == s)
        .map(|d| d.idx)
        .collect();
    let devices = st.live.devices_of(own.iter().copied());
    let detail = SpaceDetail {
        space: space_view(reg, s, now[s.get()], statuses[s.get()].clone()),
        children: reg
            .space(s)
            .children
            .iter()
            .map(|&c| space_view(reg, c, now[c.get()], statuses[c.get()].clone()))
            .collect(),
        devices: own
            .iter()
            .zip(devices)
            .map(|(&d, now)| device_view(reg, d, now))
            .collect(),
    };
    Ok(Json(detail).into_response())
}

/// Every device's data-quality view (last seq, missing reports, online).
#[utoipa::path(get, path = "/api/v1/devices", tag = "spaces",
    responses((status = 200, description = "Every device", body = Vec<Object>)))]
pub async fn list_devices(State(st): State<AppState>) -> Response {
    let now = st
        .live
        .devices_of(st.registry.devices.iter().map(|d| d.idx));
    let views: Vec<_> = st
        .registry
        .devices
        .iter()
        .zip(now)
        .map(|(d, now)| device_view(&st.registry, d.idx, now))
        .collect();
    Json(views).into_response()
}

/// `json` (default) or `csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Start (RFC 3339); default `to` minus 6 h (1m), 2 days (1h) or 31 days (1d).
    from: Option<DateTime<FixedOffset>>,
    /// End, exclusive (RFC 3339); default now.
    to: Option<DateTime<FixedOffset>>,
    #[param(inline)]
    step: Option<Step>,
    /// `csv` for a CSV file (also `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

/// Most points one series request returns (a year of hours, or a week of minutes).
const MAX_POINTS: i64 = 10_080;

#[derive(Serialize, ToSchema)]
struct Series<'a> {
    space: &'a str,
    step: Step,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Where the points were read: the primary, or the replica and how far behind it was.
    read_from: ReadFrom,
    #[schema(value_type = Vec<SeriesPointSchema>)]
    points: Vec<SeriesPoint>,
}

/// One bucket of a series (the OpenAPI schema of [`SeriesPoint`]).
#[derive(ToSchema)]
#[schema(as = SeriesPoint)]
#[allow(dead_code)] // documentation only
struct SeriesPointSchema {
    /// Start of the bucket, UTC.
    bucket: DateTime<Utc>,
    entries: i64,
    exits: i64,
    /// Occupancy at the bucket's end (null: not stamped, e.g. minutes filled from a backlog).
    occupancy: Option<i64>,
    peak: Option<i64>,
    /// Head-count corrections by hand in the bucket (`POST /api/v1/spaces/{id}/recount`): kept
    /// apart from the counts, so occupancy = entries − exits + drift + correction.
    correction: i64,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub(super) fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A space's time series: entries and exits per bucket, occupancy at the bucket's end, peak, and
/// head-count corrections.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/series", tag = "spaces",
    params(("id" = String, Path, description = "Space id"), SeriesQuery),
    responses((status = 200, description = "Buckets in time order (JSON or CSV: bucket,entries,exits,occupancy,peak,correction)",
            content((Series = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad range or step", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn get_series(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; expected from/to as RFC 3339, step = 1m|1h|1d, format = json|csv",
            e.body_text()
        ))
    })?;
    let s = find_space(&st, &id)?;
    let step = q.step.unwrap_or(Step::Minute);
    let to = time_param(q.to, "to")?.unwrap_or_else(Utc::now);
    let default_span = match step {
        Step::Minute => TimeDelta::hours(6),
        Step::Hour => TimeDelta::days(2),
        Step::Day => TimeDelta::days(31),
    };
    let from = time_param(q.from, "from")?.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let space = st.registry.space(s).id.as_str();
    let (pool, read) = st.reads.choose();
    let points = store::series(pool, space, from, to, step, MAX_POINTS).await?;
    if wants_csv(q.format, &headers) {
        let mut out = String::from("bucket,entries,exits,occupancy,peak,correction\n");
        for p in &points {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                p.bucket.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                p.entries,
                p.exits,
                opt(p.occupancy),
                opt(p.peak),
                p.correction
            );
        }
        let step = serde_json::to_value(step)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Ok(read_from(
            csv_response(&format!("{space}-{step}.csv"), out),
            read,
        ));
    }
    let body = Json(Series {
        space,
        step,
        from,
        to,
        read_from: read,
        points,
    });
    Ok(read_from(body.into_response(), read))
}

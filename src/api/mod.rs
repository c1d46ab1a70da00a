//! The HTTP API (axum): live figures per space from [`Live`] (no database round-trip), series from
//! PostgreSQL, health and readiness, and the Prometheus scrape. Errors are JSON with a reason.

mod alerts;
mod dispatch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Utc};
use deadpool_postgres::Pool;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::alerting::Wake;
use crate::config::{DeviceKind, PayloadFormat, SpaceKind};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::live::{DeviceNow, Live, SpaceNow};
use crate::registry::{Registry, Unit};
use crate::rules::Status;
use crate::store::{self, Mode, SeriesPoint, Step};

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Wakes the alerting loop after an operator's change (cap, hazard).
    pub wake: Arc<Wake>,
    /// Each subscription's delivery worker, by subscription id (for dead-letter replay).
    pub outbox: Arc<HashMap<String, Arc<Notify>>>,
    pub live: Arc<Live>,
    pub pool: Pool,
    pub metrics: PrometheusHandle,
    pub mode: Mode,
}

/// Largest request body accepted. Every route is a GET, so any body is unexpected; a bigger one
/// is answered 413 before a handler runs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/api/v1/spaces", get(list_spaces))
        .route("/api/v1/spaces/{id}", get(get_space))
        .route("/api/v1/spaces/{id}/series", get(get_series))
        .route("/api/v1/spaces/{id}/levels", get(alerts::levels))
        .route(
            "/api/v1/spaces/{id}/caps",
            get(alerts::list_caps).post(alerts::set_cap),
        )
        .route("/api/v1/spaces/{id}/caps/{cap}", delete(alerts::revoke_cap))
        .route(
            "/api/v1/spaces/{id}/hazards",
            get(alerts::list_hazards).post(alerts::set_hazard),
        )
        .route(
            "/api/v1/spaces/{id}/hazards/{hazard}",
            delete(alerts::clear_hazard),
        )
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::show))
        .route("/api/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/api/v1/compliance", get(alerts::compliance))
        .route("/api/v1/webhooks/deliveries", get(alerts::deliveries))
        .route(
            "/api/v1/webhooks/deliveries/{id}/replay",
            post(alerts::replay),
        )
        .route("/api/v1/audit", get(alerts::audit))
        .route("/api/v1/dispatch", get(dispatch::current))
        .route("/api/v1/dispatch/history", get(dispatch::history))
        .route(
            "/api/v1/dispatch/advice/{id}/decision",
            post(dispatch::decide),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
}

/// Serves `app` on `listener` until `stop` turns true. Instead of `axum::serve`, which has no
/// timer and hence no header read timeout: a client that dribbles its headers (slowloris) or
/// connects and sends nothing is dropped after `header_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    // Requests in progress finish; idle keep-alive connections are closed now.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it here, not across the caller's await.
    let _ = stop.wait_for(|s| *s).await;
}

/// The one error shape of this boundary: `{"error": {"status": 404, "reason": "…"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = serde_json::json!({ "error": { "status": status.as_u16(), "reason": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        tracing::warn!(error = %e, "database read failed");
        ApiError::Unavailable("database unavailable".into())
    }
}

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

fn ratio(n: u64, d: Option<u32>) -> Option<f64> {
    d.map(|d| (n as f64 / f64::from(d) * 1000.0).round() / 1000.0)
}

fn space_view<'a>(
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

async fn list_spaces(State(st): State<AppState>) -> Response {
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let views: Vec<_> = st
        .registry
        .spaces
        .iter()
        .map(|s| {
            space_view(
                &st.registry,
                s.idx,
                now[s.idx.get()],
                statuses[s.idx.get()].clone(),
            )
        })
        .collect();
    Json(views).into_response()
}

#[derive(Serialize)]
struct SpaceDetail<'a> {
    #[serde(flatten)]
    space: SpaceView<'a>,
    children: Vec<SpaceView<'a>>,
    devices: Vec<DeviceView<'a>>,
}

async fn get_space(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reg = &st.registry;
    let s = reg
        .space_idx(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no space {id:?}")))?;
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let devices = st.live.devices();
    let detail = SpaceDetail {
        space: space_view(reg, s, now[s.get()], statuses[s.get()].clone()),
        children: reg
            .space(s)
            .children
            .iter()
            .map(|&c| space_view(reg, c, now[c.get()], statuses[c.get()].clone()))
            .collect(),
        devices: reg
            .devices
            .iter()
            .filter(|d| d.space == s)
            .map(|d| device_view(reg, d.idx, devices[d.idx.get()]))
            .collect(),
    };
    Ok(Json(detail).into_response())
}

async fn list_devices(State(st): State<AppState>) -> Response {
    let now = st.live.devices();
    let views: Vec<_> = st
        .registry
        .devices
        .iter()
        .map(|d| device_view(&st.registry, d.idx, now[d.idx.get()]))
        .collect();
    Json(views).into_response()
}

#[derive(Debug, Deserialize)]
struct SeriesQuery {
    from: Option<DateTime<FixedOffset>>,
    to: Option<DateTime<FixedOffset>>,
    step: Option<Step>,
}

/// Most points one series request returns (a year of hours, or a week of minutes).
const MAX_POINTS: i64 = 10_080;

#[derive(Serialize)]
struct Series<'a> {
    space: &'a str,
    step: Step,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    points: Vec<SeriesPoint>,
}

async fn get_series(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; expected from/to as RFC 3339 and step = 1m|1h|1d",
            e.body_text()
        ))
    })?;
    let s = st
        .registry
        .space_idx(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no space {id:?}")))?;
    let step = q.step.unwrap_or(Step::Minute);
    let to = q.to.map(|t| t.with_timezone(&Utc)).unwrap_or_else(Utc::now);
    let default_span = match step {
        Step::Minute => TimeDelta::hours(6),
        Step::Hour => TimeDelta::days(2),
        Step::Day => TimeDelta::days(31),
    };
    let from = q
        .from
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    // RFC 3339 parsing accepts years PostgreSQL cannot store; those are the client's error, not a
    // database failure (which would answer 503 and log a warning for every such request).
    if ![from, to].iter().all(|t| (1..=9999).contains(&t.year())) {
        return Err(ApiError::BadRequest(
            "`from` and `to` must lie between the years 1 and 9999".into(),
        ));
    }
    let points = store::series(
        &st.pool,
        st.registry.space(s).id.as_str(),
        from,
        to,
        step,
        MAX_POINTS,
    )
    .await?;
    Ok(Json(Series {
        space: st.registry.space(s).id.as_str(),
        step,
        from,
        to,
        points,
    })
    .into_response())
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// A readiness probe answers quickly; a database that does not answer within this is not ready.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(State(st): State<AppState>) -> Response {
    let db = matches!(
        tokio::time::timeout(PING_TIMEOUT, store::ping(&st.pool)).await,
        Ok(Ok(()))
    );
    let broker = st.live.broker_connected();
    let ready = db && broker && st.live.ingest_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "database": db, "broker": broker, "storage_mode": st.mode.as_str() });
    (status, Json(body)).into_response()
}

async fn prometheus(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

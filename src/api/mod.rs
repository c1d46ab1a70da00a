//! The HTTP API (axum) and what it serves: live figures per space from [`Live`] (no database
//! round trip), series and reports from PostgreSQL, alerts, the live feed (SSE), the control-room
//! and crowd-board pages, the public and FIWARE routes, health, readiness and the Prometheus
//! scrape. Every route is registered through [`routes`], which also generates the OpenAPI
//! document from the handlers' annotations, so the two cannot drift apart.
//!
//! Layers, outermost first: JSON error bodies for whatever answered without one (405, 408, 413),
//! CORS for the configured origins, the request timeout, the body limit, then [`auth::guard`]
//! (token and rate limits) before any handler runs.

mod alerts;
pub mod auth;
mod bookings;
mod config;
mod extract;
mod forecast;
mod ingest;
mod dispatch;
pub mod live;
pub mod openapi;
mod ops;
mod public;
mod ratelimit;
mod recount;
mod reports;
mod spaces;
mod ui;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::shutdown::Shutdown;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use deadpool_postgres::Pool;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Caller, Tokens};
pub use live::Feed;
pub use ratelimit::RateLimiter;
pub use spaces::{SpaceView, space_view};

use crate::live::Live;
use crate::live::Wake;
use crate::registry::Registry;
use crate::store::{self, Mode};
pub use config::{HttpConfig, Role, TokenConfig};

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
    pub tokens: Arc<Tokens>,
    pub limiter: Arc<RateLimiter>,
    pub feed: Arc<Feed>,
    /// The daily report's push upstream, when `[report_push]` is enabled.
    pub report_push: Option<Arc<crate::report::push::PushHandle>>,
    /// Where history reads go: the replica while it is current enough, else the primary.
    pub reads: Arc<crate::store::replica::Reads>,
    /// Day-ahead forecast runs on request, and the calendar they and the reports read.
    pub forecaster: Arc<crate::forecasting::Forecaster>,
    /// Every area's timed-entry plan (`[admission]`).
    pub reservations: Arc<crate::admission::Reservations>,
    /// Where counts pushed over HTTP go: this instance's ingester(s).
    pub pushes: Arc<crate::ingest::PushIntake>,
    /// The OpenAPI document, serialized once when the router is built.
    pub openapi: Arc<OnceLock<String>>,
}

/// Every route with its documentation. The only place routes are registered.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(spaces::list_spaces))
        .routes(routes!(spaces::get_space))
        .routes(routes!(spaces::get_series))
        .routes(routes!(recount::recount))
        .routes(routes!(recount::list))
        .routes(routes!(bookings::report))
        .routes(routes!(bookings::slots))
        .routes(routes!(bookings::admission_state))
        .routes(routes!(bookings::pause))
        .routes(routes!(bookings::resume))
        .routes(routes!(forecast::get_forecast))
        .routes(routes!(forecast::run))
        .routes(routes!(forecast::set_input, forecast::clear_input))
        .routes(routes!(forecast::list_inputs))
        .routes(routes!(alerts::levels))
        .routes(routes!(alerts::list_caps, alerts::set_cap))
        .routes(routes!(alerts::revoke_cap))
        .routes(routes!(alerts::list_hazards, alerts::set_hazard))
        .routes(routes!(alerts::clear_hazard))
        .routes(routes!(spaces::list_devices))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::show))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::compliance))
        .routes(routes!(alerts::deliveries))
        .routes(routes!(alerts::replay))
        .routes(routes!(alerts::audit))
        .routes(routes!(dispatch::current))
        .routes(routes!(dispatch::history))
        .routes(routes!(dispatch::decide))
        .routes(routes!(reports::daily))
        .routes(routes!(reports::push_day))
        .routes(routes!(reports::pushes))
        .routes(routes!(reports::live_deliveries))
        .routes(routes!(live::live))
        .routes(routes!(public::areas))
        .routes(routes!(public::crowd_flow))
        .routes(routes!(public::parking))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(ui::index))
        .routes(routes!(ui::board))
        .routes(routes!(ui::file))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::prometheus))
        .routes(routes!(ingest::push))
}

/// The OpenAPI document of [`routes`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    openapi::finish(&mut doc);
    doc
}

pub fn router(state: AppState, http: &HttpConfig) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    openapi::finish(&mut doc);
    let _ = state
        .openapi
        .set(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let mut router = router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(http.request_timeout_ms.max(1)),
        ));
    let origins: Vec<HeaderValue> = http
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if !origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    header::HeaderName::from_static("last-event-id"),
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    router
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Gives a JSON error body to error responses produced outside the handlers (405 from routing,
/// 408 from the timeout, 413 from the body limit), keeping their headers (`Allow`).
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let reason = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = ErrorBody {
        error: ErrorDetail {
            status: status.as_u16(),
            reason,
        },
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Serves `app` on `listener` until `stop` turns true. Instead of `axum::serve`, which has no
/// timer and hence no header read timeout: a client that dribbles its headers (slowloris) or
/// connects and sends nothing is dropped after `header_timeout`. Each request carries the peer
/// address (`ConnectInfo`), which keys the per-address rate limit.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    mut stop: Shutdown,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let app = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let service = TowerToHyperService::new(app);
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

async fn stopped(stop: &mut Shutdown) {
    // The guard `wait_for` returns is not Send: drop it here, not across the caller's await.
    let _ = stop.recv().await;
}

/// The one error shape of this boundary: `{"error": {"status": 404, "reason": "…"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    TooLarge,
    #[error("too many requests: retry in {} ms", .0.as_millis())]
    TooManyRequests(Duration),
    #[error("{0}")]
    Unavailable(String),
}

/// The error body, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong, for a person.
    pub reason: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                reason: self.to_string(),
            },
        };
        let mut res = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"visitorflow\""),
                );
            }
            ApiError::TooManyRequests(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        res
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        tracing::warn!(error = %e, "database read failed");
        ApiError::Unavailable("database unavailable".into())
    }
}

/// An RFC 3339 bound in UTC, refused (400) outside years 1970–9999: PostgreSQL and the clock
/// arithmetic on it (default spans) must never see a time they cannot hold.
fn time_param(
    t: Option<DateTime<FixedOffset>>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    match t.map(|t| t.with_timezone(&Utc)) {
        Some(t) if !(1970..=9999).contains(&t.year()) => Err(ApiError::BadRequest(format!(
            "`{name}` must be within the years 1970–9999"
        ))),
        t => Ok(t),
    }
}

/// A local day within the years 1970–9999 (400 otherwise).
fn day_param(d: NaiveDate) -> Result<NaiveDate, ApiError> {
    if (1970..=9999).contains(&d.year()) {
        Ok(d)
    } else {
        Err(ApiError::BadRequest(
            "`day` must be within the years 1970–9999".into(),
        ))
    }
}

/// Refuses text PostgreSQL cannot store (NUL) or too long, as the field's error.
fn text_ok(v: &str, name: &str, max: usize, err: fn(String) -> ApiError) -> Result<(), ApiError> {
    if v.contains('\0') || v.len() > max {
        return Err(err(format!(
            "`{name}` must be at most {max} bytes, without NUL characters"
        )));
    }
    Ok(())
}

/// `limit` (1–1000, default 100) and `offset` (≥ 0, default 0) of a paged list.
fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(100);
    let offset = offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || !(0..=1_000_000_000).contains(&offset) {
        return Err(ApiError::BadRequest(
            "limit must be 1–1000 and offset 0–1e9".into(),
        ));
    }
    Ok((limit, offset))
}

/// CSV when `format=csv`, or when no format is given and the client accepts `text/csv` but not
/// JSON.
fn wants_csv(format: Option<spaces::Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(f) => f == spaces::Format::Csv,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv") && !a.contains("application/json")),
    }
}

//! Liveness, readiness and the Prometheus scrape. Open without a token: probes and Prometheus
//! must reach them, and they carry no visitor data beyond the aggregate gauges.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::store;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness: database reachable and broker session subscribed.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready (which part is said)", body = Object)))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    let db = store::ping(&st.pool).await.is_ok();
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

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn prometheus(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

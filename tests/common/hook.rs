//! A webhook receiver for the tests: a real HTTP server on a free port that checks each
//! request's Standard Webhooks signature, answers 503 (with `Retry-After: 1`) to the first
//! `fail_first` requests and 200 after, and records what came.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;
use visitorflow::webhook::Secret;
use visitorflow::webhook::sign::verify;

/// What the receiver saw.
#[derive(Default, Clone)]
pub struct Inbox {
    /// (received at, webhook-id, status answered, body)
    pub got: Vec<(Instant, String, u16, Value)>,
    pub fail_first: usize,
    pub bad_signatures: usize,
}

impl Inbox {
    /// The bodies answered 200, in arrival order.
    pub fn delivered(&self) -> Vec<Value> {
        self.got
            .iter()
            .filter(|g| g.2 == 200)
            .map(|g| g.3.clone())
            .collect()
    }
}

/// Starts a receiver at `http://{addr}/hook` verifying signatures made with `secret`.
pub async fn receiver(inbox: Arc<Mutex<Inbox>>, secret: &'static str) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let inbox = Arc::clone(&inbox);
            async move {
                let mut ib = inbox.lock().unwrap();
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if verify(
                    &headers,
                    &body,
                    &Secret::new(secret),
                    Duration::from_secs(300),
                )
                .is_err()
                {
                    ib.bad_signatures += 1;
                }
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let status = if ib.fail_first > 0 {
                    ib.fail_first -= 1;
                    503
                } else {
                    200
                };
                ib.got.push((Instant::now(), id, status, json));
                if status == 503 {
                    (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "").into_response()
                } else {
                    (StatusCode::OK, "").into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

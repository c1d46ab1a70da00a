//! The daily county report pushed upstream end to end: a service that was down at the scheduled
//! time pushes yesterday's report on start-up to a real HTTP receiver, signed (Standard
//! Webhooks); the receiver's 503 is retried with the same delivery id and the same body — by the
//! next run of the service, after a restart — and the body is the report `GET
//! /api/v1/reports/daily` serves. Another restart pushes nothing again. An admin pushes a day by
//! hand (CSV). And `visitorflow check-config` accepts the shipped files and locates a bad
//! `[report_push]`.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{FixedOffset, NaiveDate, TimeDelta, Utc};
use common::*;
use serde_json::Value;
use visitorflow::config::Config;
use visitorflow::webhook::Secret;
use visitorflow::webhook::sign::verify;

const SECRET: &str = "whsec_cHJvdmluY2lhbC1wbGF0Zm9ybQ==";

#[derive(Debug, Clone)]
struct Got {
    id: String,
    idempotency_key: String,
    content_type: String,
    body: Vec<u8>,
    signed: bool,
    status: u16,
}

#[derive(Default)]
struct Platform {
    /// Answers to give, in order (then 200): status and Retry-After.
    answers: VecDeque<(u16, Option<&'static str>)>,
    got: Vec<Got>,
}

async fn platform(state: Arc<Mutex<Platform>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/daily",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                let mut p = state.lock().unwrap();
                let (status, retry_after) = p.answers.pop_front().unwrap_or((200, None));
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let signed = verify(
                    &headers,
                    &body,
                    &Secret::new(SECRET),
                    Duration::from_secs(300),
                )
                .is_ok();
                p.got.push(Got {
                    id: h("webhook-id"),
                    idempotency_key: h("idempotency-key"),
                    content_type: h("content-type"),
                    body: body.to_vec(),
                    signed,
                    status,
                });
                let status = StatusCode::from_u16(status).unwrap();
                match retry_after {
                    Some(s) => (status, [("retry-after", s)], "busy").into_response(),
                    None => (status, "ok").into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn received(p: &Arc<Mutex<Platform>>) -> Vec<Got> {
    p.lock().unwrap().got.clone()
}

async fn wait_received(p: &Arc<Mutex<Platform>>, n: usize, what: &str) -> Vec<Got> {
    eventually(30, what, || async {
        let got = received(p);
        (got.len() >= n).then_some(got)
    })
    .await
}

fn push_config(stack: &Stack, to: std::net::SocketAddr, format: &str) -> Config {
    let mut cfg = stack.config("vf-report-push");
    cfg.alerting.backoff_base_ms = 200;
    cfg.report_push = serde_json::from_value(serde_json::json!({
        "enabled": true,
        "url": format!("http://{to}/daily"),
        "format": format,
        // Midnight: yesterday's report is always due, so a start-up pushes it.
        "send_at": "00:00",
        "secret": SECRET,
        "max_attempts": 5,
        "allow_private_network": true,
    }))
    .unwrap();
    cfg
}

async fn pushes(db: &tokio_postgres::Client) -> Vec<(String, String, String, i32)> {
    db.query(
        "SELECT trigger, delivery_id, status, attempts FROM report_push ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yesterdays_report_is_pushed_once_signed_retried_and_resumed_after_restarts() {
    let stack = Stack::start();
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let yesterday: NaiveDate = today - TimeDelta::days(1);

    // Yesterday's counts arrive while the push is off (a late batch from the gates).
    let svc = start_service(stack.config("vf-report-push")).await;
    let ts = |hm: &str| format!("{yesterday}T{hm}:00+08:00");
    let path = format!("/api/v1/reports/daily?day={yesterday}");
    let batches = [
        vec![(
            counts_topic("canyon", "gate-1"),
            report(1, &ts("10:00"), 700, 0),
        )],
        vec![
            (
                counts_topic("canyon", "gate-1"),
                report(2, &ts("11:30"), 200, 300),
            ),
            (
                counts_topic("village", "door"),
                report(1, &ts("12:00"), 150, 20),
            ),
        ],
    ];
    let mut expected = Value::Null;
    // One batch at a time: a batch stamps the occupancy of the minute it ends in.
    for (n, (batch, entries)) in batches.into_iter().zip([700, 1050]).enumerate() {
        publish_all(stack.mq.port(), &format!("pub-yesterday-{n}"), batch).await;
        expected = eventually(30, "yesterday's report with its counts", || async {
            let (_, v) = get_json(svc.http_addr, &path).await;
            (v["county"]["entries"] == entries).then_some(v)
        })
        .await;
    }
    svc.shutdown().await;
    let canyon = &expected["areas"][0];
    assert_eq!(
        (canyon["entries"].as_i64(), canyon["peak"].as_i64()),
        (Some(900), Some(700))
    );
    // Counts belong to the minute before their timestamp.
    assert_eq!(
        canyon["peak_at_local"],
        format!("{yesterday}T09:59:00+08:00")
    );

    // The service starts after the scheduled time with the push on: it pushes yesterday's
    // report at once. The platform is busy (503, Retry-After 3 s) and the service stops.
    let state = Arc::new(Mutex::new(Platform {
        answers: [(503, Some("3"))].into(),
        ..Platform::default()
    }));
    let to = platform(Arc::clone(&state)).await;
    let svc = start_service(push_config(&stack, to, "json")).await;
    let first = wait_received(&state, 1, "the first push").await;
    svc.shutdown().await;
    let db = stack.db().await;
    let recorded = pushes(&db).await;
    let delivery = format!("vf-report-{yesterday}");
    assert_eq!(
        recorded,
        [("schedule".into(), delivery.clone(), "pending".into(), 1)]
    );
    assert_eq!(first[0].status, 503);

    // Started again: the pending push is retried when due, with the same id and body.
    let svc = start_service(push_config(&stack, to, "json")).await;
    let got = wait_received(&state, 2, "the retry").await;
    assert_eq!(got.len(), 2, "one retry");
    for g in &got {
        assert_eq!(g.id, delivery);
        assert_eq!(g.idempotency_key, delivery);
        assert!(g.signed, "the signature verifies");
        assert_eq!(g.content_type, "application/json");
        assert_eq!(g.body, got[0].body, "every attempt sends the same bytes");
    }
    assert_eq!(got[1].status, 200);
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(body, expected, "the pushed body is the day's report");
    let (_, served) = get_json(svc.http_addr, &path).await;
    assert_eq!(body, served);
    let attempts: Vec<(i32, String, Option<i32>)> =
        eventually(10, "the delivery recorded", || async {
            let rows: Vec<(i32, String, Option<i32>)> = db
                .query(
                    "SELECT attempt, outcome, http_status FROM report_push_attempts ORDER BY id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            (rows.len() == 2).then_some(rows)
        })
        .await;
    assert_eq!(
        attempts,
        [
            (1, "retried".into(), Some(503)),
            (2, "delivered".into(), Some(200))
        ]
    );
    let (s, list) = get_json(svc.http_addr, "/api/v1/reports/pushes").await;
    assert_eq!(s, 200, "{list}");
    let p = &list["pushes"][0];
    assert_eq!(
        (&p["day"], &p["status"], &p["attempts"], &p["trigger"]),
        (
            &Value::from(yesterday.to_string()),
            &Value::from("delivered"),
            &Value::from(2),
            &Value::from("schedule")
        )
    );
    let metrics = eventually(10, "push metrics", || async {
        let m = get_text(svc.http_addr, "/metrics").await;
        m.contains("visitorflow_report_pushes_total{outcome=\"delivered\"} 1")
            .then_some(m)
    })
    .await;
    assert!(metrics.contains("visitorflow_report_pushes_total{outcome=\"retried\"} 1"));
    svc.shutdown().await;

    // A third start, now as CSV: yesterday was delivered, nothing is pushed again.
    let svc = start_service(push_config(&stack, to, "csv")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received(&state).len(),
        2,
        "a delivered day is not pushed again"
    );
    assert_eq!(pushes(&db).await.len(), 1);

    // An admin pushes the day again by hand: a delivery of its own, in the configured format.
    let url = |day: &str| format!("http://{}/api/v1/reports/daily/{day}/push", svc.http_addr);
    let r = http()
        .post(url(&yesterday.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let queued: Value = r.json().await.unwrap();
    let got = wait_received(&state, 3, "the manual push").await;
    let manual = &got[2];
    assert_eq!(manual.id, queued["delivery_id"].as_str().unwrap());
    assert!(
        manual.id.starts_with(&format!("{delivery}-m")),
        "{}",
        manual.id
    );
    assert!(manual.signed);
    assert_eq!(manual.content_type, "text/csv; charset=utf-8");
    let csv = get_text(
        svc.http_addr,
        &format!("/api/v1/reports/daily?day={yesterday}&format=csv"),
    )
    .await;
    assert_eq!(String::from_utf8(manual.body.clone()).unwrap(), csv);
    // Today is not over; a date that is none is refused.
    let r = http().post(url(&today.to_string())).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = http().post(url("2026-13-01")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (_, audit) = get_json(svc.http_addr, "/api/v1/audit").await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "push_daily_report" && e["actor"] == ADMIN_ID)
    );
    svc.shutdown().await;
}

#[test]
fn check_config_accepts_the_shipped_files_and_locates_push_problems() {
    let bin = env!("CARGO_BIN_EXE_visitorflow");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["config/county.toml", "deploy/config.toml"] {
        let out = std::process::Command::new(bin)
            .arg("check-config")
            .arg(repo.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(repo.join("config/county.toml"))
        .unwrap()
        .replace("enabled = false", "enabled = true")
        .replace(
            "https://platform.example/visitorflow/daily-report",
            "http://10.1.2.3/daily",
        )
        .replace("send_at = \"01:00\"", "send_at = \"25:00\"");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(bin)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("report_push.send_at: \"25:00\" is not a time of day HH:MM"),
        "{err}"
    );
    assert!(
        err.contains("report_push.url: ") && err.contains("private"),
        "{err}"
    );
}

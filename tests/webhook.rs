//! Webhook delivery against a real HTTP receiver: an axum server on 127.0.0.1 that verifies
//! signatures the way a subscriber would, and answers as receivers and robots do (Retry-After,
//! 5xx, 4xx, slow replies, DingTalk/WeCom errcodes). Targets use `allow_private_network`, the
//! receiver being on loopback; one test checks that without it nothing is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use url::Url;
use visitorflow::rules::Severity;
use visitorflow::webhook::deliver::{check_url, check_url_resolved};
use visitorflow::webhook::sign::{self, DEFAULT_TOLERANCE, VerifyError};
use visitorflow::webhook::{
    AlertEvent, AlertState, Deliverer, DeliveryOptions, Format, Outcome, Secret,
    SubscriptionConfig, Target,
};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DING_SECRET: &str = "SECexample0123456789abcdef";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    /// The Standard Webhooks check, when the request carried a signature.
    verified: Option<Result<(), VerifyError>>,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    State(rx): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let verified = headers
        .contains_key(sign::HEADER_SIGNATURE)
        .then(|| sign::verify(&headers, &body, &Secret::new(WHSEC), DEFAULT_TOLERANCE));
    let path = uri.path().to_owned();
    let earlier = {
        let mut seen = rx.seen.lock().unwrap();
        let earlier = seen.iter().filter(|s| s.path == path).count();
        seen.push(Seen {
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body: body.clone(),
            verified: verified.clone(),
        });
        earlier
    };
    if matches!(verified, Some(Err(_))) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["ok"] => StatusCode::NO_CONTENT.into_response(),
        ["unavailable"] => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "2")],
            "busy",
        )
            .into_response(),
        ["ratelimited"] => {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", at)],
                "slow down",
            )
                .into_response()
        }
        ["boom"] => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        ["bad"] => (StatusCode::BAD_REQUEST, "missing field alert").into_response(),
        ["request-timeout"] => StatusCode::REQUEST_TIMEOUT.into_response(),
        ["slow"] => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK.into_response()
        }
        ["flaky"] if earlier == 0 => StatusCode::BAD_GATEWAY.into_response(),
        ["flaky"] => StatusCode::OK.into_response(),
        ["redirect"] => (
            StatusCode::FOUND,
            [("location", "http://169.254.169.254/latest/meta-data/")],
        )
            .into_response(),
        ["dingtalk", code] => robot_reply(code, dingtalk_sign_ok(uri.query())),
        ["wecom", code] => robot_reply(code, true),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A DingTalk robot with signing on: `timestamp` and `sign` in the query, or errcode 310000.
fn dingtalk_sign_ok(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (
        get("timestamp").and_then(|t| t.parse::<i64>().ok()),
        get("sign"),
    ) {
        (Some(ts), Some(sign)) => {
            let fresh = (ts / 1000 - sign::unix_now()).abs() < 3600;
            fresh && sign == sign::dingtalk_sign(&Secret::new(DING_SECRET), ts)
        }
        _ => false,
    }
}

fn robot_reply(code: &str, sign_ok: bool) -> Response {
    let code: i64 = if sign_ok {
        code.parse().unwrap_or(0)
    } else {
        310000
    };
    let msg = match code {
        0 => "ok",
        130101 => "send too fast, exceed 20 times per minute",
        45009 => "api freq out of limit",
        310000 => "sign not match",
        _ => "invalid",
    };
    axum::Json(serde_json::json!({ "errcode": code, "errmsg": msg })).into_response()
}

async fn start() -> (Receiver, String) {
    let rx = Receiver::default();
    let app = Router::new().fallback(receive).with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rx, base)
}

fn deliverer(timeout: Duration) -> Deliverer {
    Deliverer::new(DeliveryOptions {
        timeout,
        external_url: Some("https://vf.example.org".into()),
        ..DeliveryOptions::default()
    })
    .unwrap()
}

fn target(base: &str, path: &str, format: Format, secret: Option<&str>) -> Target {
    let mut t = Target::new(
        "bureau",
        Url::parse(&format!("{base}{path}")).unwrap(),
        format,
    );
    t.secret = secret.map(Secret::new);
    t.allow_private_network = true;
    t
}

fn event() -> AlertEvent {
    AlertEvent {
        delivery_id: "0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        alert_id: "tianshan-canyon/instant_level".into(),
        space_id: "tianshan-canyon".into(),
        space_name_zh: "天山大峡谷".into(),
        space_name_en: "Tianshan Grand Canyon".into(),
        kind: "instant_level".into(),
        severity: Severity::Major,
        state: AlertState::Firing,
        level: Some("orange".into()),
        load: Some(0.92),
        occupancy: Some(4600),
        capacity_approved: Some(5000),
        capacity_effective: Some(5000),
        forecast_minutes_to_red: Some(25.0),
        devices: Vec::new(),
        devices_total: None,
        action_zh: "入口限流".into(),
        action_en: "Meter the entrances".into(),
        message_zh: String::new(),
        message_en: String::new(),
        starts_at: Utc.with_ymd_and_hms(2026, 5, 1, 2, 10, 0).unwrap(),
        ends_at: None,
        at: Utc.with_ymd_and_hms(2026, 5, 1, 2, 15, 0).unwrap(),
        generator_url: None,
        admission: None,
        ladder: None,
    }
}

fn header<'a>(s: &'a Seen, name: &str) -> &'a str {
    s.headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn json_delivered_signed_and_idempotent() {
    let (rx, base) = start().await;
    // Built the way the wiring will: from configuration.
    let cfg: SubscriptionConfig = toml::from_str(&format!(
        r#"
        id = "bureau"
        url = "{base}/ok"
        format = "json"
        secret = "{WHSEC}"
        allow_private_network = true
        headers = {{ Authorization = "Bearer t0ken" }}
        "#
    ))
    .unwrap();
    let t = cfg.target().unwrap();
    let a = deliverer(Duration::from_secs(5))
        .deliver_once(&t, &event())
        .await;
    assert!(
        matches!(a.outcome, Outcome::Delivered { status: 204, .. }),
        "{a:?}"
    );
    assert_eq!(a.http_status, Some(204));

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.verified, Some(Ok(())), "receiver verifies the signature");
    assert_eq!(header(s, "webhook-id"), event().delivery_id);
    assert_eq!(header(s, "idempotency-key"), event().delivery_id);
    assert!(header(s, "webhook-signature").starts_with("v1,"));
    let ts: i64 = header(s, "webhook-timestamp").parse().unwrap();
    assert!((ts - sign::unix_now()).abs() < 60);
    assert_eq!(header(s, "content-type"), "application/json");
    assert_eq!(header(s, "authorization"), "Bearer t0ken");
    assert!(header(s, "user-agent").starts_with("visitorflow/"));
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["version"], "1");
    assert_eq!(body["delivery_id"], event().delivery_id);
    assert_eq!(body["external_url"], "https://vf.example.org");
}

#[tokio::test]
async fn alertmanager_delivered_with_raw_secret_and_tampering_rejected() {
    let (rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let t = target(&base, "/ok", Format::Alertmanager, Some(WHSEC));
    let a = d.deliver_once(&t, &event()).await;
    assert!(matches!(a.outcome, Outcome::Delivered { .. }), "{a:?}");
    let s = &rx.seen()[0];
    assert_eq!(s.verified, Some(Ok(())));
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "bureau");
    assert_eq!(body["alerts"][0]["labels"]["level"], "orange");

    // Signed with another key: the receiver's verify refuses it, which is a permanent 401.
    let wrong = target(
        &base,
        "/ok",
        Format::Alertmanager,
        Some("not-the-shared-secret"),
    );
    let a = d.deliver_once(&wrong, &event()).await;
    assert!(
        matches!(a.outcome, Outcome::Fail { ref reason } if reason.contains("401")),
        "{a:?}"
    );
    assert_eq!(rx.seen()[1].verified, Some(Err(VerifyError::NoMatch)));

    // Unsigned without a secret, but still identified.
    let plain = target(&base, "/ok", Format::Json, None);
    let a = d.deliver_once(&plain, &event()).await;
    assert!(matches!(a.outcome, Outcome::Delivered { .. }), "{a:?}");
    let s = &rx.seen()[2];
    assert!(s.headers.get("webhook-signature").is_none());
    assert_eq!(header(s, "webhook-id"), event().delivery_id);
}

#[tokio::test]
async fn retry_after_seconds_and_http_date() {
    let (_rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let a = d
        .deliver_once(&target(&base, "/unavailable", Format::Json, None), &event())
        .await;
    assert_eq!(a.http_status, Some(503));
    match a.outcome {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(2)));
            assert_eq!(reason, "HTTP 503: busy");
        }
        other => panic!("{other:?}"),
    }
    let a = d
        .deliver_once(&target(&base, "/ratelimited", Format::Json, None), &event())
        .await;
    match a.outcome {
        Outcome::Retry {
            after: Some(after), ..
        } => assert!(
            (Duration::from_secs(110)..=Duration::from_secs(120)).contains(&after),
            "{after:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_errors_retry_client_errors_fail() {
    let (_rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let outcome = |path: &'static str| {
        let t = target(&base, path, Format::Json, None);
        let d = &d;
        async move { d.deliver_once(&t, &event()).await.outcome }
    };
    assert!(matches!(
        outcome("/boom").await,
        Outcome::Retry { after: None, .. }
    ));
    assert!(matches!(
        outcome("/request-timeout").await,
        Outcome::Retry { .. }
    ));
    match outcome("/bad").await {
        Outcome::Fail { reason } => assert_eq!(reason, "HTTP 400: missing field alert"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(outcome("/nowhere").await, Outcome::Fail { .. }),
        "404 is permanent"
    );
}

#[tokio::test]
async fn slow_receiver_times_out_into_retry() {
    let (_rx, base) = start().await;
    let d = deliverer(Duration::from_millis(300));
    let started = Instant::now();
    let a = d
        .deliver_once(&target(&base, "/slow", Format::Json, None), &event())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout applies"
    );
    assert!(
        matches!(a.outcome, Outcome::Retry { after: None, ref reason } if reason.starts_with("no reply")),
        "{a:?}"
    );
    assert_eq!(a.http_status, None);
}

#[tokio::test]
async fn connection_refused_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let a = deliverer(Duration::from_secs(5))
        .deliver_once(&target(&base, "/ok", Format::Json, None), &event())
        .await;
    assert!(
        matches!(a.outcome, Outcome::Retry { after: None, ref reason } if reason.starts_with("cannot connect")),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_retry_carries_the_same_ids() {
    let (rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let t = target(&base, "/flaky", Format::Json, Some(WHSEC));
    let first = d.deliver_once(&t, &event()).await;
    assert!(matches!(first.outcome, Outcome::Retry { .. }), "{first:?}");
    let second = d.deliver_once(&t, &event()).await;
    assert!(
        matches!(second.outcome, Outcome::Delivered { .. }),
        "{second:?}"
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    for name in ["webhook-id", "idempotency-key"] {
        assert_eq!(header(&seen[0], name), header(&seen[1], name));
        assert_eq!(header(&seen[0], name), event().delivery_id);
    }
    assert!(seen.iter().all(|s| s.verified == Some(Ok(()))));
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn dingtalk_signed_url_and_errcodes() {
    let (rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let ding = |code: &str| {
        target(
            &base,
            &format!("/dingtalk/{code}"),
            Format::DingTalk,
            Some(DING_SECRET),
        )
    };

    let a = d.deliver_once(&ding("0"), &event()).await;
    assert!(
        matches!(a.outcome, Outcome::Delivered { status: 200, .. }),
        "{a:?}"
    );
    let s = &rx.seen()[0];
    let q = s.query.as_deref().unwrap();
    assert!(q.starts_with("timestamp=") && q.contains("&sign="), "{q}");
    assert!(
        s.headers.get("webhook-signature").is_none(),
        "robots get no Standard Webhooks"
    );
    assert_eq!(header(s, "idempotency-key"), event().delivery_id);
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(
        body["markdown"]["title"],
        "【橙色预警】天山大峡谷 瞬时承载 92%"
    );

    let a = d.deliver_once(&ding("130101"), &event()).await;
    assert!(
        matches!(a.outcome, Outcome::Retry { ref reason, .. } if reason.contains("130101")),
        "{a:?}"
    );
    let a = d.deliver_once(&ding("300001"), &event()).await;
    assert!(matches!(a.outcome, Outcome::Fail { .. }), "{a:?}");

    // Without the secret the robot answers "sign not match": permanent.
    let unsigned = target(&base, "/dingtalk/0", Format::DingTalk, None);
    match d.deliver_once(&unsigned, &event()).await.outcome {
        Outcome::Fail { reason } => assert_eq!(reason, "dingtalk errcode 310000: sign not match"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wecom_errcodes() {
    let (rx, base) = start().await;
    let d = deliverer(Duration::from_secs(5));
    let wecom = |code: &str| target(&base, &format!("/wecom/{code}"), Format::WeCom, None);
    let a = d.deliver_once(&wecom("0"), &event()).await;
    assert!(matches!(a.outcome, Outcome::Delivered { .. }), "{a:?}");
    let body: serde_json::Value = serde_json::from_slice(&rx.seen()[0].body).unwrap();
    assert!(
        body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("<font color=\"warning\">")
    );
    assert!(matches!(
        d.deliver_once(&wecom("45009"), &event()).await.outcome,
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        d.deliver_once(&wecom("93000"), &event()).await.outcome,
        Outcome::Fail { .. }
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (rx, base) = start().await;
    let a = deliverer(Duration::from_secs(5))
        .deliver_once(&target(&base, "/redirect", Format::Json, None), &event())
        .await;
    match a.outcome {
        Outcome::Fail { reason } => assert!(reason.contains("302"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn ssrf_guard_refuses_internal_targets_without_sending() {
    let (rx, base) = start().await;
    let mut t = target(&base, "/ok", Format::Json, None);
    t.allow_private_network = false;
    let a = deliverer(Duration::from_secs(5))
        .deliver_once(&t, &event())
        .await;
    match a.outcome {
        Outcome::Fail { reason } => assert!(reason.starts_with("refused URL"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(rx.seen().is_empty(), "nothing reached the receiver");

    for refused in [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://localhost/",
        "file:///etc/passwd",
    ] {
        let u = Url::parse(refused).unwrap();
        assert!(check_url(&u, false).is_err(), "{refused}");
        assert!(check_url_resolved(&u, false).await.is_err(), "{refused}");
    }
    // TEST-NET-3: public-looking. Only the guard is asked; nothing is sent there.
    let public = Url::parse("https://203.0.113.10/hook").unwrap();
    assert!(check_url(&public, false).is_ok());
    assert!(check_url_resolved(&public, false).await.is_ok());
}

#[tokio::test]
async fn https_uses_the_tls_stack_and_a_failed_handshake_retries() {
    // A "server" that answers TLS with plain text: the handshake fails, which is transient (a
    // receiver's TLS front may be restarting). Shows the rustls stack is built and used.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let t = target(&format!("https://{addr}"), "/ok", Format::Json, None);
    let a = deliverer(Duration::from_secs(5))
        .deliver_once(&t, &event())
        .await;
    match a.outcome {
        Outcome::Retry {
            after: None,
            reason,
        } => {
            assert!(reason.starts_with("cannot connect"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

//! Cameras pushing over HTTP in their own formats (Hikvision ISAPI people-counting events, Xovis
//! line-count pushes), end to end with a real PostgreSQL and Mosquitto: the device's credentials
//! are checked, a body is answered 200 only once stored, bad bodies get a 4xx with the reason and
//! are counted, and a camera that keeps retrying through a service restart has every window
//! counted exactly once.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const CAMERAS: &str = include_str!("data/cameras.toml");
const HIK: &str = include_str!("data/vendor/hikvision-timerange.xml");
const XOVIS: &str = include_str!("data/vendor/xovis-line-count.json");

fn basic(device: &str, secret: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{device}:{secret}"));
    format!("Basic {b}")
}

/// The captured Hikvision event with its window moved to `[start, start + 1 min)`.
fn hik_window(start: DateTime<Utc>, enter: u32, exit: u32) -> String {
    let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
    HIK.replace("2020-04-19T19:33:00+02:00", &fmt(start))
        .replace(
            "2020-04-19T19:35:00+02:00",
            &fmt(start + TimeDelta::minutes(1)),
        )
        .replace("<enter>0</enter>", &format!("<enter>{enter}</enter>"))
        .replace("<exit>0</exit>", &format!("<exit>{exit}</exit>"))
}

async fn push(
    addr: SocketAddr,
    device: &str,
    auth: Option<&str>,
    ct: &str,
    body: String,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let mut req = http()
        .post(format!("http://{addr}/ingest/{device}"))
        .header("content-type", ct)
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await?;
    let status = r.status();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// What the area's minute series holds (whatever local day the windows fell on).
async fn area(stack: &Stack) -> (u64, u64) {
    let (e, x) = bucket_totals(&stack.db().await, "area").await;
    (e as u64, x as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_windows_are_counted_once_through_a_restart_and_bad_pushes_are_refused() {
    let stack = Stack::start();
    let cfg = stack.config_from(CAMERAS, "vf-http-ingest");
    let svc = start_service(cfg.clone()).await;
    let addr = svc.http_addr;
    let hik = basic("hik", "hik-secret");
    // Windows of the last hour, whole minutes.
    let first = (Utc::now() - TimeDelta::minutes(70))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();

    // Credentials: none or wrong → 401 asking for Basic; a device without a secret → 403.
    let body = hik_window(first, 1, 0);
    let (s, _) = push(addr, "hik", None, "application/xml", body.clone())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = push(
        addr,
        "hik",
        Some(&basic("hik", "nope")),
        "application/xml",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = push(
        addr,
        "hik-region-2",
        Some(&hik),
        "application/xml",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = push(addr, "nobody", Some(&hik), "application/xml", body)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Not XML, and running totals: 422 naming the reason, counted.
    let (s, v) = push(
        addr,
        "hik",
        Some(&hik),
        "application/xml",
        "<EventNotificationAlert><".into(),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("malformed_xml"),
        "{v}"
    );
    let realtime = include_str!("data/vendor/hikvision-realtime.xml");
    let (s, v) = push(addr, "hik", Some(&hik), "application/xml", realtime.into())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timeRange"),
        "{v}"
    );

    // A camera pushing 60 one-minute windows, each until it is answered 200, through a restart
    // of the service after the 20th. Every second window comes as multipart (newer firmware).
    let published: Vec<(u32, u32)> = (0..60).map(|i| (i % 7, i % 4)).collect();
    let current = Arc::new(Mutex::new(addr));
    let camera = {
        let current = Arc::clone(&current);
        let published = published.clone();
        let hik = hik.clone();
        tokio::spawn(async move {
            let mut retries = 0;
            for (i, (e, x)) in published.iter().enumerate() {
                let xml = hik_window(first + TimeDelta::minutes(i as i64), *e, *x);
                let (ct, body) = if i % 2 == 1 {
                    (
                        "multipart/form-data; boundary=MIME_boundary".to_owned(),
                        format!(
                            "--MIME_boundary\r\nContent-Disposition: form-data; name=\"PeopleCounting\"\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}\r\n--MIME_boundary--\r\n",
                            xml.len()
                        ),
                    )
                } else {
                    ("application/xml".to_owned(), xml)
                };
                loop {
                    let addr = *current.lock().unwrap();
                    match push(addr, "hik", Some(&hik), &ct, body.clone()).await {
                        Ok((StatusCode::OK, v)) => {
                            assert_eq!(v["reports"], 1, "{v}");
                            break;
                        }
                        Ok((s, v)) if s.is_client_error() => panic!("window {i}: {s} {v}"),
                        _ => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            retries
        })
    };
    eventually(30, "20 windows stored", || async {
        let (e, _) = area(&stack).await;
        (e >= published[..20].iter().map(|p| u64::from(p.0)).sum::<u64>()).then_some(())
    })
    .await;
    svc.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let svc = start_service(cfg.clone()).await;
    let addr = svc.http_addr;
    *current.lock().unwrap() = addr;
    let retries = tokio::time::timeout(Duration::from_secs(60), camera)
        .await
        .expect("the camera finishes")
        .unwrap();
    let want: (u64, u64) = published
        .iter()
        .fold((0, 0), |a, p| (a.0 + u64::from(p.0), a.1 + u64::from(p.1)));
    assert_eq!(area(&stack).await, want, "stored = published");
    // The camera resends its whole hour (a reboot replaying its buffer): nothing changes.
    for (i, (e, x)) in published.iter().enumerate() {
        let xml = hik_window(first + TimeDelta::minutes(i as i64), *e, *x);
        let (s, _) = push(addr, "hik", Some(&hik), "application/xml", xml)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(area(&stack).await, want, "a replay counts nothing twice");

    // The same windows over MQTT (a bridge publishing the camera's XML on the device's topic)
    // give the same numbers as the HTTP push.
    let msgs: Vec<(String, String)> = published
        .iter()
        .enumerate()
        .map(|(i, (e, x))| {
            (
                counts_topic("area", "hik-mqtt"),
                hik_window(first + TimeDelta::minutes(i as i64), *e, *x),
            )
        })
        .collect();
    publish_all(stack.mq.port(), "bridge", msgs).await;
    let db = stack.db().await;
    let per_device = |device: &'static str| {
        let db = &db;
        async move {
            let r = db
                .query_one(
                    "SELECT coalesce(sum(entries), 0)::int8, coalesce(sum(exits), 0)::int8, count(*) FROM reports WHERE device_id = $1",
                    &[&device],
                )
                .await
                .unwrap();
            (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2))
        }
    };
    let over_http = per_device("hik").await;
    let over_mqtt = eventually(15, "the bridge's windows stored", || async {
        let m = per_device("hik-mqtt").await;
        (m.2 == 60).then_some(m)
    })
    .await;
    assert_eq!(over_http, over_mqtt);
    assert_eq!(over_http, (want.0 as i64, want.1 as i64, 60));
    let want = (want.0 * 2, want.1 * 2);

    // A Xovis push (bearer token this time): two minute windows of two lines.
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(5);
    let fmt = |t: DateTime<Utc>| {
        t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .format("%Y-%m-%dT%H:%M:%S%z")
            .to_string()
    };
    let body = XOVIS
        .replace("2026-05-01T10:13:00+0800", &fmt(now))
        .replace(
            "2026-05-01T10:14:00+0800",
            &fmt(now + TimeDelta::minutes(1)),
        )
        .replace(
            "2026-05-01T10:15:00+0800",
            &fmt(now + TimeDelta::minutes(2)),
        );
    let (s, v) = push(
        addr,
        "xovis",
        Some("Bearer xovis-secret"),
        "application/json",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!((s, v["reports"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    let (s, _) = push(
        addr,
        "xovis",
        Some("Bearer xovis-secret"),
        "application/json",
        body,
    )
    .await
    .unwrap();
    assert_eq!(
        s,
        StatusCode::OK,
        "a resend is answered 200 and counted once"
    );
    assert_eq!(area(&stack).await, (want.0 + 14, want.1 + 8));

    let metrics = get_text(addr, "/metrics").await;
    assert!(
        metrics.contains("visitorflow_reports_rejected_total{reason=\"malformed_xml\"} 1"),
        "{metrics}"
    );
    eprintln!("60 windows through a restart: {retries} retries, stored = published, MQTT = HTTP");
    drop(svc);
}

/// A fake polled device: answers its format's running totals while `up`, 503 otherwise.
#[derive(Default)]
struct Counter {
    total_in: u64,
    total_out: u64,
    up: bool,
}

#[derive(Clone, Copy)]
enum Fake {
    /// No credentials asked.
    Axis,
    /// HTTP Digest, checked by recomputing the client's answer.
    Dahua,
    /// HTTP Basic; the day's hours asked with a POST.
    Hikvision,
}

async fn fake_device(counter: Arc<Mutex<Counter>>, kind: Fake) -> SocketAddr {
    use axum::http::{HeaderMap, Method, Uri};
    let answer = move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
        let counter = Arc::clone(&counter);
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let challenge = |scheme: &str| {
                (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", scheme.to_owned())],
                    String::new(),
                )
            };
            match kind {
                Fake::Axis => {}
                Fake::Dahua => {
                    let ok = auth.as_deref().is_some_and(|a| {
                        let Ok(got) = digest_auth::AuthorizationHeader::parse(a) else {
                            return false;
                        };
                        let mut expected = got.clone();
                        let uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                        expected.digest(&digest_auth::AuthContext::new("admin", "admin123", uri));
                        got.username == "admin"
                            && got.nonce == "dahua-nonce-1"
                            && got.response == expected.response
                    });
                    if !ok {
                        return challenge(
                            r#"Digest realm="Login to 4K05", qop="auth", nonce="dahua-nonce-1", opaque="5ccc""#,
                        );
                    }
                }
                Fake::Hikvision => {
                    let want = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("admin:hik12345")
                    );
                    if auth.as_deref() != Some(want.as_str()) {
                        return challenge(r#"Basic realm="DS-2CD6810F""#);
                    }
                    assert_eq!(method, Method::POST);
                    assert!(body.contains("<reportType>daily</reportType>"), "{body}");
                }
            }
            let c = counter.lock().unwrap();
            if !c.up {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("x-down", "1".to_owned())],
                    String::new(),
                );
            }
            // The documented answers with the counter's totals.
            let body = match kind {
                Fake::Axis => include_str!("data/vendor/axis-live-sum.json")
                    .replace("\"in\": 12", &format!("\"in\": {}", c.total_in))
                    .replace("\"out\": 318", &format!("\"out\": {}", c.total_out)),
                Fake::Dahua => include_str!("data/vendor/dahua-getsummary.txt")
                    .replace(
                        "EnteredSubtotal.Total=1",
                        &format!("EnteredSubtotal.Total={}", c.total_in),
                    )
                    .replace(
                        "ExitedSubtotal.Total=10",
                        &format!("ExitedSubtotal.Total={}", c.total_out),
                    ),
                // The day so far split over its first two hours, as the camera buckets it.
                Fake::Hikvision => include_str!("data/vendor/hikvision-counting-search.xml")
                    .replacen(
                        "<enterCount>0</enterCount>",
                        &format!("<enterCount>{}</enterCount>", c.total_in / 2),
                        1,
                    )
                    .replacen(
                        "<exitCount>0</exitCount>",
                        &format!("<exitCount>{}</exitCount>", c.total_out / 2),
                        1,
                    )
                    .replacen(
                        "<enterCount>0</enterCount>",
                        &format!("<enterCount>{}</enterCount>", c.total_in - c.total_in / 2),
                        1,
                    )
                    .replacen(
                        "<exitCount>0</exitCount>",
                        &format!("<exitCount>{}</exitCount>", c.total_out - c.total_out / 2),
                        1,
                    ),
            };
            (StatusCode::OK, [("x-down", "0".to_owned())], body)
        }
    };
    let app = axum::Router::new()
        .route("/local/tvpc/.api", axum::routing::get(answer.clone()))
        .route(
            "/cgi-bin/videoStatServer.cgi",
            axum::routing::get(answer.clone()),
        )
        .route(
            "/ISAPI/System/Video/inputs/channels/1/counting/search",
            axum::routing::post(answer),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Σ counted (with repairs) of `device` in the raw table, and the totals it started from (its
/// first report's totals less that report's counts: the poller's baseline).
async fn counted(stack: &Stack, device: &str) -> ((i64, i64), Option<(i64, i64)>) {
    let db = stack.db().await;
    let r = db
        .query_one(
            "SELECT coalesce(sum(entries + repaired_entries), 0)::int8, coalesce(sum(exits + repaired_exits), 0)::int8 FROM reports WHERE device_id = $1",
            &[&device],
        )
        .await
        .unwrap();
    let first = db
        .query_opt(
            "SELECT total_in - entries - repaired_entries, total_out - exits - repaired_exits FROM reports WHERE device_id = $1 ORDER BY seq LIMIT 1",
            &[&device],
        )
        .await
        .unwrap()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    ((r.get(0), r.get(1)), first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_devices_count_their_totals_growth_once_across_an_outage() {
    let stack = Stack::start();
    let axis = Arc::new(Mutex::new(Counter {
        total_in: 12,
        total_out: 318,
        up: true,
    }));
    let dahua = Arc::new(Mutex::new(Counter {
        total_in: 1,
        total_out: 10,
        up: true,
    }));
    let hik = Arc::new(Mutex::new(Counter {
        total_in: 0,
        total_out: 0,
        up: true,
    }));
    let axis_addr = fake_device(Arc::clone(&axis), Fake::Axis).await;
    let dahua_addr = fake_device(Arc::clone(&dahua), Fake::Dahua).await;
    let hik_addr = fake_device(Arc::clone(&hik), Fake::Hikvision).await;
    let registry = CAMERAS
        .replace(
            "http://127.0.0.1:9/local",
            &format!("http://{axis_addr}/local"),
        )
        .replace(
            "http://127.0.0.1:9/cgi-bin",
            &format!("http://{dahua_addr}/cgi-bin"),
        )
        .replace(
            "http://127.0.0.1:9/ISAPI",
            &format!("http://{hik_addr}/ISAPI"),
        );
    let cfg = stack.config_from(&registry, "vf-http-poll");
    let svc = start_service(cfg.clone()).await;

    // People cross both counters all along: 3 in and 1 out every 100 ms.
    let crossing = {
        let (axis, dahua, hik) = (Arc::clone(&axis), Arc::clone(&dahua), Arc::clone(&hik));
        tokio::spawn(async move {
            for _ in 0..110 {
                for c in [&axis, &dahua, &hik] {
                    let mut c = c.lock().unwrap();
                    c.total_in += 3;
                    c.total_out += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The Axis counter goes away for 2.5 s in the middle and comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    axis.lock().unwrap().up = false;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    axis.lock().unwrap().up = true;
    // And the service restarts while people keep crossing: the pollers start afresh.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    svc.shutdown().await;
    let svc = start_service(cfg).await;
    crossing.await.unwrap();
    // Two more windows for the last growth to be asked for and stored.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    for (id, c) in [("axis", &axis), ("dahua", &dahua), ("hik-poll", &hik)] {
        let (sum, first) = counted(&stack, id).await;
        let (t_in, t_out) = {
            let c = c.lock().unwrap();
            (c.total_in as i64, c.total_out as i64)
        };
        let (f_in, f_out) = first.unwrap_or_else(|| panic!("{id}: nothing stored"));
        // Everything since the first poll (its baseline), exactly once, outage included.
        assert_eq!(sum, (t_in - f_in, t_out - f_out), "{id}");
        assert!(sum.0 > 0, "{id}");
    }
    let metrics = get_text(svc.http_addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("visitorflow_device_polls_total{")
                && l.contains("outcome=\"unreachable\"")),
        "{metrics}"
    );
    drop(svc);
}

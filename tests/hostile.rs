//! Hostile and broken input against a running service:
//! - MQTT: a corpus of malformed, oversized, out-of-range and spoofed messages, each refused with
//!   its precise `visitorflow_reports_rejected_total{reason}` and changing no count; topics that
//!   the broker itself must refuse; then a good report still goes through.
//! - HTTP: path traversal, SQL metacharacters in every parameter, absurd ranges, oversized
//!   requests and bodies, a slowloris crowd: all answered correctly and without effect.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeDelta, Utc};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REASONS: [&str; 12] = [
    "bad_topic",
    "unknown_device",
    "space_mismatch",
    "too_large",
    "malformed_json",
    "invalid_report",
    "negative_count",
    "absurd_count",
    "future_timestamp",
    "too_old",
    "seq_too_old",
    "too_many_reports",
];

/// Expected increase of the rejection counter per reason (nothing else may move).
type Want = &'static [(&'static str, u64)];

async fn rejected(api: SocketAddr) -> BTreeMap<&'static str, u64> {
    let m = get_text(api, "/metrics").await;
    REASONS
        .iter()
        .map(|r| {
            let needle = format!("visitorflow_reports_rejected_total{{reason=\"{r}\"}} ");
            let v = m
                .lines()
                .find_map(|l| l.strip_prefix(&needle))
                .map_or(0, |v| v.trim().parse().unwrap());
            (*r, v)
        })
        .collect()
}

fn local(ts: chrono::DateTime<Utc>) -> String {
    ts.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

/// Publishes `msgs`, then a status report on the same connection as a sentinel: once the API
/// shows it, everything published before it has been processed (one connection keeps order).
async fn publish_and_settle(port: u16, api: SocketAddr, msgs: Vec<(String, Vec<u8>)>, n: &mut u64) {
    *n += 1;
    let online = n.is_multiple_of(2);
    let mut msgs = msgs;
    msgs.push((
        "vf/canyon/gate-2/status".into(),
        format!(r#"{{"online": {online}}}"#).into_bytes(),
    ));
    publish_bytes(port, &format!("hostile-{n}"), msgs).await;
    eventually(15, "the sentinel status", || async {
        let (_, d) = get_json(api, "/api/v1/devices").await;
        d.as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "gate-2" && d["online"] == online)
            .then_some(())
    })
    .await;
}

async fn counts_unchanged(api: SocketAddr, db: &tokio_postgres::Client, what: &str) {
    assert_eq!(stored(db).await.0, 0, "{what}: a report was stored");
    let (_, spaces) = get_json(api, "/api/v1/spaces").await;
    for s in spaces.as_array().unwrap() {
        assert_eq!(
            (s["entries_today"].as_u64(), s["exits_today"].as_u64()),
            (Some(0), Some(0)),
            "{what}: {} changed",
            s["id"]
        );
    }
}

/// A minimal MQTT 3.1.1 client speaking raw bytes, to send what a well-behaved client library
/// refuses to (wildcards or NUL in a publish topic).
mod raw_mqtt {
    fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                return;
            }
        }
    }

    fn string(s: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }

    pub fn connect(client_id: &str) -> Vec<u8> {
        let mut body = Vec::new();
        string(b"MQTT", &mut body);
        body.extend_from_slice(&[4, 0x02, 0, 30]); // level 4, clean session, keep-alive 30 s
        string(client_id.as_bytes(), &mut body);
        let mut p = vec![0x10];
        remaining_length(body.len(), &mut p);
        p.extend(body);
        p
    }

    /// QoS 0 PUBLISH.
    pub fn publish(topic: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        string(topic, &mut body);
        body.extend_from_slice(payload);
        let mut p = vec![0x30];
        remaining_length(body.len(), &mut p);
        p.extend(body);
        p
    }
}

/// Whether the broker drops a raw client that publishes on `topic`.
async fn broker_refuses(port: u16, topic: &[u8], payload: &[u8]) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&raw_mqtt::connect("hostile-raw"))
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    s.write_all(&raw_mqtt::publish(topic, payload))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mqtt_input_is_refused_with_its_reason_and_counts_nothing() {
    let stack = Stack::start();
    let svc = start_service(stack.config("vf-hostile")).await;
    let api = svc.http_addr;
    let port = stack.mq.port();
    let db = stack.db().await;
    let now = Utc::now();
    let ts = local(now - TimeDelta::seconds(30));
    let good = |seq: u64| format!(r#"{{"seq":{seq},"ts":"{ts}","in":1,"out":0}}"#);
    let gate = "vf/canyon/gate-1/counts";

    let big_array = format!("[{}1]", "1,".repeat(100_000));
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        r#"{{"seq":1,"in":{}1{}}}"#,
        r#"{"a":"#.repeat(20_000),
        "}".repeat(20_000)
    );
    let megabyte = format!(r#"{{"seq":1,"in":1,"pad":"{}"}}"#, "x".repeat(1 << 20));
    #[rustfmt::skip]
    let payload_cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("truncated JSON", br#"{"seq":1,"in":3"#.to_vec(), &[("malformed_json", 1)]),
        ("empty payload", b"".to_vec(), &[("malformed_json", 1)]),
        ("not JSON at all", b"DROP TABLE reports".to_vec(), &[("malformed_json", 1)]),
        ("array of 100k elements", big_array.into_bytes(), &[("too_many_reports", 1)]),
        // Valid JSON, but no report: the parser's recursion limit stops it (no stack overflow).
        ("100k-deep array", deep_array.into_bytes(), &[("invalid_report", 1)]),
        ("20k-deep object", deep_object.into_bytes(), &[("invalid_report", 1)]),
        ("NaN", br#"{"seq":1,"in":NaN}"#.to_vec(), &[("malformed_json", 1)]),
        ("Infinity", br#"{"seq":1,"in":Infinity}"#.to_vec(), &[("malformed_json", 1)]),
        ("1e999 (valid JSON, beyond f64)", br#"{"seq":1,"in":1e999}"#.to_vec(), &[("invalid_report", 1)]),
        ("negative count", br#"{"seq":1,"in":-5}"#.to_vec(), &[("negative_count", 1)]),
        ("negative totals", br#"{"seq":1,"in":1,"total_in":-1,"total_out":0}"#.to_vec(), &[("invalid_report", 1)]),
        ("a negative total alone", br#"{"seq":1,"in":1,"total_in":-1}"#.to_vec(), &[("invalid_report", 1)]),
        ("a fractional total", br#"{"seq":1,"in":1,"total_in":2.5,"total_out":0}"#.to_vec(), &[("invalid_report", 1)]),
        ("a zero period", br#"{"seq":1,"in":1,"period_s":0}"#.to_vec(), &[("invalid_report", 1)]),
        ("a negative period", br#"{"seq":1,"in":1,"period_s":-60}"#.to_vec(), &[("invalid_report", 1)]),
        ("absurd count", br#"{"seq":1,"in":10001}"#.to_vec(), &[("absurd_count", 1)]),
        ("count beyond 64 bits", br#"{"seq":1,"in":99999999999999999999}"#.to_vec(), &[("invalid_report", 1)]),
        ("fractional count", br#"{"seq":1,"in":1.5}"#.to_vec(), &[("invalid_report", 1)]),
        ("seq as a string", br#"{"seq":"1","in":2}"#.to_vec(), &[("invalid_report", 1)]),
        ("count as a string", br#"{"seq":1,"in":"2"}"#.to_vec(), &[("invalid_report", 1)]),
        ("count as a bool", br#"{"seq":1,"in":true}"#.to_vec(), &[("invalid_report", 1)]),
        ("missing seq", br#"{"in":1}"#.to_vec(), &[("invalid_report", 1)]),
        ("seq above 2^63-1", br#"{"seq":9223372036854775808,"in":1}"#.to_vec(), &[("invalid_report", 1)]),
        ("duplicate keys", br#"{"seq":1,"in":1,"in":900}"#.to_vec(), &[("invalid_report", 1)]),
        ("a bare number", b"3".to_vec(), &[("invalid_report", 1)]),
        ("null", b"null".to_vec(), &[("invalid_report", 1)]),
        ("future timestamp", format!(r#"{{"seq":1,"in":1,"ts":"{}"}}"#, local(now + TimeDelta::days(1))).into_bytes(), &[("future_timestamp", 1)]),
        ("year 9999", br#"{"seq":1,"in":1,"ts":"9999-12-31T23:59:59Z"}"#.to_vec(), &[("future_timestamp", 1)]),
        ("ancient timestamp", br#"{"seq":1,"in":1,"ts":"1900-01-01T00:00:00Z"}"#.to_vec(), &[("too_old", 1)]),
        ("timestamp beyond chrono", br#"{"seq":1,"in":1,"ts":"+275760-09-13T00:00:00Z"}"#.to_vec(), &[("invalid_report", 1)]),
        ("1 MiB payload", megabyte.into_bytes(), &[("too_large", 1)]),
        ("invalid UTF-8", b"\xff\xfe\xfd".to_vec(), &[("malformed_json", 1)]),
        ("invalid UTF-8 in a string", b"{\"seq\":1,\"in\":1,\"x\":\"\xff\"}".to_vec(), &[("malformed_json", 1)]),
        ("bad elements of an array", br#"[{"seq":1,"in":-1},{"seq":"x"},{"seq":2,"in":20000}]"#.to_vec(),
            &[("negative_count", 1), ("invalid_report", 1), ("absurd_count", 1)]),
        ("an empty array", b"[]".to_vec(), &[]),
    ];
    let mut n = 0;
    for (what, payload, want) in payload_cases {
        let before = rejected(api).await;
        publish_and_settle(port, api, vec![(gate.into(), payload)], &mut n).await;
        let after = rejected(api).await;
        let delta: BTreeMap<&str, u64> = REASONS
            .iter()
            .map(|r| (*r, after[r] - before[r]))
            .filter(|(_, d)| *d > 0)
            .collect();
        assert_eq!(delta, want.iter().copied().collect(), "{what}");
        counts_unchanged(api, &db, what).await;
    }

    // Topics: path tricks, look-alikes and spoofed spaces, each with a report that would count.
    #[rustfmt::skip]
    let topic_cases: &[(&str, &str, Want)] = &[
        ("dot-dot as space", "vf/../gate-1/counts", &[("space_mismatch", 1)]),
        ("dot-dot as device", "vf/canyon/../counts", &[("unknown_device", 1)]),
        ("dot-dot as an extra level", "vf/canyon/gate-1/../counts", &[]), // matches no subscription
        ("encoded traversal", "vf/canyon/gate-1%2F..%2Fdoor/counts", &[("unknown_device", 1)]),
        ("Cyrillic а in the space", "vf/c\u{430}nyon/gate-1/counts", &[("space_mismatch", 1)]),
        ("Cyrillic е in the device", "vf/canyon/gat\u{435}-1/counts", &[("unknown_device", 1)]),
        ("Unicode hyphen in the device", "vf/canyon/gate\u{2010}1/counts", &[("unknown_device", 1)]),
        ("fullwidth device", "vf/canyon/\u{ff47}ate-1/counts", &[("unknown_device", 1)]),
        ("trailing space", "vf/canyon/gate-1 /counts", &[("unknown_device", 1)]),
        ("upper case", "vf/canyon/GATE-1/counts", &[("unknown_device", 1)]),
        ("another area's device", "vf/village/gate-1/counts", &[("space_mismatch", 1)]),
        ("a zone's device in its area", "vf/canyon/cam-pines/counts", &[("space_mismatch", 1)]),
        ("empty space", "vf//gate-1/counts", &[("bad_topic", 1)]),
        ("empty device", "vf/canyon//counts", &[("bad_topic", 1)]),
        ("unknown device", "vf/canyon/ghost/counts", &[("unknown_device", 1)]),
    ];
    for (what, topic, want) in topic_cases {
        let before = rejected(api).await;
        publish_and_settle(
            port,
            api,
            vec![((*topic).into(), good(1).into_bytes())],
            &mut n,
        )
        .await;
        let after = rejected(api).await;
        let delta: BTreeMap<&str, u64> = REASONS
            .iter()
            .map(|r| (*r, after[r] - before[r]))
            .filter(|(_, d)| *d > 0)
            .collect();
        assert_eq!(delta, want.iter().copied().collect(), "{what}");
        counts_unchanged(api, &db, what).await;
    }
    // A broken status is refused too, without touching counts.
    let before = rejected(api).await;
    publish_and_settle(
        port,
        api,
        vec![(
            "vf/canyon/gate-1/status".into(),
            br#"{"online":"yes"}"#.to_vec(),
        )],
        &mut n,
    )
    .await;
    assert_eq!(
        rejected(api).await["invalid_report"],
        before["invalid_report"] + 1
    );

    // Wildcards and NUL cannot even be published: the broker drops such a client (MQTT 3.1.1
    // §3.3.2.1, §1.5.3), and rumqttc refuses to send them in the first place.
    let before = rejected(api).await;
    for topic in [
        b"vf/canyon/+/counts".as_slice(),
        b"vf/#",
        b"vf/canyon/gate-1\0/counts",
    ] {
        assert!(
            broker_refuses(port, topic, good(1).as_bytes()).await,
            "{}",
            String::from_utf8_lossy(topic)
        );
    }
    let (client, _ev) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("hostile-lib", "127.0.0.1", port),
        10,
    );
    assert!(
        client
            .try_publish("vf/canyon/+/counts", rumqttc::QoS::AtLeastOnce, false, "x")
            .is_err()
    );
    publish_and_settle(port, api, vec![], &mut n).await;
    assert_eq!(rejected(api).await, before, "nothing reached the ingester");
    counts_unchanged(api, &db, "wildcard topics").await;

    // The ingester is alive and well: a good report goes through; a report far below the
    // de-duplication window that was never stored is late, counted once, and its replay is a
    // duplicate — the raw table tells them apart, nothing is refused.
    publish_and_settle(
        port,
        api,
        vec![(gate.into(), good(500).into_bytes())],
        &mut n,
    )
    .await;
    wait_entries(api, "canyon", 1).await;
    let before = rejected(api).await;
    let old = format!(
        r#"{{"seq":1,"ts":"{}","in":1}}"#,
        local(now - TimeDelta::seconds(60))
    );
    publish_and_settle(
        port,
        api,
        vec![(gate.into(), old.clone().into_bytes())],
        &mut n,
    )
    .await;
    wait_entries(api, "canyon", 2).await;
    publish_and_settle(port, api, vec![(gate.into(), old.into_bytes())], &mut n).await;
    assert_eq!(rejected(api).await, before);
    assert_eq!(stored(&db).await.0, 2);
    wait_entries(api, "canyon", 2).await;
    svc.shutdown().await;
}

/// Sends raw bytes and returns (status, body) of the response; `None` if the server closed the
/// connection without one.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before reading everything we send.
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    raw_http(addr, req.as_bytes())
        .await
        .unwrap_or_else(|| panic!("no response to {target}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_clients_get_correct_answers_and_change_nothing() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-http");
    cfg.http.header_read_timeout_ms = 1000;
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let ts = local(Utc::now() - TimeDelta::seconds(30));
    publish_all(
        stack.mq.port(),
        "pub-http",
        (1..=5)
            .map(|s| (counts_topic("canyon", "gate-1"), report(s, &ts, 2, 1)))
            .collect(),
    )
    .await;
    wait_entries(api, "canyon", 10).await;
    let db = stack.db().await;
    let rows_before = stored(&db).await;

    let sql = "%27%3B%20DROP%20TABLE%20reports%3B%20--";
    let cases: Vec<(String, u16)> = vec![
        ("/api/v1/spaces/..%2F..%2Fetc%2Fpasswd".into(), 404),
        ("/api/v1/spaces/..%2F..%2Fetc%2Fpasswd/series".into(), 404),
        ("/../../etc/passwd".into(), 404),
        ("/api/v1/../../../etc/passwd".into(), 404),
        ("/api/v1/spaces/%2e%2e/%2e%2e/etc/passwd".into(), 404),
        (format!("/api/v1/spaces/{sql}"), 404),
        (format!("/api/v1/spaces/{sql}/series?step=1m"), 404),
        (format!("/api/v1/spaces/canyon/series?from={sql}"), 400),
        (format!("/api/v1/spaces/canyon/series?to={sql}"), 400),
        (format!("/api/v1/spaces/canyon/series?step={sql}"), 400),
        (format!("/api/v1/spaces/canyon/series?{sql}=1"), 400), // unknown keys are refused
        ("/api/v1/spaces/canyon%00/series".into(), 404),
        ("/api/v1/spaces/canyon/series?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z".into(), 400),
        ("/api/v1/spaces/canyon/series?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z".into(), 400),
        ("/api/v1/spaces/canyon/series?from=-99999-01-01T00:00:00Z".into(), 400),
        ("/api/v1/spaces/canyon/series?from=2026-01-01T00:00:00Z&to=+99999-01-01T00:00:00Z".into(), 400),
        ("/api/v1/spaces/canyon/series?to=0001-01-01T00:00:00Z".into(), 400),
        ("/api/v1/spaces/canyon/series?from=99999999999999999999".into(), 400),
        ("/api/v1/spaces/canyon/series?step=1m&step=1h".into(), 400),
        // Absurd ranges: refused outright (bounded to 1970–9999), or answered within the point cap.
        ("/api/v1/spaces/canyon/series?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=1m".into(), 400),
        ("/api/v1/spaces/canyon/series?from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=1m".into(), 200),
        ("/api/v1/spaces/canyon/series?from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=1d".into(), 200),
    ];
    for (target, want) in &cases {
        let (status, body) = get(api, target).await;
        assert_eq!(status, *want, "{target}: {body}");
        assert!(!body.contains("root:"), "{target}");
        if status != 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            assert_eq!(
                v["error"]["status"], *want,
                "{target}: JSON error, got {body}"
            );
        }
    }
    // The widest range is capped, not an unbounded scan.
    let (_, body) = get(
        api,
        "/api/v1/spaces/canyon/series?from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=1m",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let points = v["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 10_080);

    // Oversized requests: a huge URL, too many headers, and big bodies on every route.
    let long = format!("/api/v1/spaces/{}", "a".repeat(128 * 1024));
    let (status, _) = raw_http(
        api,
        format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap_or((0, String::new()));
    assert!(
        matches!(status, 0 | 400 | 404 | 414 | 431),
        "long URL: {status}"
    );
    let headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = raw_http(
        api,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
    )
    .await
    .unwrap_or((0, String::new()));
    assert!(matches!(status, 0 | 431), "500 headers: {status}");
    for (method, route) in [
        ("GET", "/api/v1/spaces"),
        ("GET", "/api/v1/spaces/canyon/series"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/spaces"),
        ("PUT", "/api/v1/devices"),
        ("GET", "/no/such/route"),
    ] {
        let head = format!(
            "{method} {route} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            10 << 20
        );
        let mut req = head.into_bytes();
        req.extend(std::iter::repeat_n(b'x', 64 * 1024));
        let (status, _) = raw_http(api, &req).await.expect("an answer");
        assert_eq!(status, 413, "{method} {route} with a 10 MiB body");
    }

    // Slowloris: many connections dribbling headers a byte at a time. Others are still served
    // promptly, and the server drops the dribblers after its header read timeout (1 s here).
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(TcpStream::connect(api).await.unwrap());
    }
    let dribble = tokio::spawn(async move {
        let line = b"GET /api/v1/spaces HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut closed_after = Vec::new();
        let t = Instant::now();
        for i in 0..60 {
            let mut still = Vec::new();
            for mut s in slow.drain(..) {
                let byte = line.get(i).copied().unwrap_or(b'a');
                if s.write_all(&[byte]).await.is_ok() && !peer_closed(&mut s).await {
                    still.push(s);
                } else {
                    closed_after.push(t.elapsed());
                }
            }
            slow = still;
            if slow.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (slow.len(), closed_after)
    });
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _) = get(api, "/api/v1/spaces").await;
        assert_eq!(status, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (left, closed_after) = dribble.await.unwrap();
    assert_eq!(left, 0, "slow connections still open after 6 s");
    let last = closed_after.iter().max().unwrap();
    println!(
        "slowloris: 200 connections dribbling headers were all dropped within {:.1} s; \
         20 normal requests answered meanwhile",
        last.as_secs_f64()
    );

    // Nothing above had any effect on the data.
    assert_eq!(stored(&db).await, rows_before);
    for table in [
        "reports",
        "space_series_1m",
        "device_state",
        "space_state",
        "space_series_1h",
        "space_series_1d",
    ] {
        let exists: Option<String> = db
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(exists.is_some(), "{table} still exists");
    }
    let (status, v) = get_json(api, "/api/v1/spaces/canyon").await;
    assert_eq!((status, v["entries_today"].as_u64()), (200, Some(10)));
    svc.shutdown().await;
}

/// Whether the server has closed `s` (EOF or reset), without blocking.
async fn peer_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => true, // an answer (408 or similar) means it gave up on us as well
        Err(_) => false,
    }
}

use std::net::SocketAddr;

use http::StatusCode;
use reqwest::dns::Resolve;

use super::reply::excerpt;
use super::*;
use crate::retry::MAX_RETRY_AFTER;
use crate::webhook::model::tests::orange;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn ssrf_guard_on_literals() {
    for bad in [
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/x",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/",
        // The URL parser turns these spellings into 127.0.0.1, and the guard sees that.
        "http://2130706433/",
        "http://0x7f.1/",
        "http://localhost/",
        "http://LOCALHOST:8080/",
        "http://localhost./",
        "http://api.localhost/",
    ] {
        let u = url(bad);
        assert!(check_url(&u, false).is_err(), "{bad} must be refused");
        assert!(
            check_url(&u, true).is_ok(),
            "{bad} allowed with allow_private"
        );
    }
    for scheme in [
        "file:///etc/passwd",
        "ftp://example.org/",
        "gopher://example.org/",
    ] {
        assert!(
            matches!(
                check_url(&url(scheme), true),
                Err(UrlError::UnsupportedScheme(_))
            ),
            "{scheme} refused even with allow_private"
        );
    }
    for good in [
        "https://203.0.113.10/hook",
        "http://203.0.113.10:8080/",
        "https://[2001:db8::10]/",
        "https://hooks.example.org/x?key=1",
        "http://172.32.0.1/",
        "http://100.128.0.1/",
    ] {
        assert!(
            check_url(&url(good), false).is_ok(),
            "{good} must be accepted"
        );
    }
    let e = check_url(&url("http://169.254.169.254/"), false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "169.254.169.254 is 169.254.169.254, a link-local address \
         (set allow_private_network to deliver to it)"
    );
}

#[tokio::test]
async fn ssrf_guard_on_resolved_addresses() {
    // No DNS here: localhost is in /etc/hosts, literals need no lookup.
    let refused = check_url_resolved(&url("http://127.0.0.1:9/"), false).await;
    assert!(matches!(refused, Err(UrlError::Forbidden { .. })));
    let ok = check_url_resolved(&url("http://localhost:9/"), true)
        .await
        .unwrap();
    assert!(ok.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    let lit = check_url_resolved(&url("https://203.0.113.10/"), false)
        .await
        .unwrap();
    assert_eq!(lit, [SocketAddr::from(([203, 0, 113, 10], 443))]);
    // The resolver itself, as reqwest calls it.
    let err = GuardedResolver
        .resolve("localhost".parse().unwrap())
        .await
        .err()
        .expect("localhost resolves to loopback: refused");
    assert!(matches!(
        find_refusal(err.as_ref()),
        Some(UrlError::Forbidden { .. })
    ));
}

#[tokio::test]
async fn guarded_client_never_connects_to_a_name_that_resolves_inside() {
    // A listener that must see no connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = Deliverer::new(DeliveryOptions::default()).unwrap();
    // `send` skips the literal check, so only the resolver stands in the way.
    let target = Target::new("t", url(&format!("http://localhost:{port}/")), Format::Json);
    let a = d.send(&target, &orange()).await;
    match a.outcome {
        Outcome::Fail { reason } => assert!(reason.starts_with("refused address"), "{reason}"),
        other => panic!("expected Fail, got {other:?}"),
    }
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "no connection was made");
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn classify_statuses() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_600_000);
    let lat = Duration::from_millis(12);
    let c = |code: u16, h: &HeaderMap| {
        classify(
            Format::Json,
            StatusCode::from_u16(code).unwrap(),
            h,
            Some(b"nope"),
            lat,
            now,
        )
    };
    let none = HeaderMap::new();
    assert_eq!(
        c(200, &none),
        Outcome::Delivered {
            status: 200,
            latency: lat
        }
    );
    assert_eq!(
        c(204, &none),
        Outcome::Delivered {
            status: 204,
            latency: lat
        }
    );
    let secs = headers(&[("retry-after", "2")]);
    assert!(
        matches!(c(503, &secs), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
    );
    let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
    let dated = headers(&[("retry-after", &date)]);
    assert!(
        matches!(c(429, &dated), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(90))
    );
    let past = headers(&[(
        "retry-after",
        &httpdate::fmt_http_date(now - Duration::from_secs(5)),
    )]);
    assert!(matches!(
        c(429, &past),
        Outcome::Retry {
            after: Some(Duration::ZERO),
            ..
        }
    ));
    let huge = headers(&[("retry-after", "99999999")]);
    assert!(matches!(
        c(503, &huge),
        Outcome::Retry {
            after: Some(MAX_RETRY_AFTER),
            ..
        }
    ));
    let junk = headers(&[("retry-after", "soon")]);
    assert!(matches!(c(503, &junk), Outcome::Retry { after: None, .. }));
    assert!(matches!(c(429, &none), Outcome::Retry { after: None, .. }));
    for code in [408, 500, 502, 504] {
        assert!(
            matches!(c(code, &secs), Outcome::Retry { after: None, .. }),
            "{code}"
        );
    }
    for code in [400, 401, 403, 404, 410, 413, 422] {
        assert!(matches!(c(code, &none), Outcome::Fail { .. }), "{code}");
    }
    let Outcome::Fail { reason } = c(400, &none) else {
        unreachable!()
    };
    assert_eq!(reason, "HTTP 400: nope");
    let redirect = headers(&[("location", "http://169.254.169.254/x?token=1")]);
    let Outcome::Fail { reason } = c(302, &redirect) else {
        panic!("3xx must fail")
    };
    assert_eq!(
        reason,
        "HTTP 302 redirect http://169.254.169.254/x?*** (redirects are not followed)"
    );
}

#[test]
fn classify_robot_replies() {
    let now = SystemTime::now();
    let lat = Duration::from_millis(1);
    let c = |format, body: &[u8]| {
        classify(
            format,
            StatusCode::OK,
            &HeaderMap::new(),
            Some(body),
            lat,
            now,
        )
    };
    let ok = br#"{"errcode":0,"errmsg":"ok"}"#;
    assert!(matches!(
        c(Format::DingTalk, ok),
        Outcome::Delivered { status: 200, .. }
    ));
    assert!(matches!(c(Format::WeCom, ok), Outcome::Delivered { .. }));
    let slow = br#"{"errcode":130101,"errmsg":"send too fast"}"#;
    assert!(matches!(c(Format::DingTalk, slow), Outcome::Retry { .. }));
    let freq = br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#;
    assert!(matches!(c(Format::WeCom, freq), Outcome::Retry { .. }));
    // Each robot's code is its own.
    assert!(matches!(c(Format::DingTalk, freq), Outcome::Fail { .. }));
    let busy = br#"{"errcode":-1,"errmsg":"system busy"}"#;
    assert!(matches!(c(Format::WeCom, busy), Outcome::Retry { .. }));
    let sign = br#"{"errcode":310000,"errmsg":"sign not match"}"#;
    assert_eq!(
        c(Format::DingTalk, sign),
        Outcome::Fail {
            reason: "dingtalk errcode 310000: sign not match".into()
        }
    );
    assert!(matches!(
        c(Format::DingTalk, b"<html>portal</html>"),
        Outcome::Fail { .. }
    ));
    // A JSON receiver's 200 body means nothing.
    assert!(matches!(c(Format::Json, sign), Outcome::Delivered { .. }));
    let lost = classify(
        Format::WeCom,
        StatusCode::OK,
        &HeaderMap::new(),
        None,
        lat,
        now,
    );
    assert!(matches!(lost, Outcome::Retry { .. }));
}

#[test]
fn excerpts_are_short_and_on_one_line() {
    assert_eq!(excerpt(b"  bad\n request \n"), "bad request");
    let long = "x".repeat(500);
    assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
}

#[test]
fn redaction() {
    let u = url("https://robot.example/send?key=abc-123");
    assert_eq!(redacted_url(&u), "https://robot.example/send?***");
    assert_eq!(
        redacted_url(&url("https://u:pw@e.org/x")),
        "https://u@e.org/x"
    );
    let mut t = Target::new("w", u, Format::WeCom);
    t.secret = Some(Secret::new("s3cr3t"));
    let shown = format!("{t:?}");
    assert!(
        !shown.contains("abc-123") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

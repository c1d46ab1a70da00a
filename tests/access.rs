//! Access control end to end: every caller (no token, an unknown token, a viewer, operators of no
//! area, of another area and of the right area, an admin) against every state-changing route
//! (alerts, caps, hazards, head counts by hand, dead-letter replay, dispatch decisions, the daily
//! report's push),
//! each change recorded in the audit log as the token's id; reads need a token; admin-only reads;
//! rate limits; JSON error shapes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use visitorflow::config::Role;

const VIEWER: &str = "vf_viewer";
const OP_NONE: &str = "vf_op-none";
const OP_VILLAGE: &str = "vf_op-village";
const OP_CANYON: &str = "vf_op-canyon";
const UNKNOWN: &str = "vf_not-configured";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Unknown,
    Viewer,
    OperatorOfNothing,
    OperatorElsewhere,
    Operator,
    Admin,
}

impl Who {
    const ALL: [Who; 7] = [
        Who::Anonymous,
        Who::Unknown,
        Who::Viewer,
        Who::OperatorOfNothing,
        Who::OperatorElsewhere,
        Who::Operator,
        Who::Admin,
    ];

    fn token(self) -> Option<&'static str> {
        match self {
            Who::Anonymous => None,
            Who::Unknown => Some(UNKNOWN),
            Who::Viewer => Some(VIEWER),
            Who::OperatorOfNothing => Some(OP_NONE),
            Who::OperatorElsewhere => Some(OP_VILLAGE),
            Who::Operator => Some(OP_CANYON),
            Who::Admin => Some(ADMIN_TOKEN),
        }
    }

    fn id(self) -> &'static str {
        match self {
            Who::Operator => "op-canyon",
            Who::Admin => ADMIN_ID,
            _ => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Acknowledge,
    SetCap,
    SetCapOnZone,
    RevokeCap,
    SetHazard,
    ClearHazard,
    Replay,
    DecideAdvice,
    PushReport,
    Recount,
    RecountOnZone,
}

impl Route {
    const ALL: [Route; 11] = [
        Route::Acknowledge,
        Route::SetCap,
        Route::SetCapOnZone,
        Route::RevokeCap,
        Route::SetHazard,
        Route::ClearHazard,
        Route::Replay,
        Route::DecideAdvice,
        Route::PushReport,
        Route::Recount,
        Route::RecountOnZone,
    ];

    /// The status a caller gets, and the audit action a success records.
    fn expect(self, who: Who) -> (u16, &'static str) {
        let ok = match self {
            Route::Acknowledge => (200, "acknowledge_alert"),
            Route::SetCap | Route::SetCapOnZone => (201, "set_policy_cap"),
            Route::RevokeCap => (204, "revoke_policy_cap"),
            Route::SetHazard => (201, "set_hazard"),
            Route::ClearHazard => (204, "clear_hazard"),
            Route::Replay => (202, "replay_delivery"),
            Route::DecideAdvice => (200, "decide_dispatch_advice"),
            Route::PushReport => (202, "push_daily_report"),
            Route::Recount | Route::RecountOnZone => (200, "recount"),
        };
        let admin_only = matches!(self, Route::Replay | Route::PushReport);
        match who {
            Who::Anonymous | Who::Unknown => (401, ""),
            Who::Admin => ok,
            Who::Operator if !admin_only => ok,
            _ => (403, ""),
        }
    }

    /// Whether `got` answers as `want`: a head count is applied (200) by the ingester with its
    /// next batch, and is still pending (202) when none comes within the wait.
    fn answers(self, want: u16, got: u16) -> bool {
        got == want
            || (matches!(self, Route::Recount | Route::RecountOnZone) && want == 200 && got == 202)
    }
}

/// Objects for the successful cases, one each, so no success depends on another.
struct Fixtures {
    alerts: Vec<i64>,
    caps: Vec<i64>,
    hazards: Vec<i64>,
    dead: Vec<i64>,
    advice: Vec<i64>,
    days: Vec<String>,
}

async fn call(
    addr: std::net::SocketAddr,
    who: Who,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = match who.token() {
        Some(t) => client_with(t),
        None => reqwest::Client::new(),
    };
    let mut req = client.request(method, format!("http://{addr}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

async fn admin_post(addr: std::net::SocketAddr, path: &str, body: Value) -> Value {
    let (s, v) = call(addr, Who::Admin, Method::POST, path, Some(body)).await;
    assert_eq!(s, 201, "{path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_against_every_state_changing_route() {
    let stack = Stack::start();
    // The canyon's shuttle desk: a distribution centre its operator runs.
    let hub = r#"
[[spaces]]
id = "canyon-desk"
kind = "hub"
parent = "canyon"
name_zh = "峡谷集散点"
name_en = "Canyon shuttle desk"
"#;
    let mut cfg = stack.config_from(&format!("{REGISTRY}{hub}"), "vf-access");
    cfg.tokens.extend([
        token_entry("bureau", Role::Viewer, &[], VIEWER),
        token_entry("op-none", Role::Operator, &[], OP_NONE),
        token_entry("op-village", Role::Operator, &["village"], OP_VILLAGE),
        token_entry("op-canyon", Role::Operator, &["canyon"], OP_CANYON),
    ]);
    cfg.alerting.tick_ms = 100;
    cfg.alerting.max_attempts = 1;
    // Deliveries to a closed port die at once: dead letters to replay.
    cfg.webhooks = vec![
        serde_json::from_value(json!({
            "id": "nowhere", "url": "http://127.0.0.1:9/hook", "format": "json",
            "min_severity": "info", "allow_private_network": true,
        }))
        .unwrap(),
    ];
    cfg.report_push = serde_json::from_value(json!({
        "enabled": true, "url": "http://127.0.0.1:9/daily", "allow_private_network": true,
    }))
    .unwrap();
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;

    // One object per case, made by the admin: hazards (each opens its own alert), caps.
    let cases = Who::ALL.len();
    let mut hazards = Vec::new();
    for n in 0..2 * cases {
        let v = admin_post(
            addr,
            "/api/v1/spaces/canyon/hazards",
            json!({ "kind": format!("drill_{n}"), "severity": "warning", "message": "drill" }),
        )
        .await;
        hazards.push(v["id"].as_i64().unwrap());
    }
    let mut caps = Vec::new();
    for _ in 0..cases {
        let v = admin_post(
            addr,
            "/api/v1/spaces/canyon/caps",
            json!({ "percent": 90.0, "reason": "fixture" }),
        )
        .await;
        caps.push(v["id"].as_i64().unwrap());
    }
    let by_kind: HashMap<String, i64> = eventually(20, "an alert per hazard", || async {
        let (_, v) = get_json(addr, "/api/v1/alerts?space=canyon&state=firing&limit=1000").await;
        let ids: HashMap<String, i64> = v["alerts"]
            .as_array()?
            .iter()
            .filter(|a| {
                a["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("hazard.drill_"))
            })
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_owned(),
                    a["id"].as_i64().unwrap(),
                )
            })
            .collect();
        (ids.len() == 2 * cases).then_some(ids)
    })
    .await;
    let alert_of = |n: usize| by_kind[&format!("hazard.drill_{n}")];
    let dead: Vec<i64> = eventually(20, "dead letters", || async {
        let (_, v) = get_json(addr, "/api/v1/webhooks/deliveries?status=dead&limit=1000").await;
        let ids: Vec<i64> = v["deliveries"]
            .as_array()?
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect();
        (ids.len() >= cases).then_some(ids)
    })
    .await;
    // The table clears the first half of the hazards and acknowledges the second half's alerts,
    // so no case touches what another changed.
    // Advice for the desk to decide on, one per case, as the alerting loop records it.
    let db = stack.db().await;
    let mut advice = Vec::new();
    for _ in 0..cases {
        let row = visitorflow::store::dispatch::NewAdvice {
            at: chrono::Utc::now(),
            hub: "canyon-desk",
            advice: &json!({ "hub": "canyon-desk", "queue": 0 }),
            change: None,
            shuttles: 0,
            diversions: 0,
        };
        advice.push(
            visitorflow::store::dispatch::insert(&db, &row)
                .await
                .unwrap(),
        );
    }
    let mut fx = Fixtures {
        alerts: (cases..2 * cases).map(alert_of).collect(),
        caps,
        hazards: hazards[..cases].to_vec(),
        dead,
        advice,
        // Finished days, one per case, so no push waits for another.
        days: (1..=cases).map(|d| format!("2025-01-{d:02}")).collect(),
    };

    let mut successes = Vec::new();
    let mut failures = Vec::new();
    for route in Route::ALL {
        for who in Who::ALL {
            let (method, path, body) = match route {
                Route::Acknowledge => (
                    Method::POST,
                    format!("/api/v1/alerts/{}/ack", fx.alerts.pop().unwrap()),
                    Some(json!({ "comment": "seen" })),
                ),
                Route::SetCap => (
                    Method::POST,
                    "/api/v1/spaces/canyon/caps".into(),
                    Some(json!({ "percent": 80.0, "reason": format!("{who:?}") })),
                ),
                Route::SetCapOnZone => (
                    Method::POST,
                    "/api/v1/spaces/canyon-pines/caps".into(),
                    Some(json!({ "percent": 80.0, "reason": format!("{who:?}") })),
                ),
                Route::RevokeCap => (
                    Method::DELETE,
                    format!("/api/v1/spaces/canyon/caps/{}", fx.caps.pop().unwrap()),
                    None,
                ),
                Route::SetHazard => (
                    Method::POST,
                    "/api/v1/spaces/canyon/hazards".into(),
                    Some(json!({ "kind": format!("table_{}", who as u8) })),
                ),
                Route::ClearHazard => (
                    Method::DELETE,
                    format!(
                        "/api/v1/spaces/canyon/hazards/{}",
                        fx.hazards.pop().unwrap()
                    ),
                    None,
                ),
                Route::Replay => (
                    Method::POST,
                    format!(
                        "/api/v1/webhooks/deliveries/{}/replay",
                        fx.dead.pop().unwrap()
                    ),
                    None,
                ),
                Route::DecideAdvice => (
                    Method::POST,
                    format!(
                        "/api/v1/dispatch/advice/{}/decision",
                        fx.advice.pop().unwrap()
                    ),
                    Some(json!({ "decision": "overridden", "reason": "road works" })),
                ),
                Route::PushReport => (
                    Method::POST,
                    format!("/api/v1/reports/daily/{}/push", fx.days.pop().unwrap()),
                    None,
                ),
                Route::Recount => (
                    Method::POST,
                    "/api/v1/spaces/canyon/recount".into(),
                    Some(json!({ "inside": 40, "reason": format!("{who:?}") })),
                ),
                Route::RecountOnZone => (
                    Method::POST,
                    "/api/v1/spaces/canyon-pines/recount".into(),
                    Some(json!({ "inside": 4, "reason": format!("{who:?}") })),
                ),
            };
            let (want, action) = route.expect(who);
            let (got, v) = call(addr, who, method, &path, body).await;
            if !route.answers(want, got) {
                failures.push(format!("{route:?} as {who:?}: {got} (want {want}) {v}"));
                continue;
            }
            if got >= 400 {
                assert_eq!(v["error"]["status"], got, "{route:?} as {who:?}: {v}");
                assert!(v["error"]["reason"].is_string(), "{v}");
            } else {
                successes.push((who.id(), action));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Each success is in the audit log, as the token that made it.
    let (_, audit) = get_json(addr, "/api/v1/audit?limit=1000").await;
    let mut logged: HashMap<(String, String), usize> = HashMap::new();
    for e in audit["entries"].as_array().unwrap() {
        *logged
            .entry((
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    let mut wanted: HashMap<(String, String), usize> = HashMap::new();
    for (actor, action) in &successes {
        *wanted
            .entry(((*actor).to_owned(), (*action).to_owned()))
            .or_default() += 1;
    }
    for ((actor, action), n) in &wanted {
        let have = logged
            .get(&(actor.clone(), action.clone()))
            .copied()
            .unwrap_or(0);
        // The admin's fixtures are in the log as well.
        assert!(have >= *n, "{actor} {action}: {have} logged, {n} made");
    }
    assert_eq!(wanted[&("op-canyon".into(), "acknowledge_alert".into())], 1);
    assert_eq!(wanted[&("op-canyon".into(), "recount".into())], 2);

    // The head counts made are listed (newest first) with their actor, to a viewer as well.
    let (s, v) = call(
        addr,
        Who::Viewer,
        Method::GET,
        "/api/v1/spaces/canyon-pines/recounts",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<(&str, &str)> = v["recounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["actor"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [(ADMIN_ID, "Admin"), ("op-canyon", "Operator")],
        "{v}"
    );
    let first = &v["recounts"][1];
    assert_eq!(
        (first["space"].as_str(), first["inside"].as_i64()),
        (Some("canyon-pines"), Some(4))
    );
    // A head count's body: unknown space 404 (before the role's 403), then 422 with the reason.
    let canyon = "/api/v1/spaces/canyon/recount";
    let long = "x".repeat(501);
    for (who, path, body, want) in [
        (
            Who::Viewer,
            "/api/v1/spaces/nowhere/recount",
            json!({ "inside": 1, "reason": "x" }),
            404,
        ),
        (
            Who::Admin,
            "/api/v1/spaces/nowhere/recount",
            json!({ "inside": 1, "reason": "x" }),
            404,
        ),
        (
            Who::Viewer,
            canyon,
            json!({ "inside": 1, "reason": "x" }),
            403,
        ),
        (
            Who::Operator,
            canyon,
            json!({ "inside": -1, "reason": "x" }),
            422,
        ),
        (
            Who::Operator,
            canyon,
            json!({ "inside": 10_000_001, "reason": "x" }),
            422,
        ),
        (
            Who::Admin,
            canyon,
            json!({ "inside": 1.5, "reason": "x" }),
            422,
        ),
        (
            Who::Admin,
            canyon,
            json!({ "inside": "7", "reason": "x" }),
            422,
        ),
        (
            Who::Admin,
            canyon,
            json!({ "inside": 1, "reason": " \t " }),
            422,
        ),
        (
            Who::Admin,
            canyon,
            json!({ "inside": 1, "reason": long }),
            422,
        ),
        (Who::Admin, canyon, json!({ "inside": 1 }), 422),
        (
            Who::Admin,
            canyon,
            json!({ "inside": 1, "reason": "x", "by": "me" }),
            422,
        ),
    ] {
        let (s, v) = call(addr, who, Method::POST, path, Some(body.clone())).await;
        assert_eq!(s, want, "{who:?} {path} {body}: {v}");
        assert_eq!(v["error"]["status"], want, "{v}");
        assert!(v["error"]["reason"].is_string(), "{v}");
    }
    // The actor is the token: a body naming someone else is refused.
    let (s, v) = call(
        addr,
        Who::Admin,
        Method::POST,
        &format!("/api/v1/alerts/{}/ack", alert_of(0)),
        Some(json!({ "by": "somebody else" })),
    )
    .await;
    assert_eq!(s, 422, "`by` is no longer a field: {v}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_token_and_admin_reads_an_admin() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-reads");
    cfg.tokens.extend([
        token_entry("bureau", Role::Viewer, &[], VIEWER),
        token_entry("op-canyon", Role::Operator, &["canyon"], OP_CANYON),
    ]);
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let reads = [
        "/api/v1/spaces",
        "/api/v1/spaces/canyon",
        "/api/v1/spaces/canyon/series",
        "/api/v1/spaces/canyon/levels",
        "/api/v1/spaces/canyon/caps",
        "/api/v1/spaces/canyon/hazards",
        "/api/v1/spaces/canyon/recounts",
        "/api/v1/devices",
        "/api/v1/alerts",
        "/api/v1/compliance?space=canyon",
        "/api/v1/reports/daily",
        "/api/v1/dispatch",
        "/api/v1/dispatch/history",
        "/api/v1/nothing-here",
    ];
    for path in reads {
        let (s, v) = call(addr, Who::Anonymous, Method::GET, path, None).await;
        assert_eq!(s, 401, "{path} without a token: {v}");
        assert_eq!(v["error"]["status"], 401);
        let (s, _) = call(addr, Who::Unknown, Method::GET, path, None).await;
        assert_eq!(s, 401, "{path} with an unknown token");
        let (s, v) = call(addr, Who::Viewer, Method::GET, path, None).await;
        let want = if path.ends_with("nothing-here") {
            404
        } else {
            200
        };
        assert_eq!(s, want, "{path} as a viewer: {v}");
    }
    // A malformed Authorization header is no token.
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/spaces"))
        .header("Authorization", format!("Basic {VIEWER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    for path in [
        "/api/v1/audit",
        "/api/v1/webhooks/deliveries",
        "/api/v1/reports/pushes",
        "/api/v1/live-feed/deliveries",
    ] {
        for who in [Who::Viewer, Who::Operator] {
            let (s, v) = call(addr, who, Method::GET, path, None).await;
            assert_eq!(s, 403, "{path} as {who:?}: {v}");
        }
        let (s, _) = call(addr, Who::Admin, Method::GET, path, None).await;
        assert_eq!(s, 200, "{path} as admin");
    }
    // Forecasts: anyone with a token reads them; only an admin makes a run, and only the
    // area's operator (or an admin) sets what is known about its days.
    let (s, v) = call(
        addr,
        Who::Viewer,
        Method::GET,
        "/api/v1/spaces/canyon/forecast",
        None,
    )
    .await;
    assert_eq!(s, 200, "forecast as a viewer: {v}");
    for who in [Who::Viewer, Who::Operator] {
        let (s, v) = call(addr, who, Method::POST, "/api/v1/forecast/run", None).await;
        assert_eq!(s, 403, "forecast run as {who:?}: {v}");
    }
    let (s, _) = call(addr, Who::Admin, Method::POST, "/api/v1/forecast/run", None).await;
    assert_eq!(s, 200, "forecast run as admin");
    let closed = Some(serde_json::json!({"closed": true}));
    let input = "/api/v1/spaces/village/forecast/inputs/2030-01-01";
    let (s, v) = call(addr, Who::Viewer, Method::PUT, input, closed.clone()).await;
    assert_eq!(s, 403, "forecast input as a viewer: {v}");
    let (s, v) = call(addr, Who::Operator, Method::PUT, input, closed.clone()).await;
    assert_eq!(s, 403, "another area's forecast input: {v}");
    let own = "/api/v1/spaces/canyon/forecast/inputs/2030-01-01";
    let (s, v) = call(addr, Who::Operator, Method::PUT, own, closed).await;
    assert_eq!(s, 202, "its own area's forecast input: {v}");
    // Open without a token: ops routes, the pages, the public routes, the document.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/board",
        "/ui/app.js",
        "/api/v1/public/areas",
        "/api/v1/public/ngsi/CrowdFlowObserved",
        "/api/v1/public/ngsi/OffStreetParking",
        "/api/openapi.json",
        "/api/docs",
    ] {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_json_errors() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-limits");
    cfg.tokens
        .push(token_entry("bureau", Role::Viewer, &[], VIEWER));
    cfg.http.rate_per_token = 1.0;
    cfg.http.rate_per_ip = 1_000.0;
    cfg.http.rate_burst = 5;
    cfg.http.body_limit_bytes = 1024;
    cfg.http.cors_origins = vec!["https://bureau.example".into()];
    let svc = visitorflow::run::Service::start(cfg).await.unwrap();
    let addr = svc.http_addr;

    // Per token: a burst of 5, then 429 with Retry-After; another token is unaffected.
    let viewer = client_with(VIEWER);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = viewer
            .get(format!("http://{addr}/api/v1/spaces"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["status"], 429);
        }
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // (The address's bucket, 1000/s, refills meanwhile.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = http()
        .get(format!("http://{addr}/api/v1/spaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another token has its own bucket");

    // Body limit, wrong method, unknown route, bad JSON: all in the one error shape.
    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon/caps"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"percent": 50, "reason": "{}"}}"#,
            "x".repeat(4096)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], 413, "{v}");
    let r = http()
        .put(format!("http://{addr}/api/v1/spaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], 405, "{v}");
    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon/caps"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], 422, "{v}");
    let r = http()
        .get(format!("http://{addr}/api/v1/alerts/not-a-number"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // CORS: the configured origin only.
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, format!("http://{addr}/api/v1/spaces"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("https://bureau.example").await.unwrap();
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://bureau.example")
    );
    let r = preflight("https://elsewhere.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    tokio::time::timeout(Duration::from_secs(30), svc.shutdown())
        .await
        .expect("shutdown");
}

//! Capacity alerts end to end: counts published over MQTT fill an area, the rules raise early
//! warnings then blue/yellow/orange/red in order, each transition is recorded once and delivered
//! once (signed, retried with the same delivery id after a 503) to a real HTTP receiver; the
//! area empties and the levels step down; acknowledgement is recorded.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, Utc};
use common::hook::{Inbox, receiver};
use common::*;
use serde_json::Value;

const SECRET: &str = "test-bureau-secret";

fn level_events(inbox: &Inbox) -> Vec<(String, String, String)> {
    inbox
        .got
        .iter()
        .filter(|(_, _, status, v)| *status == 200 && v["kind"] == "instant_level")
        .map(|(_, id, _, v)| {
            (
                id.clone(),
                v["state"].as_str().unwrap_or("").to_owned(),
                v["level"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_an_area_sends_each_level_once_in_order_signed_and_retried() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox {
        fail_first: 1,
        ..Inbox::default()
    }));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    let mut cfg = stack.config("vf-alerts");
    cfg.alerting.tick_ms = 100;
    cfg.alerting.backoff_base_ms = 200;
    cfg.rules.dwell_s = 1;
    cfg.rules.forecast_window_s = 60;
    cfg.rules.forecast_min_span_s = 2;
    cfg.webhooks = vec![
        serde_json::from_value(serde_json::json!({
            "id": "bureau",
            "url": format!("http://{hook}/hook"),
            "format": "json",
            "secret": SECRET,
            "spaces": ["canyon"],
            "kinds": ["instant_level", "early_warning.orange", "early_warning.red"],
            "min_severity": "info",
            "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let svc = start_service(cfg).await;
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();

    // Fill the canyon (capacity 1000) in steps of 50, one report every 250 ms: 60% (blue) at
    // step 12, 80% (yellow) at 16, 90% (orange) at 18, 100% (red) at 20.
    let mut red_published = None;
    for seq in 1..=21u64 {
        let ts = Utc::now().with_timezone(&tz).to_rfc3339();
        publish_all(
            stack.mq.port(),
            &format!("pub-fill-{seq}"),
            vec![(counts_topic("canyon", "gate-1"), report(seq, &ts, 50, 0))],
        )
        .await;
        if seq == 20 {
            red_published = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let red_published = red_published.unwrap();
    let inbox_ref = Arc::clone(&inbox);
    eventually(20, "the red notice", || {
        let inbox = Arc::clone(&inbox_ref);
        async move {
            level_events(&inbox.lock().unwrap())
                .iter()
                .any(|(_, _, l)| l == "red")
                .then_some(())
        }
    })
    .await;
    let red_latency = {
        let ib = inbox.lock().unwrap().clone();
        ib.got
            .iter()
            .find(|(_, _, s, v)| *s == 200 && v["kind"] == "instant_level" && v["level"] == "red")
            .map(|(at, ..)| *at - red_published)
            .unwrap()
    };

    // Empty it: the levels step down one at a time, each after the dwell, then resolve.
    for seq in 22..=23u64 {
        let ts = Utc::now().with_timezone(&tz).to_rfc3339();
        publish_all(
            stack.mq.port(),
            &format!("pub-empty-{seq}"),
            vec![(counts_topic("canyon", "gate-1"), report(seq, &ts, 0, 525))],
        )
        .await;
    }
    let inbox_ref = Arc::clone(&inbox);
    eventually(30, "the all-clear", || {
        let inbox = Arc::clone(&inbox_ref);
        async move {
            level_events(&inbox.lock().unwrap())
                .iter()
                .any(|(_, s, _)| s == "resolved")
                .then_some(())
        }
    })
    .await;

    let ib = inbox.lock().unwrap().clone();
    let levels: Vec<_> = level_events(&ib)
        .into_iter()
        .map(|(_, s, l)| format!("{s}:{l}"))
        .collect();
    assert_eq!(
        levels,
        [
            "firing:blue",
            "firing:yellow",
            "firing:orange",
            "firing:red",
            "firing:orange",
            "firing:yellow",
            "firing:blue",
            "resolved:normal"
        ],
        "each level once, in order, up then down"
    );
    // Every delivery verified, and delivered once per delivery id.
    assert_eq!(ib.bad_signatures, 0);
    let delivered: Vec<_> = ib
        .got
        .iter()
        .filter(|g| g.2 == 200)
        .map(|g| g.1.clone())
        .collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "no delivery id delivered twice"
    );
    // The first attempt got a 503; the retry carried the same delivery id and succeeded.
    let first = &ib.got[0];
    assert_eq!(first.2, 503);
    assert!(
        ib.got.iter().any(|g| g.1 == first.1 && g.2 == 200),
        "retried with the same webhook-id"
    );
    // Early warnings came before the levels they predicted.
    let pos = |pred: &dyn Fn(&Value) -> bool| ib.got.iter().position(|g| g.2 == 200 && pred(&g.3));
    let warn_red = pos(&|v| v["kind"] == "early_warning.red" && v["state"] == "firing");
    let red = pos(&|v| v["kind"] == "instant_level" && v["level"] == "red");
    assert!(
        warn_red.is_some() && warn_red < red,
        "a red forecast warned before red: {warn_red:?} < {red:?}"
    );
    let forecast = ib
        .got
        .iter()
        .find(|g| g.3["kind"] == "early_warning.red")
        .and_then(|g| g.3["forecast_minutes_to_red"].as_f64());
    assert!(
        forecast.is_some_and(|m| m >= 0.0),
        "the warning carries the forecast: {forecast:?}"
    );

    // The database holds the same story: one alert, its transitions, every delivery delivered.
    let db = stack.db().await;
    let rows = db
        .query("SELECT t.change, t.level FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id WHERE a.kind = 'instant_level' ORDER BY t.id", &[])
        .await
        .unwrap();
    let story: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            "open:blue",
            "escalate:yellow",
            "escalate:orange",
            "escalate:red",
            "de_escalate:orange",
            "de_escalate:yellow",
            "de_escalate:blue",
            "resolve:normal"
        ]
    );
    let undelivered: i64 = db
        .query_one(
            "SELECT count(*) FROM webhook_outbox WHERE status <> 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(undelivered, 0);

    // The compliance log shows the orange and red announcements and when they were confirmed.
    let (_, log) = get_json(svc.http_addr, "/api/v1/compliance?space=canyon").await;
    let ann = log["announcements"].as_array().unwrap();
    assert!(ann.iter().any(|a| a["level"] == "red"
        && a["sent_to"] == "bureau"
        && a["delivery_status"] == "delivered"
        && !a["confirmed_at"].is_null()));
    let (_, hist) = get_json(svc.http_addr, "/api/v1/spaces/canyon/levels").await;
    assert_eq!(hist["changes"].as_array().unwrap().len(), 8);
    eprintln!(
        "alert latency: red crossing published → red notice received {:.0} ms",
        red_latency.as_secs_f64() * 1000.0
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_caps_and_hazards_through_the_api() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-ack");
    cfg.alerting.tick_ms = 100;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    // 820 of 1000: yellow… until a 90% policy cap makes it 820 / 900 = 91%: orange.
    publish_all(
        stack.mq.port(),
        "pub-ack",
        vec![(counts_topic("canyon", "gate-1"), report(1, &ts, 820, 0))],
    )
    .await;
    let level = |v: &Value| v["status"]["instant"]["level"].as_str().map(str::to_owned);
    eventually(15, "yellow", || async {
        (level(&get_json(addr, "/api/v1/spaces/canyon").await.1).as_deref() == Some("yellow"))
            .then_some(())
    })
    .await;

    let http = http();
    let r = http
        .post(format!("http://{addr}/api/v1/spaces/canyon/caps"))
        .json(&serde_json::json!({ "percent": 90.0, "reason": "holiday policy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v = eventually(15, "orange under the cap", || async {
        let v = get_json(addr, "/api/v1/spaces/canyon").await.1;
        (level(&v).as_deref() == Some("orange")).then_some(v)
    })
    .await;
    assert_eq!(v["status"]["instant"]["approved_capacity"], 1000);
    assert_eq!(v["status"]["instant"]["effective_capacity"], 900);
    let bad = http
        .post(format!("http://{addr}/api/v1/spaces/canyon/caps"))
        .json(&serde_json::json!({ "percent": 150.0, "reason": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let (_, alerts) = get_json(addr, "/api/v1/alerts?space=canyon&state=firing").await;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "instant_level")
        .cloned()
        .expect("an open level alert");
    let id = alert["id"].as_i64().unwrap();
    let r = http
        .post(format!("http://{addr}/api/v1/alerts/{id}/ack"))
        .json(&serde_json::json!({ "comment": "entrance control started" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["alert"]["state"], "acknowledged");
    // The actor is the token's id, not anything the body says.
    assert_eq!(body["alert"]["acknowledged_by"], ADMIN_ID);
    assert!(
        body["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["change"] == "acknowledge" && t["actor"] == ADMIN_ID)
    );
    let again = http
        .post(format!("http://{addr}/api/v1/alerts/{id}/ack"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    // A flash-flood warning over MQTT closes the canyon.
    publish_all(
        stack.mq.port(),
        "pub-hazard",
        vec![(
            "vf/canyon/hazard".into(),
            r#"{"kind":"flash_flood","message":"山洪预警"}"#.into(),
        )],
    )
    .await;
    eventually(15, "the canyon closed", || async {
        (get_json(addr, "/api/v1/spaces/canyon").await.1["status"]["closed"] == true).then_some(())
    })
    .await;
    publish_all(
        stack.mq.port(),
        "pub-hazard2",
        vec![(
            "vf/canyon/hazard".into(),
            r#"{"kind":"flash_flood","active":false}"#.into(),
        )],
    )
    .await;
    eventually(15, "the canyon reopened", || async {
        (get_json(addr, "/api/v1/spaces/canyon").await.1["status"]["closed"] == false).then_some(())
    })
    .await;

    let (_, audit) = get_json(addr, "/api/v1/audit").await;
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"set_policy_cap".to_owned())
            && actions.contains(&"acknowledge_alert".to_owned())
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_resends_nor_forgets_alerts() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    let mut cfg = stack.config("vf-alert-restart");
    cfg.alerting.tick_ms = 100;
    cfg.webhooks = vec![
        serde_json::from_value(serde_json::json!({
            "id": "bureau", "url": format!("http://{hook}/hook"), "format": "alertmanager", "secret": SECRET,
            "kinds": ["instant_level"], "min_severity": "info", "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let fill = |seq: u64, n: u32| {
        let ts = Utc::now().with_timezone(&tz).to_rfc3339();
        vec![(counts_topic("canyon", "gate-1"), report(seq, &ts, n, 0))]
    };
    let svc = start_service(cfg.clone()).await;
    let count = |want: usize| {
        let inbox = Arc::clone(&inbox);
        move || {
            let inbox = Arc::clone(&inbox);
            async move {
                (inbox
                    .lock()
                    .unwrap()
                    .got
                    .iter()
                    .filter(|g| g.2 == 200)
                    .count()
                    >= want)
                    .then_some(())
            }
        }
    };
    publish_all(stack.mq.port(), "pub-r1", fill(1, 650)).await; // blue
    eventually(15, "blue delivered", count(1)).await;
    publish_all(stack.mq.port(), "pub-r2", fill(2, 200)).await; // yellow (850)
    eventually(15, "yellow delivered", count(2)).await;
    svc.shutdown().await;

    let svc = start_service(cfg).await;
    // Nothing new happened: after a few evaluations nothing is sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        inbox.lock().unwrap().got.len(),
        2,
        "a restart re-sent an alert"
    );
    publish_all(stack.mq.port(), "pub-r3", fill(3, 60)).await; // orange (910)
    eventually(15, "orange delivered", count(3)).await;
    let ib = inbox.lock().unwrap().clone();
    let statuses: Vec<_> = ib
        .got
        .iter()
        .map(|g| {
            (
                g.3["status"].as_str().unwrap_or("").to_owned(),
                g.3["alerts"][0]["labels"]["level"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("firing".into(), "blue".into()),
            ("firing".into(), "yellow".into()),
            ("firing".into(), "orange".into())
        ]
    );
    assert_eq!(ib.bad_signatures, 0);
    let db = stack.db().await;
    let alerts: i64 = db
        .query_one(
            "SELECT count(*) FROM alerts WHERE kind = 'instant_level'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alerts, 1, "the open alert was remembered, not opened again");
    svc.shutdown().await;
}

/// The open `silent_devices` alert of `space` in its live status: its device ids.
async fn silent_in_status(addr: std::net::SocketAddr, space: &str) -> Option<Vec<String>> {
    let (_, v) = get_json(addr, &format!("/api/v1/spaces/{space}")).await;
    let alerts = v["status"]["alerts"].as_array()?;
    let a = alerts
        .iter()
        .find(|a| a["kind"]["type"] == "silent_devices")?;
    Some(
        a["devices"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Silent counters are one alert per space listing them, not one per device per ancestor; and an
/// upgrade from per-device `silent.{device}` alerts resolves those in the database and towards
/// the receivers that got them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_counters_are_one_alert_per_space_and_legacy_ones_resolve_on_upgrade() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    let mut cfg = stack.config("vf-alert-silent");
    cfg.alerting.tick_ms = 100;
    cfg.webhooks = vec![
        serde_json::from_value(serde_json::json!({
            "id": "bureau", "url": format!("http://{hook}/hook"), "format": "json", "secret": SECRET,
            "min_severity": "info", "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let svc = start_service(cfg.clone()).await;
    let addr = svc.http_addr;
    let db = stack.db().await;
    // No counter has reported: one alert per space with counters of its own, none for the county.
    let open_silent = || async {
        let rows = db
            .query(
                "SELECT space_id, kind FROM alerts WHERE state <> 'resolved' \
                 AND (kind = 'silent_devices' OR starts_with(kind, 'silent.'))",
                &[],
            )
            .await
            .unwrap();
        let mut open: Vec<String> = rows
            .iter()
            .map(|r| format!("{}/{}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        open.sort();
        open
    };
    let expected = [
        "canyon-pines/silent_devices",
        "canyon/silent_devices",
        "park/silent_devices",
        "village/silent_devices",
    ];
    eventually(15, "one silent_devices alert per space", || async {
        (open_silent().await == expected).then_some(())
    })
    .await;
    let opened = eventually(15, "the canyon's alert delivered", || {
        let inbox = Arc::clone(&inbox);
        async move {
            inbox
                .lock()
                .unwrap()
                .got
                .iter()
                .find(|g| g.3["alert_id"] == "canyon/silent_devices")
                .map(|g| g.3.clone())
        }
    })
    .await;
    assert_eq!(opened["devices"], serde_json::json!(["gate-1", "gate-2"]));
    assert_eq!(opened["devices_total"], 2);
    assert_eq!(
        opened["message"]["en"],
        "Tianshan Grand Canyon: 2 of 2 counters silent: gate-1 (never reported), gate-2 (never reported)"
    );
    assert_eq!(
        silent_in_status(addr, "canyon").await,
        Some(vec!["gate-1".into(), "gate-2".into()])
    );
    // gate-1 reports: the status lists gate-2 alone, the alert stays open, nothing is sent.
    let sent = inbox.lock().unwrap().got.len();
    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    publish_all(
        stack.mq.port(),
        "pub-silent-1",
        vec![(counts_topic("canyon", "gate-1"), report(1, &ts, 5, 0))],
    )
    .await;
    eventually(15, "gate-1 off the canyon's list", || async {
        (silent_in_status(addr, "canyon").await == Some(vec!["gate-2".into()])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<Value> = inbox.lock().unwrap().got[sent..]
        .iter()
        .map(|g| g.3.clone())
        .collect();
    assert!(
        after.iter().all(|e| e["kind"] != "silent_devices"),
        "{after:?}"
    );
    svc.shutdown().await;

    // What an earlier version left behind: per-device alerts in the saved state and the table,
    // for the device's space and its ancestors.
    // (Each space's saved rule state is its own row; the service saves every space's at its
    // first evaluation.)
    let since = "2026-05-01T01:00:00Z";
    for space in ["canyon", "county"] {
        let mut snap: Value = db
            .query_one(
                "SELECT state FROM rule_state_spaces WHERE space_id = $1",
                &[&space],
            )
            .await
            .unwrap()
            .get(0);
        snap["state"]["open"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "kind": {"type": "silent", "device": "gate-2"},
                "severity": "warning", "level": null, "since": since, "updated": since,
            }));
        db.execute(
            "INSERT INTO alerts (space_id, kind, severity, state, started_at, updated_at) \
             VALUES ($1, 'silent.gate-2', 'warning', 'firing', $2::text::timestamptz, $2::text::timestamptz)",
            &[&space, &since],
        )
        .await
        .unwrap();
        db.execute(
            "UPDATE rule_state_spaces SET state = $2 WHERE space_id = $1",
            &[&space, &snap],
        )
        .await
        .unwrap();
    }
    let sent = inbox.lock().unwrap().got.len();

    let svc = start_service(cfg).await;
    eventually(15, "the legacy alerts resolved", || async {
        (open_silent().await == expected).then_some(())
    })
    .await;
    let resolved: Vec<(String, String)> = db
        .query(
            "SELECT a.space_id, t.change FROM alerts a JOIN alert_transitions t ON t.alert_id = a.id \
             WHERE a.kind = 'silent.gate-2' ORDER BY a.space_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        resolved,
        [
            ("canyon".into(), "resolve".into()),
            ("county".into(), "resolve".into())
        ]
    );
    let legacy = eventually(15, "the resolves delivered", || {
        let inbox = Arc::clone(&inbox);
        async move {
            let ib = inbox.lock().unwrap();
            let mut ids: Vec<(String, String)> = ib.got[sent..]
                .iter()
                .filter(|g| {
                    g.2 == 200
                        && g.3["kind"]
                            .as_str()
                            .is_some_and(|k| k.starts_with("silent."))
                })
                .map(|g| {
                    (
                        g.3["alert_id"].as_str().unwrap_or("").to_owned(),
                        g.3["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            ids.sort();
            (ids.len() >= 2).then_some(ids)
        }
    })
    .await;
    assert_eq!(
        legacy,
        [
            ("canyon/silent.gate-2".into(), "resolved".into()),
            ("county/silent.gate-2".into(), "resolved".into())
        ]
    );
    // The space-level alert carried on through the restart: not reopened, its list refilled.
    let reopened: i64 = db
        .query_one(
            "SELECT count(*) FROM alerts WHERE kind = 'silent_devices' AND space_id = 'canyon'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reopened, 1);
    eventually(15, "the canyon's list after the restart", || async {
        (silent_in_status(svc.http_addr, "canyon").await == Some(vec!["gate-2".into()]))
            .then_some(())
    })
    .await;
    // Of silence, only the two resolves were sent (what else happens is not this test's).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let silence: Vec<String> = inbox.lock().unwrap().got[sent..]
        .iter()
        .filter_map(|g| g.3["kind"].as_str())
        .filter(|k| k.starts_with("silent"))
        .map(String::from)
        .collect();
    assert_eq!(silence, ["silent.gate-2", "silent.gate-2"]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_advice_pauses_a_filling_area_diverts_and_is_recorded() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    let mut cfg = visitorflow::config::Config::from_toml(&format!("{REGISTRY}{CENTRE}")).unwrap();
    let base = stack.config("vf-dispatch");
    cfg.database = base.database;
    cfg.mqtt = base.mqtt;
    cfg.http = base.http;
    cfg.tokens = base.tokens;
    cfg.alerting.tick_ms = 100;
    cfg.webhooks = vec![
        serde_json::from_value(serde_json::json!({
            "id": "centre-desk", "url": format!("http://{hook}/hook"), "format": "json", "secret": SECRET,
            "kinds": ["dispatch_advice"], "min_severity": "info", "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    publish_all(
        stack.mq.port(),
        "pub-dispatch",
        vec![
            (counts_topic("canyon", "gate-1"), report(1, &ts, 950, 0)), // 95%: orange
            (counts_topic("village", "door"), report(1, &ts, 40, 0)),   // 10% of 400
            (counts_topic("centre", "hall-cam"), report(1, &ts, 300, 0)), // 300 waiting
        ],
    )
    .await;
    let advice = eventually(20, "advice pausing the canyon", || async {
        let (_, v) = get_json(addr, "/api/v1/dispatch").await;
        let hub = v["hubs"]
            .as_array()?
            .iter()
            .find(|h| h["hub"] == "centre")?
            .clone();
        let paused = hub["advice"]["paused"]
            .as_array()?
            .iter()
            .any(|p| p["area"] == "canyon");
        paused.then_some(hub)
    })
    .await;
    let a = &advice["advice"];
    assert_eq!(a["queue"], 300);
    let diversion = a["diversions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["from_area"] == "canyon")
        .expect("canyon visitors diverted");
    assert_eq!(
        diversion["to"][0]["area"], "village",
        "to the area with room"
    );
    assert!(
        a["shuttles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["area"] != "canyon"),
        "no shuttle to an orange area"
    );
    let pause = a["paused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["area"] == "canyon")
        .unwrap();
    assert!(
        pause["explanation"]["occupancy"].as_u64() == Some(950),
        "the advice carries its numbers: {pause}"
    );

    // The desk got the advice as a signed webhook.
    let inbox_ref = Arc::clone(&inbox);
    eventually(15, "the advice webhook", || {
        let inbox = Arc::clone(&inbox_ref);
        async move {
            inbox
                .lock()
                .unwrap()
                .got
                .iter()
                .any(|g| {
                    g.3["kind"] == "dispatch_advice"
                        && g.3["message"]["zh"].as_str().unwrap_or("").contains("暂停")
                })
                .then_some(())
        }
    })
    .await;
    assert_eq!(inbox.lock().unwrap().bad_signatures, 0);

    // A dispatcher follows it, once.
    let id = advice["id"].as_i64().unwrap();
    let http = http();
    let url = format!("http://{addr}/api/v1/dispatch/advice/{id}/decision");
    let r = http
        .post(&url)
        .json(&serde_json::json!({ "decision": "followed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&url)
        .json(&serde_json::json!({ "decision": "overridden", "reason": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = http
        .post(&url)
        .json(&serde_json::json!({ "decision": "ignored" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let (_, hist) = get_json(addr, "/api/v1/dispatch/history?hub=centre").await;
    assert!(
        hist["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == id && h["decision"] == "followed")
    );
    svc.shutdown().await;
}

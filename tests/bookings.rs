//! Timed-entry reservations end to end over HTTP with a real PostgreSQL: a ticketing system's
//! bookings are applied once per version (retries, late older versions, cancellations after
//! check-in), refused versions get their reason while the rest apply, only the area's ticketing
//! token (or an admin) may report, the day's slots show sold / remaining / over-sold places, and
//! the daily level rises when the day sells out — before a single visitor has walked in.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hook::{Inbox, receiver};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use visitorflow::config::Role;

const TICKETS: &str = "vf_tickets-canyon";
const TICKETS_VILLAGE: &str = "vf_tickets-village";
const VIEWER: &str = "vf_viewer";

const ADMISSION: &str = r#"
[admission]
walk_in_share = 0.10
[admission.spaces.canyon]
slots = ["00:00-23:59"]
"#;

async fn post(
    token: &str,
    addr: std::net::SocketAddr,
    space: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = client_with(token)
        .post(format!("http://{addr}/api/v1/spaces/{space}/bookings"))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn booking(id: &str, version: i64, day: &str, people: u32, status: &str) -> Value {
    json!({"id": id, "version": version, "day": day, "slot": "00:00", "people": people, "status": status})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_count_once_and_the_day_selling_out_raises_the_daily_level() {
    let stack = Stack::start();
    let mut cfg = stack.config_from(&format!("{REGISTRY}{ADMISSION}"), "vf-bookings");
    cfg.tokens.extend([
        token_entry("tickets-canyon", Role::Ticketing, &["canyon"], TICKETS),
        token_entry(
            "tickets-village",
            Role::Ticketing,
            &["village"],
            TICKETS_VILLAGE,
        ),
        token_entry("bureau", Role::Viewer, &[], VIEWER),
    ]);
    cfg.alerting.tick_ms = 100;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;

    // Before any intake: no bookings, and the data is stale (never heard from ticketing), not "zero".
    let (s, v) = get_json(addr, "/api/v1/spaces/canyon/slots").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["stale"], true);
    assert_eq!(
        v["slots"][0]["quota"], 3600,
        "4,000 a day less 10 % walk-in: {v}"
    );
    let day = v["day"].as_str().unwrap().to_owned();

    // Only the area's ticketing token (or an admin) reports; a viewer or another area's may not.
    let one = json!({"bookings": [booking("B0", 1, &day, 1, "booked")]});
    assert_eq!(
        post(VIEWER, addr, "canyon", one.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(TICKETS_VILLAGE, addr, "canyon", one.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = post(TICKETS_VILLAGE, addr, "village", one.clone()).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the village sells no timed entry: {v}"
    );
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no timed entry"),
        "{v}"
    );

    // 40 bookings of 100 people: the whole day (4,000) is sold, 400 over the online quota.
    let sold: Vec<Value> = (0..40)
        .map(|i| booking(&format!("B{i}"), 1, &day, 100, "booked"))
        .collect();
    let (s, v) = post(TICKETS, addr, "canyon", json!({ "bookings": sold })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["inserted"].as_u64(), v["duplicates"].as_u64()),
        (Some(40), Some(0)),
        "{v}"
    );

    // The over-sale is alarmed, not only shown: one `oversold` alert naming the slot (awaited
    // before the next changes, so it is opened on these 4,000).
    let alert = eventually(10, "the over-sale alarmed", || async {
        let (_, v) = get_json(addr, "/api/v1/alerts?space=canyon&state=firing").await;
        v["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["kind"] == "oversold").cloned())
    })
    .await;
    assert_eq!(alert["severity"], "major", "{alert}");
    let (_, shown) = get_json(addr, &format!("/api/v1/alerts/{}", alert["id"])).await;
    // Opened when the first 40 bookings (4,000) went 400 over the 3,600 quota.
    let message = shown["transitions"][0]["message_en"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.ends_with("00:00-23:59 +400"), "{shown}");
    assert_eq!(
        shown["alert"]["details"]["admission"]["oversold"],
        json!(["00:00-23:59"])
    );
    // The same request again (a retry) changes nothing.
    let (s, v) = post(TICKETS, addr, "canyon", json!({ "bookings": sold })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["inserted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(40)),
        "{v}"
    );

    // B1 checks in (v2) and is then refunded (v3); B2's cancellation (v3) arrives before its
    // older check-in (v2). One refused version does not hold up the others.
    let (s, v) = post(
        TICKETS,
        addr,
        "canyon",
        json!({"bookings": [
            booking("B1", 2, &day, 100, "checked_in"),
            booking("B1", 3, &day, 100, "cancelled"),
            booking("B2", 3, &day, 100, "cancelled"),
            booking("B2", 2, &day, 100, "checked_in"),
            {"id": "B99", "version": 1, "day": day, "slot": "09:00", "people": 2, "status": "booked"},
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        (v["updated"].as_u64(), v["stale"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(v["refused"][0]["index"], 4);
    assert!(
        v["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no slot \"09:00\""),
        "{v}"
    );

    let (_, v) = get_json(addr, "/api/v1/spaces/canyon/slots").await;
    let slot = &v["slots"][0];
    assert_eq!(v["stale"], false, "{v}");
    // B1 stays counted (inside), B2 is cancelled: 3,900 sold, 100 of them checked in.
    assert_eq!(slot["sold"], 3900, "{v}");
    assert_eq!(slot["checked_in"], 100);
    assert_eq!(slot["cancelled"], 100);
    assert_eq!(slot["expected"], 3800);
    assert_eq!(
        (slot["remaining"].as_u64(), slot["oversold"].as_u64()),
        (Some(0), Some(300))
    );
    assert_eq!(v["expected_arrivals"], 3800);

    // Every place sold: sales pause for the day — on the public board too, without a token.
    let board = eventually(10, "the board's ticket line", || async {
        let v: Value = reqwest::get(format!("http://{addr}/api/v1/public/areas"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let canyon = v["areas"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == "canyon")?
            .clone();
        (canyon["tickets"]["sales"] == "paused").then_some(canyon)
    })
    .await;
    assert_eq!(board["tickets"]["remaining_today"], 0, "{board}");
    let (_, a) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
    assert_eq!(
        (a["sales"].as_str(), a["reasons"].clone()),
        (Some("paused"), json!(["sold_out"])),
        "{a}"
    );

    // One visitor has walked in through a counting gate, yet 1 + 3,800 expected of 4,000 a day
    // is 95 %: the daily level is orange (of the default 60/80/90/100 ladder).
    let ts = chrono::Utc::now().to_rfc3339();
    let gate = counts_topic("canyon", "gate-1");
    publish_all(
        stack.mq.port(),
        "pub-gate",
        vec![(gate, report(1, &ts, 1, 0))],
    )
    .await;
    let level = eventually(10, "the daily level to count booked visitors", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon").await;
        let d = &v["status"]["daily"];
        (d["count"] == 3801).then(|| d["level"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(level, "orange");

    // A policy cap of 75 % set now lowers the quota at once (3,000 a day less 10 % walk-in), and
    // the over-sale grows with it rather than being hidden.
    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon/caps"))
        .json(&json!({"percent": 75, "reason": "landslide on the north trail"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let slot = eventually(10, "the quota to follow the cap", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon/slots").await;
        (v["slots"][0]["quota"] == 2700).then(|| v["slots"][0].clone())
    })
    .await;
    assert_eq!(
        (slot["oversold"].as_u64(), slot["remaining"].as_u64()),
        (Some(1200), Some(0))
    );

    let metrics = get_text(addr, "/metrics").await;
    for (outcome, n) in [
        ("inserted", 40),
        ("duplicate", 40),
        ("stale", 1),
        ("rejected", 1),
    ] {
        let found = metrics.lines().any(|l| {
            l.starts_with("visitorflow_bookings_total{")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.contains("space=\"canyon\"")
                && l.ends_with(&format!(" {n}"))
        });
        assert!(found, "{outcome} = {n} in\n{metrics}");
    }
    drop(svc);
}

const SECRET: &str = "ticketing-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_pauses_sales_once_signed_retried_logged_and_resumes_after_a_restart() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox {
        fail_first: 1,
        ..Inbox::default()
    }));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    let mut cfg = stack.config_from(&format!("{REGISTRY}{ADMISSION}"), "vf-admission");
    cfg.alerting.tick_ms = 100;
    cfg.alerting.backoff_base_ms = 200;
    cfg.rules.dwell_s = 1;
    cfg.webhooks = vec![
        serde_json::from_value(json!({
            "id": "ticketing-a", "url": format!("http://{hook}/hook"), "format": "ticketing",
            "secret": SECRET, "kinds": ["admission"], "min_severity": "info",
            "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let svc = start_service(cfg.clone()).await;
    let addr = svc.http_addr;
    let (_, v) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
    assert_eq!(
        (v["sales"].as_str(), v["since"].is_null()),
        (Some("open"), true),
        "{v}"
    );
    assert_eq!(v["slots"][0]["sales"], "open", "{v}");

    // 1,010 people in the canyon (capacity 1,000): red, and sales pause at once.
    let ts = |_: ()| chrono::Utc::now().to_rfc3339();
    let gate = counts_topic("canyon", "gate-1");
    let crossing = std::time::Instant::now();
    publish_all(
        stack.mq.port(),
        "pub-a1",
        vec![(gate.clone(), report(1, &ts(()), 1010, 0))],
    )
    .await;
    let paused = eventually(15, "the paused signal delivered", || async {
        inbox.lock().unwrap().delivered().first().cloned()
    })
    .await;
    let latency = crossing.elapsed();
    // The `ticketing` format (docs/schemas/ticketing-admission.schema.json).
    assert_eq!(paused["event"], "admission", "{paused}");
    assert_eq!(paused["sales"], "paused", "{paused}");
    assert_eq!(paused["reasons"], json!(["instant_level.red"]), "{paused}");
    assert_eq!(paused["area"]["id"], "canyon");
    {
        let ib = inbox.lock().unwrap();
        // The 503 was retried with the same delivery id, and every request was signed.
        assert_eq!(ib.got.len(), 2, "{:?}", ib.got);
        assert_eq!(ib.got[0].1, ib.got[1].1);
        assert_eq!((ib.got[0].2, ib.got[1].2), (503, 200));
        assert_eq!(ib.bad_signatures, 0);
    }
    let first_attempt = inbox.lock().unwrap().got[0].0 - crossing;
    eprintln!(
        "crossing report published → paused first sent: {first_attempt:?}; delivered (after one 503 and its Retry-After: 1 s): {latency:?}"
    );
    let (_, v) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
    assert_eq!(v["sales"], "paused", "{v}");
    assert_eq!(v["reasons"], json!(["instant_level.red"]));
    assert!(v["since"].is_string(), "{v}");
    assert_eq!(v["slots"][0]["sales"], "paused");

    // The art. 45 compliance log shows the pause, to whom it went and its receipt.
    let (_, log) = get_json(addr, "/api/v1/compliance?space=canyon").await;
    let row = log["announcements"]
        .as_array()
        .and_then(|e| e.iter().find(|r| r["kind"] == "admission"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(row["sent_to"], "ticketing-a", "{log}");
    assert_eq!(row["delivery_status"], "delivered", "{log}");
    assert!(row["confirmed_at"].is_string(), "{log}");

    // A restart while paused neither re-sends the pause nor forgets it.
    svc.shutdown().await;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        inbox.lock().unwrap().delivered().len(),
        1,
        "a restart re-sent the pause"
    );
    let (_, v) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
    assert_eq!(v["sales"], "paused", "{v}");

    // 600 leave: the level steps down below red (hysteresis: margin and dwell) and sales resume.
    publish_all(
        stack.mq.port(),
        "pub-a2",
        vec![(gate, report(2, &ts(()), 0, 600))],
    )
    .await;
    let resumed = eventually(20, "the resumed signal delivered", || async {
        inbox.lock().unwrap().delivered().get(1).cloned()
    })
    .await;
    assert_eq!(resumed["sales"], "open", "{resumed}");
    assert_eq!(resumed["alert_id"], paused["alert_id"]);
    assert_eq!(
        resumed["since"], paused["since"],
        "one pause, from its start"
    );
    let (_, v) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
    assert_eq!(
        (v["sales"].as_str(), v["since"].is_null()),
        (Some("open"), true),
        "{v}"
    );
    drop(svc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_configured_sales_resume_only_after_an_operator_confirms() {
    let stack = Stack::start();
    let admission = ADMISSION.replace(
        "walk_in_share = 0.10",
        "walk_in_share = 0.10\nresume_needs_confirmation = true",
    );
    let mut cfg = stack.config_from(&format!("{REGISTRY}{admission}"), "vf-resume");
    const OPERATOR: &str = "vf_op-canyon";
    cfg.tokens.extend([
        token_entry("op-canyon", Role::Operator, &["canyon"], OPERATOR),
        token_entry("tickets-canyon", Role::Ticketing, &["canyon"], TICKETS),
    ]);
    cfg.alerting.tick_ms = 100;
    cfg.rules.dwell_s = 1;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let sales = || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon/admission").await;
        (
            v["sales"].as_str().unwrap_or_default().to_owned(),
            v["reasons"].clone(),
        )
    };
    let gate = counts_topic("canyon", "gate-1");
    let now = || chrono::Utc::now().to_rfc3339();
    publish_all(
        stack.mq.port(),
        "pub-c1",
        vec![(gate.clone(), report(1, &now(), 1010, 0))],
    )
    .await;
    eventually(15, "sales paused at red", || async {
        (sales().await.0 == "paused").then_some(())
    })
    .await;
    // The crowd thins out: the level steps down, but sales wait for the operator.
    publish_all(
        stack.mq.port(),
        "pub-c2",
        vec![(gate, report(2, &now(), 0, 600))],
    )
    .await;
    eventually(20, "paused, awaiting confirmation", || async {
        let (state, reasons) = sales().await;
        (state == "paused" && reasons == json!(["awaiting_confirmation"])).then_some(())
    })
    .await;
    // A ticketing system may not confirm; the area's operator may.
    let confirm = |token: &'static str| async move {
        client_with(token)
            .post(format!(
                "http://{addr}/api/v1/spaces/canyon/admission/resume"
            ))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(confirm(TICKETS).await, StatusCode::FORBIDDEN);
    assert_eq!(confirm(OPERATOR).await, StatusCode::ACCEPTED);
    eventually(10, "sales resumed after the confirmation", || async {
        (sales().await.0 == "open").then_some(())
    })
    .await;

    // The operator pauses by hand (a festival parade blocking the road, say): sales stop with
    // the reason `manual` whatever the figures say, until the operator resumes them.
    let pause = |token: &'static str, reason: &'static str| async move {
        client_with(token)
            .post(format!(
                "http://{addr}/api/v1/spaces/canyon/admission/pause"
            ))
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(pause(TICKETS, "no").await, StatusCode::FORBIDDEN);
    assert_eq!(pause(OPERATOR, " ").await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        pause(OPERATOR, "parade on the access road").await,
        StatusCode::ACCEPTED
    );
    eventually(10, "sales held by hand", || async {
        let (state, reasons) = sales().await;
        (state == "paused" && reasons == json!(["manual"])).then_some(())
    })
    .await;
    assert_eq!(confirm(OPERATOR).await, StatusCode::ACCEPTED);
    eventually(10, "sales resumed after the hold", || async {
        (sales().await.0 == "open").then_some(())
    })
    .await;

    let db = stack.db().await;
    for (action, n) in [("confirm_sales_resume", 2), ("pause_sales", 1)] {
        let audited: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_log WHERE action = $1 AND actor = 'op-canyon'",
                &[&action],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(audited, n, "{action}");
    }
    drop(svc);
}

/// The same messages over MQTT (`vf/{space}/tickets`): a redelivered message counts once, slot
/// totals of a channel that counts rather than lists stand beside the listed bookings (newest
/// `as_of` wins), and bad messages are refused with the reason, counted, and never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_over_mqtt_count_once_and_channel_totals_add_to_the_bookings() {
    let stack = Stack::start();
    // The village sells timed entry here, so its counters are this test's alone (the metrics
    // recorder is shared by the tests of this file).
    let registry = REGISTRY.replace(
        "instant_capacity = 400\n",
        "instant_capacity = 400\ndaily_capacity = 1200\n",
    );
    let admission = "[admission.spaces.village]\nslots = [\"00:00-23:59\"]\n";
    let mut cfg = stack.config_from(&format!("{registry}{admission}"), "vf-tickets-mqtt");
    cfg.tokens.push(token_entry(
        "box-office",
        Role::Ticketing,
        &["village"],
        TICKETS_VILLAGE,
    ));
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let (_, v) = get_json(addr, "/api/v1/spaces/village/slots").await;
    let day = v["day"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    let now = chrono::Utc::now();
    let at = |min_ago: i64| (now - chrono::TimeDelta::minutes(min_ago)).to_rfc3339();
    let totals = |booked: u64, checked_in: u64, as_of: String| json!({"day": day, "slot": "00:00", "booked": booked, "checked_in": checked_in, "as_of": as_of});
    let message = json!({
        "bookings": [booking("M1", 1, &day, 30, "booked"), booking("M2", 1, &day, 20, "booked")],
        "slots": [totals(100, 50, at(1))],
        "channel": "ota",
    })
    .to_string();
    let topic = "vf/village/tickets".to_owned();
    publish_all(
        stack.mq.port(),
        "pub-tickets",
        vec![
            (topic.clone(), message.clone()),
            // A redelivery, and the OTA's older count arriving late: neither changes anything.
            (topic.clone(), message),
            (
                topic.clone(),
                json!({"slots": [totals(5, 0, at(10))], "channel": "ota"}).to_string(),
            ),
            (topic.clone(), "{not json".into()),
            (topic.clone(), json!({"booking": []}).to_string()),
            ("vf/canyon/tickets".into(), json!({}).to_string()),
        ],
    )
    .await;
    // The box office counts over HTTP as a channel of its own (its token's id).
    let (s, v) = post(
        TICKETS_VILLAGE,
        addr,
        "village",
        json!({"slots": [totals(7, 3, at(0))]}),
    )
    .await;
    assert_eq!(
        (s, v["inserted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );

    // 50 listed + 150 (OTA) + 10 (box office) sold; 53 of them checked in.
    let slot = eventually(10, "the MQTT intake stored", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/village/slots").await;
        (v["slots"][0]["sold"] == 210).then(|| v["slots"][0].clone())
    })
    .await;
    assert_eq!(
        (slot["checked_in"].as_u64(), slot["expected"].as_u64()),
        (Some(53), Some(157)),
        "{slot}"
    );
    // Counted once committed (a moment after the figures show).
    let counted = |m: &str| {
        [("inserted", 4), ("duplicate", 3), ("stale", 1)]
            .iter()
            .all(|(outcome, n)| {
                m.lines().any(|l| {
                    l.starts_with("visitorflow_bookings_total{")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                        && l.contains("space=\"village\"")
                        && l.ends_with(&format!(" {n}"))
                })
            })
            && m.contains("visitorflow_reports_rejected_total{reason=\"invalid_report\"} 2")
            && m.contains("visitorflow_reports_rejected_total{reason=\"malformed_json\"} 1")
    };
    let mut last = String::new();
    for _ in 0..100 {
        last = get_text(addr, "/metrics").await;
        if counted(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        counted(&last),
        "inserted 4, duplicate 3, stale 1, refused 2 + 1 in\n{last}"
    );
    drop(svc);
}

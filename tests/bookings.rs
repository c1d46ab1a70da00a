//! Timed-entry reservations end to end over HTTP with a real PostgreSQL: a ticketing system's
//! bookings are applied once per version (retries, late older versions, cancellations after
//! check-in), refused versions get their reason while the rest apply, only the area's ticketing
//! token (or an admin) may report, the day's slots show sold / remaining / over-sold places, and
//! the daily level rises when the day sells out — before a single visitor has walked in.

mod common;

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

    // One visitor has walked in through a counting gate, yet 1 + 3,800 expected of 4,000 a day
    // is 95 %: the daily level is orange (of the default 60/80/90/100 ladder).
    let ts = chrono::Utc::now().to_rfc3339();
    let gate = counts_topic("canyon", "gate-1");
    publish_all(stack.mq.port(), "pub-gate", vec![(gate, report(1, &ts, 1, 0))]).await;
    let level = eventually(10, "the daily level to count booked visitors", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon").await;
        let d = &v["status"]["daily"];
        (d["count"] == 3801).then(|| d["level"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(level, "orange");

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

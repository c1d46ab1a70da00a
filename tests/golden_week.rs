//! A simulated holiday crowd end to end: the traffic simulator and its ticket office publish a
//! whole day (at 3,600× speed) to a real Mosquitto; the service counts it in a real PostgreSQL,
//! the rules pause ticket sales when the canyon goes red and resume them when it empties, each
//! change reaches a ticketing system's webhook signed, and the art. 45 compliance log holds every
//! change with its receipt.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveTime, TimeZone, Utc};
use common::hook::{Inbox, receiver};
use common::*;
use serde_json::{Value, json};
use visitorflow::admission::Reservations;
use visitorflow::sim::{self, SimulateOptions};

const SECRET: &str = "golden-week-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holiday_crowd_pauses_and_resumes_sales_from_the_live_numbers_with_receipts() {
    let stack = Stack::start();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let hook = receiver(Arc::clone(&inbox), SECRET).await;
    // A day long enough for the crowd: the canyon (1,000 at once) may take 20,000 a day; its one
    // slot spans the day, so the test does not depend on the hour it runs at.
    let registry = REGISTRY.replace("daily_capacity = 4000", "daily_capacity = 20000");
    let admission =
        "[admission]\nwalk_in_share = 0.10\n[admission.spaces.canyon]\nslots = [\"00:00-23:59\"]\n";
    let mut cfg = stack.config_from(&format!("{registry}{admission}"), "vf-golden-week");
    cfg.alerting.tick_ms = 100;
    cfg.rules.dwell_s = 1;
    // The simulated day runs ahead of the wall clock, as in the demo.
    cfg.ingest.max_future_skew_s = 2 * 24 * 3600;
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

    let reg = cfg.registry().unwrap();
    let today = Utc::now().with_timezone(&reg.tz).date_naive();
    let start = reg
        .tz
        .from_local_datetime(&today.and_time(NaiveTime::from_hms_opt(7, 0, 0).unwrap()))
        .earliest()
        .unwrap()
        .to_utc();
    let opts = SimulateOptions {
        seed: 3,
        start: Some(start),
        speed: 3600.0,
        duration: Some(Duration::from_secs(15 * 3600)),
        // A holiday crowd on whatever day this runs.
        intensity: 4.0,
        client_id: "golden-week-sim".into(),
        reservations: Some(Arc::new(Reservations::build(&cfg.admission, &reg).unwrap())),
        ..SimulateOptions::default()
    };
    let stats = sim::simulate(opts, &reg, &cfg.mqtt).await.unwrap();
    assert!(
        stats.tickets.booked > 0 && stats.tickets.checked_in > 0,
        "{:?}",
        stats.tickets
    );
    eprintln!("ticket office: {:?}", stats.tickets);

    // Paused when the crowd went red, open again once it thinned out: each change delivered once.
    let (paused, resumed) = eventually(30, "a pause and a resumption delivered", || async {
        let got = inbox.lock().unwrap().delivered();
        let paused = got.iter().find(|v| v["sales"] == "paused")?.clone();
        let resumed = got
            .iter()
            .skip_while(|v| v["sales"] != "paused")
            .find(|v| v["sales"] == "open")?
            .clone();
        Some((paused, resumed))
    })
    .await;
    assert_eq!(paused["reasons"], json!(["instant_level.red"]), "{paused}");
    assert_eq!(paused["area"]["id"], "canyon");
    assert_eq!(resumed["alert_id"], paused["alert_id"]);
    {
        let ib = inbox.lock().unwrap();
        assert_eq!(ib.bad_signatures, 0);
        let ids: std::collections::HashSet<_> = ib.got.iter().map(|g| &g.1).collect();
        assert_eq!(ids.len(), ib.got.len(), "no delivery sent twice");
    }

    // The counts behind it: the crowd passed the instantaneous maximum, and the ticket office's
    // check-ins are in the slot's figures.
    let (_, v) = get_json(addr, "/api/v1/spaces/canyon").await;
    assert!(v["peak_today"].as_u64().unwrap_or(0) >= 1000, "{v}");
    let (_, slots) = get_json(addr, &format!("/api/v1/spaces/canyon/slots?day={today}")).await;
    assert!(
        slots["slots"][0]["checked_in"].as_u64().unwrap_or(0) > 0,
        "{slots}"
    );

    // Every change in the compliance log, delivered and confirmed.
    let (_, log) = get_json(
        addr,
        &format!("/api/v1/compliance?space=canyon&day={today}"),
    )
    .await;
    let rows: Vec<&Value> = log["announcements"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["kind"] == "admission").collect())
        .unwrap_or_default();
    assert!(rows.len() >= 2, "{log}");
    for r in &rows {
        eprintln!("compliance: {r}");
        assert_eq!(r["sent_to"], "ticketing-a", "{log}");
        assert_eq!(r["delivery_status"], "delivered", "{log}");
        assert!(r["confirmed_at"].is_string(), "{log}");
    }
    eprintln!(
        "sales changes delivered: {}; compliance rows: {}",
        inbox.lock().unwrap().delivered().len(),
        rows.len()
    );
    drop(svc);
}

//! Day-ahead forecasts end to end with a real PostgreSQL and Mosquitto: five weeks of a gate's
//! hourly reports go through the ingest path, a run is made on request, the forecast route
//! serves tomorrow's and the week's days (JSON and CSV) with ordered intervals near the pattern
//! the gate counted, the evening-before warning `forecast.{level}` opens for tomorrow, a closure
//! set through the API makes the day forecast empty and moves the warning on, and the daily
//! report compares the day with the day and the week before.

mod common;

use chrono::{Duration as Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use common::*;
use serde_json::{Value, json};

/// The canyon's occupancy at each local hour of an open day (1,000 instantaneous maximum): 92 %
/// at noon, which is orange on the LB/T 034 ladder.
const PROFILE: [i64; 24] = [
    0, 0, 0, 0, 0, 0, 0, 0, 200, 450, 700, 850, 920, 850, 600, 350, 150, 0, 0, 0, 0, 0, 0, 0,
];
/// Visitors who come and go within each open hour on top of the net change.
const CHURN: i64 = 50;
const HISTORY_DAYS: i64 = 35;

/// One report per open hour for each of the `HISTORY_DAYS` days before today (local).
fn history(today: NaiveDate) -> (Vec<(String, String)>, i64) {
    let mut msgs = Vec::new();
    let mut seq = 0;
    for back in (1..=HISTORY_DAYS).rev() {
        let day = today - Days::days(back);
        for h in 8..18 {
            let delta = PROFILE[h] - PROFILE[h - 1];
            let (e, x) = (delta.max(0) + CHURN, (-delta).max(0) + CHURN);
            seq += 1;
            let ts = Shanghai
                .from_local_datetime(&day.and_hms_opt(h as u32, 30, 0).unwrap())
                .unwrap()
                .with_timezone(&Utc)
                .to_rfc3339();
            msgs.push((
                counts_topic("canyon", "gate-1"),
                report(seq, &ts, e as u32, x as u32),
            ));
        }
    }
    let per_day: i64 = (8..18)
        .map(|h| (PROFILE[h] - PROFILE[h - 1]).max(0) + CHURN)
        .sum();
    (msgs, per_day)
}

async fn alerts_of(addr: std::net::SocketAddr, kind_prefix: &str) -> Vec<Value> {
    let (_, v) = get_json(addr, "/api/v1/alerts?space=canyon&limit=100").await;
    v["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["space_id"] == "canyon")
        .filter(|a| {
            a["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with(kind_prefix))
        })
        .collect()
}

fn band_ordered(b: &Value) -> bool {
    let f = |k: &str| b[k].as_f64().unwrap();
    f("lo95") <= f("lo80")
        && f("lo80") <= f("mean")
        && f("mean") <= f("hi80")
        && f("hi80") <= f("hi95")
        && f("lo95") >= 0.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_serve_the_week_warn_the_evening_before_and_follow_a_closure() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-forecast");
    cfg.alerting.tick_ms = 100;
    // Due whatever the time of day this runs: tomorrow's warning is open from now on.
    cfg.forecast.warn_lead_h = 48;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let today = Utc::now().with_timezone(&Shanghai).date_naive();
    let tomorrow = today + Days::days(1);

    let (msgs, per_day) = history(today);
    let n = msgs.len() as i64;
    publish_all(stack.mq.port(), "vf-forecast-pub", msgs).await;
    let db = stack.db().await;
    eventually(60, "the history to be stored", || async {
        (stored(&db).await.1 == n).then_some(())
    })
    .await;

    // Today is closed (a flood on the road), set before any run: the warning that opens is
    // tomorrow's, worded for tomorrow.
    let r = http()
        .put(format!(
            "http://{addr}/api/v1/spaces/canyon/forecast/inputs/{today}"
        ))
        .json(&json!({"closed": true, "note": "flood on the road"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // A run on request (admin).
    let r = http()
        .post(format!("http://{addr}/api/v1/forecast/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.unwrap();
    assert!(run["run_id"].as_i64().is_some(), "{run}");
    assert_eq!(run["first_day"], json!(today.to_string()));

    // The week from tomorrow: 7 days of 24 hours, intervals ordered, near what was counted.
    let (s, f) = get_json(addr, "/api/v1/spaces/canyon/forecast?days=7").await;
    assert_eq!(s, 200, "{f}");
    let days = f["days"].as_array().unwrap();
    assert_eq!(days.len(), 7, "{f}");
    assert_eq!(days[0]["date"], json!(tomorrow.to_string()));
    for d in days {
        let hours = d["hours"].as_array().unwrap();
        assert_eq!(hours.len(), 24);
        assert!(band_ordered(&d["entries"]), "{}", d["entries"]);
        for h in hours {
            assert!(band_ordered(&h["occupancy"]), "{h}");
            assert!(band_ordered(&h["entries"]), "{h}");
        }
        let noon = hours[12]["occupancy"]["mean"].as_f64().unwrap();
        assert!(
            (noon - 920.0).abs() <= 0.15 * 920.0,
            "noon {noon} on {}",
            d["date"]
        );
        let night = hours[3]["occupancy"]["mean"].as_f64().unwrap();
        assert!(night <= 50.0, "03:00 {night}");
        let entries = d["entries"]["mean"].as_f64().unwrap();
        assert!(
            (entries - per_day as f64).abs() <= 0.15 * per_day as f64,
            "entries {entries} vs {per_day} counted a day"
        );
    }
    // A zone has no forecast of its own; days out of range are refused.
    assert_eq!(
        get_json(addr, "/api/v1/spaces/canyon-pines/forecast")
            .await
            .0,
        404
    );
    assert_eq!(
        get_json(addr, "/api/v1/spaces/canyon/forecast?days=30")
            .await
            .0,
        400
    );
    let csv = get_text(addr, "/api/v1/spaces/canyon/forecast?days=2&format=csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("date,hour,start,day_kind,holiday,entries_mean"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 2 * 24);

    let warning = eventually(30, "tomorrow's forecast warning", || async {
        alerts_of(addr, "forecast.").await.into_iter().find(|a| {
            a["state"] != "resolved"
                && a["details"]["message_en"]
                    .as_str()
                    .is_some_and(|m| m.contains("tomorrow"))
        })
    })
    .await;
    let kind = warning["kind"].as_str().unwrap();
    assert!(
        ["forecast.yellow", "forecast.orange", "forecast.red"].contains(&kind),
        "{warning}"
    );
    let msg = warning["details"]["message_en"].as_str().unwrap();
    assert!(msg.contains("12:00") || msg.contains(":00–"), "{msg}");
    let (_, today_f) = get_json(
        addr,
        &format!("/api/v1/spaces/canyon/forecast?days=1&from={today}"),
    )
    .await;
    assert_eq!(
        today_f["days"][0]["entries"]["mean"],
        json!(0.0),
        "{today_f}"
    );

    // Closing tomorrow too: nothing left to warn about.
    let r = http()
        .put(format!(
            "http://{addr}/api/v1/spaces/canyon/forecast/inputs/{tomorrow}"
        ))
        .json(&json!({"closed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually(30, "the forecast warning to resolve", || async {
        alerts_of(addr, "forecast.")
            .await
            .iter()
            .all(|a| a["state"] == "resolved")
            .then_some(())
    })
    .await;
    let (_, inputs) = get_json(addr, "/api/v1/forecast/inputs").await;
    assert_eq!(inputs.as_array().map(Vec::len), Some(2), "{inputs}");

    // The report of yesterday: 环比 against the day and the week before (same counts: 0 %).
    let yesterday = today - Days::days(1);
    let (s, rep) = get_json(addr, &format!("/api/v1/reports/daily?day={yesterday}")).await;
    assert_eq!(s, 200, "{rep}");
    let area = rep["areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["space"] == "canyon")
        .unwrap();
    let c = &area["comparison"];
    assert_eq!(c["previous_day"]["entries"], json!(per_day), "{c}");
    assert_eq!(c["previous_day"]["change_pct"], json!(0.0), "{c}");
    assert_eq!(
        c["previous_week"]["day"],
        json!((yesterday - Days::days(7)).to_string())
    );
    assert!(
        c["same_date_last_year"].is_null(),
        "no data a year back: {c}"
    );
    svc.shutdown().await;
}

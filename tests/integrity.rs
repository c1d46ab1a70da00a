//! Counting integrity under real device behaviour, end to end through a real Mosquitto and
//! PostgreSQL: a counter that backfills a long outage after its live reports loses nobody (with
//! and without totals, the repaired counts end in their own minutes), a one-off seq jump is
//! counted once, flagged and silences nothing, and a head count by hand corrects the zone and
//! its area visibly.

mod common;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use common::*;

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

fn report_with_totals(seq: u64, ts: DateTime<Utc>, e: u32, te: u64) -> String {
    format!(
        r#"{{"seq":{seq},"ts":"{}","in":{e},"out":0,"total_in":{te},"total_out":0,"period_s":60}}"#,
        local(ts)
    )
}

/// A counter's value from `/metrics` (0 when absent).
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    get_text(addr, "/metrics")
        .await
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Minute buckets of a space: (minute start, entries).
async fn minutes(db: &tokio_postgres::Client, space: &str) -> Vec<(DateTime<Utc>, i64)> {
    db.query(
        "SELECT bucket, entries FROM space_series_1m WHERE space_id = $1 AND entries <> 0 ORDER BY bucket",
        &[&space],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// 320 one-minute periods with one visitor each; periods 11–310 happen during an outage and are
/// sent, after the live ones, from the counter's buffer — then the whole backlog once more.
async fn backfill(with_totals: bool) {
    let stack = Stack::start();
    let mut cfg = stack.config(if with_totals { "vf-bf-t" } else { "vf-bf" });
    // The reports span 5.5 hours: the canyon's day starts 6 hours ago, so they all count today
    // whatever the hour the test runs (at 01:00 in China they would otherwise straddle midnight).
    let opens = (Utc::now() - TimeDelta::hours(6))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%H:%M")
        .to_string();
    for s in cfg.spaces.iter_mut().filter(|s| s.id == "canyon") {
        s.opens_at = Some(opens.clone());
    }
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let start = Utc::now() - TimeDelta::minutes(330);
    let start = start - TimeDelta::seconds(start.timestamp() % 60) + TimeDelta::seconds(30);
    let msg = |seq: u64| {
        let ts = start + TimeDelta::minutes(seq as i64);
        let payload = if with_totals {
            report_with_totals(seq, ts, 1, seq)
        } else {
            report(seq, &local(ts), 1, 0)
        };
        (counts_topic("canyon", "gate-1"), payload)
    };
    let live: Vec<_> = (1..=10).chain(311..=320).map(msg).collect();
    let backlog: Vec<_> = (11..=310).map(msg).collect();
    let rejected_before = metric(addr, "visitorflow_reports_rejected_total").await;
    publish_all(stack.mq.port(), "pub-live", live).await;
    wait_entries(addr, "canyon", 20 + if with_totals { 300 } else { 0 }).await;
    publish_all(stack.mq.port(), "pub-backlog", backlog.clone()).await;
    let v = wait_entries(addr, "canyon", 320).await;
    publish_all(stack.mq.port(), "pub-again", backlog).await;
    eventually(
        30,
        "the replayed backlog to be settled as duplicates",
        || async {
            (metric(addr, "visitorflow_reports_duplicate_total").await >= 300.0).then_some(())
        },
    )
    .await;

    let db = stack.db().await;
    assert_eq!(stored(&db).await, (320, 320, 320, 0), "every report once");
    assert_eq!(bucket_totals(&db, "canyon").await, (320, 0));
    // Every visitor in the minute the counter counted them in, repairs given back.
    let per_minute = minutes(&db, "canyon").await;
    assert_eq!(per_minute.len(), 320, "{per_minute:?}");
    assert!(per_minute.iter().all(|(_, e)| *e == 1), "{per_minute:?}");
    let repaired: i64 = db
        .query_one(
            "SELECT coalesce(sum(repaired_entries), 0)::int8 FROM reports",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(repaired, 0);
    assert_eq!(v["entries_today"], 320);
    assert_eq!(
        metric(addr, "visitorflow_reports_rejected_total").await,
        rejected_before,
        "nothing refused"
    );
    let looked_up = metric(addr, "visitorflow_reports_looked_up_total").await;
    println!(
        "outage backfill after live reports ({}): published 320 reports (320 visitors) + 300 \
         replayed, stored 320, counted 320, {looked_up} settled by the raw table, 0 refused",
        if with_totals {
            "with totals"
        } else {
            "without totals"
        }
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_backfilled_after_live_reports_loses_nobody_without_totals() {
    backfill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_backfilled_after_live_reports_lands_in_its_own_minutes_with_totals() {
    backfill(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_seq_jump_is_counted_once_flagged_and_silences_nothing() {
    let stack = Stack::start();
    let svc = start_service(stack.config("vf-jump")).await;
    let addr = svc.http_addr;
    let t0 = Utc::now() - TimeDelta::minutes(30);
    let at = |m: i64| local(t0 + TimeDelta::minutes(m));
    let gate = counts_topic("canyon", "gate-1");
    let mut msgs: Vec<_> = (1..=5)
        .map(|s| (gate.clone(), report(s, &at(s as i64), 1, 0)))
        .collect();
    let bogus = (gate.clone(), report(5 + (1 << 40), &at(6), 1, 0));
    msgs.push(bogus.clone());
    msgs.extend((6..=10).map(|s| (gate.clone(), report(s, &at(s as i64 + 1), 1, 0))));
    msgs.push(bogus);
    publish_all(stack.mq.port(), "pub-jump", msgs).await;
    wait_entries(addr, "canyon", 11).await;

    let db = stack.db().await;
    assert_eq!(stored(&db).await, (11, 11, 11, 0));
    let missing: i64 = db
        .query_one(
            "SELECT missing FROM device_state WHERE device_id = 'gate-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(missing, 0, "no missing reports invented");
    assert_eq!(
        metric(addr, "visitorflow_device_seq_jumps_total").await,
        1.0
    );
    let alert = eventually(30, "the seq_jump alert", || async {
        let (_, v) = get_json(addr, "/api/v1/alerts?space=canyon&state=firing").await;
        v["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["kind"] == "seq_jump")
            .cloned()
    })
    .await;
    assert_eq!(alert["severity"], "warning", "{alert}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_count_corrects_the_zone_and_its_area_and_stays_visible() {
    let stack = Stack::start();
    let svc = start_service(stack.config("vf-headcount")).await;
    let addr = svc.http_addr;
    let ts = local(Utc::now() - TimeDelta::minutes(2));
    // The zone's camera is mounted reversed: its "out" are entries.
    publish_all(
        stack.mq.port(),
        "pub-hc",
        vec![
            (counts_topic("canyon", "gate-1"), report(1, &ts, 100, 10)),
            (
                counts_topic("canyon-pines", "cam-pines"),
                report(1, &ts, 0, 40),
            ),
        ],
    )
    .await;
    wait_entries(addr, "canyon-pines", 40).await;
    let canyon = wait_entries(addr, "canyon", 100).await;
    assert_eq!(canyon["occupancy"], 90);

    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon-pines/recount"))
        .json(&serde_json::json!({ "inside": 25, "reason": "closing sweep" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (&rec["before"], &rec["delta"]),
        (&40.into(), &(-15).into()),
        "{rec}"
    );

    // Occupancy continues from the count; the canyon is the canyon's own gates' figure: it is
    // measured at its gates, so the zone's correction does not roll up into it.
    let zone = eventually(10, "the zone's new occupancy", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon-pines").await;
        (v["occupancy"] == 25).then_some(v)
    })
    .await;
    assert_eq!(zone["corrected_today"], -15, "{zone}");
    assert_eq!(zone["entries_today"], 40, "entries are never rewritten");
    publish_all(
        stack.mq.port(),
        "pub-hc2",
        vec![(
            counts_topic("canyon-pines", "cam-pines"),
            report(2, &local(Utc::now()), 0, 5),
        )],
    )
    .await;
    eventually(10, "counting to go on from the head count", || async {
        let (_, v) = get_json(addr, "/api/v1/spaces/canyon-pines").await;
        (v["occupancy"] == 30).then_some(())
    })
    .await;
    // A head count of the area corrects the area and the county it rolls up to.
    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon/recount"))
        .json(&serde_json::json!({ "inside": 70, "reason": "gate count" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(10, "the county to follow", || async {
        let (_, c) = get_json(addr, "/api/v1/spaces/canyon").await;
        let (_, k) = get_json(addr, "/api/v1/spaces/county").await;
        (c["occupancy"] == 70 && k["corrected_today"] == -20).then_some(())
    })
    .await;

    // The correction is in the series beside the counts, and in the daily report.
    let db = stack.db().await;
    let corrections: Vec<(String, i64)> = db
        .query(
            "SELECT space_id, sum(correction)::int8 FROM space_series_1m GROUP BY 1 \
             HAVING sum(correction) <> 0 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        corrections,
        [
            ("canyon".to_string(), -20),
            ("canyon-pines".to_string(), -15),
            ("county".to_string(), -20)
        ]
    );
    let today = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let (s, report) = get_json(addr, &format!("/api/v1/reports/daily?day={today}")).await;
    assert_eq!(s, 200, "{report}");
    let canyon = report["areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["space"] == "canyon")
        .cloned()
        .unwrap();
    assert_eq!(canyon["corrections"], -20, "{canyon}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    svc.shutdown().await;
}

//! The CalIt2 door counts (UCI, 15 weeks of 30-minute in/out slots) replayed through a real
//! Mosquitto into the service: stored totals equal the dataset's, the two broken upstream rows
//! are handled, and the crowd never goes below zero (the drift is kept instead).

mod common;

use std::time::Instant;

use chrono::{NaiveTime, TimeDelta, TimeZone, Utc};
use common::*;
use visitorflow::sim::{self, ReplayOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calit2_replay_stores_the_dataset_totals_and_never_a_negative_crowd() {
    let Some(file) = data::dataset("calit2/calit2_inout_merged.csv") else {
        return;
    };
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (set VISITORFLOW_DATA_DIR)", file.display()));
    let slots = sim::parse_calit2(&text).unwrap();
    assert_eq!(slots.len(), 5040);

    let stack = Stack::start();
    let cfg = stack.config("vf-calit2");
    let registry = cfg.registry().unwrap();
    let svc = start_service(cfg.clone()).await;

    // Align the dataset's midnights with local midnights, ending before today, so its days are
    // the service's business days.
    let tz = registry.tz;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let first_day = today - TimeDelta::days(107);
    let rebase = tz
        .from_local_datetime(&first_day.and_time(NaiveTime::MIN))
        .unwrap()
        .with_timezone(&Utc);
    let mut opts = ReplayOptions::new(&file);
    opts.device = Some("door".into());
    opts.rebase = Some(rebase);
    let started = Instant::now();
    let stats = sim::replay(opts, &registry, &cfg.mqtt).await.unwrap();
    let published = started.elapsed();
    assert_eq!(
        (
            stats.reports,
            stats.total_in,
            stats.total_out,
            stats.empty_cells
        ),
        (5040, 19_625, 18_806, 2)
    );

    let db = stack.db().await;
    let stored = eventually(120, "all 5040 reports to be committed", || async {
        let s = stored(&db).await;
        (s.0 == 5040).then_some(s)
    })
    .await;
    let committed = started.elapsed();
    assert_eq!(stored, (5040, 5040, 19_625, 18_806));
    assert_eq!(bucket_totals(&db, "village").await, (19_625, 18_806));
    let min: Option<i64> = db
        .query_one(
            "SELECT min(occupancy) FROM space_series_1m WHERE space_id = 'village'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        min.is_some_and(|m| m >= 0),
        "occupancy never negative, got {min:?}"
    );

    // The last day, recomputed from the dataset: reset at midnight, exits beyond the crowd kept
    // as drift rather than shown as a negative crowd.
    let last_day = slots.last().unwrap().start.date();
    let (mut occ, mut drift, mut entries, mut peak) = (0i64, 0i64, 0i64, 0i64);
    for s in slots.iter().filter(|s| s.start.date() == last_day) {
        let (i, o) = (
            i64::from(s.in_count.unwrap_or(0)),
            i64::from(s.out_count.unwrap_or(0)),
        );
        entries += i;
        occ += i - o;
        if occ < 0 {
            drift -= occ;
            occ = 0;
        }
        peak = peak.max(occ);
    }
    let v = wait_entries(svc.http_addr, "village", entries as u64).await;
    assert_eq!(v["occupancy"], occ);
    assert_eq!(v["drift_today"], drift);
    assert_eq!(v["peak_today"], peak);
    let (_, daily) = get_json(
        svc.http_addr,
        "/api/v1/spaces/village/series?step=1d&from=2000-01-01T00:00:00Z",
    )
    .await;
    let days = daily["points"].as_array().unwrap();
    assert_eq!(days.len(), 105, "15 weeks of local days");
    let sum: i64 = days.iter().map(|d| d["entries"].as_i64().unwrap()).sum();
    assert_eq!(sum, 19_625);
    eprintln!(
        "calit2 replay: 5040 reports published in {:.2} s, all committed after {:.2} s ({:.0} reports/s end to end)",
        published.as_secs_f64(),
        committed.as_secs_f64(),
        5040.0 / committed.as_secs_f64()
    );
    svc.shutdown().await;
}

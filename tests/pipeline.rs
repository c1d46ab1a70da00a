//! End-to-end: MQTT reports through a real Mosquitto into the service, committed to a real
//! PostgreSQL, visible in the API; duplicates, restarts and broker outages lose and double nothing.

mod common;

use std::time::Duration;

use chrono::{FixedOffset, Utc};
use common::*;

fn now_local() -> String {
    Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

/// Reports of one canyon device; a redelivery carries the same timestamp as the original, so
/// callers pass the test's one `ts` (a later stamp on seq 1 would read as a device reboot).
fn gate_reports(
    ts: &str,
    device: &str,
    seqs: std::ops::RangeInclusive<u64>,
    e: u32,
    x: u32,
) -> Vec<(String, String)> {
    seqs.map(|s| (counts_topic("canyon", device), report(s, ts, e, x)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_api_once_and_bad_input_is_rejected_with_reasons() {
    let stack = Stack::start();
    let ts = now_local();
    let svc = start_service(stack.config("vf-api")).await;
    let addr = svc.http_addr;

    let mut msgs = gate_reports(&ts, "gate-1", 1..=50, 2, 1);
    msgs.extend(gate_reports(&ts, "gate-1", 1..=10, 2, 1)); // redelivered / replayed
    msgs.push((
        counts_topic("canyon-pines", "cam-pines"),
        report(1, &ts, 0, 7),
    )); // mounted reversed
    msgs.push((counts_topic("park", "barrier"), report(1, &ts, 9, 2)));
    msgs.push((counts_topic("canyon", "ghost"), report(1, &ts, 5, 0)));
    msgs.push((counts_topic("village", "gate-1"), report(99, &ts, 5, 0)));
    msgs.push((counts_topic("canyon", "gate-2"), "{not json".into()));
    msgs.push((
        counts_topic("canyon", "gate-2"),
        report(1, &ts, 0, 0).replace("\"in\":0", "\"in\":-4"),
    ));
    msgs.push(("vf/canyon/gate-2/counts/extra".into(), report(2, &ts, 5, 0)));
    publish_all(stack.mq.port(), "pub-api", msgs).await;

    let canyon = wait_entries(addr, "canyon", 100).await;
    assert_eq!(canyon["exits_today"], 50);
    assert_eq!(canyon["occupancy"], 50);
    assert_eq!(canyon["utilisation"], 0.05);
    assert_eq!(canyon["instant_capacity"], 1000);
    // The zone's camera counts the zone only: the canyon is measured at its own gates.
    let zone = wait_entries(addr, "canyon-pines", 7).await;
    assert_eq!(zone["occupancy"], 7);
    let (_, county) = get_json(addr, "/api/v1/spaces/county").await;
    assert_eq!(
        county["entries_today"], 100,
        "area gates roll up to the county, zones and car parks do not"
    );
    let park = wait_entries(addr, "park", 9).await;
    assert_eq!(park["unit"], "vehicles");
    let (_, spaces) = get_json(addr, "/api/v1/spaces").await;
    assert_eq!(spaces.as_array().unwrap().len(), 5);

    let db = stack.db().await;
    let (rows, distinct, e, x) = stored(&db).await;
    assert_eq!(
        (rows, distinct),
        (52, 52),
        "50 gate reports + zone + car park, each once"
    );
    assert_eq!((e, x), (100 + 7 + 9, 50 + 2));
    assert_eq!(bucket_totals(&db, "canyon").await, (100, 50));

    let metrics = eventually(10, "reject counters", || async {
        let m = get_text(addr, "/metrics").await;
        let all = [
            "unknown_device",
            "space_mismatch",
            "malformed_json",
            "negative_count",
        ]
        .iter()
        .all(|r| {
            m.contains(&format!(
                "visitorflow_reports_rejected_total{{reason=\"{r}\"}}"
            ))
        });
        all.then_some(m)
    })
    .await;
    assert!(metrics.contains("visitorflow_reports_duplicate_total"));
    assert!(metrics.contains("visitorflow_occupancy{space=\"canyon\"} 50"));

    let (status, err) = get_json(addr, "/api/v1/spaces/nowhere").await;
    assert_eq!(status, 404);
    assert!(err["error"]["reason"].as_str().unwrap().contains("nowhere"));
    let (status, err) = get_json(addr, "/api/v1/spaces/canyon/series?step=5m").await;
    assert_eq!(status, 400);
    assert!(err["error"]["reason"].as_str().unwrap().contains("step"));
    let (status, series) = get_json(addr, "/api/v1/spaces/canyon/series?step=1m").await;
    assert_eq!(status, 200);
    let pts = series["points"].as_array().unwrap();
    let sum: i64 = pts.iter().map(|p| p["entries"].as_i64().unwrap()).sum();
    assert_eq!(sum, 100);
    assert_eq!(pts.last().unwrap()["occupancy"], 50);
    for step in ["1h", "1d"] {
        let (status, s) =
            get_json(addr, &format!("/api/v1/spaces/canyon/series?step={step}")).await;
        assert_eq!(status, 200, "{step}");
        assert_eq!(s["points"][0]["entries"], 100, "{step}");
    }
    let (status, ready) = get_json(addr, "/readyz").await;
    assert_eq!((status, ready["ready"].as_bool()), (200, Some(true)));
    // VISITORFLOW_TEST_TIMESCALEDB=1 on a machine with TimescaleDB runs this on that path.
    assert_eq!(
        ready["storage_mode"].as_str(),
        Some(expected_mode(&stack.pg).as_str())
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_occupancy_and_redelivery_counts_once() {
    let stack = Stack::start();
    let ts = now_local();
    let svc = start_service(stack.config("vf-restart")).await;
    publish_all(
        stack.mq.port(),
        "pub-r1",
        gate_reports(&ts, "gate-1", 1..=20, 3, 1),
    )
    .await;
    wait_entries(svc.http_addr, "canyon", 60).await;
    svc.shutdown().await;

    let svc = start_service(stack.config("vf-restart")).await;
    // Before any new report arrives, the figures come back from the database, not from zero.
    let v = eventually(10, "restored occupancy", || async {
        let (_, v) = get_json(svc.http_addr, "/api/v1/spaces/canyon").await;
        (v["occupancy"] == 40).then_some(v)
    })
    .await;
    assert_eq!(v["entries_today"], 60);
    assert_eq!(v["peak_today"], 40);

    publish_all(
        stack.mq.port(),
        "pub-r2",
        gate_reports(&ts, "gate-1", 1..=25, 3, 1),
    )
    .await;
    let v = wait_entries(svc.http_addr, "canyon", 75).await;
    assert_eq!(v["occupancy"], 50);
    let (rows, distinct, ..) = stored(&stack.db().await).await;
    assert_eq!((rows, distinct), (25, 25));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_and_ingester_outage_lose_nothing() {
    let mut stack = Stack::start();
    let ts = now_local();
    let cfg = stack.config("vf-outage");
    let svc = start_service(cfg.clone()).await;
    publish_all(
        stack.mq.port(),
        "pub-o1",
        gate_reports(&ts, "gate-1", 1..=200, 1, 0),
    )
    .await;
    wait_entries(svc.http_addr, "canyon", 200).await;

    // Broker restarts under a running ingester: it reconnects and resumes its session.
    stack.mq.stop().unwrap();
    stack.mq.start_again().unwrap();
    publish_all(
        stack.mq.port(),
        "pub-o2",
        gate_reports(&ts, "gate-1", 201..=400, 1, 0),
    )
    .await;
    wait_entries(svc.http_addr, "canyon", 400).await;

    // Ingester down: the broker queues for its persistent session, even across its own restart.
    svc.shutdown().await;
    publish_all(
        stack.mq.port(),
        "pub-o3",
        gate_reports(&ts, "gate-1", 401..=700, 1, 0),
    )
    .await;
    stack.mq.stop().unwrap();
    stack.mq.start_again().unwrap();
    publish_all(
        stack.mq.port(),
        "pub-o4",
        gate_reports(&ts, "gate-2", 1..=300, 0, 1),
    )
    .await;

    let svc = start_service(cfg).await;
    let v = wait_entries(svc.http_addr, "canyon", 700).await;
    let v = if v["exits_today"] == 300 {
        v
    } else {
        eventually(20, "exits to reach 300", || async {
            let (_, v) = get_json(svc.http_addr, "/api/v1/spaces/canyon").await;
            (v["exits_today"] == 300).then_some(v)
        })
        .await
    };
    assert_eq!(v["occupancy"], 400);
    let db = stack.db().await;
    assert_eq!(stored(&db).await, (1000, 1000, 700, 300));
    assert_eq!(bucket_totals(&db, "canyon").await, (700, 300));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_crash_mid_stream_loses_and_doubles_nothing() {
    let mut stack = Stack::start();
    let ts = now_local();
    let svc = start_service(stack.config("vf-pgcrash")).await;
    let port = stack.mq.port();
    let publisher = tokio::spawn(async move {
        for chunk in 0..10u64 {
            let first = chunk * 300 + 1;
            publish_all(
                port,
                &format!("pub-c{chunk}"),
                gate_reports(&ts, "gate-1", first..=first + 299, 1, 0),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    stack.pg.crash().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.pg.start_again().unwrap();
    publisher.await.unwrap();

    let v = wait_entries(svc.http_addr, "canyon", 3000).await;
    assert_eq!(v["occupancy"], 3000);
    let db = stack.db().await;
    assert_eq!(stored(&db).await, (3000, 3000, 3000, 0));
    assert_eq!(bucket_totals(&db, "canyon").await, (3000, 0));
    let m = get_text(svc.http_addr, "/metrics").await;
    assert!(
        m.contains("visitorflow_ingester_restarts_total{cause=\"database\"}"),
        "the crash was noticed"
    );
    svc.shutdown().await;
}

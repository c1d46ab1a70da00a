//! A streaming read replica for the API's history (`[database] read_url`): series, level
//! changes, alert lists and the daily report are read from it while it is current, and from the
//! primary — saying so — while its replay lags (paused here with `pg_wal_replay_pause()`); old
//! data is never served as current. Real processes: a primary, a `pg_basebackup` standby,
//! Mosquitto and the service. Its own binary: the lag gauge is process-wide.

mod common;

use common::*;
use visitorflow::supervise::PgCluster;

async fn series(api: std::net::SocketAddr) -> (String, serde_json::Value) {
    let r = http()
        .get(format!(
            "http://{api}/api/v1/spaces/village/series?step=1m&from=2020-01-01T00:00:00Z"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let from = r.headers()["x-visitorflow-read-from"]
        .to_str()
        .unwrap()
        .to_owned();
    (from, r.json().await.unwrap())
}

fn entries(v: &serde_json::Value) -> i64 {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["entries"].as_i64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_read_from_the_replica_while_it_is_current_and_from_the_primary_when_it_lags() {
    let mut stack = Stack::start();
    let dir = stack.dir.path().join("replica");
    let replica = tokio::task::block_in_place(|| PgCluster::standby_of(&mut stack.pg, &dir, false))
        .expect("a streaming replica");
    let mut cfg = stack.config("vf-replica");
    cfg.database.read_url = replica.url("vf");
    cfg.database.max_replica_lag_ms = 1500;
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let ts = |s: i64| (chrono::Utc::now() - chrono::TimeDelta::seconds(s)).to_rfc3339();
    let first: Vec<_> = (1..=5)
        .map(|i| {
            (
                counts_topic("village", "door"),
                report(i, &ts(60 - i as i64), 2, 0),
            )
        })
        .collect();
    publish_all(stack.mq.port(), "pub-replica-1", first).await;
    wait_entries(api, "village", 10).await;

    // Current: read from the replica, and the body says so too.
    let (from, v) = eventually(30, "a read from the replica", || async {
        let (from, v) = series(api).await;
        (from.starts_with("replica") && entries(&v) == 10).then_some((from, v))
    })
    .await;
    assert_eq!(v["read_from"]["server"], "replica", "{v}");
    println!("current replica: {from}");

    // Replay paused: the replica keeps its old figures; the primary's new ones are what is read.
    let rdb = visitorflow::store::connect(&replica.url("vf"))
        .await
        .unwrap();
    rdb.batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let more: Vec<_> = (6..=8)
        .map(|i| {
            (
                counts_topic("village", "door"),
                report(i, &ts(60 - i as i64), 2, 0),
            )
        })
        .collect();
    publish_all(stack.mq.port(), "pub-replica-2", more).await;
    wait_entries(api, "village", 16).await;
    let (from, v) = eventually(30, "the primary read while the replica lags", || async {
        let (from, v) = series(api).await;
        from.starts_with("primary; replica-behind")
            .then_some((from, v))
    })
    .await;
    assert_eq!(entries(&v), 16, "fresh figures, not the replica's 10: {v}");
    assert_eq!(v["read_from"]["server"], "primary_replica_behind", "{v}");
    let lag = v["read_from"]["lag_s"].as_f64().unwrap();
    assert!(lag > 1.5, "lag {lag}");
    let stale: i64 = rdb
        .query_one(
            "SELECT coalesce(sum(entries), 0)::int8 FROM space_series_1m WHERE space_id = 'village'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stale, 10, "the replica really is behind");
    let m = get_text(api, "/metrics").await;
    let gauge: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("visitorflow_db_replica_lag_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(gauge > 1.5, "lag gauge {gauge}");
    // The other history routes say where they read too.
    for path in [
        "/api/v1/alerts",
        "/api/v1/spaces/village/levels",
        "/api/v1/reports/daily",
    ] {
        let r = http()
            .get(format!("http://{api}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers()["x-visitorflow-read-from"].to_str().unwrap();
        assert!(h.starts_with("primary; replica-behind"), "{path}: {h}");
    }
    println!("lagging replica: {from}");

    // Replay resumed: back to the replica once it caught up.
    rdb.batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    let (from, v) = eventually(30, "reads back on the replica", || async {
        let (from, v) = series(api).await;
        from.starts_with("replica").then_some((from, v))
    })
    .await;
    assert_eq!(entries(&v), 16);
    println!("caught up: {from}");
    svc.shutdown().await;
}

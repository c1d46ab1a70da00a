//! Database failover to an **asynchronous** standby (PostgreSQL streaming replication): what the
//! promoted server lacks of the batches acknowledged to the broker is named exactly — device and
//! seq — recorded, counted and alerted. Its own test binary: the failover metrics are
//! process-wide, one service per process (`tests/failover.rs` is the synchronous case).

mod common;

use std::time::Duration;

use common::check::{self, workload};
use common::*;
use visitorflow::supervise::PgCluster;

/// With an asynchronous standby the last acknowledged batches can be missing after promotion;
/// the service names them exactly. Replication is stopped half-way (the standby's
/// `primary_conninfo` emptied), the rest of the workload is committed and acknowledged on the
/// primary alone, the primary is SIGKILLed and the standby promoted; a few new reports start the
/// next session. Asserted: `report_losses` names exactly the acknowledged reports missing on the
/// promoted server (device and seq), the log/metric count them, and the `reports_lost` alert
/// opens for their spaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_an_asynchronous_standby_promoted_names_exactly_what_was_lost() {
    let mut stack = Stack::start();
    let standby_dir = stack.dir.path().join("standby");
    let mut standby =
        tokio::task::block_in_place(|| PgCluster::standby_of(&mut stack.pg, &standby_dir, false))
            .expect("an asynchronous standby");
    let mut cfg = stack.config("vf-failover-async");
    cfg.alerting.tick_ms = 100;
    cfg.database.url = format!(
        "postgres://visitorflow@127.0.0.1:{},127.0.0.1:{}/vf?target_session_attrs=read-write",
        stack.pg.port(),
        standby.port()
    );
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let primary = stack.db().await;

    // Under 128 seqs per device after the stop, so the window tells every seq apart.
    let w = workload(200, 50, 13);
    let half = w.chunks.len() / 2 + 1;
    for (i, chunk) in w.chunks[..half].iter().enumerate() {
        publish_all(stack.mq.port(), &format!("pub-async-a{i}"), chunk.clone()).await;
    }
    let first: std::collections::HashSet<_> =
        w.chunk_keys[..half].iter().flatten().cloned().collect();
    check::wait_stored(&primary, &first, Duration::from_secs(30)).await;
    // Replication stops: what the primary commits from now on never reaches the standby.
    let replica = visitorflow::store::connect(&standby.url("vf"))
        .await
        .unwrap();
    let sent: i64 = primary
        .query_one("SELECT count(*) FROM reports", &[])
        .await
        .unwrap()
        .get(0);
    eventually(30, "the standby to replay the first half", || async {
        let n: i64 = replica
            .query_one("SELECT count(*) FROM reports", &[])
            .await
            .ok()?
            .get(0);
        (n == sent).then_some(())
    })
    .await;
    // Two statements: a multi-statement string is one implicit transaction, which ALTER SYSTEM
    // refuses.
    for stmt in [
        "ALTER SYSTEM SET primary_conninfo = ''",
        "SELECT pg_reload_conf()",
    ] {
        replica.batch_execute(stmt).await.unwrap();
    }
    eventually(30, "replication to stop", || async {
        let n: i64 = primary
            .query_one("SELECT count(*) FROM pg_stat_replication", &[])
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    for (i, chunk) in w.chunks[half..].iter().enumerate() {
        publish_all(stack.mq.port(), &format!("pub-async-b{i}"), chunk.clone()).await;
    }
    check::wait_stored(&primary, &w.keys(), Duration::from_secs(30)).await;
    // Committed is not yet acknowledged: give the ingester its acknowledgement.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(primary);
    tokio::task::block_in_place(|| stack.pg.kill()).expect("SIGKILL the primary");
    tokio::task::block_in_place(|| standby.promote()).expect("promote the standby");

    // New reports after the failover: the ingester's next commit fails, its next session starts
    // on the promoted server and compares.
    let ts = (chrono::Utc::now() - chrono::TimeDelta::seconds(2)).to_rfc3339();
    let after: Vec<(String, String)> = check::DEVICES
        .iter()
        .map(|(space, device, _)| (counts_topic(space, device), report(201, &ts, 1, 0)))
        .collect();
    publish_all(stack.mq.port(), "pub-async-after", after).await;
    let db = visitorflow::store::connect(&standby.url("vf"))
        .await
        .unwrap();
    let new: std::collections::HashSet<_> = check::DEVICES
        .iter()
        .map(|(_, d, _)| (d.to_string(), 201))
        .collect();
    check::wait_stored(&db, &new, Duration::from_secs(60)).await;

    let stored = check::stored_keys(&db).await;
    let missing: std::collections::BTreeSet<_> = w.keys().difference(&stored).cloned().collect();
    assert!(
        !missing.is_empty(),
        "the stop lost nothing: the test proves nothing"
    );
    let named: std::collections::BTreeSet<(String, u64)> = db
        .query("SELECT device_id, seq_from, seq_to FROM report_losses", &[])
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            let d: String = r.get(0);
            let (a, b): (i64, i64) = (r.get(1), r.get(2));
            (a as u64..=b as u64).map(move |s| (d.clone(), s))
        })
        .collect();
    assert_eq!(
        named, missing,
        "named as lost vs missing on the promoted server"
    );

    let metrics = get_text(api, "/metrics").await;
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("visitorflow_reports_lost_total{cause=\"failover\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(counted, Some(missing.len() as f64));
    let spaces: std::collections::BTreeSet<&str> = check::DEVICES
        .iter()
        .filter(|(_, d, _)| missing.iter().any(|(m, _)| m == d))
        .map(|(s, _, _)| *s)
        .collect();
    let alerted = eventually(30, "reports_lost alerts", || async {
        let (_, v) = get_json(api, "/api/v1/alerts?limit=1000").await;
        let open: std::collections::BTreeSet<String> = v["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["kind"] == "reports_lost" && a["state"] == "firing")
            .filter_map(|a| a["space_id"].as_str().map(str::to_owned))
            .collect();
        spaces.iter().all(|s| open.contains(*s)).then_some(open)
    })
    .await;
    println!(
        "(g) asynchronous standby promoted: {} acknowledged reports missing on the promoted server, {} named in report_losses, alerts open for {alerted:?}",
        missing.len(),
        named.len()
    );
    svc.shutdown().await;
}

//! Database failover with PostgreSQL's own streaming replication: the service is given both
//! servers in one multi-host URL (`target_session_attrs=read-write`), the primary is SIGKILLed
//! in the middle of a stream and its synchronous standby promoted. Checked as the fault suite
//! checks (`common::check`): the stored set on the promoted standby equals the published set,
//! every aggregate equals its recomputation, occupancy is exact; the failover and recovery times
//! are printed.

mod common;

use std::time::{Duration, Instant};

use common::check::{self, Feed, Model, workload};
use common::*;
use visitorflow::supervise::PgCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_standby_promoted_after_the_primary_is_killed_loses_nothing() {
    let mut stack = Stack::start();
    let standby_dir = stack.dir.path().join("standby");
    let mut standby =
        tokio::task::block_in_place(|| PgCluster::standby_of(&mut stack.pg, &standby_dir, true))
            .expect("a synchronous standby");
    let mut cfg = stack.config("vf-failover");
    cfg.database.url = format!(
        "postgres://visitorflow@127.0.0.1:{},127.0.0.1:{}/vf?target_session_attrs=read-write",
        stack.pg.port(),
        standby.port()
    );
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let metrics = get_text(api, "/metrics").await;
    let primary_host = format!(
        "visitorflow_db_primary{{host=\"127.0.0.1:{}\"}} 1",
        stack.pg.port()
    );
    assert!(
        metrics.contains(&primary_host),
        "{primary_host} not in the scrape"
    );

    // The standby is synchronous: the primary waits for it on every commit.
    let primary = stack.db().await;
    let sync = eventually(30, "the standby to stream synchronously", || async {
        let rows = primary
            .query("SELECT sync_state FROM pg_stat_replication", &[])
            .await
            .ok()?;
        let states: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        (states == ["sync"]).then_some(states)
    })
    .await;
    assert_eq!(sync, ["sync"]);
    commit_latency(&primary).await;

    let w = workload(600, 250, 11);
    let model = Model::of(&w.messages());
    let feed = Feed::start(
        stack.mq.port(),
        "pub-failover",
        &w,
        Duration::from_millis(100),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| stack.pg.kill()).expect("SIGKILL the primary");
    tokio::task::block_in_place(|| standby.promote()).expect("promote the standby");
    let promoted = killed.elapsed();
    let before = feed.acked();

    let db = visitorflow::store::connect(&standby.url("vf"))
        .await
        .unwrap();
    // Writes resume on the promoted standby: the first report stored after the promotion.
    let count = "SELECT count(*) FROM reports";
    let at_promotion: i64 = db.query_one(count, &[]).await.unwrap().get(0);
    let resumed = eventually(60, "writes to resume on the promoted standby", || async {
        let n: i64 = db.query_one(count, &[]).await.ok()?.get(0);
        (n > at_promotion).then(|| killed.elapsed())
    })
    .await;
    check::wait_stored(&db, &before, Duration::from_secs(60)).await;
    let recovered = killed.elapsed();
    feed.finish().await;
    check::wait_stored(&db, &w.keys(), Duration::from_secs(60)).await;
    let mut f = check::verify(&db, Some(api), Some(&model)).await;
    for _ in 0..20 {
        if f.ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        f = check::verify(&db, Some(api), Some(&model)).await;
    }
    let name = "(f) primary SIGKILLed, synchronous standby promoted";
    println!(
        "{} (promoted {:.2} s after the kill, writes resumed after {:.2} s)",
        f.line(name, Some(recovered)),
        promoted.as_secs_f64(),
        resumed.as_secs_f64()
    );
    assert!(f.ok(), "{name}: {f:#?}");
    assert_eq!(f.stored_rows, f.published);

    // The service names the new primary and counts the failover.
    let metrics = get_text(api, "/metrics").await;
    let new_host = format!(
        "visitorflow_db_primary{{host=\"127.0.0.1:{}\"}} 1",
        standby.port()
    );
    assert!(metrics.contains(&new_host), "{new_host} not in the scrape");
    let old_host = format!(
        "visitorflow_db_primary{{host=\"127.0.0.1:{}\"}} 0",
        stack.pg.port()
    );
    assert!(metrics.contains(&old_host), "{old_host} not in the scrape");
    let failovers = metrics
        .lines()
        .find_map(|l| l.strip_prefix("visitorflow_db_failovers_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        failovers.is_some_and(|n| n >= 1.0),
        "failovers: {failovers:?}"
    );
    let without = |suffix: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("visitorflow_db_without_primary_seconds_{suffix} "))
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert!(without("count").is_some_and(|n| n >= 1.0), "{metrics}");
    println!(
        "without a primary: {:.2} s (visitorflow_db_without_primary_seconds)",
        without("sum").unwrap_or_default()
    );
    svc.shutdown().await;
}

/// Prints a single-row commit's latency on the primary waiting for the synchronous standby
/// (`synchronous_commit = on`) against not waiting (`local`), alternated, in one run (a logged
/// table: a temporary one writes no WAL and never waits).
async fn commit_latency(db: &tokio_postgres::Client) {
    db.batch_execute("CREATE TABLE commit_latency (i int)")
        .await
        .unwrap();
    let mut per_mode = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let (k, mode) = if round % 2 == 0 {
            (0, "on")
        } else {
            (1, "local")
        };
        db.batch_execute(&format!("SET synchronous_commit = {mode}"))
            .await
            .unwrap();
        let t = Instant::now();
        for i in 0..200 {
            db.execute("INSERT INTO commit_latency VALUES ($1)", &[&i])
                .await
                .unwrap();
        }
        per_mode[k].push(t.elapsed().as_secs_f64() / 200.0 * 1e6);
    }
    db.batch_execute("SET synchronous_commit = on")
        .await
        .unwrap();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, local) = (median(&mut per_mode[0]), median(&mut per_mode[1]));
    println!(
        "commit latency: {on:.0} µs waiting for the synchronous standby, {local:.0} µs not waiting: {:.2}x (medians of 3 × 200 commits)",
        on / local
    );
}

//! `kill -9` of the real `visitorflow` binary in the middle of a stream, several times: the
//! restarted process reloads what was committed, the broker redelivers what was not acknowledged,
//! and the stored set equals the published set — nothing lost, nothing counted twice. What the
//! broker redelivers is classified as duplicates: no refusal is counted or logged.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary with its warnings (and the ingester's notices) appended to `log`.
fn spawn(config: &std::path::Path, log: &std::path::Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_visitorflow"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,visitorflow::ingest=info")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start visitorflow")
}

/// A counter's value in `/metrics` (0 when absent).
async fn metric(addr: std::net::SocketAddr, line_start: &str) -> f64 {
    get_text(addr, "/metrics")
        .await
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_ready(addr: std::net::SocketAddr) {
    eventually(30, "the service to be ready", || async {
        match reqwest::get(format!("http://{addr}/readyz")).await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_stream_loses_and_doubles_nothing() {
    kill_nine(false).await;
}

/// The same with every batch's state journaled (no checkpoint until input pauses): each kill
/// leaves journal rows that the next start must fold exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_between_checkpoints_loses_and_doubles_nothing() {
    kill_nine(true).await;
}

async fn kill_nine(journal: bool) {
    let stack = Stack::start();
    let mut cfg = stack.config(if journal { "vf-kill9j" } else { "vf-kill9" });
    if journal {
        cfg.ingest.state_direct_rows = 0;
        cfg.ingest.state_checkpoint_ms = 600_000;
        cfg.ingest.state_quiet_ms = 600_000;
    }
    let port = free_port();
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let path = stack.dir.path().join("visitorflow.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let addr: std::net::SocketAddr = cfg.http.listen;
    let log = stack.dir.path().join("visitorflow.log");

    let mut child = spawn(&path, &log);
    wait_ready(addr).await;

    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let mq = stack.mq.port();
    let total: u64 = 6000;
    let chunk_of = move |chunk: u64| -> Vec<(String, String)> {
        let first = chunk * 500 + 1;
        (first..first + 500)
            .map(|s| {
                let dev = if s % 2 == 0 { "gate-1" } else { "gate-2" };
                (
                    counts_topic("canyon", dev),
                    report(s / 2 + s % 2, &ts, 1, u32::from(s % 3 == 0)),
                )
            })
            .collect()
    };
    let publish = chunk_of.clone();
    let publisher = tokio::spawn(async move {
        let chunk_of = publish;
        for chunk in 0..(total / 500) {
            publish_all(mq, &format!("pub-k{chunk}"), chunk_of(chunk)).await;
        }
    });
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300 + round * 250)).await;
        child.kill().unwrap(); // SIGKILL: no shutdown code runs
        child.wait().unwrap();
        let killed = std::time::Instant::now();
        child = spawn(&path, &log);
        wait_ready(addr).await;
        slowest = slowest.max(killed.elapsed());
    }
    publisher.await.unwrap();
    let published = std::time::Instant::now();

    let exits = (1..=total).filter(|s| s % 3 == 0).count() as u64;
    let v = wait_entries(addr, "canyon", total).await;
    let committed = published.elapsed();
    assert_eq!(v["exits_today"].as_u64(), Some(exits));
    let db = stack.db().await;
    if journal {
        // Nothing is checkpointed while the service runs: one more kill, and the next start must
        // fold whatever the journal holds into the tables exactly once.
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn(&path, &log);
        wait_ready(addr).await;
        let left: i64 = db
            .query_one("SELECT count(*) FROM state_journal", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "the start folded the journal");
    }
    let state: (i64, i64) = {
        let r = db
            .query_one(
                "SELECT entries, exits FROM space_state WHERE space_id = 'canyon'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(state, (total as i64, exits as i64));
    assert_eq!(
        stored(&db).await,
        (total as i64, total as i64, total as i64, exits as i64)
    );
    assert_eq!(
        bucket_totals(&db, "canyon").await,
        (total as i64, exits as i64)
    );
    // The last process got the broker's redeliveries of what the killed one had committed but
    // not acknowledged (how many depends on where the kill fell), and then the whole stream once
    // more, as a broker redelivers after a crash: 2,872 of each device's 3,000 reports lie below
    // the de-duplication window. Duplicates, never refusals, and not a log line each.
    let redelivered = metric(addr, "visitorflow_reports_duplicate_total").await;
    for chunk in 0..(total / 500) {
        publish_all(mq, &format!("pub-again{chunk}"), chunk_of(chunk)).await;
    }
    eventually(30, "the replayed stream to be settled", || async {
        let d = metric(addr, "visitorflow_reports_duplicate_total").await;
        (d >= redelivered + total as f64).then_some(d)
    })
    .await;
    let duplicates = metric(addr, "visitorflow_reports_duplicate_total").await - redelivered;
    assert_eq!(duplicates, total as f64);
    assert_eq!(stored(&db).await.0, total as i64);
    let refused = metric(addr, "visitorflow_reports_rejected_total").await;
    assert_eq!(refused, 0.0, "redeliveries are not refusals");
    let log = std::fs::read_to_string(&log).unwrap();
    let rejected_lines = log
        .lines()
        .filter(|l| l.contains("rejected MQTT input"))
        .count();
    assert_eq!(rejected_lines, 0, "{log}");
    let folds = log
        .lines()
        .filter(|l| l.contains("wrote the state journal an earlier session left"))
        .count();
    if journal {
        // The kills fell between checkpoints (each start after one folds).
        assert!(folds >= 1, "no start found journal rows to fold: {log}");
    } else {
        assert_eq!(
            folds, 0,
            "a county's few counters write their state directly"
        );
    }
    println!(
        "(f) kill -9 of the binary 3 times mid-stream (journal {journal}, {folds} starts folded it): published {total} reports, stored {total}, \
         lost 0, double-counted 0; back to ready within {:.2} s of each kill, all committed {:.2} s \
         after the last publish; the last start settled {redelivered} redelivered reports and the \
         replayed stream ({duplicates}) as duplicates, refused 0, logged 0 rejection lines",
        slowest.as_secs_f64(),
        committed.as_secs_f64()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

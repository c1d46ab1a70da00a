//! Backpressure, not loss: while the database does not answer, 20,000 reports are published. The
//! ingester takes in at most one batch plus its event channel (2 × `batch_max_messages`
//! publishes), acknowledges nothing, and its memory stays flat; the broker holds the rest for the
//! persistent session, and a second run receives every one of them.
//!
//! Alone in its binary on purpose: it measures this process's resident memory.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::proxy::{Mode, Proxy};
use common::*;
use tokio::io::AsyncWriteExt;

const REPORTS: u64 = 20_000;
const DEVICES: [&str; 4] = ["gate-1", "gate-2", "door", "barrier"];
/// Each payload is padded to this size (unknown fields are ignored), so buffering the backlog
/// (80 MiB) would exceed the bound below by itself.
const PAYLOAD: usize = 4096;
const BATCH: usize = 500;
const BOUND_MIB: u64 = 64;

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn space_of(device: &str) -> &'static str {
    match device {
        "door" => "village",
        "barrier" => "park",
        _ => "canyon",
    }
}

/// Publishes `n` padded reports of `device` with `mosquitto_pub -l` (QoS 1), a separate process,
/// so that the publisher's buffers are not counted in this process's memory.
async fn mosquitto_pub(port: u16, device: &str, seqs: std::ops::RangeInclusive<u64>, ts: &str) {
    let mut child = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-l"])
        .args(["-i", &format!("bp-{device}")])
        .args(["-t", &counts_topic(space_of(device), device)])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    let mut stdin = child.stdin.take().unwrap();
    for seq in seqs {
        let mut line = format!(r#"{{"seq":{seq},"ts":"{ts}","in":1,"out":0,"pad":""#);
        line.push_str(&"x".repeat(PAYLOAD - line.len() - 3));
        line.push_str("\"}\n");
        stdin.write_all(line.as_bytes()).await.unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().await.unwrap().success(),
        "mosquitto_pub failed"
    );
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_keeps_the_backlog_in_the_broker_and_memory_bounded() {
    assert!(
        Command::new("mosquitto_pub")
            .arg("--help")
            .stdout(Stdio::null())
            .status()
            .is_ok(),
        "mosquitto_pub is needed (scripts/test installs mosquitto-clients)"
    );
    let stack = Stack::start();
    let pg = Proxy::start(stack.pg.port()).await;
    let mut cfg = stack.config_via("vf-bp", Some(&pg), None);
    cfg.ingest.batch_max_messages = BATCH;
    // The worst case for memory: the session stays stuck in its commit for the whole outage
    // instead of giving up after the commit timeout (which would drop what it holds).
    cfg.ingest.commit_timeout_ms = 120_000;
    let svc = start_service(cfg.clone()).await;
    let api = svc.http_addr;
    let ts = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();

    // Warm up: the ingester has run a few batches before the baseline is taken.
    mosquitto_pub(stack.mq.port(), "gate-1", 1..=100, &ts).await;
    wait_entries(api, "canyon", 100).await;
    let taken_before = metric(
        &get_text(api, "/metrics").await,
        "visitorflow_mqtt_messages_total",
    );
    let before = vm_rss_kib();

    pg.set(Mode::Blackhole);
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(vm_rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let per = REPORTS / DEVICES.len() as u64;
    let publishers: Vec<_> = DEVICES
        .iter()
        .map(|&d| {
            let (port, ts) = (stack.mq.port(), ts.clone());
            // gate-1 goes on from its warm-up reports.
            let first = if d == "gate-1" { 101 } else { 1 };
            tokio::spawn(async move { mosquitto_pub(port, d, first..=first + per - 1, &ts).await })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    // The broker has acknowledged all 20,000 to the publishers; keep watching a while longer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let during = vm_rss_kib();
    let peak = peak.load(Ordering::Relaxed);
    let taken = metric(
        &get_text(api, "/metrics").await,
        "visitorflow_mqtt_messages_total",
    ) - taken_before;
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "backpressure: {REPORTS} reports of {PAYLOAD} B published during a database black hole; \
         the ingester took in {taken} (batch {BATCH}, channel {}), VmRSS {:.1} MiB before, \
         {:.1} MiB peak, {:.1} MiB at the end (growth {growth_mib:.1} MiB, bound {BOUND_MIB} MiB)",
        2 * BATCH,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        during as f64 / 1024.0,
    );
    assert!(
        taken <= 2 * BATCH as u64,
        "the stuck session took in two batches at most (one stuck in its commit, the next \
         filled behind it), took {taken}"
    );
    assert!(
        growth_mib < BOUND_MIB as f64,
        "memory grew {growth_mib:.1} MiB"
    );
    let db = stack.db().await;
    assert_eq!(
        stored(&db).await.0,
        100,
        "nothing committed during the outage"
    );

    // Second run: the first instance goes away without acknowledging anything; a new one (same
    // session) receives the whole backlog from the broker once the database answers again.
    svc.shutdown().await;
    pg.set(Mode::Pass);
    cfg.ingest.commit_timeout_ms = 10_000;
    let svc = start_service(cfg).await;
    let t = std::time::Instant::now();
    let total = (REPORTS + 100) as i64;
    eventually(60, "the whole backlog to be committed", || async {
        (stored(&db).await.0 == total).then_some(())
    })
    .await;
    println!(
        "backpressure: after the outage, a second run committed the broker's {REPORTS} held reports in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(stored(&db).await, (total, total, total, 0));
    svc.shutdown().await;
}

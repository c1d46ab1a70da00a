//! A running service's `/metrics` passes `promtool check metrics` (Prometheus' naming and format
//! lints), and the container health check in docker-compose.yml (bash's /dev/tcp, no curl) tells
//! a ready service from a missing one.

mod common;
mod ops_support;

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{FixedOffset, Utc};
use common::*;
use ops_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_passes_promtool_and_the_compose_health_check_works() {
    let promtool = promtool();
    let stack = Stack::start();
    let svc = start_service(stack.config("vf-ops-metrics")).await;
    let addr = svc.http_addr;

    // Exercise every kind of metric: accepted reports (lag histogram, batches), a duplicate, a
    // rejected one, per-space gauges.
    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let mut msgs: Vec<(String, String)> = (1..=5)
        .map(|s| (counts_topic("canyon", "gate-1"), report(s, &ts, 2, 1)))
        .collect();
    msgs.push((counts_topic("canyon", "gate-1"), report(1, &ts, 2, 1)));
    msgs.push((counts_topic("canyon", "ghost"), report(1, &ts, 1, 0)));
    publish_all(stack.mq.port(), "pub-ops-metrics", msgs).await;
    wait_entries(addr, "canyon", 10).await;
    eventually(10, "reject and lag metrics", || async {
        let m = get_text(addr, "/metrics").await;
        let all = [
            "visitorflow_reports_rejected_total{",
            "visitorflow_ingest_lag_seconds_bucket{",
            "visitorflow_batch_write_seconds_bucket{",
            "visitorflow_reports_duplicate_total",
            "visitorflow_broker_connected",
            "visitorflow_occupancy{",
        ]
        .iter()
        .all(|n| m.contains(n));
        all.then_some(())
    })
    .await;

    // Metrics the traffic above did not touch are not rendered yet: register every one the
    // service defines (this process holds the service's recorder) without changing a value, so
    // promtool lints them all.
    let m = telemetry_metrics();
    for name in &m.counters {
        metrics::counter!(name.clone()).increment(0);
    }
    for name in &m.gauges {
        metrics::gauge!(name.clone()).increment(0.0);
    }
    // Histograms that need webhooks to move (delivery times) are registered the same way.
    for name in &m.histograms {
        let _ = metrics::histogram!(name.clone());
    }
    let scrape = eventually(10, "every metric in the scrape", || async {
        let s = get_text(addr, "/metrics").await;
        m.names
            .iter()
            .all(|n| s.contains(&format!("# TYPE {n} ")))
            .then_some(s)
    })
    .await;
    assert!(scrape.len() > 1000, "{scrape}");

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics ({}):\n{report}\n--- scrape ---\n{scrape}",
        out.status
    );

    // The compose file's health check for the service, pointed at this one's port.
    let compose = yaml("docker-compose.yml");
    let test: Vec<String> = compose["services"]["visitorflow"]["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(test[0], "CMD");
    let probe = |port: u16| {
        let args: Vec<String> = test[1..]
            .iter()
            .map(|a| a.replace("/127.0.0.1/8080", &format!("/127.0.0.1/{port}")))
            .collect();
        Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the health check")
            .success()
    };
    assert!(probe(addr.port()), "health check fails on a ready service");

    // Not ready: the broker is gone, so /readyz answers 503 and the check fails.
    let mut stack = stack;
    stack.mq.stop().unwrap();
    eventually(15, "readiness to drop", || async {
        (get_json(addr, "/readyz").await.0 == 503).then_some(())
    })
    .await;
    assert!(
        !probe(addr.port()),
        "health check passes on an unready service"
    );
    svc.shutdown().await;
    assert!(
        !probe(addr.port()),
        "health check passes with nothing listening"
    );
}

//! Polled devices in a partitioned deployment, with real binaries: only the instance holding the
//! device's partition asks the device (a standby's poller idles), and when that instance is
//! killed the standby takes the partition over and goes on asking: the stored counts equal the
//! growth of the device's totals exactly, across the failover.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use visitorflow::config::{Config, PartitionConfig};

const REGISTRY: &str = r#"
[county]
time_zone = "Asia/Shanghai"

[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "天山大峡谷"
name_en = "Tianshan Grand Canyon"
instant_capacity = 100000

[[devices]]
id = "axis"
space = "canyon"
kind = "camera"
format = "axis_live_sum"
poll = { url = "http://FAKE/local/tvpc/.api?live-sum.json", interval_s = 1 }
"#;

fn instance(
    stack: &Stack,
    name: &str,
    fake: SocketAddr,
    run: &[u32],
    standby: &[u32],
) -> (std::path::PathBuf, SocketAddr) {
    let mut cfg = Config::from_toml(&REGISTRY.replace("FAKE", &fake.to_string())).unwrap();
    cfg.database.url = stack.pg.url("vf");
    cfg.database.timescaledb = false;
    cfg.mqtt.port = stack.mq.port();
    cfg.mqtt.client_id = "vf-poll-failover".into();
    cfg.mqtt.reconnect_delay_ms = 100;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.partition = Some(PartitionConfig {
        count: 1,
        run: run.to_vec(),
        standby: standby.to_vec(),
        assign: BTreeMap::from([("canyon".to_string(), 0)]),
        standby_poll_ms: 200,
        standby_delay_ms: 500,
        refresh_ms: 200,
        instance: Some(name.into()),
    });
    let path = stack.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    (path, cfg.http.listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_polls_and_the_standby_takes_over_without_loss() {
    let stack = Stack::start();
    // The fake Axis counter: its running totals, and how often it was asked.
    let totals = Arc::new(Mutex::new((500u64, 100u64)));
    let asked = Arc::new(AtomicU64::new(0));
    let fake = {
        let (totals, asked) = (Arc::clone(&totals), Arc::clone(&asked));
        let app = axum::Router::new().route(
            "/local/tvpc/.api",
            axum::routing::get(move || {
                let (totals, asked) = (Arc::clone(&totals), Arc::clone(&asked));
                async move {
                    asked.fetch_add(1, Ordering::Relaxed);
                    let (i, o) = *totals.lock().unwrap();
                    format!(r#"{{"serial":"00408CAC512B","name":"Gate","timestamp":"20261205112756","in":{i},"out":{o}}}"#)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    };
    let (a_cfg, a) = instance(&stack, "A", fake, &[0], &[]);
    let (b_cfg, b) = instance(&stack, "B", fake, &[], &[0]);
    let mut kids = Children(vec![spawn_service(&a_cfg)]);
    eventually(30, "A ready", || async {
        reqwest::get(format!("http://{a}/readyz"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
    kids.0.push(spawn_service(&b_cfg));
    eventually(30, "B up", || async {
        reqwest::get(format!("http://{b}/healthz"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    // People cross all along: 3 in and 1 out every 100 ms.
    let crossing = {
        let totals = Arc::clone(&totals);
        tokio::spawn(async move {
            for _ in 0..120 {
                {
                    let mut t = totals.lock().unwrap();
                    t.0 += 3;
                    t.1 += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // With both instances up, only A asks: about one request a second, not two.
    let before = asked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let in_5s = asked.load(Ordering::Relaxed) - before;
    assert!(
        (3..=7).contains(&in_5s),
        "{in_5s} requests in 5 s: the standby asked too"
    );

    // A dies; B takes the partition over and asks from then on.
    let mut a_proc = kids.0.remove(0);
    a_proc.kill().unwrap();
    a_proc.wait().unwrap();
    crossing.await.unwrap();
    let db = stack.db().await;
    let final_totals = *totals.lock().unwrap();
    let (sum, baseline) = eventually(30, "B to store the last growth", || async {
        let r = db
            .query_one(
                "SELECT coalesce(sum(entries + repaired_entries), 0)::int8, coalesce(sum(exits + repaired_exits), 0)::int8 FROM reports WHERE device_id = 'axis'",
                &[],
            )
            .await
            .unwrap();
        let first = db
            .query_one(
                "SELECT total_in - entries - repaired_entries, total_out - exits - repaired_exits FROM reports WHERE device_id = 'axis' ORDER BY seq LIMIT 1",
                &[],
            )
            .await
            .ok()?;
        let sum: (i64, i64) = (r.get(0), r.get(1));
        let base: (i64, i64) = (first.get(0), first.get(1));
        (sum == (final_totals.0 as i64 - base.0, final_totals.1 as i64 - base.1)).then_some((sum, base))
    })
    .await;
    let holder: String = db
        .query_one(
            "SELECT holder FROM partition_owner WHERE partition = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holder, "B");
    eprintln!(
        "poll failover: {sum:?} counted from baseline {baseline:?} to {final_totals:?}; {in_5s} requests in 5 s before"
    );
}

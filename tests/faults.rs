//! Fault injection: the service reaches PostgreSQL and/or Mosquitto through a fault proxy (or the
//! process itself is crashed) while a workload with duplicates and out-of-order arrivals streams
//! in. Every scenario then checks, Jepsen-style (`common::check`), that the stored set equals the
//! published set, that every aggregate equals its recomputation from the raw rows, and that the
//! final figures equal the fault-free run's; and prints one line: published, stored, lost,
//! double-counted, time to recover (fault end → everything published so far committed).
//!
//! `kill -9` of the binary mid-stream is `tests/crash.rs`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::check::{self, Feed, Key, Model, Workload, workload};
use common::proxy::{Mode, Proxy};
use common::*;

/// Per device; five devices, so 3000 reports in about 3500 messages per scenario.
const PER_DEVICE: u64 = 600;
const CHUNK: usize = 250;
const PAUSE: Duration = Duration::from_millis(100);

/// A scenario's workload and its fault-free run.
struct Run {
    w: Workload,
    model: Model,
}

impl Run {
    fn new(seed: u64) -> Run {
        let w = workload(PER_DEVICE, CHUNK, seed);
        let model = Model::of(&w.messages());
        assert!(
            model.late > 0 && model.duplicates > 0,
            "the workload mixes both in"
        );
        Run { w, model }
    }

    /// After the fault: waits for what the broker had acknowledged before the fault ended (the
    /// recovery time), then for everything; then verifies and prints the scenario's line.
    async fn settle(&self, name: &str, stack: &Stack, api: SocketAddr, feed: Feed, fault: Fault) {
        let db = stack.db().await;
        check::wait_stored(&db, &fault.before_end, Duration::from_secs(30)).await;
        let recovered = fault.end.elapsed();
        feed.finish().await;
        check::wait_stored(&db, &self.w.keys(), Duration::from_secs(30)).await;
        report(name, &db, api, &self.model, Some(recovered), &fault.note).await;
    }
}

/// When a fault ended and what had been published by then.
struct Fault {
    end: Instant,
    before_end: HashSet<Key>,
    note: String,
}

impl Fault {
    fn ended(feed: &Feed) -> Fault {
        Fault {
            end: Instant::now(),
            before_end: feed.acked(),
            note: String::new(),
        }
    }
}

/// Verifies (allowing the live view a moment to catch up with the last commit) and prints.
async fn report(
    name: &str,
    db: &tokio_postgres::Client,
    api: SocketAddr,
    model: &Model,
    recovered: Option<Duration>,
    extra: &str,
) {
    let mut f = check::verify(db, Some(api), Some(model)).await;
    for _ in 0..20 {
        if f.ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        f = check::verify(db, Some(api), Some(model)).await;
    }
    println!("{}{extra}", f.line(name, recovered));
    assert!(f.ok(), "{name}: {:#?}", f);
    assert_eq!(f.stored_rows, f.published);
}

/// The ingester's transaction open on the server, if any: "state (last statement)".
async fn open_transaction(db: &tokio_postgres::Client) -> Option<String> {
    let rows = db
        .query(
            "SELECT state, left(query, 20) FROM pg_stat_activity WHERE xact_start IS NOT NULL \
             AND pid <> pg_backend_pid() AND (query LIKE 'COPY%' OR query LIKE 'INSERT%' OR query = 'BEGIN')",
            &[],
        )
        .await
        .unwrap();
    rows.first()
        .map(|r| format!("{} ({}…)", r.get::<_, String>(0), r.get::<_, String>(1)))
}

async fn restarts(api: SocketAddr, cause: &str) -> u64 {
    let m = get_text(api, "/metrics").await;
    let needle = format!("visitorflow_ingester_restarts_total{{cause=\"{cause}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_blackholed_longer_than_the_commit_timeout() {
    let stack = Stack::start();
    let pg = Proxy::start(stack.pg.port()).await;
    let mut cfg = stack.config_via("vf-fa", Some(&pg), None);
    cfg.ingest.commit_timeout_ms = 1000;
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let run = Run::new(1);

    let feed = Feed::start(stack.mq.port(), "pub-fa", &run.w, PAUSE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The nastiest moment: a transaction open on the server when the network goes silent. Its
    // backend then holds row locks that the next session's commit needs. A slow link keeps
    // transactions open long enough to be caught.
    pg.set(Mode::Delay(Duration::from_millis(20)));
    let db = stack.db().await;
    let mut zombie = None;
    let give_up = Instant::now() + Duration::from_secs(10);
    while zombie.is_none() && Instant::now() < give_up {
        if open_transaction(&db).await.is_some() {
            pg.set(Mode::Blackhole);
            tokio::time::sleep(Duration::from_millis(300)).await;
            zombie = open_transaction(&db).await;
            if zombie.is_none() {
                pg.set(Mode::Delay(Duration::from_millis(20))); // it committed just in time: again
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let zombie = zombie.expect("blackholed with a transaction open");
    tokio::time::sleep(Duration::from_millis(2700)).await;
    pg.set(Mode::Pass);
    let mut fault = Fault::ended(&feed);
    fault.note = format!(" (blackholed mid-transaction: server backend {zombie})");
    let name = "(a) database blackholed 3 s mid-transaction, commit timeout 1 s";
    run.settle(name, &stack, api, feed, fault).await;
    assert!(
        restarts(api, "database").await >= 1,
        "the stuck commit ended its session"
    );
    // The API's pool must not keep serving from connections the black hole swallowed.
    eventually(15, "/readyz to answer 200 again", || async {
        (get_json(api, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_broker_connection_cut_repeatedly() {
    let stack = Stack::start();
    let mq = Proxy::start(stack.mq.port()).await;
    let svc = start_service(stack.config_via("vf-fb", None, Some(&mq))).await;
    let api = svc.http_addr;
    let run = Run::new(2);

    let feed = Feed::start(stack.mq.port(), "pub-fb", &run.w, PAUSE);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        mq.set(Mode::Cut);
        tokio::time::sleep(Duration::from_millis(300)).await;
        mq.set(Mode::Pass);
    }
    let fault = Fault::ended(&feed);
    let name = "(b) broker connection cut 4 times";
    run.settle(name, &stack, api, feed, fault).await;
    assert!(restarts(api, "broker").await >= 4);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_broker_blackholed_is_detected_by_keep_alive() {
    let stack = Stack::start();
    let mq = Proxy::start(stack.mq.port()).await;
    let mut cfg = stack.config_via("vf-fc", None, Some(&mq));
    cfg.mqtt.keep_alive_s = 5; // rumqttc's minimum, and the service's floor
    let svc = start_service(cfg).await;
    let api = svc.http_addr;
    let run = Run::new(3);

    let feed = Feed::start(stack.mq.port(), "pub-fc", &run.w, PAUSE);
    tokio::time::sleep(Duration::from_millis(800)).await;
    mq.set(Mode::Blackhole);
    let start = Instant::now();
    // No RST, no FIN: only the keep-alive (a PINGRESP that never comes) can tell.
    let detected = eventually(20, "the ingester to notice the dead broker", || async {
        (!svc.live.broker_connected()).then(|| start.elapsed())
    })
    .await;
    assert!(
        detected <= Duration::from_secs(12),
        "detected after {detected:?}, keep-alive is 5 s"
    );
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(start.elapsed())).await;
    mq.set(Mode::Pass);
    let mut fault = Fault::ended(&feed);
    fault.note = format!(
        " (dead broker detected after {:.1} s)",
        detected.as_secs_f64()
    );
    let name = "(c) broker blackholed 12 s, keep-alive 5 s";
    run.settle(name, &stack, api, feed, fault).await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_database_crash_and_restart_mid_stream() {
    let mut stack = Stack::start();
    let svc = start_service(stack.config("vf-fd")).await;
    let api = svc.http_addr;
    let run = Run::new(4);

    let feed = Feed::start(stack.mq.port(), "pub-fd", &run.w, PAUSE);
    tokio::time::sleep(Duration::from_millis(600)).await;
    tokio::task::block_in_place(|| stack.pg.crash()).unwrap(); // pg_ctl stop -m immediate
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| stack.pg.start_again()).unwrap();
    let fault = Fault::ended(&feed);
    let name = "(d) PostgreSQL crash (stop -m immediate), restart after 1.5 s";
    run.settle(name, &stack, api, feed, fault).await;
    assert!(restarts(api, "database").await >= 1);
    svc.shutdown().await;
}

/// Mosquitto persists its queues only at shutdown or autosave, so SIGKILL loses what it had
/// acknowledged to publishers but not yet delivered: the broker's documented limit. Devices
/// recover that by re-publishing what their broker may have lost (a broker that comes back with
/// `session_present = false` has lost their session); the test plays that part by re-publishing
/// everything sent before the kill. Asserted: with that re-publication, nothing is lost or
/// doubled, and the resubscription after the broker's restart is the service's own doing. The
/// number of reports the broker lost is measured and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_broker_sigkill_and_restart() {
    let mut stack = Stack::start();
    let svc = start_service(stack.config("vf-fe")).await;
    let api = svc.http_addr;
    let w = workload(PER_DEVICE, CHUNK, 5);
    let half = w.chunks.len() / 2;
    let first: Vec<_> = w.chunks[..half].iter().flatten().cloned().collect();
    let first_keys: HashSet<Key> = w.chunk_keys[..half].iter().flatten().cloned().collect();

    // Published without pauses, so the broker still holds a backlog for the ingester when killed.
    for (i, chunk) in w.chunks[..half].iter().enumerate() {
        publish_all(stack.mq.port(), &format!("pub-fe-{i}"), chunk.clone()).await;
    }
    tokio::task::block_in_place(|| stack.mq.kill()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| stack.mq.start_again()).unwrap();
    let fault_end = Instant::now();

    // The broker came back empty: the ingester must subscribe again before anything it publishes
    // can reach it. A status report is the probe (it changes no count).
    eventually(20, "the ingester to subscribe again", || async {
        publish_all(
            stack.mq.port(),
            "probe-fe",
            vec![(
                "vf/park/barrier/status".into(),
                r#"{"online": true}"#.into(),
            )],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, d) = get_json(api, "/api/v1/devices").await;
        d.as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "barrier" && d["online"] == true)
            .then_some(())
    })
    .await;
    let db = stack.db().await;
    let mut survived = check::stored_keys(&db).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = check::stored_keys(&db).await;
        if now == survived {
            break;
        }
        survived = now;
    }
    let broker_lost = first_keys.difference(&survived).count();

    publish_all(stack.mq.port(), "pub-fe-again", first.clone()).await;
    check::wait_stored(&db, &first_keys, Duration::from_secs(30)).await;
    let recovered = fault_end.elapsed();
    let mut all = first.clone();
    all.extend(first);
    for (i, chunk) in w.chunks[half..].iter().enumerate() {
        publish_all(
            stack.mq.port(),
            &format!("pub-fe-{}", half + i),
            chunk.clone(),
        )
        .await;
        all.extend(chunk.iter().cloned());
    }
    let model = Model::of(&all);
    check::wait_stored(&db, &w.keys(), Duration::from_secs(30)).await;
    let extra = format!(
        " (the broker lost {broker_lost} acknowledged reports; the devices' re-publication restored them)"
    );
    let name = "(e) Mosquitto SIGKILL, restart after 0.3 s";
    report(name, &db, api, &model, Some(recovered), &extra).await;
    svc.shutdown().await;
}

//! Soak (not in CI; `scripts/soak`): the Dublin footfall year replayed as four devices into the
//! real binary, which reaches PostgreSQL and Mosquitto through fault proxies, for `SOAK_MINUTES`
//! (default 30) while faults are injected at random: database black holes, cuts and delays, broker
//! cuts, black holes and delays, PostgreSQL crashes, and `kill -9` of the service. Then every
//! report must be stored once, every aggregate must match its raw rows, and the process's memory
//! (sampled throughout) must not creep.
//!
//! Mosquitto itself is not killed here: the replay publisher talks to it directly and a SIGKILL
//! loses the broker's unsaved queue (`tests/faults.rs` (e) covers that with re-publishing devices).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chrono::{NaiveTime, TimeDelta, TimeZone, Utc};
use common::check;
use common::proxy::{Mode, Proxy};
use common::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use visitorflow::sim::{self, ReplayOptions};

fn dublin() -> PathBuf {
    let rel = "dublin/dublin_footfall_2023_hourly.csv";
    let candidates = [
        std::env::var_os("VISITORFLOW_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from("../shared/data")),
        Some(PathBuf::from("../../shared/data")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|d| d.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{rel} not found (set VISITORFLOW_DATA_DIR)"))
}

fn vm_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

const SERVICE_LOG: &str = "target/soak-service.log";

struct Svc {
    config: PathBuf,
    child: Child,
    addr: std::net::SocketAddr,
    starts: u32,
}

impl Svc {
    fn spawn(config: PathBuf, addr: std::net::SocketAddr) -> Svc {
        let child = Self::child(&config);
        Svc {
            config,
            child,
            addr,
            starts: 1,
        }
    }

    /// The service's log (warnings and up, every incarnation) goes to `target/soak-service.log`.
    fn child(config: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(SERVICE_LOG)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_visitorflow"))
            .args(["run", "--config"])
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("SOAK_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start visitorflow")
    }

    fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        self.child = Self::child(&self.config);
        self.starts += 1;
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn soak_replay_under_random_faults() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let mut stack = Stack::start();
    if std::env::var_os("SOAK_MQ_DEBUG").is_some() {
        let conf = stack.mq.dir().join("mosquitto.conf");
        let mut c = std::fs::read_to_string(&conf).unwrap();
        c.push_str("log_type debug\nlog_timestamp_format %H:%M:%S\n");
        stack.mq.stop().unwrap();
        std::fs::write(&conf, c).unwrap();
        stack.mq.start_again().unwrap();
    }
    let pg = Proxy::start(stack.pg.port()).await;
    let mq = Proxy::start(stack.mq.port()).await;
    let mut cfg = stack.config_via("vf-soak", Some(&pg), Some(&mq));
    cfg.ingest.commit_timeout_ms = 2000;
    // City-centre streets count more than a gate's 10,000 people in an hour.
    cfg.ingest.max_count_per_report = 1_000_000;
    // The replayed year lies in the past: keep its raw rows (they are what is checked).
    cfg.database.raw_retention_days = 0;
    cfg.mqtt.keep_alive_s = 5;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let config = stack.dir.path().join("visitorflow.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    let _ = std::fs::remove_file(SERVICE_LOG);
    let mut svc = Svc::spawn(config, cfg.http.listen);
    eventually(30, "the service to be ready", || async {
        (reqwest::get(format!("http://{}/readyz", svc.addr))
            .await
            .is_ok_and(|r| r.status() == 200))
        .then_some(())
    })
    .await;

    // The 2023 year, rebased so that it ends before today's local midnight; paced to end at
    // three quarters of the run, the last quarter left for the final faults and recovery.
    let registry = cfg.registry().unwrap();
    let file = dublin();
    let text = std::fs::read_to_string(&file).unwrap();
    let dataset = sim::parse_dublin(&text).unwrap();
    let days = dataset.times.len() as i64 / 24 + 2;
    let tz = registry.tz;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let first = today - TimeDelta::days(days);
    let rebase = tz
        .from_local_datetime(&first.and_time(NaiveTime::MIN))
        .unwrap()
        .with_timezone(&Utc);
    let devices = ["gate-1", "gate-2", "cam-pines", "door"];
    let counters = dataset
        .counters
        .iter()
        .filter(|c| c.has_data())
        .take(devices.len());
    let expected: u64 = counters
        .map(|c| {
            c.in_counts
                .iter()
                .zip(&c.out_counts)
                .filter(|(i, o)| i.is_some() && o.is_some())
                .count() as u64
        })
        .sum();
    let rate = (expected as f64 / (run_for.as_secs_f64() * 0.75)).ceil() as u32;
    let mut opts = ReplayOptions::new(&file);
    opts.device = Some(devices[0].into());
    opts.devices = devices[1..].iter().map(|d| d.to_string()).collect();
    opts.rebase = Some(rebase);
    opts.rate = Some(rate.max(1));
    opts.batch = 2;
    opts.client_id = "soak-replay".into();
    opts.ack_timeout = Duration::from_secs(120);
    let mqtt = {
        let mut m = cfg.mqtt.clone();
        m.port = stack.mq.port(); // the publisher talks to the broker directly
        m
    };
    let replay = {
        let registry = registry.clone();
        tokio::spawn(async move { sim::replay(opts, &registry, &mqtt).await })
    };
    println!(
        "soak: {minutes} min, seed {seed}: replaying {expected} Dublin reports as {} devices at {rate}/s",
        devices.len()
    );

    // Faults at random until the replay is done, memory sampled throughout.
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log: Vec<String> = Vec::new();
    let mut memory: Vec<(f64, u32, f64)> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let sample_every = (run_for / 30).max(Duration::from_secs(2));
    let at = |t0: Instant| t0.elapsed().as_secs_f64();
    while !replay.is_finished() {
        if t0.elapsed() >= next_sample {
            // A process restarted a moment ago has no meaningful figure yet.
            if let Some(m) = vm_rss_mib(svc.child.id()).filter(|m| *m > 5.0) {
                memory.push((at(t0), svc.starts, m));
            }
            next_sample += sample_every;
        }
        let pause = Duration::from_millis(rng.random_range(3_000..12_000));
        tokio::time::sleep(pause).await;
        if replay.is_finished() {
            break;
        }
        let hold = Duration::from_millis(rng.random_range(500..6_000));
        let start = at(t0);
        let what = match rng.random_range(0..8) {
            0 => {
                pg.set(Mode::Blackhole);
                tokio::time::sleep(hold).await;
                pg.set(Mode::Pass);
                "database blackholed"
            }
            1 => {
                pg.set(Mode::Cut);
                tokio::time::sleep(hold).await;
                pg.set(Mode::Pass);
                "database cut"
            }
            2 => {
                pg.set(Mode::Delay(Duration::from_millis(rng.random_range(5..60))));
                tokio::time::sleep(hold).await;
                pg.set(Mode::Pass);
                "database slowed"
            }
            3 => {
                mq.set(Mode::Cut);
                tokio::time::sleep(hold).await;
                mq.set(Mode::Pass);
                "broker cut"
            }
            4 => {
                // Longer than the keep-alive, or it might go unnoticed.
                let hold = hold + Duration::from_secs(8);
                mq.set(Mode::Blackhole);
                tokio::time::sleep(hold).await;
                mq.set(Mode::Pass);
                log.push(format!(
                    "{start:7.1} s  broker blackholed for {:.1} s",
                    hold.as_secs_f64()
                ));
                continue;
            }
            5 => {
                mq.set(Mode::Delay(Duration::from_millis(rng.random_range(5..100))));
                tokio::time::sleep(hold).await;
                mq.set(Mode::Pass);
                "broker slowed"
            }
            6 => {
                tokio::task::block_in_place(|| stack.pg.crash()).unwrap();
                tokio::time::sleep(hold).await;
                tokio::task::block_in_place(|| stack.pg.start_again()).unwrap();
                "PostgreSQL crashed (stop -m immediate), restarted after"
            }
            _ => {
                tokio::task::block_in_place(|| svc.kill9_and_restart());
                log.push(format!("{start:7.1} s  visitorflow kill -9, restarted"));
                continue;
            }
        };
        log.push(format!("{start:7.1} s  {what} {:.1} s", hold.as_secs_f64()));
    }
    let stats = replay.await.unwrap().expect("replay");
    let replayed = at(t0);
    assert_eq!(stats.reports, expected);

    println!("soak: fault log ({} faults)", log.len());
    for l in &log {
        println!("  {l}");
    }

    // Recovery: everything committed, then the invariants.
    let db = stack.db().await;
    let t = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let n = stored(&db).await.0 as u64;
        if n >= stats.reports {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(60) {
            let (_, ready) = get_json(svc.addr, "/readyz").await;
            let metrics = get_text(svc.addr, "/metrics").await;
            let shown: Vec<&str> = metrics
                .lines()
                .filter(|l| !l.starts_with('#') && !l.contains("_bucket{"))
                .filter(|l| {
                    l.contains("mqtt_messages")
                        || l.contains("restarts")
                        || l.contains("broker")
                        || l.contains("batch_messages_count")
                        || l.contains("accepted")
                })
                .collect();
            let _ = std::fs::copy(stack.mq.log_path(), "target/soak-mosquitto.log");
            panic!(
                "no progress for 60 s: {n} of {} committed; readyz {ready}; {shown:#?} (service log: {SERVICE_LOG})",
                stats.reports
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = t.elapsed();
    eventually(30, "the service to be ready", || async {
        (reqwest::get(format!("http://{}/readyz", svc.addr))
            .await
            .is_ok_and(|r| r.status() == 200))
        .then_some(())
    })
    .await;
    if let Some(m) = vm_rss_mib(svc.child.id()) {
        memory.push((at(t0), svc.starts, m));
    }
    let (rows, distinct, e, x) = stored(&db).await;
    let mut problems = Vec::new();
    if (rows as u64, distinct as u64) != (stats.reports, stats.reports) {
        problems.push(format!(
            "{rows} rows, {distinct} distinct, {} published",
            stats.reports
        ));
    }
    let mut want = (0, 0);
    for d in &stats.devices {
        let r = db
            .query_one(
                "SELECT count(*), coalesce(sum(entries + repaired_entries), 0)::int8, \
                 coalesce(sum(exits + repaired_exits), 0)::int8 FROM reports WHERE device_id = $1",
                &[&d.device.as_str()],
            )
            .await
            .unwrap();
        // Stored in the space's frame: a reversed camera's "in" is an exit.
        let swap = d.device.as_str() == "cam-pines";
        let (pi, po) = if swap {
            (d.total_out, d.total_in)
        } else {
            (d.total_in, d.total_out)
        };
        want = (want.0 + pi, want.1 + po);
        let got = (
            r.get::<_, i64>(0) as u64,
            r.get::<_, i64>(1) as u64,
            r.get::<_, i64>(2) as u64,
        );
        if got != (d.reports, pi, po) {
            problems.push(format!(
                "{}: stored (reports, in, out) = {got:?}, published ({}, {pi}, {po})",
                d.device, d.reports
            ));
        }
    }
    if (e as u64, x as u64) != want {
        problems.push(format!(
            "stored (entries, exits) = ({e}, {x}), published (in the spaces' frames) {want:?}"
        ));
    }
    let f = check::verify(&db, Some(svc.addr), None).await;
    problems.extend(f.problems.iter().cloned());

    println!("soak: visitorflow VmRSS over time (start = process incarnation after kill -9)");
    for (t, start, m) in &memory {
        println!("  {t:7.1} s  start {start}  {m:6.1} MiB");
    }
    println!(
        "soak: replayed {} reports ({} in, {} out) in {replayed:.0} s under {} faults; all committed \
         {:.1} s after the replay ended; stored {rows}, lost {}, double-counted {}, {} buckets \
         consistent: {}",
        stats.reports,
        stats.total_in,
        stats.total_out,
        log.len(),
        recovered.as_secs_f64(),
        stats.reports.saturating_sub(distinct as u64),
        (rows - distinct) as u64 + f.double_counted,
        f.buckets,
        if problems.is_empty() { "yes" } else { "NO" },
    );
    assert!(problems.is_empty(), "{problems:#?}");
    // Memory: the last incarnation's last sample against its first (after warm-up) must not show
    // creep beyond a generous allowance.
    let last = memory.last().unwrap();
    let first_of_last = memory.iter().find(|m| m.1 == last.1).unwrap();
    assert!(
        last.2 < first_of_last.2 + 64.0,
        "memory grew from {:.1} to {:.1} MiB",
        first_of_last.2,
        last.2
    );
}

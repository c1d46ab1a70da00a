//! The measured scenarios, one per target of the performance issue (see docs/performance.md).
//! Every figure is a ratio against a reference measured in the same run on the same machine, or
//! a CPU/memory share read from `/proc`; each run that stores reports is checked for
//! exactly-once (rows = distinct (device, seq) = published, county entries = published sum).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use visitorflow::supervise::Mosquitto;

use crate::env::{
    self, Chunk, CpuSnap, Db, Env, Lines, Service, mosquitto_sub, verify_exactly_once,
    wait_subscribed,
};
use crate::rawpath;
use crate::stats::{Figure, Target, percentile, table};
use crate::workload::{self, Layout};

#[derive(clap::Args, Debug)]
pub struct RunOpts {
    /// A few seconds per scenario, one run each: catches gross regressions in CI.
    #[arg(long)]
    pub quick: bool,
    /// Runs per figure (the median is shown).
    #[arg(long, env = "VF_BENCH_RUNS")]
    pub runs: Option<usize>,
    /// Scenarios to run (default all): live, backlog, cpu, raw, latency, reads, footprint, scale.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Working directory (default: a new directory under the system temp dir, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Parallel `mosquitto_pub` processes feeding the live runs.
    #[arg(long, default_value_t = 4)]
    pub lanes: usize,
    /// Registry sizes (spaces) of the scale scenario; the first is the baseline.
    #[arg(long, value_delimiter = ',')]
    pub scale_sizes: Vec<usize>,
}

/// Devices reporting in the scale scenario's target runs (as many as the 10-space registry has).
const ACTIVE: usize = 20;

const SCENARIOS: [&str; 8] = [
    "raw",
    "live",
    "scale",
    "backlog",
    "cpu",
    "latency",
    "reads",
    "footprint",
];

/// Which process consumes the stream in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    MosquittoSub,
    Bare,
    Service,
}

/// Who publishes.
enum Feed<'a> {
    /// `mosquitto_pub -l`, one device per chunk.
    Pub { chunks: &'a [Chunk], lanes: usize },
    /// `vf-bench publish`: many topics, optional rate; seqs after `seq_base`.
    Many {
        topics: &'a Path,
        count: u64,
        rate: u64,
        seq_base: u64,
    },
}

/// What the service sees before a measured stream: one report (seq 1) from every device, so the
/// rules have seen every device and space (no start-up `silent_devices` alerts inside the
/// measurement) and the measured stream's seqs start at 2. Also what it stores besides it.
#[derive(Clone, Copy)]
struct Warm<'a> {
    topics: &'a Path,
    devices: u64,
}

impl Warm<'_> {
    fn entries(&self) -> u64 {
        self.devices * workload::totals(1).0
    }
}

/// A measured stream: the feed, and what the service holds after its warm-up and the stream.
struct Run<'a> {
    layout: &'a Layout,
    feed: Feed<'a>,
    n: u64,
    warm: Warm<'a>,
    /// The county's entries after warm-up and stream.
    entries: u64,
}

struct Outcome {
    secs: f64,
    cpu: CpuSnap,
    /// Mean duration of the service's rule evaluations (from its /metrics), in ms.
    eval_ms: Option<f64>,
}

pub struct Bench {
    env: Env,
    http: reqwest::Client,
    quick: bool,
    runs: usize,
    lanes: usize,
    scale_sizes: Vec<usize>,
    figures: Vec<Figure>,
    /// Gross-regression floors checked in quick mode (name, ok).
    checks: Vec<(String, bool)>,
}

pub async fn run(o: RunOpts) -> anyhow::Result<ExitCode> {
    let runs = o.runs.unwrap_or(if o.quick { 1 } else { 5 }).max(1);
    let only: Vec<&str> = if o.only.is_empty() {
        // Quick mode checks ratios; the footprint run has none and takes the longest to start.
        SCENARIOS
            .iter()
            .copied()
            .filter(|s| !(o.quick && *s == "footprint"))
            .collect()
    } else {
        for s in &o.only {
            anyhow::ensure!(SCENARIOS.contains(&s.as_str()), "unknown scenario {s:?}");
        }
        o.only.iter().map(String::as_str).collect()
    };
    let temp = o.dir.is_none();
    let dir = o
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("vf-bench-{}", std::process::id())));
    let started = Instant::now();
    let env = Env::start(dir.clone()).await?;
    let mut b = Bench {
        env,
        http: reqwest::Client::new(),
        quick: o.quick,
        runs,
        lanes: o.lanes,
        scale_sizes: o.scale_sizes.clone(),
        figures: Vec::new(),
        checks: Vec::new(),
    };
    eprintln!(
        "vf-bench: {} run(s) per figure{}; PostgreSQL on port {}, work dir {}",
        runs,
        if o.quick { ", quick" } else { "" },
        b.env.pg.port(),
        dir.display()
    );
    let mut result = Ok(());
    for s in SCENARIOS.iter().filter(|s| only.contains(s)) {
        eprintln!("== {s}");
        let r = match *s {
            "raw" => b.raw().await,
            "live" => b.live().await,
            "scale" => b.scale().await,
            "backlog" => b.backlog().await,
            "cpu" => b.cpu().await,
            "latency" => b.latency().await,
            "reads" => b.reads().await,
            "footprint" => b.footprint().await,
            _ => unreachable!(),
        };
        if let Err(e) = r {
            result = Err(e.context(format!("scenario {s}")));
            break;
        }
    }
    println!("\n{}", table(&b.figures));
    println!(
        "machine: {} cores, {}; took {:.0} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine(),
        started.elapsed().as_secs_f64()
    );
    drop(b);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let mosq = Command::new("mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    format!("{cpu}; {mosq}")
}

impl Drop for Bench {
    fn drop(&mut self) {
        let failed: Vec<_> = self.checks.iter().filter(|(_, ok)| !ok).collect();
        for (name, _) in &failed {
            eprintln!("gross regression: {name}");
        }
    }
}

impl Bench {
    fn figure(&mut self, group: &str, name: &str, unit: &'static str, samples: Vec<f64>) {
        self.figure_t(group, name, unit, samples, None);
    }

    fn figure_t(
        &mut self,
        group: &str,
        name: &str,
        unit: &'static str,
        samples: Vec<f64>,
        target: Option<Target>,
    ) {
        let f = Figure {
            group: group.into(),
            name: name.into(),
            unit,
            samples,
            target,
        };
        eprintln!(
            "   {group} / {name}: {} {unit} {:?}",
            crate::stats::fmt_num(f.value()),
            f.samples
        );
        self.figures.push(f);
    }

    /// Quick mode's gross-regression floor: a ratio far below its target fails the command.
    fn floor(&mut self, name: &str, value: f64, floor: f64) -> anyhow::Result<()> {
        let ok = value >= floor;
        self.checks
            .push((format!("{name} = {value:.3} < {floor}"), ok));
        if self.quick && !ok {
            bail!("gross regression: {name} = {value:.3}, below {floor}");
        }
        Ok(())
    }

    fn scratch(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.env.dir.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    // ---- 4. raw path ------------------------------------------------------------------------

    async fn raw(&mut self) -> anyhow::Result<()> {
        let rows = if self.quick { 40_000 } else { 500_000 };
        let dir = self.scratch("raw")?;
        let db = self.env.database().await?;
        let mut copy = Vec::new();
        let mut ours = Vec::new();
        let mut full = Vec::new();
        let mut ratio = Vec::new();
        let (mut lookup_us, mut backfill_ratio) = (Vec::new(), Vec::new());
        let mut r = rawpath::RawPath::prepare(&db.url, &dir, rows).await?;
        for run in 0..self.runs {
            // Alternate the order so neither side always meets a warmer cache.
            let (c, o) = if run % 2 == 0 {
                let c = r.psql_copy(self.env.pg.port(), &db.name).await?;
                (c, r.batched_copy(false).await?)
            } else {
                let o = r.batched_copy(false).await?;
                (r.psql_copy(self.env.pg.port(), &db.name).await?, o)
            };
            let f = r.batched_copy(true).await?;
            let (lookup, backfill) = r.backfill().await?;
            lookup_us.push(lookup / rows as f64 * 1e6);
            backfill_ratio.push(backfill / f);
            copy.push(rows as f64 / c);
            ours.push(rows as f64 / o);
            full.push(rows as f64 / f);
            ratio.push(c / o);
        }
        drop(r);
        self.env.drop_database(db).await?;
        let batch = rawpath::BATCH;
        self.figure(
            "4 raw path",
            "psql \\copy (one transaction)",
            "rows/s",
            copy,
        );
        self.figure(
            "4 raw path",
            &format!("service raw insert ({batch}-row batches, commit each)"),
            "rows/s",
            ours,
        );
        self.figure(
            "4 raw path",
            &format!("service commit_batch ({batch} reports + buckets + state)"),
            "rows/s",
            full,
        );
        self.figure(
            "4 raw path",
            "backfill below the window: raw-table lookup per report",
            "µs",
            lookup_us,
        );
        self.figure(
            "4 raw path",
            "backfill below the window ÷ in-order commit_batch (time per report)",
            "×",
            backfill_ratio,
        );
        let m = crate::stats::median(&ratio);
        self.figure_t(
            "4 raw path",
            "raw insert ÷ psql \\copy",
            "×",
            ratio,
            Some(Target::AtLeast(1.0)),
        );
        self.floor("raw insert ÷ psql \\copy", m, 0.4)
    }

    // ---- 1. live stream ---------------------------------------------------------------------

    async fn live(&mut self) -> anyhow::Result<()> {
        let n: u64 = if self.quick { 20_000 } else { 200_000 };
        let per_chunk = if self.quick { 5_000 } else { 50_000 };
        let layout = Layout::new(10, 20);
        let dir = self.scratch("live")?;
        let chunks = env::write_chunks(&dir, &layout, n, per_chunk, 1)?;
        let all = dir.join("topics.txt");
        layout.write_topics(&all, layout.devices.len())?;
        let lanes = self.lanes;
        for qos in [1u8, 0] {
            let run = Run {
                layout: &layout,
                feed: Feed::Pub {
                    chunks: &chunks,
                    lanes,
                },
                n,
                warm: Warm {
                    topics: &all,
                    devices: layout.devices.len() as u64,
                },
                entries: chunk_entries(&chunks, layout.devices.len()),
            };
            let (sub, svc) = self.versus(&run, qos, Sink::MosquittoSub).await?;
            let group = format!("1 live QoS {qos}, 10 spaces");
            self.report_versus(&group, "mosquitto_sub", &sub, &svc, n, 0.95)?;
            if qos == 1 {
                // 3. CPU per report at full rate: service + PostgreSQL vs the reference client and
                // vs the broker's own.
                let per = |o: &Outcome, f: fn(&CpuSnap) -> f64| f(&o.cpu) / n as f64 * 1e6;
                let sub_us: Vec<f64> = sub.iter().map(|o| per(o, |c| c.sink)).collect();
                let svc_us: Vec<f64> = svc.iter().map(|o| per(o, |c| c.sink + c.pg)).collect();
                let broker_us: Vec<f64> = svc.iter().map(|o| per(o, |c| c.broker)).collect();
                let g = "3 CPU per report (live QoS 1)";
                self.figure(g, "mosquitto_sub", "µs", sub_us.clone());
                self.figure(
                    g,
                    "service",
                    "µs",
                    svc.iter().map(|o| per(o, |c| c.sink)).collect(),
                );
                self.figure(
                    g,
                    "PostgreSQL",
                    "µs",
                    svc.iter().map(|o| per(o, |c| c.pg)).collect(),
                );
                self.figure(g, "broker (service run)", "µs", broker_us.clone());
                let r1: Vec<f64> = svc_us.iter().zip(&sub_us).map(|(a, b)| a / b).collect();
                let r2: Vec<f64> = svc_us.iter().zip(&broker_us).map(|(a, b)| a / b).collect();
                self.figure_t(
                    g,
                    "(service + PostgreSQL) ÷ mosquitto_sub",
                    "×",
                    r1,
                    Some(Target::AtMost(0.5)),
                );
                self.figure_t(
                    g,
                    "(service + PostgreSQL) ÷ broker",
                    "×",
                    r2,
                    Some(Target::AtMost(1.0)),
                );
            }
        }
        Ok(())
    }

    /// Runs the reference sink and the service on the same feed, alternating which goes first.
    async fn versus(
        &mut self,
        run: &Run<'_>,
        qos: u8,
        reference: Sink,
    ) -> anyhow::Result<(Vec<Outcome>, Vec<Outcome>)> {
        let mut refs = Vec::new();
        let mut svcs = Vec::new();
        for i in 0..self.runs {
            let order = if i % 2 == 0 {
                [reference, Sink::Service]
            } else {
                [Sink::Service, reference]
            };
            for sink in order {
                let o = self.live_once(run, sink, qos).await?;
                if sink == Sink::Service {
                    svcs.push(o);
                } else {
                    refs.push(o);
                }
            }
        }
        Ok((refs, svcs))
    }

    fn report_versus(
        &mut self,
        group: &str,
        reference: &str,
        refs: &[Outcome],
        svcs: &[Outcome],
        n: u64,
        target: f64,
    ) -> anyhow::Result<()> {
        let rate = |o: &Outcome| n as f64 / o.secs;
        self.figure(group, reference, "msg/s", refs.iter().map(rate).collect());
        self.figure(
            group,
            "service (committed)",
            "reports/s",
            svcs.iter().map(rate).collect(),
        );
        let ratios: Vec<f64> = svcs
            .iter()
            .zip(refs)
            .map(|(s, r)| rate(s) / rate(r))
            .collect();
        let m = crate::stats::median(&ratios);
        self.figure_t(
            group,
            &format!("service ÷ {reference}"),
            "×",
            ratios,
            Some(Target::AtLeast(target)),
        );
        self.floor(&format!("{group}: service ÷ {reference}"), m, 0.5)
    }

    async fn feed(&self, feed: &Feed<'_>, port: u16, qos: u8, tag: &str) -> anyhow::Result<()> {
        match feed {
            Feed::Pub { chunks, lanes } => env::mosquitto_pub(port, chunks, qos, *lanes, tag).await,
            Feed::Many {
                topics,
                count,
                rate,
                seq_base,
            } => {
                let mut child = self
                    .env
                    .helper()
                    .args(["publish", "--port", &port.to_string(), "--prefix", tag])
                    .arg("--topics")
                    .arg(topics)
                    .args(["--count", &count.to_string(), "--qos", &qos.to_string()])
                    .args(["--rate", &rate.to_string()])
                    .args(["--seq-base", &seq_base.to_string()])
                    .stdout(Stdio::null())
                    .spawn()?;
                loop {
                    if let Some(status) = child.try_wait()? {
                        anyhow::ensure!(status.success(), "publisher failed: {status}");
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    /// Starts the service on a fresh database and warms it up (see [`Warm`]).
    async fn start_service(
        &mut self,
        layout: &Layout,
        db: &Db,
        broker: &Mosquitto,
        webhook: Option<String>,
        warm: Warm<'_>,
    ) -> anyhow::Result<(Service, Watch)> {
        let id = self.env.unique("vf");
        let mut svc = self.env.service(layout, db, broker, &id, webhook).await?;
        svc.spawn()?;
        svc.wait_ready(&self.http).await?;
        let watch = Watch::new(db).await?;
        let tag = self.env.unique("warm");
        let feed = Feed::Many {
            topics: warm.topics,
            count: warm.devices,
            rate: 0,
            seq_base: 0,
        };
        tokio::try_join!(
            self.feed(&feed, broker.port(), 1, &tag),
            watch.committed(warm.entries(), &svc)
        )?;
        // Let the rules see every device report and resolve what start-up raised: on a province
        // that is thousands of alert changes, recorded for a few seconds.
        let settle = if self.quick { 1000 } else { 2000 };
        tokio::time::sleep(Duration::from_millis(settle)).await;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        let first = alert_transitions(&self.http, &svc).await;
        let mut last = first;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = alert_transitions(&self.http, &svc).await;
            if now == last {
                break;
            }
            last = now;
        }
        if let (Some(a), Some(b)) = (first, last)
            && b > a
        {
            println!(
                "   start-up alert changes still being recorded {settle} ms after the warm-up: \
                 {} more in {:.1} s before the measured stream",
                b - a,
                started.elapsed().as_secs_f64()
            );
        }
        Ok((svc, watch))
    }

    /// One measured run: a fresh broker, the sink subscribed, then the feed; timed from the
    /// feed's start to the last report received (reference) or committed (service).
    async fn live_once(&mut self, run: &Run<'_>, sink: Sink, qos: u8) -> anyhow::Result<Outcome> {
        let (feed, n, entries) = (&run.feed, run.n, run.entries);
        let broker = self.env.broker()?;
        let port = broker.port();
        let tag = self.env.unique("pub");
        let out = match sink {
            Sink::MosquittoSub | Sink::Bare => {
                let id = self.env.unique("msub");
                let mut sub = Lines::spawn(mosquitto_sub(port, &id, false, false), n, false)?;
                wait_subscribed(&sub, port).await?;
                let before = CpuSnap::take(Some(sub.pid()), None, broker.pid());
                let t0 = Instant::now();
                let stall = Duration::from_secs(30);
                let (_, t1) = tokio::try_join!(
                    self.feed(feed, port, qos, &tag),
                    sub.wait_done("mosquitto_sub", stall)
                )?;
                let after = CpuSnap::take(Some(sub.pid()), None, broker.pid());
                sub.kill();
                Outcome {
                    secs: (t1 - t0).as_secs_f64(),
                    cpu: after.since(&before),
                    eval_ms: None,
                }
            }
            Sink::Service => {
                let db = self.env.database().await?;
                let (mut svc, watch) = self
                    .start_service(run.layout, &db, &broker, None, run.warm)
                    .await?;
                let pg = self.env.pg_pid();
                let before = CpuSnap::take(svc.pid(), pg, broker.pid());
                let t0 = Instant::now();
                // Watched only once everything is published: the committed figures are read
                // through the API, whose county view (with its children) would otherwise be
                // serialised a hundred times a second during the measurement.
                self.feed(feed, port, qos, &tag).await?;
                let watch = watch.polling(Duration::from_millis(2));
                let t1 = watch.committed(entries, &svc).await?;
                let after = CpuSnap::take(svc.pid(), pg, broker.pid());
                watch.verify(run.warm.devices + n, entries).await?;
                let eval_ms = evaluation_ms(&self.http, &svc).await;
                svc.kill();
                drop(watch);
                self.env.drop_database(db).await?;
                Outcome {
                    secs: (t1 - t0).as_secs_f64(),
                    cpu: after.since(&before),
                    eval_ms,
                }
            }
        };
        finish_broker(broker);
        Ok(out)
    }

    // ---- 8. scale axis ------------------------------------------------------------------------

    async fn scale(&mut self) -> anyhow::Result<()> {
        let n: u64 = if self.quick { 20_000 } else { 200_000 };
        let sizes = if !self.scale_sizes.is_empty() {
            self.scale_sizes.clone()
        } else if self.quick {
            vec![10, 1_000]
        } else {
            vec![10, 1_000, 10_000]
        };
        let dir = self.scratch("scale")?;
        // The target's traffic is the same at every size (20 counters, spread over the registry),
        // so only the registry's size changes. The worst case, every counter of the registry
        // reporting in turn (each report of a batch from a different device and zone), is measured
        // too, outside quick mode.
        // Quick mode keeps the worst case at its largest size: that is where it collapsed
        // (0.21× of the 10-space ratio before state checkpoints), and its floor catches a return.
        let worst_sizes = if self.quick && self.scale_sizes.is_empty() {
            vec![10, 10_000]
        } else {
            sizes.clone()
        };
        let modes = [
            (ACTIVE, "20 devices reporting", &sizes),
            (usize::MAX, "every device reporting", &worst_sizes),
        ];
        for (active, label, sizes) in modes {
            // Quick mode's worst case gets five reports per counter: with one each the stream
            // lasts a fraction of a second and one checkpoint decides the ratio.
            let n = if self.quick && active != ACTIVE {
                100_000
            } else {
                n
            };
            let mut ratios = Vec::new();
            for &spaces in sizes {
                let layout = Layout::new(spaces, (2 * spaces).max(ACTIVE));
                let devices = layout.devices.len();
                let all = dir.join(format!("topics-{spaces}.txt"));
                layout.write_topics(&all, devices)?;
                let active = active.min(devices);
                let picked: Vec<usize> = (0..active).map(|i| i * devices / active).collect();
                let topics = dir.join(format!("topics-{spaces}-{active}.txt"));
                layout.write_topic_subset(&topics, &picked)?;
                let run = Run {
                    layout: &layout,
                    feed: Feed::Many {
                        topics: &topics,
                        count: n,
                        rate: 0,
                        seq_base: 1,
                    },
                    n,
                    warm: Warm {
                        topics: &all,
                        devices: devices as u64,
                    },
                    entries: spread_entries(n, active as u64)
                        + (devices - active) as u64 * workload::totals(1).0,
                };
                let (sub, svc) = self.versus(&run, 1, Sink::MosquittoSub).await?;
                let group = format!("8 scale, {spaces} spaces, {devices} devices, {label}");
                let per = |f: fn(&CpuSnap) -> f64| -> Vec<f64> {
                    svc.iter().map(|o| f(&o.cpu) / n as f64 * 1e6).collect()
                };
                self.figure(&group, "CPU/report service", "µs", per(|c| c.sink));
                self.figure(&group, "CPU/report PostgreSQL", "µs", per(|c| c.pg));
                let eval: Vec<f64> = svc.iter().filter_map(|o| o.eval_ms).collect();
                self.figure(&group, "rule evaluation (all spaces), each", "ms", eval);
                let target = 0.95;
                let r: Vec<f64> = svc.iter().zip(&sub).map(|(s, m)| m.secs / s.secs).collect();
                if active == ACTIVE {
                    self.report_versus(&group, "mosquitto_sub", &sub, &svc, n, target)?;
                } else {
                    // Its floor is on the scale axis (below), not on the absolute ratio.
                    let rate = |o: &Outcome| n as f64 / o.secs;
                    let (subs, svcs) = (sub.iter().map(rate), svc.iter().map(rate));
                    self.figure(&group, "mosquitto_sub", "msg/s", subs.collect());
                    self.figure(&group, "service (committed)", "reports/s", svcs.collect());
                    let t = Some(Target::AtLeast(target));
                    self.figure_t(&group, "service ÷ mosquitto_sub", "×", r.clone(), t);
                }
                ratios.push((spaces, crate::stats::median(&r)));
            }
            let Some(&(base_size, base)) = ratios.first() else {
                return Ok(());
            };
            for &(spaces, r) in &ratios[1..] {
                let name = format!("ratio at {spaces} ÷ ratio at {base_size} spaces");
                self.figure_t(
                    &format!("8 scale, {label}"),
                    &name,
                    "×",
                    vec![r / base],
                    Some(Target::AtLeast(0.9)),
                );
                if active != ACTIVE {
                    self.floor(&format!("scale, {label}: {name}"), r / base, 0.4)?;
                }
            }
        }
        Ok(())
    }

    // ---- 2. backlog drain ---------------------------------------------------------------------

    async fn backlog(&mut self) -> anyhow::Result<()> {
        let n: u64 = if self.quick { 40_000 } else { 1_000_000 };
        let per_chunk = if self.quick { 5_000 } else { 50_000 };
        let layout = Layout::new(10, 24);
        let dir = self.scratch("backlog")?;
        let chunks = env::write_chunks(&dir, &layout, n, per_chunk, 1)?;
        let all = dir.join("topics.txt");
        layout.write_topics(&all, layout.devices.len())?;
        let warm = Warm {
            topics: &all,
            devices: layout.devices.len() as u64,
        };
        let entries = chunk_entries(&chunks, layout.devices.len());
        let mut res: Vec<(Sink, Outcome)> = Vec::new();
        for run in 0..self.runs {
            let broker = self.env.broker()?;
            let port = broker.port();
            let db = self.env.database().await?;
            // The three persistent sessions (the service's warmed up first, so the other two
            // do not queue its warm-up), then the backlog queued for each while all are away.
            let (mut svc, watch) = self
                .start_service(&layout, &db, &broker, None, warm)
                .await?;
            svc.kill();
            drop(watch);
            let (msub, rsub) = (self.env.unique("msub"), self.env.unique("rsub"));
            let status = mosquitto_sub(port, &msub, true, false)
                .arg("-E")
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "mosquitto_sub -E failed: {status}");
            let status = self
                .env
                .helper()
                .args(["count-sub", "--port", &port.to_string(), "--id", &rsub])
                .arg("--session-only")
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "count-sub --session-only failed");
            let tag = self.env.unique("pub");
            let t = Instant::now();
            env::mosquitto_pub(port, &chunks, 1, self.lanes, &tag).await?;
            eprintln!(
                "   queued {n} reports for 3 sessions in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let mut order = [Sink::MosquittoSub, Sink::Bare, Sink::Service];
            order.rotate_left(run % 3);
            for sink in order {
                let o = match sink {
                    Sink::MosquittoSub => {
                        let before = CpuSnap::take(None, None, broker.pid());
                        let t0 = Instant::now();
                        let mut sub =
                            Lines::spawn(mosquitto_sub(port, &msub, true, false), n, false)?;
                        let t1 = sub
                            .wait_done("mosquitto_sub drain", Duration::from_secs(30))
                            .await?;
                        let after = CpuSnap::take(Some(sub.pid()), None, broker.pid());
                        sub.kill();
                        Outcome {
                            secs: (t1 - t0).as_secs_f64(),
                            cpu: after.since(&before),
                            eval_ms: None,
                        }
                    }
                    Sink::Bare => {
                        let before = CpuSnap::take(None, None, broker.pid());
                        let t0 = Instant::now();
                        let mut cmd = self.env.helper();
                        cmd.args(["count-sub", "--port", &port.to_string(), "--id", &rsub])
                            .args(["--expect", &n.to_string()]);
                        let mut sub = Lines::spawn(cmd, u64::MAX, false)?;
                        let t1 = sub
                            .wait_marker("count-sub drain", Duration::from_secs(600))
                            .await?;
                        let after = CpuSnap::take(Some(sub.pid()), None, broker.pid());
                        sub.kill();
                        Outcome {
                            secs: (t1 - t0).as_secs_f64(),
                            cpu: after.since(&before),
                            eval_ms: None,
                        }
                    }
                    Sink::Service => {
                        let watch = Watch::new(&db).await?;
                        let pg = self.env.pg_pid();
                        let before = CpuSnap::take(None, pg, broker.pid());
                        let t0 = Instant::now();
                        svc.spawn()?;
                        let t1 = watch.committed(entries, &svc).await?;
                        let after = CpuSnap::take(svc.pid(), pg, broker.pid());
                        watch.verify(warm.devices + n, entries).await?;
                        svc.kill();
                        Outcome {
                            secs: (t1 - t0).as_secs_f64(),
                            cpu: after.since(&before),
                            eval_ms: None,
                        }
                    }
                };
                eprintln!(
                    "   {sink:?} drained {n} in {:.2} s ({:.0}/s)",
                    o.secs,
                    n as f64 / o.secs
                );
                res.push((sink, o));
            }
            drop(svc);
            self.env.drop_database(db).await?;
            finish_broker(broker);
        }
        let of = |s: Sink| -> Vec<&Outcome> {
            res.iter()
                .filter(|(k, _)| *k == s)
                .map(|(_, o)| o)
                .collect()
        };
        let rate = |o: &&Outcome| n as f64 / o.secs;
        let (m, b, s) = (of(Sink::MosquittoSub), of(Sink::Bare), of(Sink::Service));
        let g = format!("2 backlog drain of {n} QoS 1");
        self.figure(&g, "mosquitto_sub", "msg/s", m.iter().map(rate).collect());
        self.figure(
            &g,
            "bare rumqttc (count + ack)",
            "msg/s",
            b.iter().map(rate).collect(),
        );
        self.figure(
            &g,
            "service (committed, from process start)",
            "reports/s",
            s.iter().map(rate).collect(),
        );
        let r1: Vec<f64> = s.iter().zip(&m).map(|(s, m)| m.secs / s.secs).collect();
        let r2: Vec<f64> = s.iter().zip(&b).map(|(s, b)| b.secs / s.secs).collect();
        let (m1, m2) = (crate::stats::median(&r1), crate::stats::median(&r2));
        self.figure_t(
            &g,
            "service ÷ mosquitto_sub",
            "×",
            r1,
            Some(Target::AtLeast(1.5)),
        );
        self.figure_t(
            &g,
            "service ÷ bare rumqttc",
            "×",
            r2,
            Some(Target::AtLeast(0.8)),
        );
        let per = |o: &&Outcome| (o.cpu.sink + o.cpu.pg) / n as f64 * 1e6;
        self.figure(
            &g,
            "CPU/report mosquitto_sub",
            "µs",
            m.iter().map(per).collect(),
        );
        self.figure(
            &g,
            "CPU/report bare rumqttc",
            "µs",
            b.iter().map(per).collect(),
        );
        self.figure(
            &g,
            "CPU/report service + PostgreSQL",
            "µs",
            s.iter().map(per).collect(),
        );
        self.figure(
            &g,
            "CPU/report broker (service drain)",
            "µs",
            s.iter().map(|o| o.cpu.broker / n as f64 * 1e6).collect(),
        );
        self.floor("backlog: service ÷ mosquitto_sub", m1, 0.5)?;
        self.floor("backlog: service ÷ bare rumqttc", m2, 0.25)
    }

    // ---- 3. CPU at 5,000 reports/s ----------------------------------------------------------

    async fn cpu(&mut self) -> anyhow::Result<()> {
        let secs: u64 = if self.quick { 4 } else { 12 };
        let dir = self.scratch("cpu")?;
        // The target's case is the live runs' county (10 spaces, 20 counters) at 5,000/s; a
        // 1,000-space county with each report from another of its 2,000 counters is measured
        // beside it; and a province's shape, 100,000 counters each reporting once every 10 s
        // (10,000/s), for two periods: its target is 60 % of the two cores.
        let mut cases = vec![(10, 20, 5_000, secs, Some(10.0))];
        if !self.quick {
            cases.push((1_000, 2_000, 5_000, secs, None));
            cases.push((1_000, 100_000, 10_000, 20, Some(60.0)));
        }
        for (spaces, devices, rate, secs, limit) in cases {
            let n = rate * secs;
            let layout = Layout::new(spaces, devices);
            let topics = dir.join(format!("topics-{spaces}.txt"));
            layout.write_topics(&topics, devices)?;
            let entries = spread_entries(n, devices as u64);
            let warm = Warm {
                topics: &topics,
                devices: devices as u64,
            };
            let (mut svc_pct, mut pg_pct, mut total) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.runs {
                let broker = self.env.broker()?;
                let db = self.env.database().await?;
                let (mut svc, watch) = self
                    .start_service(&layout, &db, &broker, None, warm)
                    .await?;
                // Polled rarely: the watcher's queries would count as PostgreSQL's load.
                let watch = watch.polling(Duration::from_millis(250));
                let pg = self.env.pg_pid();
                let tag = self.env.unique("pub");
                let feed = Feed::Many {
                    topics: &topics,
                    count: n,
                    rate,
                    seq_base: 1,
                };
                let (pid, bpid) = (svc.pid(), broker.pid());
                // Steady state only: from 1 s after the start to 1 s before the end.
                let window = async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let a = CpuSnap::take(pid, pg, bpid);
                    tokio::time::sleep(Duration::from_secs(secs - 2)).await;
                    let b = CpuSnap::take(pid, pg, bpid);
                    anyhow::Ok((a, b))
                };
                let (_, _, (a, b)) = tokio::try_join!(
                    self.feed(&feed, broker.port(), 1, &tag),
                    watch.committed(entries, &svc),
                    window
                )?;
                watch.verify(devices as u64 + n, entries).await?;
                let d = b.since(&a);
                let wall = (b.at.expect("taken") - a.at.expect("taken")).as_secs_f64();
                let cores = 2.0 * wall;
                svc_pct.push(d.sink / cores * 100.0);
                pg_pct.push(d.pg / cores * 100.0);
                total.push((d.sink + d.pg) / cores * 100.0);
                svc.kill();
                drop(watch);
                self.env.drop_database(db).await?;
                finish_broker(broker);
            }
            let g = format!("3 CPU at {rate} reports/s, {spaces} spaces, {devices} devices");
            self.figure(&g, "service, % of 2 cores", "%", svc_pct);
            self.figure(&g, "PostgreSQL, % of 2 cores", "%", pg_pct);
            let m = crate::stats::median(&total);
            let target = limit.map(Target::AtMost);
            self.figure_t(&g, "service + PostgreSQL, % of 2 cores", "%", total, target);
            if spaces == 10 {
                self.floor("CPU at 5,000/s: 10% ÷ measured", 10.0 / m, 0.3)?;
            }
        }
        Ok(())
    }

    // ---- 5. latency ---------------------------------------------------------------------------

    async fn latency(&mut self) -> anyhow::Result<()> {
        let secs: u64 = if self.quick { 6 } else { 12 };
        let hot = if self.quick { 4 } else { 25 };
        let rate = 10_000;
        let n = rate * secs;
        // The live runs' county, plus the hot areas whose levels are crossed.
        let mut layout = Layout::new(10, 20);
        let cams = layout.devices.len();
        layout.add_alert_areas(hot, 100);
        let dir = self.scratch("latency")?;
        let topics = dir.join("topics.txt");
        layout.write_topics(&topics, cams)?;
        let cam_entries = spread_entries(n, cams as u64);
        let warm = Warm {
            topics: &topics,
            devices: cams as u64,
        };
        let (mut p50, mut p99, mut wh50, mut wh99, mut ref50, mut ref99) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let inbox: Arc<Inbox> = Arc::default();
        let hook = webhook_receiver(Arc::clone(&inbox)).await?;
        for _ in 0..self.runs {
            inbox.lock().unwrap_or_else(|e| e.into_inner()).clear();
            // The service.
            let broker = self.env.broker()?;
            let port = broker.port();
            let db = self.env.database().await?;
            let url = format!("http://{hook}/hook");
            let (mut svc, watch) = self
                .start_service(&layout, &db, &broker, Some(url), warm)
                .await?;
            let watch = watch.polling(Duration::from_millis(100));
            inbox.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let tag = self.env.unique("pub");
            let feed = Feed::Many {
                topics: &topics,
                count: n,
                rate,
                seq_base: 1,
            };
            let crossings = cross_levels(port, hot, Duration::from_secs(secs));
            let (_, _, crossed) = tokio::try_join!(
                self.feed(&feed, port, 1, &tag),
                watch.committed(cam_entries + hot as u64 * CROSSING_TOTAL, &svc),
                crossings
            )?;
            watch
                .verify(
                    cams as u64 + n + hot as u64 * 4,
                    cam_entries + hot as u64 * CROSSING_TOTAL,
                )
                .await?;
            let lat = watch.commit_latencies().await?;
            p50.push(percentile(&lat, 0.5) * 1e3);
            p99.push(percentile(&lat, 0.99) * 1e3);
            let hooks = wait_webhooks(&inbox, &crossed).await;
            wh50.push(percentile(&hooks, 0.5) * 1e3);
            wh99.push(percentile(&hooks, 0.99) * 1e3);
            svc.kill();
            drop(watch);
            self.env.drop_database(db).await?;
            finish_broker(broker);

            // The reference: the broker's own publish → mosquitto_sub, same publisher and rate.
            let broker = self.env.broker()?;
            let port = broker.port();
            let id = self.env.unique("msub");
            let mut sub = Lines::spawn(mosquitto_sub(port, &id, false, true), n, true)?;
            wait_subscribed(&sub, port).await?;
            let tag = self.env.unique("pub");
            tokio::try_join!(
                self.feed(&feed, port, 1, &tag),
                sub.wait_done("mosquitto_sub", Duration::from_secs(30))
            )?;
            let lat =
                std::mem::take(&mut sub.seen.lock().unwrap_or_else(|e| e.into_inner()).latencies);
            ref50.push(percentile(&lat, 0.5) * 1e3);
            ref99.push(percentile(&lat, 0.99) * 1e3);
            sub.kill();
            finish_broker(broker);
        }
        let g = "5 latency at 10,000 reports/s (QoS 1)";
        self.figure_t(
            g,
            "publish → occupancy change (commit) p50",
            "ms",
            p50,
            Some(Target::AtMost(20.0)),
        );
        self.figure_t(
            g,
            "publish → occupancy change (commit) p99",
            "ms",
            p99,
            Some(Target::AtMost(100.0)),
        );
        self.figure(g, "publish → mosquitto_sub p50 (broker alone)", "ms", ref50);
        self.figure(g, "publish → mosquitto_sub p99 (broker alone)", "ms", ref99);
        self.figure(
            g,
            &format!("level crossing → webhook p50 ({} crossings)", hot * 4),
            "ms",
            wh50,
        );
        self.figure_t(
            g,
            "level crossing → webhook p99",
            "ms",
            wh99,
            Some(Target::AtMost(1000.0)),
        );
        Ok(())
    }

    // ---- 7. reads ----------------------------------------------------------------------------

    /// `GET /api/v1/spaces` (and single spaces) under `wrk` at ~1,000 requests/s while the
    /// service ingests 20,000 reports/s, about half the live ceiling (target 1's runs: ~40,000/s).
    async fn reads(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            Command::new("wrk")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok(),
            "wrk is needed (Debian package `wrk`)"
        );
        let secs: u64 = if self.quick { 4 } else { 15 };
        let rate = 20_000;
        let n = rate * secs;
        let (spaces, devices) = (10, 20);
        let dir = self.scratch("reads")?;
        let layout = Layout::new(spaces, devices);
        let topics = dir.join("topics.txt");
        layout.write_topics(&topics, devices)?;
        let entries = spread_entries(n, devices as u64);
        let warm = Warm {
            topics: &topics,
            devices: devices as u64,
        };
        let conns = 20;
        let lua = dir.join("reads.lua");
        // Each connection waits conns/rate between its requests: ~1,000 requests/s in all.
        std::fs::write(
            &lua,
            format!(
                r#"local paths = {{ "/api/v1/spaces", "/api/v1/spaces/{root}", "/api/v1/spaces/area-0000" }}
local n = 0
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
    n = n + 1
    return wrk.format("GET", paths[(n % #paths) + 1])
end
delay = function() return {delay} end
done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("RESULT %.4f %.4f %.4f %d %d %.1f\n",
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
        summary.requests, errors, summary.requests / (summary.duration / 1e6)))
end
"#,
                root = workload::ROOT,
                token = workload::READER_TOKEN,
                delay = conns * 1000 / 1000,
            ),
        )?;
        let (mut p50, mut p99, mut rps, mut ingest) = (vec![], vec![], vec![], vec![]);
        for _ in 0..self.runs {
            let broker = self.env.broker()?;
            let db = self.env.database().await?;
            let (mut svc, watch) = self
                .start_service(&layout, &db, &broker, None, warm)
                .await?;
            let tag = self.env.unique("pub");
            let feed = Feed::Many {
                topics: &topics,
                count: n,
                rate,
                seq_base: 1,
            };
            let url = format!("http://{}", svc.http);
            let wrk = async {
                // Reads start once ingest is under way and end before it does.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let out = tokio::process::Command::new("wrk")
                    .args(["-t2", &format!("-c{conns}"), &format!("-d{}s", secs - 2)])
                    .args(["--timeout", "2s", "-s"])
                    .arg(&lua)
                    .arg(&url)
                    .output()
                    .await
                    .context("running wrk")?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let line = text
                    .lines()
                    .find_map(|l| l.strip_prefix("RESULT "))
                    .with_context(|| format!("no RESULT from wrk: {text}"))?;
                let v: Vec<f64> = line
                    .split_whitespace()
                    .map(|x| x.parse().unwrap_or(f64::NAN))
                    .collect();
                anyhow::ensure!(v.len() == 6, "wrk printed {line}");
                anyhow::ensure!(v[4] == 0.0, "wrk saw {} errors", v[4]);
                anyhow::Ok(v)
            };
            let t0 = Instant::now();
            let (_, _, v) = tokio::try_join!(
                self.feed(&feed, broker.port(), 1, &tag),
                watch.committed(entries, &svc),
                wrk
            )?;
            let took = t0.elapsed().as_secs_f64();
            watch.verify(devices as u64 + n, entries).await?;
            p50.push(v[0]);
            p99.push(v[1]);
            rps.push(v[5]);
            ingest.push(n as f64 / took);
            svc.kill();
            drop(watch);
            self.env.drop_database(db).await?;
            finish_broker(broker);
        }
        let g = "7 reads under wrk while ingesting 20,000 reports/s";
        self.figure(g, "ingest achieved", "reports/s", ingest);
        self.figure(g, "reads achieved", "req/s", rps);
        self.figure(g, "GET p50", "ms", p50);
        let m = crate::stats::median(&p99);
        self.figure_t(g, "GET p99", "ms", p99, Some(Target::AtMost(5.0)));
        if self.quick {
            // Gross regressions only: 5 ms is the target, 50 ms is broken.
            self.floor("reads: 50 ms ÷ p99", 50.0 / m, 1.0)?;
        }
        Ok(())
    }

    // ---- 6. footprint -----------------------------------------------------------------------

    /// RSS of the service with 1,000 spaces and 100,000 devices (from a devices CSV, as a large
    /// county would configure them; `VF_BENCH_REGISTRY=toml` writes `[[devices]]` tables instead)
    /// idle, under a full-speed stream from every device, at its start-up peak (VmHWM at
    /// readiness) and over the whole run; the time from spawning it to `/readyz`; and the bytes
    /// each device holds: the idle RSS beyond that of the same spaces with 1,000 devices, over
    /// the 99,000 more.
    async fn footprint(&mut self) -> anyhow::Result<()> {
        let (spaces, devices, few) = (1_000, 100_000, 1_000);
        let n: u64 = if self.quick { 100_000 } else { 300_000 };
        let csv = std::env::var("VF_BENCH_REGISTRY").map_or(true, |v| v != "toml");
        let mut layout = Layout::new(spaces, devices);
        layout.devices_csv = csv;
        let mut small = Layout::new(spaces, few);
        small.devices_csv = csv;
        let dir = self.scratch("footprint")?;
        let topics = dir.join("topics.txt");
        layout.write_topics(&topics, devices)?;
        let small_topics = dir.join("topics-small.txt");
        small.write_topics(&small_topics, few)?;
        let entries = spread_entries(n, devices as u64);
        let warm = Warm {
            topics: &topics,
            devices: devices as u64,
        };
        let (mut idle, mut peak, mut hwm, mut ready, mut per_device) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut start_peak = vec![];
        for _ in 0..self.runs.min(3) {
            // The same spaces with few devices: the baseline of the per-device figure.
            let broker = self.env.broker()?;
            let db = self.env.database().await?;
            let small_warm = Warm {
                topics: &small_topics,
                devices: few as u64,
            };
            let (mut svc, watch) = self
                .start_service(&small, &db, &broker, None, small_warm)
                .await?;
            let pid = svc.pid().context("service pid")?;
            let idle_few = crate::procs::status_kib(pid, "VmRSS:").unwrap_or(0) as f64;
            svc.kill();
            drop(watch);
            self.env.drop_database(db).await?;
            finish_broker(broker);

            let broker = self.env.broker()?;
            let db = self.env.database().await?;
            let (mut svc, watch) = self
                .start_service(&layout, &db, &broker, None, warm)
                .await?;
            let watch = watch.polling(Duration::from_millis(100));
            let pid = svc.pid().context("service pid")?;
            let kib = |field| crate::procs::status_kib(pid, field).unwrap_or(0) as f64;
            let mib = |field| kib(field) / 1024.0;
            ready.push(svc.ready_after.context("readiness time")?.as_secs_f64());
            start_peak.push(svc.ready_hwm_kib.context("VmHWM when ready")? as f64 / 1024.0);
            idle.push(mib("VmRSS:"));
            per_device.push((kib("VmRSS:") - idle_few) * 1024.0 / (devices - few) as f64);
            let tag = self.env.unique("pub");
            let feed = Feed::Many {
                topics: &topics,
                count: n,
                rate: 0,
                seq_base: 1,
            };
            let max_rss = Mutex::new(0.0f64);
            let sample = async {
                loop {
                    let v = mib("VmRSS:");
                    {
                        let mut m = max_rss.lock().unwrap_or_else(|e| e.into_inner());
                        *m = m.max(v);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let run = async {
                tokio::try_join!(
                    self.feed(&feed, broker.port(), 1, &tag),
                    watch.committed(entries, &svc)
                )
            };
            tokio::select! {
                r = run => { r?; }
                _ = sample => unreachable!(),
            }
            watch.verify(devices as u64 + n, entries).await?;
            peak.push(max_rss.into_inner().unwrap_or_else(|e| e.into_inner()));
            hwm.push(mib("VmHWM:"));
            svc.kill();
            drop(watch);
            self.env.drop_database(db).await?;
            finish_broker(broker);
        }
        let g = if csv {
            "6 footprint, 1,000 spaces + 100,000 devices (CSV)"
        } else {
            "6 footprint, 1,000 spaces + 100,000 devices (TOML)"
        };
        self.figure(g, "RSS after start (idle)", "MiB", idle);
        self.figure_t(
            g,
            "RSS under load (max sampled)",
            "MiB",
            peak,
            Some(Target::AtMost(100.0)),
        );
        self.figure_t(
            g,
            "start-up peak RSS (VmHWM when ready)",
            "MiB",
            start_peak,
            Some(Target::AtMost(150.0)),
        );
        self.figure(g, "peak RSS (VmHWM, start-up and load)", "MiB", hwm);
        self.figure_t(
            g,
            "start-up to ready (spawn → /readyz)",
            "s",
            ready,
            Some(Target::AtMost(2.0)),
        );
        self.figure(
            g,
            "idle bytes per device (vs 1,000 devices)",
            "B",
            per_device,
        );
        Ok(())
    }
}

/// The service's Prometheus text.
async fn metrics(http: &reqwest::Client, svc: &Service) -> Option<String> {
    let url = format!("http://{}/metrics", svc.http);
    http.get(url).send().await.ok()?.text().await.ok()
}

/// The sum of the samples of `name` (every label set) in Prometheus text.
fn sample_sum(text: &str, name: &str) -> Option<f64> {
    let mut samples = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .peekable();
    samples.peek()?;
    Some(samples.sum())
}

/// Alert changes the service has recorded so far (all kinds), from its Prometheus counters.
async fn alert_transitions(http: &reqwest::Client, svc: &Service) -> Option<f64> {
    let text = metrics(http, svc).await?;
    Some(sample_sum(&text, "visitorflow_alert_transitions_total").unwrap_or(0.0))
}

/// The mean duration of the service's rule evaluations so far, from its Prometheus summary.
async fn evaluation_ms(http: &reqwest::Client, svc: &Service) -> Option<f64> {
    let text = metrics(http, svc).await?;
    let sum = sample_sum(&text, "visitorflow_alert_evaluation_seconds_sum")?;
    let count = sample_sum(&text, "visitorflow_alert_evaluation_seconds_count")?;
    (count > 0.0).then(|| sum / count * 1e3)
}

/// The county's entries after the warm-up (seq 1 from each device) and `n` reports round-robin
/// over `devices` devices (seqs from 2).
fn spread_entries(n: u64, devices: u64) -> u64 {
    workload::expected_entries((0..devices).map(|d| 1 + n / devices + u64::from(d < n % devices)))
}

/// The county's entries after the warm-up of `devices` devices and the chunks (one device each,
/// seqs from 2).
fn chunk_entries(chunks: &[Chunk], devices: usize) -> u64 {
    let fed = chunks.iter().map(|c| 1 + c.lines);
    let idle = (chunks.len()..devices).map(|_| 1);
    workload::expected_entries(fed.chain(idle))
}

fn finish_broker(broker: Mosquitto) {
    let dir = broker.dir().to_path_buf();
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// Watches a service run: committed progress from its live view (figures are published there
/// when their commit returns; the state tables may follow at the next checkpoint), then the
/// exactly-once check on its database.
struct Watch {
    db: tokio_postgres::Client,
    http: reqwest::Client,
    every: Duration,
}

impl Watch {
    async fn new(db: &Db) -> anyhow::Result<Watch> {
        Ok(Watch {
            db: db.connect().await?,
            http: reqwest::Client::new(),
            every: Duration::from_millis(10),
        })
    }

    fn polling(self, every: Duration) -> Watch {
        Watch { every, ..self }
    }

    /// The county's committed entries today, as the service's API shows them; 0 while the
    /// service is still starting (a backlog run watches from its process start).
    async fn county(&self, svc: &Service) -> anyhow::Result<u64> {
        let url = format!("http://{}/api/v1/spaces/county", svc.http);
        let sent = self
            .http
            .get(url)
            .bearer_auth(workload::READER_TOKEN)
            .send()
            .await;
        let v: serde_json::Value = match sent {
            Ok(r) if r.status().is_success() => r.json().await?,
            // Not up or not ready yet; a service that never is stalls the watch (below).
            Ok(_) => return Ok(0),
            Err(e) if e.is_connect() => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(v["entries_today"].as_u64().unwrap_or(0))
    }

    /// Polls (every 10 ms unless told otherwise) until the county's committed entries reach
    /// `entries`.
    async fn committed(&self, entries: u64, svc: &Service) -> anyhow::Result<Instant> {
        let mut last = (0, Instant::now());
        loop {
            let now = Instant::now();
            let e = self.county(svc).await?;
            if e >= entries {
                return Ok(now);
            }
            if e != last.0 {
                last = (e, now);
            } else if last.1.elapsed() > Duration::from_secs(60) {
                bail!(
                    "service stalled at {e} of {entries} entries; see {}",
                    svc.log.display()
                );
            }
            tokio::time::sleep(self.every).await;
        }
    }

    async fn verify(&self, n: u64, entries: u64) -> anyhow::Result<()> {
        verify_exactly_once(&self.db, n, entries).await
    }

    /// Seconds from each camera report's stamp (set at publish) to its transaction's commit.
    async fn commit_latencies(&self) -> anyhow::Result<Vec<f64>> {
        let rows = self
            .db
            .query(
                "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts)::float8 \
                 FROM reports WHERE device_id LIKE 'cam-%'",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Webhooks received: (when, space, level) of each firing alert.
type Inbox = Mutex<Vec<(DateTime<Utc>, String, String)>>;

/// Entries each hot area's gate reports: 61 (60% blue), +20 (yellow), +10 (orange), +10 (red).
const CROSSING_STEPS: [u64; 4] = [61, 20, 10, 10];
const CROSSING_TOTAL: u64 = 101;
const LEVELS: [&str; 4] = ["blue", "yellow", "orange", "red"];

/// Publishes each hot area's four level crossings, spread over `span`; returns when each
/// crossing report was published: (space, level, time).
async fn cross_levels(
    port: u16,
    areas: usize,
    span: Duration,
) -> anyhow::Result<Vec<(String, String, DateTime<Utc>)>> {
    let mut o = MqttOptions::new(
        format!("crossings-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut ev) = AsyncClient::new(o, 100);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    let acks = tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    // Steps of one area at least 1.5 s apart, so each crossing normally gets its own evaluation.
    let round = span
        .mul_f64(0.8 / CROSSING_STEPS.len() as f64)
        .max(Duration::from_millis(1500));
    let gap = round / areas as u32;
    let mut out = Vec::new();
    tokio::time::sleep(span / 20).await;
    for (step, e) in CROSSING_STEPS.iter().enumerate() {
        for a in 0..areas {
            let space = format!("hot-{a:03}");
            let topic = format!("vf/{space}/{space}-gate/counts");
            let now = Utc::now();
            let body = format!(
                r#"{{"seq":{},"ts":"{}","in":{e},"out":0}}"#,
                step + 1,
                workload::stamp(now)
            );
            client.publish(topic, QoS::AtLeastOnce, false, body).await?;
            out.push((space, LEVELS[step].to_owned(), now));
            tokio::time::sleep(gap).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), acks).await;
    Ok(out)
}

async fn webhook_receiver(inbox: Arc<Inbox>) -> anyhow::Result<std::net::SocketAddr> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let inbox = Arc::clone(&inbox);
            async move {
                let at = Utc::now();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["state"] == "firing" {
                    let space = v["space"]["id"].as_str().unwrap_or("").to_owned();
                    let level = v["level"].as_str().unwrap_or("").to_owned();
                    inbox
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((at, space, level));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Seconds from each crossing's publish to its webhook's arrival (waits up to 10 s for them);
/// a crossing whose webhook never came counts as 10 s.
async fn wait_webhooks(inbox: &Inbox, crossed: &[(String, String, DateTime<Utc>)]) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = inbox.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let lat: Vec<Option<f64>> = crossed
            .iter()
            .map(|(space, level, at)| {
                // Two crossings inside one evaluation interval give one webhook, for the higher
                // level: it tells of both.
                let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
                got.iter()
                    .filter(|(t, s, l)| s == space && t >= at && rank(l) >= rank(level))
                    .map(|(t, _, _)| (*t - *at).as_seconds_f64())
                    .reduce(f64::min)
            })
            .collect();
        if lat.iter().all(Option::is_some) || Instant::now() > deadline {
            let missing = lat.iter().filter(|l| l.is_none()).count();
            if missing > 0 {
                eprintln!("   {missing} level crossings without a webhook");
            }
            return lat.into_iter().map(|l| l.unwrap_or(10.0)).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

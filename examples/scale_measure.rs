//! The measurements behind docs/scaling.md.
//!
//! `cargo run --release --example scale_measure -- apply` — CPU per report of the pure ingest
//! path (topic parse, device lookup, JSON decode, de-duplication, occupancy, roll-ups, buckets)
//! with 100,000 devices and 10, 1,000 and 10,000 spaces: does the cost per report stay flat as
//! the registry grows? Prints ns per report, reports per second on one core, and the ratios, for
//! the whole path and for `Core::apply` alone. `apply SPACES N RUNS` measures one size;
//! `apply SPACES N 0` makes a single pass (with `DECODE_ONLY=1`, of the part before
//! `Core::apply`) for `valgrind --tool=callgrind --cache-sim=yes --collect-atstart=no
//! --toggle-collect='*run_once*'`: instruction and simulated cache-miss counts that do not depend
//! on the machine's load.
//!
//! `cargo run --release --example scale_measure -- storage [N]` — starts a private PostgreSQL
//! (plain, no TimescaleDB), commits N (default 100,000) reports through the real
//! `store::commit_batch` in 5,000-message batches, and prints the commit rate on one connection
//! and `pg_total_relation_size` per stored row of each table, with the province-sized registry
//! (10,000 spaces, 100,000 devices); then times `store::load_state`, the read a partitioned
//! instance repeats every `refresh_ms` for the partitions it does not hold.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use visitorflow::config::{Config, DeviceConfig, DeviceKind, SpaceConfig, SpaceKind};
use visitorflow::core::Core;
use visitorflow::decode::{self, CountReport, Limits};
use visitorflow::ids::DeviceIdx;
use visitorflow::registry::Registry;

const DEVICES: usize = 100_000;
const BATCH: usize = 5_000;

fn space(id: String, kind: SpaceKind, parent: Option<String>) -> SpaceConfig {
    SpaceConfig {
        id,
        kind,
        parent,
        name_zh: "景".into(),
        name_en: "S".into(),
        instant_capacity: None,
        daily_capacity: None,
        opens_at: None,
    }
}

/// A county of `spaces` spaces (the root, areas and zones, nine zones per area) and `devices`
/// cameras spread over the zones. Every report rolls up zone → area → county, so the work per
/// report is the same at every size and only the registry grows.
fn county(spaces: usize, devices: usize) -> Config {
    let mut cfg = Config::from_toml("").expect("empty config");
    let areas = (spaces - 1).div_ceil(10).max(1);
    cfg.spaces
        .push(space("county".into(), SpaceKind::County, None));
    for a in 0..areas {
        cfg.spaces.push(space(
            format!("a{a}"),
            SpaceKind::ScenicArea,
            Some("county".into()),
        ));
    }
    let zones: Vec<String> = (0..spaces - 1 - areas).map(|z| format!("z{z}")).collect();
    for (z, id) in zones.iter().enumerate() {
        cfg.spaces.push(space(
            id.clone(),
            SpaceKind::Zone,
            Some(format!("a{}", z % areas)),
        ));
    }
    for d in 0..devices {
        cfg.devices.push(DeviceConfig {
            id: format!("cam-{d}"),
            space: zones[d % zones.len()].clone(),
            kind: DeviceKind::Camera,
            format: Default::default(),
            direction: Default::default(),
            lines: Vec::new(),
            channel: None,
            http_sha256: None,
            poll: None,
        });
    }
    cfg
}

/// A deterministic stream: (topic, payload) of `n` reports over random devices, each device's
/// seq increasing by one, timestamps advancing a second per 1,000 reports.
fn stream(reg: &Registry, n: usize, start: DateTime<Utc>) -> Vec<(String, Vec<u8>)> {
    let mut seq = vec![0u64; reg.devices.len()];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = (x % reg.devices.len() as u64) as usize;
            seq[d] += 1;
            let dev = &reg.devices[d];
            let ts = start + TimeDelta::milliseconds(i as i64);
            let topic = format!("vf/{}/{}/counts", reg.space(dev.space).id, dev.id);
            let payload = format!(
                r#"{{"seq":{},"ts":"{}","in":{},"out":{}}}"#,
                seq[d],
                ts.to_rfc3339(),
                1 + i % 3,
                i % 2
            );
            (topic, payload.into_bytes())
        })
        .collect()
}

/// Runs the pure path over the stream once (without `Core::apply` when `decode_only`); returns
/// ns per report. `#[inline(never)]` so callgrind can count this function alone.
#[inline(never)]
fn run_once(
    reg: &Arc<Registry>,
    msgs: &[(String, Vec<u8>)],
    limits: &Limits,
    decode_only: bool,
) -> f64 {
    let mut core = Core::new(Arc::clone(reg));
    let mut batch = core.new_batch();
    let mut scratch: Vec<Result<CountReport, decode::Reject>> = Vec::new();
    let received = Utc::now();
    let started = Instant::now();
    for (i, (topic, payload)) in msgs.iter().enumerate() {
        let t = decode::parse_topic("vf", topic).expect("topic");
        let dev: DeviceIdx = reg.device_idx(t.device).expect("device");
        scratch.clear();
        decode::decode_counts(reg.device(dev), payload, received, limits, &mut scratch)
            .expect("payload");
        for r in scratch.drain(..) {
            let r = r.expect("report");
            if decode_only {
                std::hint::black_box(&r);
            } else {
                core.apply(dev, &r, received, &mut batch);
            }
        }
        if (i + 1) % BATCH == 0 {
            core.finish_batch(&mut batch);
            std::hint::black_box(&batch);
            batch.clear();
        }
    }
    started.elapsed().as_nanos() as f64 / msgs.len() as f64
}

fn limits() -> Limits {
    Limits::from(&visitorflow::config::IngestConfig {
        max_age_days: 36_500,
        ..Default::default()
    })
}

/// Best of `runs` passes over `n` reports for each registry size: the whole pure path, and the
/// part before `Core::apply` (topic, lookup, JSON), whose difference is the core's own cost.
fn apply(sizes: &[usize], n: usize, runs: usize) {
    if sizes.len() == 1 && runs == 0 {
        // One pass and nothing else: what callgrind counts.
        let reg = Arc::new(county(sizes[0], DEVICES).registry().expect("registry"));
        let msgs = stream(&reg, n, Utc::now() - TimeDelta::hours(1));
        let decode_only = std::env::var_os("DECODE_ONLY").is_some();
        println!(
            "{:.0} ns/report",
            run_once(&reg, &msgs, &limits(), decode_only)
        );
        return;
    }
    let limits = limits();
    let start = Utc::now() - TimeDelta::hours(1);
    println!("pure ingest path, {DEVICES} devices, {n} reports, best of {runs} runs");
    println!(
        "{:>8} {:>10} {:>15} {:>7} {:>13} {:>10} {:>7}",
        "spaces", "ns/report", "reports/s/core", "ratio", "decode ns/rep", "core ns", "ratio"
    );
    let mut base = None;
    for &spaces in sizes {
        let reg = Arc::new(county(spaces, DEVICES).registry().expect("registry"));
        let msgs = stream(&reg, n, start);
        let best = |decode_only| {
            (0..runs)
                .map(|_| run_once(&reg, &msgs, &limits, decode_only))
                .fold(f64::INFINITY, f64::min)
        };
        let (all, decode) = (best(false), best(true));
        let core = all - decode;
        let (b_all, b_core) = *base.get_or_insert((all, core));
        println!(
            "{spaces:>8} {all:>10.0} {:>15.0} {:>7.2} {decode:>13.0} {core:>10.0} {:>7.2}",
            1e9 / all,
            all / b_all,
            core / b_core
        );
    }
}

fn storage(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = visitorflow::supervise::PgCluster::start(&dir.path().join("pg"))?;
    pg.create_database("vf")?;
    let url = pg.url("vf");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        visitorflow::store::migrate(&url, "Asia/Shanghai", false, 30).await?;
        let mut db = visitorflow::store::connect(&url).await?;
        // The province-sized registry: 10,000 spaces, 100,000 devices.
        let reg = Arc::new(county(10_000, DEVICES).registry().expect("registry"));
        let start = Utc::now() - TimeDelta::hours(2);
        let msgs = stream(&reg, n, start);
        let limits = Limits::from(&visitorflow::config::IngestConfig {
            max_age_days: 36_500,
            ..Default::default()
        });
        let mut core = Core::new(Arc::clone(&reg));
        let mut batch = core.new_batch();
        let mut scratch = Vec::new();
        let received = Utc::now();
        let started = Instant::now();
        let mut commit_time = 0.0;
        for chunk in msgs.chunks(BATCH) {
            for (topic, payload) in chunk {
                let t = decode::parse_topic("vf", topic).expect("topic");
                let dev = reg.device_idx(t.device).expect("device");
                scratch.clear();
                decode::decode_counts(reg.device(dev), payload, received, &limits, &mut scratch)
                    .expect("payload");
                for r in scratch.drain(..) {
                    core.apply(dev, &r.expect("report"), received, &mut batch);
                }
            }
            core.finish_batch(&mut batch);
            let c = Instant::now();
            visitorflow::store::commit_batch(&mut db, &core, &batch).await?;
            commit_time += c.elapsed().as_secs_f64();
            batch.clear();
        }
        let total = started.elapsed().as_secs_f64();
        db.batch_execute("VACUUM ANALYZE").await?;
        println!(
            "{n} reports in {} batches of {BATCH}: {:.1} s ({:.0} reports/s end to end on one \
             connection; commit alone {:.0} reports/s)",
            n.div_ceil(BATCH),
            total,
            n as f64 / total,
            n as f64 / commit_time
        );
        println!(
            "{:<16} {:>10} {:>14} {:>12}",
            "table", "rows", "total bytes", "bytes/row"
        );
        for table in ["reports", "space_series_1m", "device_state", "space_state"] {
            let r = db
                .query_one(
                    &format!("SELECT count(*), pg_total_relation_size('{table}') FROM {table}"),
                    &[],
                )
                .await?;
            let (rows, bytes): (i64, i64) = (r.get(0), r.get(1));
            println!(
                "{table:<16} {rows:>10} {bytes:>14} {:>12.1}",
                bytes as f64 / rows.max(1) as f64
            );
        }
        // What a partitioned instance reads every `refresh_ms` for the partitions it does not hold.
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let mut fresh = Core::new(Arc::clone(&reg));
            let t = Instant::now();
            visitorflow::store::load_state(&db, &mut fresh).await?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "load_state (the partition refresh read) of {} devices and {} spaces: {:.0} ms",
            reg.devices.len(),
            reg.spaces.len(),
            best * 1e3
        );
        if pg.timescaledb_available() {
            compression(&pg).await?;
        } else {
            println!("TimescaleDB not installed next to the server: compression not measured");
        }
        anyhow::Ok(())
    })?;
    drop(pg);
    Ok(())
}

/// A county day on TimescaleDB: 1,000 devices over 1,000 spaces, each reporting every 60 s, 100
/// reports each (100,000 rows), committed as above; then every chunk is compressed (segments by
/// device and space, ordered by time) and the hypertables are measured before and after.
async fn compression(pg: &visitorflow::supervise::PgCluster) -> anyhow::Result<()> {
    pg.create_database("vft")?;
    let url = pg.url("vft");
    let mode = visitorflow::store::migrate(&url, "Asia/Shanghai", true, 30).await?;
    anyhow::ensure!(
        mode == visitorflow::store::Mode::Timescale,
        "TimescaleDB did not load"
    );
    let mut db = visitorflow::store::connect(&url).await?;
    let reg = Arc::new(county(1_000, 1_000).registry().expect("registry"));
    let start = Utc::now() - TimeDelta::days(2);
    let (per_device, limits) = (100usize, limits());
    let mut core = Core::new(Arc::clone(&reg));
    let mut batch = core.new_batch();
    let mut scratch = Vec::new();
    let mut n = 0usize;
    for i in 0..per_device {
        for dev in &reg.devices {
            let ts = start + TimeDelta::seconds(60 * i as i64);
            let payload = format!(
                r#"{{"seq":{},"ts":"{}","in":{},"out":{},"period_s":60}}"#,
                i + 1,
                ts.to_rfc3339(),
                (i + dev.idx.get()) % 7,
                (i + 2 * dev.idx.get()) % 5
            );
            scratch.clear();
            decode::decode_counts(dev, payload.as_bytes(), ts, &limits, &mut scratch)
                .expect("payload");
            for r in scratch.drain(..) {
                core.apply(
                    dev.idx,
                    &r.expect("report"),
                    ts + TimeDelta::milliseconds(800),
                    &mut batch,
                );
            }
            n += 1;
            if n.is_multiple_of(BATCH) {
                core.finish_batch(&mut batch);
                visitorflow::store::commit_batch(&mut db, &core, &batch).await?;
                batch.clear();
            }
        }
    }
    core.finish_batch(&mut batch);
    visitorflow::store::commit_batch(&mut db, &core, &batch).await?;
    db.batch_execute(
        "ALTER TABLE reports SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', \
             timescaledb.compress_orderby = 'ts, seq'); \
         ALTER TABLE space_series_1m SET (timescaledb.compress, \
             timescaledb.compress_segmentby = 'space_id', timescaledb.compress_orderby = 'bucket')",
    )
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    let size = |t: &'static str| {
        let db = &db;
        async move {
            let r = db
                .query_one(
                    &format!("SELECT count(*), hypertable_size('{t}') FROM {t}"),
                    &[],
                )
                .await?;
            anyhow::Ok((r.get::<_, i64>(0), r.get::<_, i64>(1)))
        }
    };
    let before = [size("reports").await?, size("space_series_1m").await?];
    db.batch_execute(
        "SELECT compress_chunk(c) FROM show_chunks('reports') c; \
         SELECT compress_chunk(c) FROM show_chunks('space_series_1m') c",
    )
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    let after = [size("reports").await?, size("space_series_1m").await?];
    println!(
        "TimescaleDB, {} devices × {per_device} reports at 60 s:",
        reg.devices.len()
    );
    println!(
        "{:<16} {:>10} {:>16} {:>16} {:>8}",
        "hypertable", "rows", "bytes/row before", "bytes/row after", "ratio"
    );
    for (t, (b, a)) in ["reports", "space_series_1m"]
        .iter()
        .zip(before.iter().zip(after))
    {
        let rows = b.0.max(1) as f64;
        println!(
            "{t:<16} {:>10} {:>16.1} {:>16.1} {:>8.1}",
            b.0,
            b.1 as f64 / rows,
            a.1 as f64 / rows,
            b.1 as f64 / a.1.max(1) as f64
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => apply(&[10, 1_000, 10_000], 1_000_000, 5),
        Some("apply") if args.len() == 1 => apply(&[10, 1_000, 10_000], 1_000_000, 5),
        // `apply SPACES N RUNS`: one size; RUNS = 0 makes a single pass of the whole path (or,
        // with DECODE_ONLY set, of the part before `Core::apply`) for callgrind.
        Some("apply") => {
            let num = |i: usize, d: usize| -> anyhow::Result<usize> {
                Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
            };
            apply(&[num(1, 10)?], num(2, 100_000)?, num(3, 1)?)
        }
        Some("storage") => storage(
            args.get(1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(100_000),
        )?,
        Some(other) => {
            eprintln!("usage: scale_measure [apply [SPACES N RUNS] | storage [N]] (not {other:?})");
            std::process::exit(2);
        }
    }
    Ok(())
}

//! Target 4: the service's raw-report insert (binary COPY, one commit per batch, through
//! `store::commit_batch` itself) against `psql \copy` of the same rows into the same table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use visitorflow::config::Config;
use visitorflow::core::{Batch, Core, RawRow};
use visitorflow::decode::CountReport;
use visitorflow::ids::DeviceIdx;
use visitorflow::registry::Registry;
use visitorflow::store;

use crate::workload::{self, Layout};

/// Rows per commit: the service's default `batch_max_messages`.
pub const BATCH: usize = 5_000;
const COLUMNS: &str = "device_id, seq, ts, received_at, space_id, entries, exits, repaired_entries, \
    repaired_exits, total_in, total_out, period_s";

pub struct RawPath {
    db: tokio_postgres::Client,
    registry: Arc<Registry>,
    rows: Vec<RawRow>,
    csv: PathBuf,
}

impl RawPath {
    pub async fn prepare(url: &str, dir: &Path, n: usize) -> anyhow::Result<RawPath> {
        store::migrate(url, "Asia/Shanghai", false, 7).await?;
        let db = store::connect(url).await?;
        let layout = Layout::new(100, 500);
        let mut cfg = Config::from_toml("")?;
        cfg.spaces = layout.spaces;
        cfg.devices = layout.devices;
        let registry = Arc::new(cfg.registry()?);
        let devices = registry.devices.len();
        let start = Utc::now() - TimeDelta::hours(1);
        let received = Utc::now();
        let rows: Vec<RawRow> = (0..n)
            .map(|i| {
                let seq = (i / devices) as u64 + 1;
                let (e, x) = workload::counts(seq);
                let (te, tx) = workload::totals(seq);
                RawRow {
                    device: DeviceIdx((i % devices) as u32),
                    seq,
                    ts: start + TimeDelta::milliseconds(i as i64),
                    received,
                    entries: e as u32,
                    exits: x as u32,
                    repaired_entries: 0,
                    repaired_exits: 0,
                    total_entries: Some(te),
                    total_exits: Some(tx),
                    period_s: Some(60),
                    gap_from: None,
                    repair_from: None,
                }
            })
            .collect();
        let csv = dir.join("reports.csv");
        let mut s = String::with_capacity(n * 120);
        for r in &rows {
            let dev = registry.device(r.device);
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},0,0,{},{},60",
                dev.id,
                r.seq,
                r.ts.format("%Y-%m-%d %H:%M:%S%.6f+00"),
                r.received.format("%Y-%m-%d %H:%M:%S%.6f+00"),
                registry.space(dev.space).id,
                r.entries,
                r.exits,
                r.total_entries.unwrap_or(0),
                r.total_exits.unwrap_or(0),
            );
        }
        std::fs::write(&csv, s)?;
        Ok(RawPath {
            db,
            registry,
            rows,
            csv,
        })
    }

    async fn truncate(&self) -> anyhow::Result<()> {
        self.db
            .batch_execute(
                "TRUNCATE reports, space_series_1m, device_state, space_state; CHECKPOINT",
            )
            .await?;
        Ok(())
    }

    /// Seconds for `psql \copy` of every row (CSV, one transaction).
    pub async fn psql_copy(&self, port: u16, database: &str) -> anyhow::Result<f64> {
        self.truncate().await?;
        let t = Instant::now();
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-U",
                store_user(),
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
            ])
            .arg(format!(
                "\\copy reports ({COLUMNS}) FROM '{}' WITH (FORMAT csv)",
                self.csv.display()
            ))
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "psql \\copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.check(self.rows.len()).await?;
        Ok(secs)
    }

    /// Seconds the service's commit path takes for every row in batches of [`BATCH`], one
    /// transaction each. `full`: batches as the ingester builds them (minute buckets, device and
    /// space state); otherwise raw reports only.
    pub async fn batched_copy(&mut self, full: bool) -> anyhow::Result<f64> {
        self.truncate().await?;
        let mut core = Core::new(Arc::clone(&self.registry));
        let mut batch = if full {
            core.new_batch()
        } else {
            Batch::default()
        };
        let mut secs = 0.0;
        for chunk in self.rows.chunks(BATCH) {
            if full {
                for r in chunk {
                    core.apply(r.device, &report_of(r), r.received, &mut batch);
                }
                core.finish_batch(&mut batch);
            } else {
                batch.rows.extend_from_slice(chunk);
            }
            let t = Instant::now();
            store::commit_batch(&mut self.db, &core, &batch).await?;
            secs += t.elapsed().as_secs_f64();
            batch.clear();
        }
        self.check(self.rows.len()).await?;
        Ok(secs)
    }

    /// A backfill below the de-duplication window: every device has reported far ahead, then
    /// every row arrives as its late backlog, batch by batch as the ingester handles it (apply,
    /// one raw-table lookup for the batch, settle, commit). Returns the seconds spent in the
    /// lookups and in the whole path.
    pub async fn backfill(&mut self) -> anyhow::Result<(f64, f64)> {
        self.truncate().await?;
        let mut core = Core::new(Arc::clone(&self.registry));
        let mut batch = core.new_batch();
        let now = Utc::now();
        for d in 0..self.registry.devices.len() {
            let ahead = CountReport {
                seq: 10_000_000,
                ts: now,
                entries: 0,
                exits: 0,
                period_s: Some(60),
                total_entries: None,
                total_exits: None,
                ts_from_device: true,
            };
            core.apply(DeviceIdx(d as u32), &ahead, now, &mut batch);
        }
        core.finish_batch(&mut batch);
        store::commit_batch(&mut self.db, &core, &batch).await?;
        batch.clear();
        let (mut lookup, mut total) = (0.0, 0.0);
        for chunk in self.rows.chunks(BATCH) {
            let t = Instant::now();
            for r in chunk {
                core.apply(r.device, &report_of(r), r.received, &mut batch);
            }
            anyhow::ensure!(batch.pending.len() == chunk.len(), "not below the window");
            let l = Instant::now();
            let found = store::lookup(&self.db, &self.registry, &batch.pending).await?;
            lookup += l.elapsed().as_secs_f64();
            core.settle(&mut batch, &found);
            core.finish_batch(&mut batch);
            store::commit_batch(&mut self.db, &core, &batch).await?;
            total += t.elapsed().as_secs_f64();
            anyhow::ensure!(
                batch.stats.late == chunk.len() as u64,
                "late reports not counted"
            );
            batch.clear();
        }
        self.check(self.rows.len() + self.registry.devices.len())
            .await?;
        Ok((lookup, total))
    }

    async fn check(&self, n: usize) -> anyhow::Result<()> {
        let r = self
            .db
            .query_one("SELECT count(*) FROM reports", &[])
            .await?;
        let got: i64 = r.get(0);
        anyhow::ensure!(got as usize == n, "raw path stored {got} of {n} rows");
        Ok(())
    }
}

/// The report a stored row was made from.
fn report_of(r: &RawRow) -> CountReport {
    CountReport {
        seq: r.seq,
        ts: r.ts,
        entries: r.entries,
        exits: r.exits,
        period_s: r.period_s,
        total_entries: r.total_entries,
        total_exits: r.total_exits,
        ts_from_device: true,
    }
}

fn store_user() -> &'static str {
    visitorflow::supervise::PG_USER
}

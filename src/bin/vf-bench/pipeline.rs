//! `vf-bench pipeline`: the service's own work on a report — topic routing, decoding,
//! de-duplication, occupancy and minute buckets, in batches — run in-process over generated
//! reports, without a broker or a database. Under callgrind it gives instructions per report,
//! which this shared machine's timing noise does not blur (docs/performance.md, Profiling):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*pipeline*run_core*' \
//!     target/release/vf-bench pipeline --spaces 10000 --devices 20000 --reports 200000
//! ```

use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use visitorflow::config::Config;
use visitorflow::core::Core;
use visitorflow::core::route::{Routed, Router};
use visitorflow::decode::Limits;

use crate::workload::{Layout, payload, stamp};

#[derive(clap::Args)]
pub struct PipelineOpts {
    /// Spaces of the generated county (the county, scenic areas, zones).
    #[arg(long, default_value_t = 10)]
    spaces: usize,
    /// Counters, spread over the zones; each report comes from the next one in turn.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Reports to run through the core.
    #[arg(long, default_value_t = 100_000)]
    reports: u64,
    /// Reports per batch, as `batch_max_messages`.
    #[arg(long, default_value_t = 5_000)]
    batch: u64,
}

/// What one run counted: every report, and the entries they carried.
struct Done {
    counted: u64,
    entries: u64,
}

pub fn run(o: &PipelineOpts) -> anyhow::Result<()> {
    let layout = Layout::new(o.spaces, o.devices);
    let mut cfg = Config::from_toml("")?;
    let topics: Vec<String> = (0..layout.devices.len()).map(|d| layout.topic(d)).collect();
    cfg.spaces = layout.spaces;
    cfg.devices = layout.devices;
    let registry = Arc::new(cfg.registry()?);
    let limits = Limits::from(&cfg.ingest);
    let router = Router {
        registry: &registry,
        prefix: &cfg.mqtt.topic_prefix,
        limits: &limits,
    };
    // The payloads are made beforehand: what is measured is the service's part only.
    let mut payloads = Vec::with_capacity(o.reports as usize);
    let mut p = String::new();
    let n = topics.len() as u64;
    // A report a second from each counter, the last ones a minute ago (none in the future).
    let rounds = o.reports.div_ceil(n) as i64;
    let start = Utc::now() - TimeDelta::seconds(rounds + 60);
    for k in 0..o.reports {
        let seq = k / n + 1;
        let ts = start + TimeDelta::milliseconds((k / n) as i64 * 1_000);
        payload(&mut p, seq, &stamp(ts));
        payloads.push(((k % n) as usize, p.clone().into_bytes()));
    }
    let mut core = Core::new(Arc::clone(&registry));
    let started = Instant::now();
    let done = run_core(&router, &mut core, &topics, &payloads, o.batch.max(1));
    let took = started.elapsed();
    anyhow::ensure!(
        done.counted == o.reports,
        "counted {} of {} reports",
        done.counted,
        o.reports
    );
    let county = registry
        .space_idx(crate::workload::ROOT)
        .expect("the county");
    anyhow::ensure!(
        core.counts[county.get()].entries == done.entries,
        "the county counted {} entries, the reports carried {}",
        core.counts[county.get()].entries,
        done.entries
    );
    println!(
        "{} reports from {} counters over {} spaces: {:.0} reports/s, {:.2} µs per report",
        o.reports,
        topics.len(),
        registry.spaces.len(),
        o.reports as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / o.reports as f64
    );
    Ok(())
}

/// The measured part: every report routed, decoded and applied, a batch finished every `batch`.
#[inline(never)]
fn run_core(
    router: &Router<'_>,
    core: &mut Core,
    topics: &[String],
    payloads: &[(usize, Vec<u8>)],
    batch: u64,
) -> Done {
    let received = Utc::now();
    let mut b = core.new_batch();
    let mut scratch = Vec::new();
    let mut done = Done {
        counted: 0,
        entries: 0,
    };
    for (k, (d, body)) in payloads.iter().enumerate() {
        if let Routed::Counts { device } = router.route(&topics[*d], body, received, &mut scratch) {
            for r in scratch.drain(..).flatten() {
                if core.apply(device, &r, received, &mut b).counts() {
                    done.counted += 1;
                    done.entries += u64::from(r.entries);
                }
            }
        }
        if (k as u64 + 1).is_multiple_of(batch) {
            core.finish_batch(&mut b);
            b.clear();
        }
    }
    core.finish_batch(&mut b);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_is_counted_once_at_both_ends_of_the_scale() {
        for (spaces, devices) in [(10, 20), (1_000, 2_000)] {
            let o = PipelineOpts {
                spaces,
                devices,
                reports: 5_000,
                batch: 700,
            };
            run(&o).unwrap_or_else(|e| panic!("{spaces} spaces: {e:#}"));
        }
    }
}

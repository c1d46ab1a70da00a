//! The live view the API reads: each space's and device's latest committed figures. The ingester
//! publishes into it after every commit (so nothing uncommitted is ever shown); readers copy out.
//! Locks are held for a copy only, never across an `.await`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::core::{Batch, Core};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::rules::Status;
use crate::telemetry;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SpaceNow {
    pub day: Option<NaiveDate>,
    pub occupancy: u64,
    pub entries_today: u64,
    pub exits_today: u64,
    /// Exits today that had no matching entry (counter drift); > 0 deserves a look.
    pub drift_today: u64,
    pub peak_today: u64,
    pub peak_at: Option<DateTime<Utc>>,
    pub last_report: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DeviceNow {
    pub last_seq: Option<u64>,
    pub last_report: Option<DateTime<Utc>>,
    pub last_received: Option<DateTime<Utc>>,
    pub online: Option<bool>,
    /// Reports known missing and not repaired: a data-quality problem.
    pub missing_reports: u64,
    pub gap_reports_total: u64,
    pub repaired_reports_total: u64,
    pub seq_restarts_total: u64,
}

pub struct Live {
    spaces: RwLock<Vec<SpaceNow>>,
    /// The capacity rules' view of each space (levels, forecast, stale, closed), from alerting.
    statuses: RwLock<Vec<Option<Arc<Status>>>>,
    devices: RwLock<Vec<DeviceNow>>,
    broker_connected: AtomicBool,
    /// The ingester has loaded its state and holds a broker session.
    ingest_ready: AtomicBool,
    /// Each space's occupancy, entries and drift gauges, registered on the first publish:
    /// looking them up by label for every space of every batch cost more than the batch's
    /// decoding on a large registry.
    gauges: OnceLock<Vec<[metrics::Gauge; 3]>>,
}

impl Live {
    pub fn new(spaces: usize, devices: usize) -> Self {
        Self {
            spaces: RwLock::new(vec![SpaceNow::default(); spaces]),
            statuses: RwLock::new(vec![None; spaces]),
            devices: RwLock::new(vec![DeviceNow::default(); devices]),
            broker_connected: AtomicBool::new(false),
            ingest_ready: AtomicBool::new(false),
            gauges: OnceLock::new(),
        }
    }

    pub fn space(&self, s: SpaceIdx) -> SpaceNow {
        self.spaces.read().unwrap_or_else(|e| e.into_inner())[s.get()]
    }

    pub fn spaces(&self) -> Vec<SpaceNow> {
        self.spaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn device(&self, d: DeviceIdx) -> DeviceNow {
        self.devices.read().unwrap_or_else(|e| e.into_inner())[d.get()]
    }

    pub fn devices(&self) -> Vec<DeviceNow> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn status(&self, s: SpaceIdx) -> Option<Arc<Status>> {
        self.statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(s.get())
            .cloned()
            .flatten()
    }

    pub fn statuses(&self) -> Vec<Option<Arc<Status>>> {
        self.statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_statuses(&self, statuses: Vec<Option<Arc<Status>>>) {
        *self.statuses.write().unwrap_or_else(|e| e.into_inner()) = statuses;
    }

    pub fn set_broker_connected(&self, up: bool) {
        self.broker_connected.store(up, Ordering::Relaxed);
        metrics::gauge!(telemetry::BROKER_CONNECTED).set(if up { 1.0 } else { 0.0 });
    }

    pub fn broker_connected(&self) -> bool {
        self.broker_connected.load(Ordering::Relaxed)
    }

    pub fn set_ingest_ready(&self, ready: bool) {
        self.ingest_ready.store(ready, Ordering::Relaxed);
    }

    pub fn ingest_ready(&self) -> bool {
        self.ingest_ready.load(Ordering::Relaxed)
    }

    /// Publishes everything (after loading state at start).
    pub fn publish_all(&self, core: &Core) {
        let spaces: Vec<_> = (0..core.counts.len() as u32).map(SpaceIdx).collect();
        let devices: Vec<_> = (0..core.seq.len() as u32).map(DeviceIdx).collect();
        self.publish(core, &spaces, &devices);
    }

    /// Publishes what a committed batch touched.
    pub fn publish_batch(&self, core: &Core, batch: &Batch) {
        self.publish(core, &batch.spaces, &batch.devices);
    }

    fn publish(&self, core: &Core, spaces: &[SpaceIdx], devices: &[DeviceIdx]) {
        {
            let mut out = self.spaces.write().unwrap_or_else(|e| e.into_inner());
            for &s in spaces {
                let c = &core.counts[s.get()];
                let (peak, peak_at) = c.peak_now();
                out[s.get()] = SpaceNow {
                    day: c.day,
                    occupancy: c.occupancy(),
                    entries_today: c.entries,
                    exits_today: c.exits,
                    drift_today: c.drift(),
                    peak_today: peak,
                    peak_at,
                    last_report: c.last_report,
                };
            }
        }
        let gauges = self.gauges.get_or_init(|| {
            core.registry
                .spaces
                .iter()
                .map(|sp| {
                    let id = sp.id.as_str().to_owned();
                    [
                        metrics::gauge!(telemetry::OCCUPANCY, "space" => id.clone()),
                        metrics::gauge!(telemetry::ENTRIES_TODAY, "space" => id.clone()),
                        metrics::gauge!(telemetry::DRIFT_TODAY, "space" => id),
                    ]
                })
                .collect()
        });
        for &s in spaces {
            let now = self.space(s);
            let [occupancy, entries, drift] = &gauges[s.get()];
            occupancy.set(now.occupancy as f64);
            entries.set(now.entries_today as f64);
            drift.set(now.drift_today as f64);
        }
        let mut out = self.devices.write().unwrap_or_else(|e| e.into_inner());
        for &d in devices {
            let st = &core.seq[d.get()];
            let seen = &core.seen[d.get()];
            out[d.get()] = DeviceNow {
                last_seq: st.started.then_some(st.high),
                last_report: st.last_ts,
                last_received: seen.last_received,
                online: seen.online,
                missing_reports: st.missing,
                gap_reports_total: st.gaps_total,
                repaired_reports_total: st.repaired_total,
                seq_restarts_total: st.resets_total,
            };
        }
    }
}

//! What a database failover may have lost: the ingester remembers, per device, its state after
//! the last commit the broker was told about, and compares it with the state a new session
//! loads (from whichever server is the primary now). Acknowledged reports the loaded state
//! lacks ([`crate::core::loss`]) are gone for good — the broker dropped them and the devices
//! will not resend — so they are recorded (`report_losses`), logged, counted and kept on the
//! device for the `reports_lost` alert, instead of silently continuing.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::core::Core;
use crate::core::loss::{self, Lost, LostMark, Mark};
use crate::ids::DeviceIdx;
use crate::registry::Registry;
use crate::store::StoreError;
use crate::telemetry::events::{InternalEvent, ReportsLost};

/// Per device: the state after its last acknowledged commit, and its last loss found.
pub(super) struct Marks {
    inner: Mutex<Inner>,
}

struct Inner {
    acked: Vec<Option<Mark>>,
    /// The devices that had a loss (few).
    lost: HashMap<DeviceIdx, LostMark>,
    /// When a session ended on a database fault, until a session reaches a primary again.
    without_primary: Option<std::time::Instant>,
}

impl Marks {
    pub(super) fn new(devices: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                acked: vec![None; devices],
                lost: HashMap::new(),
                without_primary: None,
            }),
        }
    }

    /// A session ended on a database fault: from now the ingester has no primary.
    pub(super) fn database_lost(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.without_primary
            .get_or_insert_with(std::time::Instant::now);
    }

    /// A session reached a writable database: how long there was none, if a fault ended the
    /// last one (`visitorflow_db_without_primary_seconds`).
    pub(super) fn database_back(&self) -> Option<std::time::Duration> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let d = m.without_primary.take()?.elapsed();
        metrics::histogram!(crate::telemetry::DB_WITHOUT_PRIMARY).record(d.as_secs_f64());
        tracing::info!(seconds = d.as_secs_f64(), "writing to the database again");
        Some(d)
    }

    /// After a batch's acknowledgement: these devices' states are what the broker no longer
    /// holds.
    pub(super) fn acknowledged(&self, states: Vec<(DeviceIdx, Mark)>) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (d, st) in states {
            if m.acked.len() <= d.get() {
                m.acked.resize(d.get() + 1, None);
            }
            m.acked[d.get()] = Some(st);
        }
    }

    /// At a session's start, with the state just loaded: what is missing since the last
    /// acknowledgement (the loaded state is then the new baseline), and every device's last
    /// loss carried into `core` so its views keep showing it.
    pub(super) fn compare(&self, core: &mut Core, now: DateTime<Utc>) -> Vec<Lost> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = Vec::new();
        for (i, acked) in m.acked.iter_mut().enumerate() {
            let Some(before) = acked.as_ref().filter(|_| i < core.seq.len()) else {
                continue;
            };
            let loaded = Mark::of(&core.seq.get(DeviceIdx(i as u32)));
            if let Some(l) = loss::lost(DeviceIdx(i as u32), before, &loaded) {
                found.push(l);
            }
            *acked = Some(loaded);
        }
        for l in &found {
            m.lost.insert(l.device, l.mark(now));
        }
        core.lost.clone_from(&m.lost);
        found
    }
}

/// Logs, counts and stores what a failover lost (before the loaded figures are published, so
/// the devices' views already show it).
pub(super) async fn record(
    db: &tokio_postgres::Client,
    registry: &Registry,
    lost: &[Lost],
) -> Result<(), StoreError> {
    for l in lost {
        let device = registry.device(l.device);
        ReportsLost {
            device: device.id.as_str(),
            space: registry.space(device.space).id.as_str(),
            seqs: &l.seqs,
            count: l.count,
            after: l.after,
            until: l.until,
        }
        .emit();
    }
    crate::store::record_losses(db, registry, lost).await
}

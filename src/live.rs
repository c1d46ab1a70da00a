//! The live view the API reads: each space's and device's latest committed figures. The ingester
//! publishes into it after every commit (so nothing uncommitted is ever shown); readers copy out.
//! Locks are held for a copy only, never across an `.await`.
//!
//! It also records *what changed* for the live feed (`/api/v1/live`): spaces whose figures or
//! rule status changed are marked, alert transitions and distribution centres' new advice are
//! queued, and one [`Notify`] wakes the feed's publisher, which coalesces them (see `api::live`).
//! Marking is cheap and never blocks the ingester or the alerting loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::admission::Sales;
use crate::core::Core;
pub use crate::core::snapshot::{DeviceNow, DeviceTable, SpaceNow};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;
use crate::rules::Status;
use crate::store::dispatch::AdviceRow;
use crate::telemetry;

/// Wakes the alerting loop after an ingest commit or an operator's change (cap, hazard).
/// Wakes coalesce: one pending wake covers any number of changes.
#[derive(Default)]
pub struct Wake(Notify);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub async fn notified(&self) {
        self.0.notified().await
    }
}

pub struct Live {
    spaces: RwLock<Vec<SpaceNow>>,
    /// The capacity rules' view of each space (levels, forecast, stale, closed), from alerting.
    statuses: RwLock<Vec<Option<Arc<Status>>>>,
    /// Timed-entry areas' ticket sales now, from alerting.
    tickets: RwLock<Vec<Option<TicketsNow>>>,
    devices: RwLock<DeviceTable>,
    broker_connected: AtomicBool,
    /// The ingester has loaded its state and holds a broker session.
    ingest_ready: AtomicBool,
    /// Spaces changed since the feed last took them (indexed like `spaces`).
    changed: Mutex<Vec<bool>>,
    /// Spaces whose figures (or whose counters' figures) were published since the alerting loop
    /// last took them: after a commit it evaluates those, not the whole county.
    due: Mutex<Marks>,
    /// Alert transitions and acknowledgements not yet sent on the feed.
    alert_notes: Mutex<Vec<AlertNote>>,
    /// Each distribution centre's current advice (newest id), as `GET /api/v1/dispatch` shows it:
    /// the feed's snapshot carries these.
    dispatch: RwLock<BTreeMap<String, Arc<AdviceRow>>>,
    /// Advice (new, or newly decided) not yet sent on the feed.
    dispatch_notes: Mutex<Vec<Arc<AdviceRow>>>,
    /// Wakes the feed's publisher after a mark or a note.
    changes: Notify,
    /// Wakes the ingester when a head count was recorded for it to apply (`recounts` table).
    recounts: Notify,
    /// Wakes the live feed upstream (`report::live`) after alert transitions were recorded: it
    /// pushes a change to red or a closure at once.
    alerts_recorded: Notify,
    /// This instance's alerting loop holds the leadership and has published statuses: what the
    /// workers that must run on one instance only (the live feed upstream) follow.
    evaluating: AtomicBool,
    /// Each space's occupancy, entries and drift gauges, registered on the first publish:
    /// looking them up by label for every space of every batch cost more than the batch's
    /// decoding on a large registry.
    gauges: OnceLock<Vec<[metrics::Gauge; 3]>>,
}

/// One alert change for the live feed's `alert` events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertNote {
    /// The alert's id in `/api/v1/alerts/{id}` (absent only if it could not be recorded).
    pub alert_id: Option<i64>,
    pub space: String,
    /// Stable kind key: `instant_level`, `early_warning.red`, `hazard.flash_flood`, ….
    pub kind: String,
    /// `open`, `escalate`, `de_escalate`, `resolve` or `acknowledge`.
    pub change: String,
    /// The alert's state after the change: `firing`, `acknowledged` or `resolved`.
    pub state: String,
    pub severity: String,
    pub level: Option<String>,
    pub at: DateTime<Utc>,
    /// Who acknowledged (acknowledgements only).
    pub by: Option<String>,
    pub message_zh: Option<String>,
    pub message_en: Option<String>,
}

/// Whether two rule statuses differ in what a control-room tile shows (level, staleness,
/// hazards, alerts, capacity, forecast in whole minutes) — not merely in evaluation time.
fn tile_differs(a: &Status, b: &Status) -> bool {
    let minutes = |f: &Option<crate::rules::Forecast>| {
        f.as_ref().map(|f| {
            (
                f.to_orange.map(|d| d.num_minutes()),
                f.to_red.map(|d| d.num_minutes()),
                f.slope_per_min.round() as i64,
            )
        })
    };
    a.instant.level != b.instant.level
        || a.instant.reading != b.instant.reading
        || a.instant.effective_capacity != b.instant.effective_capacity
        || a.daily.level != b.daily.level
        || a.daily.reading != b.daily.reading
        || a.daily.effective_capacity != b.daily.effective_capacity
        || a.stale != b.stale
        || a.closed != b.closed
        || a.alerts != b.alerts
        || minutes(&a.forecast) != minutes(&b.forecast)
}

/// A set of spaces marked since it was last taken: a flag per space and the list of those set, so
/// marking and taking cost what was marked, not the registry's size.
#[derive(Debug, Default)]
struct Marks {
    on: Vec<bool>,
    list: Vec<SpaceIdx>,
}

impl Marks {
    fn new(spaces: usize) -> Self {
        Self {
            on: vec![false; spaces],
            list: Vec::new(),
        }
    }

    fn mark(&mut self, s: SpaceIdx) {
        if let Some(on) = self.on.get_mut(s.get())
            && !*on
        {
            *on = true;
            self.list.push(s);
        }
    }

    fn take(&mut self) -> Vec<SpaceIdx> {
        for s in &self.list {
            self.on[s.get()] = false;
        }
        std::mem::take(&mut self.list)
    }
}

/// Some spaces' and devices' figures taken from a core at one moment, to publish later.
#[derive(Debug, Default)]
pub struct Captured {
    spaces: Vec<(SpaceIdx, SpaceNow)>,
    devices: Vec<(DeviceIdx, DeviceNow)>,
}

impl Captured {
    pub fn take(core: &Core, spaces: &[SpaceIdx], devices: &[DeviceIdx]) -> Self {
        let spaces = spaces
            .iter()
            .map(|&s| {
                let c = &core.counts[s.get()];
                let (peak, peak_at) = c.peak_now();
                let now = SpaceNow {
                    day: c.day,
                    occupancy: c.occupancy(),
                    entries_today: c.entries,
                    exits_today: c.exits,
                    drift_today: c.drift(),
                    peak_today: peak,
                    peak_at,
                    last_report: c.last_report,
                    corrected_today: c.corrected,
                };
                (s, now)
            })
            .collect();
        let devices = devices
            .iter()
            .map(|&d| {
                let st = core.seq.get(d);
                let seen = &core.seen[d.get()];
                let now = DeviceNow {
                    last_seq: st.started.then_some(st.high),
                    last_report: st.last_ts,
                    last_received: seen.last_received,
                    online: seen.online,
                    missing_reports: st.missing,
                    gap_reports_total: st.gaps_total,
                    repaired_reports_total: st.repaired_total,
                    seq_restarts_total: st.resets_total,
                    seq_jumps_total: st.jumps_total,
                    last_seq_jump: st.last_jump,
                    lost: core.lost.get(&d).copied(),
                };
                (d, now)
            })
            .collect();
        Self { spaces, devices }
    }
}

/// A timed-entry area's ticket sales as the board shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TicketsNow {
    /// `open`, `paused` or `closed`.
    #[schema(value_type = String)]
    pub sales: Sales,
    /// Online places left today in the slots still to come.
    pub remaining_today: u64,
}

impl Live {
    /// Each timed-entry area's ticket sales now (others `None`), as the last evaluation decided.
    pub fn set_tickets(&self, tickets: Vec<Option<TicketsNow>>) {
        *self.tickets.write().unwrap_or_else(|e| e.into_inner()) = tickets;
    }

    pub fn tickets(&self, s: SpaceIdx) -> Option<TicketsNow> {
        self.tickets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(s.get())
            .copied()
            .flatten()
    }

    pub fn new(spaces: usize, devices: usize) -> Self {
        Self {
            spaces: RwLock::new(vec![SpaceNow::default(); spaces]),
            statuses: RwLock::new(vec![None; spaces]),
            tickets: RwLock::new(vec![None; spaces]),
            devices: RwLock::new(DeviceTable::new(devices)),
            broker_connected: AtomicBool::new(false),
            ingest_ready: AtomicBool::new(false),
            changed: Mutex::new(vec![false; spaces]),
            due: Mutex::new(Marks::new(spaces)),
            alert_notes: Mutex::new(Vec::new()),
            dispatch: RwLock::new(BTreeMap::new()),
            dispatch_notes: Mutex::new(Vec::new()),
            changes: Notify::new(),
            recounts: Notify::new(),
            alerts_recorded: Notify::new(),
            evaluating: AtomicBool::new(false),
            gauges: OnceLock::new(),
        }
    }

    fn mark(&self, spaces: impl IntoIterator<Item = usize>) {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        let mut any = false;
        for s in spaces {
            if let Some(c) = changed.get_mut(s) {
                *c = true;
                any = true;
            }
        }
        drop(changed);
        if any {
            self.changes.notify_one();
        }
    }

    /// Marks spaces as changed for the live feed (the ingester and alerting do so themselves).
    pub fn mark_changed(&self, spaces: &[SpaceIdx]) {
        self.mark(spaces.iter().map(|s| s.get()));
    }

    /// The spaces changed since the last call, clearing the marks.
    pub fn take_changed(&self) -> Vec<SpaceIdx> {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        let out = changed
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| SpaceIdx(i as u32))
            .collect();
        changed.iter_mut().for_each(|c| *c = false);
        out
    }

    /// The spaces whose figures, or whose own or parts' counters' figures, were published since
    /// the last call (unordered, without their ancestors), clearing the marks.
    pub fn take_due(&self) -> Vec<SpaceIdx> {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Queues an alert change for the live feed.
    pub fn note_alerts(&self, notes: impl IntoIterator<Item = AlertNote>) {
        let mut q = self.alert_notes.lock().unwrap_or_else(|e| e.into_inner());
        let before = q.len();
        q.extend(notes);
        let added = q.len() > before;
        drop(q);
        if added {
            self.changes.notify_one();
            self.alerts_recorded.notify_one();
        }
    }

    /// Resolves after alert transitions were recorded and noted (at once if that happened since
    /// the last wait). One waiter: the live feed upstream.
    pub async fn alerts_recorded(&self) {
        self.alerts_recorded.notified().await;
    }

    /// Set by the alerting loop: true once it leads and has published statuses, false when its
    /// session ends.
    pub fn set_evaluating(&self, on: bool) {
        self.evaluating.store(on, Ordering::Relaxed);
    }

    /// Whether this instance's alerting loop evaluates the rules now (the leader, or the only
    /// instance).
    pub fn evaluating(&self) -> bool {
        self.evaluating.load(Ordering::Relaxed)
    }

    pub fn take_alert_notes(&self) -> Vec<AlertNote> {
        std::mem::take(&mut *self.alert_notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sets each hub's current advice without announcing it (the stored advice, at start).
    pub fn seed_dispatch(&self, rows: impl IntoIterator<Item = AdviceRow>) {
        let mut cur = self.dispatch.write().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            if cur.get(&row.hub).is_none_or(|c| c.id <= row.id) {
                cur.insert(row.hub.clone(), Arc::new(row));
            }
        }
    }

    /// A hub's advice changed (a new advice, or a decision recorded on it): it becomes the hub's
    /// current advice and is queued for the feed. Advice older than the hub's current one (a late
    /// decision on superseded advice) changes nothing: the feed shows current advice only.
    pub fn note_dispatch(&self, row: AdviceRow) {
        let row = Arc::new(row);
        {
            let mut cur = self.dispatch.write().unwrap_or_else(|e| e.into_inner());
            if cur.get(&row.hub).is_some_and(|c| c.id > row.id) {
                return;
            }
            cur.insert(row.hub.clone(), Arc::clone(&row));
        }
        self.dispatch_notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(row);
        self.changes.notify_one();
    }

    /// Every hub's current advice, by hub id.
    pub fn dispatch(&self) -> Vec<Arc<AdviceRow>> {
        self.dispatch
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn take_dispatch_notes(&self) -> Vec<Arc<AdviceRow>> {
        std::mem::take(
            &mut *self
                .dispatch_notes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Resolves after a space was marked, an alert noted or advice changed (at once if that
    /// happened since the last wait).
    pub async fn changed(&self) {
        self.changes.notified().await;
    }

    /// Tells this instance's ingester that a head count is waiting in the `recounts` table (an
    /// ingester of another instance finds it on its next periodic look).
    pub fn request_recount(&self) {
        self.recounts.notify_one();
    }

    /// Resolves after [`Live::request_recount`] (at once if it was called since the last wait).
    pub async fn recount_requested(&self) {
        self.recounts.notified().await;
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

    /// `f` of every space's and device's figures, read in place: for a reader that needs a few
    /// of them (keep `f` short, publishing waits for it).
    pub fn read_figures<R>(&self, f: impl FnOnce(&[SpaceNow], &DeviceTable) -> R) -> R {
        let spaces = self.spaces.read().unwrap_or_else(|e| e.into_inner());
        let devices = self.devices.read().unwrap_or_else(|e| e.into_inner());
        f(&spaces, &devices)
    }

    pub fn device(&self, d: DeviceIdx) -> DeviceNow {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(d)
    }

    /// The figures of `devices`, read under one lock (not a copy of all 100,000).
    pub fn devices_of(&self, devices: impl IntoIterator<Item = DeviceIdx>) -> Vec<DeviceNow> {
        let table = self.devices.read().unwrap_or_else(|e| e.into_inner());
        devices.into_iter().map(|d| table.get(d)).collect()
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

    /// Replaces the statuses of the spaces just evaluated; the others stay as they were. Marks
    /// for the feed those whose tile changed.
    pub fn update_statuses(&self, evaluated: &[(SpaceIdx, Arc<Status>)]) {
        let mut cur = self.statuses.write().unwrap_or_else(|e| e.into_inner());
        let mut changed = Vec::new();
        for (s, new) in evaluated {
            let Some(slot) = cur.get_mut(s.get()) else {
                continue;
            };
            if slot.as_ref().is_none_or(|old| tile_differs(old, new)) {
                changed.push(s.get());
            }
            *slot = Some(Arc::clone(new));
        }
        drop(cur);
        self.mark(changed);
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

    /// Publishes the listed spaces and devices of `core`: a partition's own after it loads, or
    /// those of partitions held by other instances as read from the database (`crate::partition`).
    pub fn publish_only(&self, core: &Core, spaces: &[SpaceIdx], devices: &[DeviceIdx]) {
        self.publish(core, spaces, devices);
    }

    /// Sets figures computed outside any core (a partitioned county: the sum of its areas).
    pub fn set_space(&self, s: SpaceIdx, now: SpaceNow) {
        self.spaces.write().unwrap_or_else(|e| e.into_inner())[s.get()] = now;
        self.due.lock().unwrap_or_else(|e| e.into_inner()).mark(s);
    }

    fn publish(&self, core: &Core, spaces: &[SpaceIdx], devices: &[DeviceIdx]) {
        self.publish_captured(&core.registry, &Captured::take(core, spaces, devices));
    }

    /// Publishes figures captured earlier (the ingester captures a batch's figures when it finishes
    /// the batch and publishes them once that batch has committed, while the core is already
    /// applying the next one).
    pub fn publish_captured(&self, registry: &Registry, captured: &Captured) {
        {
            // Published, changed or not: what the rules see of these spaces is current again.
            let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
            for &(s, _) in &captured.spaces {
                due.mark(s);
            }
            // A counter's health is its own space's input, its freshness its targets'.
            for d in captured
                .devices
                .iter()
                .filter_map(|(d, _)| registry.devices.get(d.get()))
            {
                due.mark(d.space);
                registry.targets(d.idx).iter().for_each(|&s| due.mark(s));
            }
        }
        let mut changed = Vec::new();
        {
            let mut out = self.spaces.write().unwrap_or_else(|e| e.into_inner());
            for &(s, now) in &captured.spaces {
                if out[s.get()] != now {
                    out[s.get()] = now;
                    changed.push(s.get());
                }
            }
        }
        self.mark(changed);
        let gauges = self.gauges.get_or_init(|| {
            registry
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
        for &(s, now) in &captured.spaces {
            let [occupancy, entries, drift] = &gauges[s.get()];
            occupancy.set(now.occupancy as f64);
            entries.set(now.entries_today as f64);
            drift.set(now.drift_today as f64);
        }
        let mut out = self.devices.write().unwrap_or_else(|e| e.into_inner());
        for (d, now) in &captured.devices {
            out.set(*d, now);
        }
    }
}

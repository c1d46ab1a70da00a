//! The pure ingest core: what one decoded report does to the county's state. No I/O: the
//! ingester shell feeds it reports, then writes the [`Batch`] it filled and publishes the result.
//!
//! `seq` de-duplicates and repairs per device; `occupancy` keeps each space's day; this module
//! routes a device's report to every space it counts in and collects the batch's rows and buckets.

pub mod loss;
pub mod occupancy;
pub mod route;
pub mod seq;
pub mod seqs;
pub mod snapshot;
pub mod stamp;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::decode::CountReport;
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;
use occupancy::{Applied, SpaceCounts, unix_minute};
use seq::{Found, JumpBound, Lookup, RepairOwner, Settled, Verdict};
use seqs::SeqStates;

/// One accepted report as stored in the raw table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRow {
    pub device: DeviceIdx,
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub entries: u32,
    pub exits: u32,
    pub repaired_entries: u32,
    pub repaired_exits: u32,
    pub total_entries: Option<u64>,
    pub total_exits: Option<u64>,
    pub period_s: Option<u32>,
    /// What `repaired_*` stands for (None: no repair): seqs from `gap_from` up to this one,
    /// counted after `repair_from` (the device's newest timestamp before this report).
    pub gap_from: Option<u64>,
    pub repair_from: Option<DateTime<Utc>>,
}

/// A 1-minute bucket's change from one batch: counts to add (negative where a late original
/// moved counts out of a repair), head-count corrections, occupancy where known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketDelta {
    pub entries: i64,
    pub exits: i64,
    pub occupancy: Option<u64>,
    pub correction: i64,
}

/// A report the window could not settle, waiting for the raw table's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub device: DeviceIdx,
    pub report: CountReport,
    pub received: DateTime<Utc>,
    pub lookup: Lookup,
}

/// Counts taken out of a stored report's repair (its late originals arrived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairMove {
    pub device: DeviceIdx,
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub entries: u32,
    pub exits: u32,
}

/// Late counts that changed a finished local day of a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    pub space: SpaceIdx,
    pub day: NaiveDate,
    pub reports: u64,
    pub entries: i64,
    pub exits: i64,
}

/// A head count applied in this batch (its `recounts` row is completed with the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recounted {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub before: u64,
    pub delta: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub restarts: u64,
    pub gap_reports: u64,
    pub repaired_reports: u64,
    pub earlier_day: u64,
    /// Reports settled by the raw table (below the window, earlier runs, repair originals).
    pub looked_up: u64,
    pub jumps: u64,
    pub recounts: u64,
}

/// A batch's minute buckets by (space, unix minute), in the order they were first touched.
/// A space's reports nearly always land in its current minute, so each space remembers the slot
/// of the bucket it touched last and the hash map is consulted only when that minute changes.
#[derive(Debug, Default)]
pub struct Buckets {
    slots: Vec<(SpaceIdx, i64, BucketDelta)>,
    index: HashMap<(SpaceIdx, i64), usize>,
    /// Per space: 1 + the slot of its last-touched bucket, 0 for none.
    last: Vec<usize>,
}

impl Buckets {
    fn for_spaces(n: usize) -> Self {
        Self {
            last: vec![0; n],
            ..Default::default()
        }
    }

    /// The bucket of `space` for `minute`, created empty on first use.
    pub fn get_mut(&mut self, space: SpaceIdx, minute: i64) -> &mut BucketDelta {
        let hit = match self.last.get(space.get()) {
            Some(&l) if l > 0 => {
                let (s, m, _) = self.slots[l - 1];
                (s == space && m == minute).then_some(l - 1)
            }
            _ => None,
        };
        let i = match hit {
            Some(i) => i,
            None => {
                let slots = &mut self.slots;
                let i = *self.index.entry((space, minute)).or_insert_with(|| {
                    slots.push((space, minute, BucketDelta::default()));
                    slots.len() - 1
                });
                if let Some(l) = self.last.get_mut(space.get()) {
                    *l = i + 1;
                }
                i
            }
        };
        &mut self.slots[i].2
    }

    pub fn iter(&self) -> impl Iterator<Item = (SpaceIdx, i64, &BucketDelta)> {
        self.slots.iter().map(|(s, m, d)| (*s, *m, d))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn clear(&mut self) {
        for (s, _, _) in &self.slots {
            if let Some(l) = self.last.get_mut(s.get()) {
                *l = 0;
            }
        }
        self.slots.clear();
        self.index.clear();
    }
}

/// What a batch of reports changed; reused across batches to avoid reallocating.
#[derive(Debug, Default)]
pub struct Batch {
    pub rows: Vec<RawRow>,
    /// Reports waiting for the raw table ([`Core::settle`] before the batch is finished).
    pub pending: Vec<Pending>,
    pub repair_moves: Vec<RepairMove>,
    pub revisions: Vec<Revision>,
    pub recounts: Vec<Recounted>,
    /// Hazard signals received in this batch, written with it.
    pub hazards: Vec<(SpaceIdx, crate::decode::HazardSignal, DateTime<Utc>)>,
    pub buckets: Buckets,
    pub spaces: Vec<SpaceIdx>,
    pub devices: Vec<DeviceIdx>,
    pub stats: BatchStats,
    space_mark: Vec<bool>,
    device_mark: Vec<bool>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.rows.clear();
        self.pending.clear();
        self.repair_moves.clear();
        self.revisions.clear();
        self.recounts.clear();
        self.hazards.clear();
        self.buckets.clear();
        for s in self.spaces.drain(..) {
            self.space_mark[s.get()] = false;
        }
        for d in self.devices.drain(..) {
            self.device_mark[d.get()] = false;
        }
        self.stats = BatchStats::default();
    }

    pub fn is_empty(&self) -> bool {
        self.spaces.is_empty()
            && self.devices.is_empty()
            && self.hazards.is_empty()
            && self.recounts.is_empty()
    }

    fn revise(&mut self, space: SpaceIdx, day: NaiveDate, reports: u64, e: i64, x: i64) {
        match self
            .revisions
            .iter_mut()
            .find(|r| r.space == space && r.day == day)
        {
            Some(r) => {
                r.reports += reports;
                r.entries += e;
                r.exits += x;
            }
            None => self.revisions.push(Revision {
                space,
                day,
                reports,
                entries: e,
                exits: x,
            }),
        }
    }

    fn touch_space(&mut self, s: SpaceIdx) {
        if !self.space_mark[s.get()] {
            self.space_mark[s.get()] = true;
            self.spaces.push(s);
        }
    }

    fn touch_device(&mut self, d: DeviceIdx) {
        if !self.device_mark[d.get()] {
            self.device_mark[d.get()] = true;
            self.devices.push(d);
        }
    }
}

/// Live per-device facts that are not part of de-duplication (16 bytes: a province holds
/// 100,000; its failover loss is in [`Core::lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSeen {
    pub last_received: Option<DateTime<Utc>>,
    pub online: Option<bool>,
}

/// The county's ingest state, indexed like the registry.
#[derive(Debug, Clone)]
pub struct Core {
    pub registry: Arc<Registry>,
    pub seq: SeqStates,
    pub counts: Vec<SpaceCounts>,
    pub seen: Vec<DeviceSeen>,
    /// Reports a database failover lost (`loss`), as last found, for the few devices that had
    /// such a loss.
    pub lost: HashMap<DeviceIdx, loss::LostMark>,
    pub jump_bound: JumpBound,
}

impl Core {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            seq: SeqStates::new(registry.devices.len()),
            counts: vec![SpaceCounts::default(); registry.spaces.len()],
            seen: vec![DeviceSeen::default(); registry.devices.len()],
            lost: HashMap::new(),
            registry,
            jump_bound: JumpBound::default(),
        }
    }

    pub fn with_jump_bound(mut self, bound: JumpBound) -> Self {
        self.jump_bound = bound;
        self
    }

    pub fn new_batch(&self) -> Batch {
        Batch {
            buckets: Buckets::for_spaces(self.registry.spaces.len()),
            space_mark: vec![false; self.registry.spaces.len()],
            device_mark: vec![false; self.registry.devices.len()],
            ..Default::default()
        }
    }

    /// Applies one decoded report of `device`; accepted reports land in `batch`, those the
    /// window cannot settle in `batch.pending` (see [`Core::settle`]).
    pub fn apply(
        &mut self,
        device: DeviceIdx,
        r: &CountReport,
        received: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Verdict {
        // Before V6 the report at `high` had no timestamp of its own: the newest seen stands in.
        let mut st = self.seq.get(device);
        let prev_ts = st.high_ts.or(st.last_ts);
        let verdict = st.observe(r, &self.jump_bound);
        self.seq.set(device, &st);
        self.seen[device.get()].last_received = Some(received);
        batch.touch_device(device);
        let stats = &mut batch.stats;
        let (re, rx, repair) = match verdict {
            Verdict::Duplicate => {
                stats.duplicates += 1;
                return verdict;
            }
            Verdict::Lookup(lookup) => {
                batch.pending.push(Pending {
                    device,
                    report: *r,
                    received,
                    lookup,
                });
                return verdict;
            }
            Verdict::New { gap, repaired } => {
                stats.gap_reports += gap;
                if repaired.is_some() {
                    stats.repaired_reports += gap;
                }
                match repaired {
                    Some((e, x)) => (e, x, Some((r.seq - gap, prev_ts))),
                    None => (0, 0, None),
                }
            }
            Verdict::Late => {
                stats.late += 1;
                (0, 0, None)
            }
            Verdict::Restarted => {
                stats.restarts += 1;
                (0, 0, None)
            }
        };
        self.accept(device, r, received, (re, rx), repair, batch);
        verdict
    }

    /// Stores and counts an accepted report, with what a repair added to it.
    fn accept(
        &mut self,
        device: DeviceIdx,
        r: &CountReport,
        received: DateTime<Utc>,
        (re, rx): (u32, u32),
        repair: Option<(u64, Option<DateTime<Utc>>)>,
        batch: &mut Batch,
    ) {
        batch.stats.accepted += 1;
        batch.rows.push(RawRow {
            device,
            seq: r.seq,
            ts: r.ts,
            received,
            entries: r.entries,
            exits: r.exits,
            repaired_entries: re,
            repaired_exits: rx,
            total_entries: r.total_entries,
            total_exits: r.total_exits,
            period_s: r.period_s,
            gap_from: repair.map(|g| g.0),
            repair_from: repair.and_then(|g| g.1),
        });
        let (e, x) = (r.entries.saturating_add(re), r.exits.saturating_add(rx));
        self.count(device, r.ts, e, x, batch);
    }

    /// Adds `e` entries and `x` exits counted by `device` before `ts` to every space it counts
    /// in: the minute bucket, the day's figures, and a revision where that day is finished.
    fn count(&mut self, device: DeviceIdx, ts: DateTime<Utc>, e: u32, x: u32, batch: &mut Batch) {
        self.book(device, ts, (e, x), true, batch);
    }

    /// Takes counts back out of the minute of the report stamped `ts` (a repair whose originals
    /// arrived).
    fn uncount(&mut self, device: DeviceIdx, ts: DateTime<Utc>, e: u32, x: u32, batch: &mut Batch) {
        self.book(device, ts, (e, x), false, batch);
    }

    fn book(
        &mut self,
        device: DeviceIdx,
        ts: DateTime<Utc>,
        (e, x): (u32, u32),
        add: bool,
        batch: &mut Batch,
    ) {
        // A report counts passages *before* its timestamp: a half-hour report stamped 00:00
        // belongs to the day and minute that just ended.
        let at = ts - TimeDelta::microseconds(1);
        let minute = unix_minute(at);
        let sign = if add { 1 } else { -1 };
        let (de, dx) = (sign * i64::from(e), sign * i64::from(x));
        let registry = &self.registry;
        let local = at.with_timezone(&registry.tz).naive_local();
        for &s in registry.targets(device) {
            let space = registry.space(s);
            let day = business_day_local(local, space.opens_at);
            let counts = &mut self.counts[s.get()];
            let applied = if add {
                counts.apply(day, minute, ts, e, x)
            } else {
                counts.retract(day, e, x)
            };
            if applied == Applied::EarlierDay {
                batch.stats.earlier_day += u64::from(add);
                batch.revise(s, day, u64::from(add), de, dx);
            }
            let b = batch.buckets.get_mut(s, minute);
            b.entries += de;
            b.exits += dx;
            batch.touch_space(s);
        }
    }

    /// Settles the batch's pending reports with the raw table's answers (`found[i]` for
    /// `batch.pending[i]`), in arrival order. Reports of this batch count as stored: a copy
    /// within the batch is a duplicate, and a repair made in this batch is moved in memory.
    pub fn settle(&mut self, batch: &mut Batch, found: &[Found]) {
        let pending = std::mem::take(&mut batch.pending);
        // This batch's reports by (device, seq), and those carrying a repair.
        let mut stored: HashMap<(DeviceIdx, u64), Vec<DateTime<Utc>>> = HashMap::new();
        for row in &batch.rows {
            stored
                .entry((row.device, row.seq))
                .or_default()
                .push(row.ts);
        }
        let repairs: Vec<usize> = (0..batch.rows.len())
            .filter(|&i| batch.rows[i].gap_from.is_some())
            .collect();
        // What earlier reports of this batch already took out of a stored repair.
        let mut taken: HashMap<(DeviceIdx, u64, DateTime<Utc>), (u32, u32)> = HashMap::new();
        for (p, f) in pending.iter().zip(found.iter().copied()) {
            let r = &p.report;
            let run = p.lookup.run;
            batch.stats.looked_up += 1;
            let in_batch = stored.get(&(p.device, r.seq)).is_some_and(|ts| {
                ts.iter()
                    .any(|&t| p.lookup.exact.map_or(run.contains(t), |e| e == t))
            });
            // The repair covering this seq: the nearest one above it, stored or in this batch.
            let mut owner = f.owner.map(|o| {
                let t = taken
                    .get(&(p.device, o.seq, o.ts))
                    .copied()
                    .unwrap_or((0, 0));
                (
                    RepairOwner {
                        entries: o.entries.saturating_sub(t.0),
                        exits: o.exits.saturating_sub(t.1),
                        ..o
                    },
                    false,
                )
            });
            for &i in &repairs {
                let row = &batch.rows[i];
                if row.device == p.device
                    && covers(row, r, &p.lookup)
                    && owner.is_none_or(|(o, _)| (row.ts, row.seq) < (o.ts, o.seq))
                {
                    let o = RepairOwner {
                        seq: row.seq,
                        ts: row.ts,
                        entries: row.repaired_entries,
                        exits: row.repaired_exits,
                    };
                    owner = Some((o, true));
                }
            }
            let found = Found {
                present: f.present || in_batch,
                owner: owner.map(|(o, _)| o),
            };
            let mut st = self.seq.get(p.device);
            let jumps = st.jumps_total;
            let settled = st.settle(r, &p.lookup, found, &self.jump_bound);
            self.seq.set(p.device, &st);
            if st.jumps_total > jumps {
                batch.stats.jumps += 1;
            }
            match settled {
                Settled::Duplicate => batch.stats.duplicates += 1,
                Settled::Late => {
                    batch.stats.late += 1;
                    self.accept(p.device, r, p.received, (0, 0), None, batch);
                }
                Settled::Jump => self.accept(p.device, r, p.received, (0, 0), None, batch),
                Settled::FillsRepair { owner: o, moved } => {
                    batch.stats.late += 1;
                    self.accept(p.device, r, p.received, (0, 0), None, batch);
                    if moved != (0, 0) {
                        let in_memory = owner.is_some_and(|(_, m)| m);
                        if in_memory {
                            if let Some(row) = batch.rows.iter_mut().find(|row| {
                                row.device == p.device && row.seq == o.seq && row.ts == o.ts
                            }) {
                                row.repaired_entries -= moved.0;
                                row.repaired_exits -= moved.1;
                            }
                        } else {
                            let t = taken.entry((p.device, o.seq, o.ts)).or_default();
                            t.0 += moved.0;
                            t.1 += moved.1;
                            batch.repair_moves.push(RepairMove {
                                device: p.device,
                                seq: o.seq,
                                ts: o.ts,
                                entries: moved.0,
                                exits: moved.1,
                            });
                        }
                        self.uncount(p.device, o.ts, moved.0, moved.1, batch);
                    }
                }
            }
            if let Some(row) = batch.rows.last()
                && row.device == p.device
                && row.seq == r.seq
                && row.ts == r.ts
            {
                stored.entry((p.device, r.seq)).or_default().push(r.ts);
            }
        }
    }

    /// Sets `space`'s crowd to a head count made at `at`: the difference is kept as a correction
    /// in the space and every space its counts roll up to (a zone's area, the county), so they
    /// stay consistent. Returns the occupancy shown before and the correction.
    pub fn recount(
        &mut self,
        space: SpaceIdx,
        inside: u64,
        at: DateTime<Utc>,
        batch: &mut Batch,
    ) -> (u64, i64) {
        let minute = unix_minute(at);
        let registry = Arc::clone(&self.registry);
        let day_of = |s: SpaceIdx| business_day(registry.tz, registry.space(s).opens_at, at);
        let (before, delta) = self.counts[space.get()].recount(day_of(space), minute, inside);
        batch.stats.recounts += 1;
        for s in registry.rollup(space) {
            if s != space {
                self.counts[s.get()].correct(day_of(s), minute, delta);
            }
            batch.buckets.get_mut(s, minute).correction += delta;
            batch.touch_space(s);
        }
        (before, delta)
    }

    pub fn set_online(&mut self, device: DeviceIdx, online: bool, batch: &mut Batch) {
        self.seen[device.get()].online = Some(online);
        batch.touch_device(device);
    }

    /// Stamps each touched space's open minute with its occupancy, so the 1-minute series carries
    /// the crowd as well as the flow.
    pub fn finish_batch(&self, batch: &mut Batch) {
        for &s in &batch.spaces {
            let c = &self.counts[s.get()];
            if c.day.is_none() {
                continue;
            }
            let b = batch.buckets.get_mut(s, c.minute);
            b.occupancy = Some(c.occupancy());
        }
    }
}

/// The raw table's answer for `p` computed from rows in memory: what `store::lookup` answers
/// from PostgreSQL (`tests/store.rs` checks the two agree), for models and replays without a
/// database.
pub fn lookup_rows<'a>(rows: impl IntoIterator<Item = &'a RawRow>, p: &Pending) -> Found {
    let r = &p.report;
    let mut found = Found::default();
    for row in rows.into_iter().filter(|row| row.device == p.device) {
        let same = row.seq == r.seq
            && p.lookup
                .exact
                .map_or(p.lookup.run.contains(row.ts), |t| t == row.ts);
        found.present |= same;
        if covers(row, r, &p.lookup)
            && found
                .owner
                .is_none_or(|o| (row.ts, row.seq) < (o.ts, o.seq))
        {
            found.owner = Some(RepairOwner {
                seq: row.seq,
                ts: row.ts,
                entries: row.repaired_entries,
                exits: row.repaired_exits,
            });
        }
    }
    found
}

/// Takes a batch's repair moves out of rows held in memory (what `store::sql::MOVE_REPAIRS`
/// does in PostgreSQL).
pub fn move_repairs(rows: &mut [RawRow], moves: &[RepairMove]) {
    for m in moves {
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.device == m.device && r.seq == m.seq && r.ts == m.ts)
        {
            row.repaired_entries -= m.entries;
            row.repaired_exits -= m.exits;
        }
    }
}

/// Whether `row`'s repair stands for `r` (as `store::sql::LOOKUP_REPORTS` decides it).
pub fn covers(row: &RawRow, r: &CountReport, lookup: &Lookup) -> bool {
    let Some(gap_from) = row.gap_from else {
        return false;
    };
    match lookup.exact {
        Some(ts) => row.repair_from.is_some_and(|f| f < ts) && row.ts > ts,
        None => row.seq > r.seq && gap_from <= r.seq && lookup.run.contains(row.ts),
    }
}

/// The local business day a timestamp falls in: days roll at the space's opening time, in the
/// county's time zone (storage stays UTC).
pub fn business_day(tz: Tz, opens_at: NaiveTime, ts: DateTime<Utc>) -> NaiveDate {
    business_day_local(ts.with_timezone(&tz).naive_local(), opens_at)
}

/// [`business_day`] of a time already in the county's local time: a report counts in a zone,
/// its area and the county, whose days may open at different times, for one time-zone lookup
/// (each is a binary search in the zone's transitions, ~450 instructions).
pub fn business_day_local(local: NaiveDateTime, opens_at: NaiveTime) -> NaiveDate {
    (local - (opens_at - NaiveTime::MIN)).date()
}

#[cfg(test)]
mod tests;

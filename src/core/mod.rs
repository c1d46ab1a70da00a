//! The pure ingest core: what one decoded report does to the county's state. No I/O: the
//! ingester shell feeds it reports, then writes the [`Batch`] it filled and publishes the result.
//!
//! `seq` de-duplicates and repairs per device; `occupancy` keeps each space's day; this module
//! routes a device's report to every space it counts in and collects the batch's rows and buckets.

pub mod occupancy;
pub mod seq;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::decode::CountReport;
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;
use occupancy::{Applied, SpaceCounts, unix_minute};
use seq::{SeqState, Verdict};

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
}

/// A 1-minute bucket's change from one batch: counts to add; occupancy and peak where known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketDelta {
    pub entries: u64,
    pub exits: u64,
    pub occupancy: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub restarts: u64,
    pub gap_reports: u64,
    pub repaired_reports: u64,
    pub too_old: u64,
    pub earlier_day: u64,
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
        self.spaces.is_empty() && self.devices.is_empty() && self.hazards.is_empty()
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

/// Live per-device facts that are not part of de-duplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSeen {
    pub last_received: Option<DateTime<Utc>>,
    pub online: Option<bool>,
}

/// The county's ingest state, indexed like the registry.
#[derive(Debug, Clone)]
pub struct Core {
    pub registry: Arc<Registry>,
    pub seq: Vec<SeqState>,
    pub counts: Vec<SpaceCounts>,
    pub seen: Vec<DeviceSeen>,
}

impl Core {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            seq: vec![SeqState::default(); registry.devices.len()],
            counts: vec![SpaceCounts::default(); registry.spaces.len()],
            seen: vec![DeviceSeen::default(); registry.devices.len()],
            registry,
        }
    }

    pub fn new_batch(&self) -> Batch {
        Batch {
            buckets: Buckets::for_spaces(self.registry.spaces.len()),
            space_mark: vec![false; self.registry.spaces.len()],
            device_mark: vec![false; self.registry.devices.len()],
            ..Default::default()
        }
    }

    /// Applies one decoded report of `device`; accepted reports land in `batch`.
    pub fn apply(
        &mut self,
        device: DeviceIdx,
        r: &CountReport,
        received: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Verdict {
        let verdict = self.seq[device.get()].observe(r);
        self.seen[device.get()].last_received = Some(received);
        batch.touch_device(device);
        let stats = &mut batch.stats;
        let (re, rx) = match verdict {
            Verdict::Duplicate => {
                stats.duplicates += 1;
                return verdict;
            }
            Verdict::TooOld => {
                stats.too_old += 1;
                return verdict;
            }
            Verdict::New { gap, repaired } => {
                stats.gap_reports += gap;
                if repaired.is_some() {
                    stats.repaired_reports += gap;
                }
                repaired.unwrap_or((0, 0))
            }
            Verdict::Late => {
                stats.late += 1;
                (0, 0)
            }
            Verdict::Restarted => {
                stats.restarts += 1;
                (0, 0)
            }
        };
        stats.accepted += 1;
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
        });
        let (e, x) = (r.entries.saturating_add(re), r.exits.saturating_add(rx));
        // A report counts passages *before* its timestamp: a half-hour report stamped 00:00
        // belongs to the day and minute that just ended.
        let at = r.ts - TimeDelta::microseconds(1);
        let minute = unix_minute(at);
        let registry = &self.registry;
        for &s in &registry.device(device).targets {
            let space = registry.space(s);
            let day = business_day(registry.tz, space.opens_at, at);
            if self.counts[s.get()].apply(day, minute, r.ts, e, x) == Applied::EarlierDay {
                batch.stats.earlier_day += 1;
            }
            let b = batch.buckets.get_mut(s, minute);
            b.entries += u64::from(e);
            b.exits += u64::from(x);
            batch.touch_space(s);
        }
        verdict
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

/// The local business day a timestamp falls in: days roll at the space's opening time, in the
/// county's time zone (storage stays UTC).
pub fn business_day(tz: Tz, opens_at: NaiveTime, ts: DateTime<Utc>) -> NaiveDate {
    let local = ts.with_timezone(&tz).naive_local();
    (local - (opens_at - NaiveTime::MIN)).date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    const REG: &str = r#"
        [[spaces]]
        id = "county"
        kind = "county"
        name_zh = "县"
        name_en = "County"
        [[spaces]]
        id = "area"
        kind = "scenic_area"
        parent = "county"
        name_zh = "景区"
        name_en = "Area"
        opens_at = "06:00"
        [[spaces]]
        id = "zone"
        kind = "zone"
        parent = "area"
        name_zh = "分区"
        name_en = "Zone"
        [[spaces]]
        id = "park"
        kind = "car_park"
        parent = "area"
        name_zh = "停车场"
        name_en = "Car park"
        [[devices]]
        id = "gate"
        space = "zone"
        kind = "gate"
        [[devices]]
        id = "cam"
        space = "zone"
        kind = "camera"
        direction = "reversed"
        [[devices]]
        id = "bar"
        space = "park"
        kind = "vehicle_counter"
    "#;

    fn core() -> Core {
        Core::new(Arc::new(
            Registry::build(&Config::from_toml(REG).unwrap()).unwrap(),
        ))
    }

    fn rep(seq: u64, ts: DateTime<Utc>, e: u32, x: u32) -> CountReport {
        CountReport {
            seq,
            ts,
            entries: e,
            exits: x,
            period_s: None,
            total_entries: None,
            total_exits: None,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn zone_counts_roll_up_to_area_and_county_but_not_car_park() {
        let mut c = core();
        let mut b = c.new_batch();
        let gate = c.registry.device_idx("gate").unwrap();
        c.apply(
            gate,
            &rep(1, t("2026-05-01T10:00:00+08:00"), 5, 1),
            Utc::now(),
            &mut b,
        );
        for id in ["zone", "area", "county"] {
            let s = c.registry.space_idx(id).unwrap();
            assert_eq!(c.counts[s.get()].occupancy(), 4, "{id}");
        }
        assert_eq!(
            c.counts[c.registry.space_idx("park").unwrap().get()].entries,
            0
        );
        assert_eq!(b.rows.len(), 1);
        assert_eq!(b.spaces.len(), 3);
    }

    #[test]
    fn day_rolls_at_opening_time_in_local_time() {
        let tz = chrono_tz::Asia::Shanghai;
        let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        // 05:59 local on May 2 still belongs to May 1's business day.
        assert_eq!(
            business_day(tz, six, t("2026-05-02T05:59:00+08:00")),
            NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
        );
        assert_eq!(
            business_day(tz, six, t("2026-05-02T06:00:00+08:00")),
            NaiveDate::from_ymd_opt(2026, 5, 2).unwrap()
        );
        // 23:30 UTC on May 1 is 07:30 local on May 2.
        assert_eq!(
            business_day(tz, six, t("2026-05-01T23:30:00Z")),
            NaiveDate::from_ymd_opt(2026, 5, 2).unwrap()
        );
    }

    proptest! {
        /// Redelivering any reports any number of times never changes a figure.
        #[test]
        fn duplicates_never_change_the_result(
            reports in proptest::collection::vec((0u32..30, 0u32..30), 1..40),
            dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let gate = {
                let c = core();
                c.registry.device_idx("gate").unwrap()
            };
            let start = t("2026-05-01T09:00:00+08:00");
            let reps: Vec<_> = reports
                .iter()
                .enumerate()
                .map(|(i, (e, x))| rep(i as u64 + 1, start + chrono::TimeDelta::seconds(i as i64 * 20), *e, *x))
                .collect();
            let mut once = core();
            let mut b = once.new_batch();
            for r in &reps {
                once.apply(gate, r, Utc::now(), &mut b);
            }
            let mut twice = core();
            let mut b2 = twice.new_batch();
            for (i, r) in reps.iter().enumerate() {
                twice.apply(gate, r, Utc::now(), &mut b2);
                for d in &dups {
                    let j = d.index(i + 1);
                    twice.apply(gate, &reps[j], Utc::now(), &mut b2);
                }
            }
            prop_assert_eq!(&once.counts, &twice.counts);
            prop_assert_eq!(b.rows.len(), b2.rows.len());
        }
    }
}

//! Snapshots of a space's and a device's figures as last committed: what the live view publishes,
//! the API shows and the rules engine reads. Plain data, so the pure rules take them as input
//! without depending on the live view's locks and notifications.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::loss::LostMark;
use super::stamp::Stamp;
use crate::ids::DeviceIdx;

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
    /// Head-count corrections today (occupancy = entries − exits + drift + corrections).
    pub corrected_today: i64,
}

impl SpaceNow {
    /// The figures as they stand on the local business day `day`: an earlier day's counts are
    /// none of that day's (a day rolls at the opening time, before its first report arrives,
    /// which is when the counts themselves move on). Counts already in a later day stay.
    pub fn on_day(self, day: NaiveDate) -> SpaceNow {
        if self.day.is_some_and(|d| d >= day) {
            return self;
        }
        SpaceNow {
            day: Some(day),
            last_report: self.last_report,
            ..SpaceNow::default()
        }
    }
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
    /// Implausible forward jumps of seq, and the last one (timestamp, seq).
    pub seq_jumps_total: u64,
    pub last_seq_jump: Option<(DateTime<Utc>, u64)>,
    /// Reports a database failover lost, as last found (`core::loss`).
    pub lost: Option<LostMark>,
}

/// Every device's [`DeviceNow`], 80 bytes each instead of 152: the last jump's time as a
/// [`Stamp`], the lifetime restart, jump and repair counts as `u32` (saturating), and the rare
/// failover loss in a map of the devices that have one. The two times every report moves stay
/// `DateTime`s (no conversion on each publish).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceTable {
    cells: Vec<Cell>,
    lost: HashMap<DeviceIdx, LostMark>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cell {
    last_seq: u64,
    last_report: Option<DateTime<Utc>>,
    last_received: Option<DateTime<Utc>>,
    jump_at: Stamp,
    jump_seq: u64,
    missing: u64,
    gaps: u64,
    repaired: u32,
    restarts: u32,
    jumps: u32,
    /// `HAS_SEQ`, `ONLINE_KNOWN`, `ONLINE`.
    flags: u8,
}

const HAS_SEQ: u8 = 1;
const ONLINE_KNOWN: u8 = 2;
const ONLINE: u8 = 4;

fn narrow(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl DeviceTable {
    pub fn new(devices: usize) -> Self {
        Self {
            cells: vec![Cell::default(); devices],
            lost: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn get(&self, d: DeviceIdx) -> DeviceNow {
        let c = &self.cells[d.get()];
        let has = |f: u8| c.flags & f != 0;
        DeviceNow {
            last_seq: has(HAS_SEQ).then_some(c.last_seq),
            last_report: c.last_report,
            last_received: c.last_received,
            online: has(ONLINE_KNOWN).then_some(has(ONLINE)),
            missing_reports: c.missing,
            gap_reports_total: c.gaps,
            repaired_reports_total: c.repaired.into(),
            seq_restarts_total: c.restarts.into(),
            seq_jumps_total: c.jumps.into(),
            last_seq_jump: c.jump_at.get().map(|t| (t, c.jump_seq)),
            lost: self.lost.get(&d).copied(),
        }
    }

    /// When the device was last heard from (what a freshness check reads of 100,000 devices).
    pub fn last_received(&self, d: DeviceIdx) -> Option<DateTime<Utc>> {
        self.cells[d.get()].last_received
    }

    pub fn set(&mut self, d: DeviceIdx, now: &DeviceNow) {
        let flag = |on: bool, f: u8| if on { f } else { 0 };
        self.cells[d.get()] = Cell {
            last_seq: now.last_seq.unwrap_or(0),
            last_report: now.last_report,
            last_received: now.last_received,
            jump_at: now.last_seq_jump.map(|(t, _)| t).into(),
            jump_seq: now.last_seq_jump.map_or(0, |(_, s)| s),
            missing: now.missing_reports,
            gaps: now.gap_reports_total,
            repaired: narrow(now.repaired_reports_total),
            restarts: narrow(now.seq_restarts_total),
            jumps: narrow(now.seq_jumps_total),
            flags: flag(now.last_seq.is_some(), HAS_SEQ)
                | flag(now.online.is_some(), ONLINE_KNOWN)
                | flag(now.online == Some(true), ONLINE),
        };
        match now.lost {
            Some(l) => {
                self.lost.insert(d, l);
            }
            // Nearly always empty: no hashing then.
            None if !self.lost.is_empty() => {
                self.lost.remove(&d);
            }
            None => {}
        }
    }
}

impl FromIterator<DeviceNow> for DeviceTable {
    fn from_iter<I: IntoIterator<Item = DeviceNow>>(iter: I) -> Self {
        let all: Vec<DeviceNow> = iter.into_iter().collect();
        let mut t = Self::new(all.len());
        for (i, now) in all.iter().enumerate() {
            t.set(DeviceIdx(i as u32), now);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
        proptest::option::of(
            (1_500_000_000_000_000_000i64..2_000_000_000_000_000_000)
                .prop_map(DateTime::from_timestamp_nanos),
        )
    }

    prop_compose! {
        fn device_now()(
            last_seq in proptest::option::of(any::<u64>()),
            last_report in instant(),
            last_received in instant(),
            online in proptest::option::of(any::<bool>()),
            counts in (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()),
            jump in proptest::option::of((instant(), any::<u64>())),
            lost in proptest::option::of((instant(), any::<u64>(), any::<u64>(), any::<u64>())),
        ) -> DeviceNow {
            DeviceNow {
                last_seq,
                last_report,
                last_received,
                online,
                missing_reports: counts.0,
                gap_reports_total: counts.1,
                repaired_reports_total: counts.2.into(),
                seq_restarts_total: counts.3.into(),
                seq_jumps_total: counts.4.into(),
                last_seq_jump: jump.and_then(|(t, s)| Some((t?, s))),
                lost: lost.and_then(|(at, count, first, last)| {
                    Some(LostMark { at: at?, count, first, last })
                }),
            }
        }
    }

    proptest! {
        #[test]
        fn a_device_reads_back_as_it_was_set(
            nows in proptest::collection::vec(device_now(), 1..20),
            later in device_now(),
        ) {
            let mut t: DeviceTable = nows.iter().copied().collect();
            for (i, now) in nows.iter().enumerate() {
                prop_assert_eq!(t.get(DeviceIdx(i as u32)), *now);
                prop_assert_eq!(t.last_received(DeviceIdx(i as u32)), now.last_received);
            }
            // Overwriting one device (its loss too) leaves the others alone.
            t.set(DeviceIdx(0), &later);
            prop_assert_eq!(t.get(DeviceIdx(0)), later);
            for (i, now) in nows.iter().enumerate().skip(1) {
                prop_assert_eq!(t.get(DeviceIdx(i as u32)), *now);
            }
        }
    }

    #[test]
    fn a_cell_is_under_half_a_device_now() {
        assert!(std::mem::size_of::<Cell>() <= 80);
        assert!(std::mem::size_of::<DeviceNow>() >= 144);
    }

    #[test]
    fn lifetime_counts_beyond_u32_saturate() {
        let now = DeviceNow {
            seq_restarts_total: u64::from(u32::MAX) + 5,
            ..DeviceNow::default()
        };
        let t: DeviceTable = [now].into_iter().collect();
        assert_eq!(t.get(DeviceIdx(0)).seq_restarts_total, u64::from(u32::MAX));
    }
}

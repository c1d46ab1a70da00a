//! Per-space counts for the local day: entries, exits, occupancy, drift and peak.
//!
//! Occupancy is entries − exits since the day's opening, reflected at zero: when exits outrun
//! entries (missed entries, another door) the crowd shows 0 and the excess is kept as `drift`, so
//! the problem is flagged instead of hidden. The reflection is applied at minute boundaries, never
//! per report, so the order in which one minute's reports arrive cannot change any figure.
//!
//! A head count by hand ([`SpaceCounts::recount`]) sets the crowd to what was counted; the
//! difference is kept as the day's `corrected`, never folded into entries or exits.
//! Invariant: `occupancy() == entries - exits + drift() + corrected`.

use chrono::{DateTime, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceCounts {
    /// Local business day these counts belong to (None until the first report).
    pub day: Option<NaiveDate>,
    pub entries: u64,
    pub exits: u64,
    /// Occupancy when the open minute began.
    pub base: u64,
    /// Open minute (Unix minutes); reports of this or earlier minutes join it.
    pub minute: i64,
    pub min_in: u64,
    pub min_out: u64,
    /// Exits without matching entries, accumulated at closed minutes.
    pub closed_drift: u64,
    /// Highest occupancy at a closed minute, and when.
    pub peak: u64,
    pub peak_at: Option<DateTime<Utc>>,
    pub last_report: Option<DateTime<Utc>>,
    /// Head-count corrections made in the open minute (folded into `base` when it closes).
    pub adjust: i64,
    /// The day's head-count corrections.
    pub corrected: i64,
}

/// Where a report's counts went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Today,
    /// The report belongs to an earlier local day: stored in its bucket, not in today's figures.
    EarlierDay,
}

impl SpaceCounts {
    fn net(&self) -> i128 {
        i128::from(self.base) + i128::from(self.min_in) - i128::from(self.min_out)
            + i128::from(self.adjust)
    }

    pub fn occupancy(&self) -> u64 {
        self.net().max(0) as u64
    }

    pub fn drift(&self) -> u64 {
        self.closed_drift + (-self.net()).max(0) as u64
    }

    /// Peak so far today including the open minute, with its time.
    pub fn peak_now(&self) -> (u64, Option<DateTime<Utc>>) {
        let occ = self.occupancy();
        if occ > self.peak {
            (occ, self.last_report)
        } else {
            (self.peak, self.peak_at)
        }
    }

    /// Adds a report's counts: `minute` is the Unix minute they happened in, `ts` the report's
    /// timestamp (shown as the last report).
    pub fn apply(
        &mut self,
        day: NaiveDate,
        minute: i64,
        ts: DateTime<Utc>,
        entries: u32,
        exits: u32,
    ) -> Applied {
        if self.enter(day, minute) == Applied::EarlierDay {
            return Applied::EarlierDay;
        }
        self.entries += u64::from(entries);
        self.exits += u64::from(exits);
        self.min_in += u64::from(entries);
        self.min_out += u64::from(exits);
        self.last_report = Some(self.last_report.map_or(ts, |t| t.max(ts)));
        Applied::Today
    }

    /// Moves to `day` and `minute` (a later day starts afresh; an earlier one is left alone).
    fn enter(&mut self, day: NaiveDate, minute: i64) -> Applied {
        match self.day {
            Some(d) if day < d => return Applied::EarlierDay,
            Some(d) if day == d => {}
            _ => {
                *self = SpaceCounts {
                    day: Some(day),
                    minute,
                    ..Default::default()
                }
            }
        }
        if minute > self.minute {
            self.close_minute(minute);
        }
        Applied::Today
    }

    /// Takes counts back out of `day` (a late original moved them from a repair to its own,
    /// earlier day). The crowd shrinks by the entries and grows by the exits taken back.
    pub fn retract(&mut self, day: NaiveDate, entries: u32, exits: u32) -> Applied {
        if self.day != Some(day) {
            return Applied::EarlierDay;
        }
        self.entries = self.entries.saturating_sub(u64::from(entries));
        self.exits = self.exits.saturating_sub(u64::from(exits));
        self.min_out += u64::from(entries);
        self.min_in += u64::from(exits);
        Applied::Today
    }

    /// Sets the crowd to a head count made at `minute` of `day`; returns the occupancy shown
    /// just before and the correction (`inside − before`).
    pub fn recount(&mut self, day: NaiveDate, minute: i64, inside: u64) -> (u64, i64) {
        self.enter(day, minute);
        // Exits that outran entries in the open minute are drift already (as they would be at
        // the minute's close): the correction is then exactly what the operator sees change.
        let net = self.net();
        if net < 0 {
            self.closed_drift += (-net) as u64;
            self.adjust = self.adjust.saturating_add((-net) as i64);
        }
        let before = self.occupancy();
        let delta = i64::try_from(i128::from(inside) - i128::from(before)).unwrap_or(i64::MAX);
        self.shift(delta);
        (before, delta)
    }

    /// Adds a correction made elsewhere (a head count in a zone also moves its area).
    pub fn correct(&mut self, day: NaiveDate, minute: i64, delta: i64) {
        self.enter(day, minute);
        self.shift(delta);
    }

    fn shift(&mut self, delta: i64) {
        self.adjust = self.adjust.saturating_add(delta);
        self.corrected = self.corrected.saturating_add(delta);
    }

    fn close_minute(&mut self, next: i64) {
        let net = self.net();
        if net < 0 {
            self.closed_drift += (-net) as u64;
        }
        self.base = net.max(0) as u64;
        if self.base > self.peak {
            self.peak = self.base;
            self.peak_at = DateTime::from_timestamp((self.minute + 1) * 60, 0);
        }
        self.min_in = 0;
        self.min_out = 0;
        self.adjust = 0;
        self.minute = next;
    }
}

pub fn unix_minute(ts: DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
    }

    fn at(min: i64, sec: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_777_600_000 / 60 * 60 + min * 60 + sec, 0).unwrap()
    }

    #[test]
    fn exits_without_entries_clamp_at_zero_and_show_drift() {
        let mut s = SpaceCounts::default();
        s.apply(day(), unix_minute(at(0, 0)), at(0, 0), 3, 0);
        s.apply(day(), unix_minute(at(1, 0)), at(1, 0), 0, 5);
        assert_eq!(s.occupancy(), 0);
        assert_eq!(s.drift(), 2);
        // Closing the minute keeps the drift and restarts from zero, not from -2.
        s.apply(day(), unix_minute(at(2, 0)), at(2, 0), 4, 0);
        assert_eq!(s.occupancy(), 4);
        assert_eq!(s.drift(), 2);
        assert_eq!((s.entries, s.exits), (7, 5));
    }

    #[test]
    fn new_day_resets_and_earlier_day_is_not_counted_today() {
        let mut s = SpaceCounts::default();
        s.apply(day(), unix_minute(at(0, 0)), at(0, 0), 10, 2);
        let next = day().succ_opt().unwrap();
        s.apply(next, unix_minute(at(24 * 60, 0)), at(24 * 60, 0), 1, 0);
        assert_eq!((s.entries, s.occupancy()), (1, 1));
        assert_eq!(
            s.apply(day(), unix_minute(at(5, 0)), at(5, 0), 7, 0),
            Applied::EarlierDay
        );
        assert_eq!(s.entries, 1);
    }

    #[test]
    fn peak_is_recorded_with_its_minute() {
        let mut s = SpaceCounts::default();
        s.apply(day(), unix_minute(at(0, 10)), at(0, 10), 5, 0);
        s.apply(day(), unix_minute(at(1, 0)), at(1, 0), 0, 3);
        s.apply(day(), unix_minute(at(2, 0)), at(2, 0), 0, 1);
        assert_eq!(s.peak, 5);
        assert_eq!(s.peak_at, Some(at(1, 0)));
        assert_eq!(s.peak_now().0, 5);
    }

    proptest! {
        /// Reports of one minute arriving in any order give identical counts.
        #[test]
        fn order_within_a_minute_does_not_matter(
            prior in proptest::collection::vec((0u32..20, 0u32..20), 0..5),
            minute in proptest::collection::vec((0u32..20, 0u32..20, 0i64..60), 1..12),
            seed in any::<u64>(),
        ) {
            let mut a = SpaceCounts::default();
            for (i, (e, x)) in prior.iter().enumerate() {
                a.apply(day(), unix_minute(at(i as i64, 0)), at(i as i64, 0), *e, *x);
            }
            let mut b = a;
            for (e, x, sec) in &minute {
                a.apply(day(), unix_minute(at(10, *sec)), at(10, *sec), *e, *x);
            }
            let mut shuffled = minute.clone();
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % n);
            }
            for (e, x, sec) in &shuffled {
                b.apply(day(), unix_minute(at(10, *sec)), at(10, *sec), *e, *x);
            }
            prop_assert_eq!(a.occupancy(), b.occupancy());
            prop_assert_eq!(a.drift(), b.drift());
            prop_assert_eq!((a.entries, a.exits, a.peak_now().0), (b.entries, b.exits, b.peak_now().0));
        }

        /// Whatever arrives, the crowd is never negative and the books balance.
        #[test]
        fn books_balance(reports in proptest::collection::vec((0u32..50, 0u32..50, 0i64..3), 0..200)) {
            let mut s = SpaceCounts::default();
            let mut min = 0;
            for (e, x, step) in reports {
                min += step;
                s.apply(day(), unix_minute(at(min, 0)), at(min, 0), e, x);
                prop_assert_eq!(
                    i128::from(s.occupancy()),
                    i128::from(s.entries) - i128::from(s.exits) + i128::from(s.drift())
                );
                prop_assert!(s.peak_now().0 >= s.occupancy());
            }
        }

        /// Counts given back (a repair's originals arrived), head counts and corrections from a
        /// zone keep the books: occupancy = entries − exits + drift + corrections.
        #[test]
        fn books_balance_with_give_backs_and_head_counts(
            ops in proptest::collection::vec((0u8..4, 0u32..50, 0u32..50, 0i64..3), 0..200),
        ) {
            let mut s = SpaceCounts::default();
            let mut min = 0;
            for (op, a, b, step) in ops {
                min += step;
                let m = unix_minute(at(min, 0));
                match op {
                    0 | 1 => {
                        s.apply(day(), m, at(min, 0), a, b);
                    }
                    // Give back at most what was counted (as a repair never holds more).
                    2 => {
                        let (e, x) = (a.min(s.entries as u32), b.min(s.exits as u32));
                        s.retract(day(), e, x);
                    }
                    _ if a % 2 == 0 => {
                        s.recount(day(), m, u64::from(b));
                        prop_assert_eq!(s.occupancy(), u64::from(b));
                    }
                    _ => s.correct(day(), m, i64::from(b) - 25),
                }
                prop_assert_eq!(
                    i128::from(s.occupancy()),
                    i128::from(s.entries) - i128::from(s.exits)
                        + i128::from(s.drift())
                        + i128::from(s.corrected)
                );
            }
        }
    }
}

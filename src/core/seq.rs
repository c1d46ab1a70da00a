//! Per-device sequence tracking: the exactly-once half of "at-least-once delivery, exactly-once
//! effect". A report is new, a duplicate (QoS 1 redelivery, a backlog replayed twice), a late fill of
//! an earlier gap, or a restart of the device's counter. Gaps are repaired from cumulative totals
//! when the device sends them; otherwise they stay open and are reported as missing.
//!
//! The window is a 128-bit map of which of the last 128 seqs were seen (IPsec's anti-replay
//! window): constant memory per device, and late reports within it are still counted once.

use chrono::{DateTime, Utc};

use crate::decode::CountReport;

pub const WINDOW: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqState {
    /// Highest seq seen; meaningless while `started` is false.
    pub high: u64,
    /// Bit i set: seq `high - i` was seen (or covered by a gap repair).
    pub window: u128,
    pub started: bool,
    /// Newest report timestamp seen: tells a device restart (lower seq, later time) from a replay.
    pub last_ts: Option<DateTime<Utc>>,
    /// Timestamp of the report that restarted the sequence, if it ever restarted.
    pub run_start: Option<DateTime<Utc>>,
    /// Cumulative totals carried by the report at seq `high`, if it had them.
    pub totals: Option<(u64, u64)>,
    /// Reports known missing and not (yet) filled or repaired.
    pub missing: u64,
    /// Reports ever found missing, and those repaired from totals (for data-quality views).
    pub gaps_total: u64,
    pub repaired_total: u64,
    pub resets_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Count it. `repaired` holds entries/exits recovered for a gap just before this report.
    New {
        gap: u64,
        repaired: Option<(u32, u32)>,
    },
    /// A report filling an earlier gap.
    Late,
    /// The device's counter restarted (lower seq, later timestamp): count it, start a new run.
    Restarted,
    Duplicate,
    /// Below the window: cannot tell a late report from a replay, so it is refused and counted.
    TooOld,
}

impl Verdict {
    pub fn counts(self) -> bool {
        matches!(
            self,
            Verdict::New { .. } | Verdict::Late | Verdict::Restarted
        )
    }
}

impl SeqState {
    pub fn observe(&mut self, r: &CountReport) -> Verdict {
        let verdict = self.classify(r);
        if verdict.counts() {
            self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
        }
        verdict
    }

    fn classify(&mut self, r: &CountReport) -> Verdict {
        if !self.started {
            self.start_run(r);
            return Verdict::New {
                gap: 0,
                repaired: None,
            };
        }
        if self.run_start.is_some_and(|t| r.ts < t) {
            // Older than the current run: a replay from before the device restarted.
            return Verdict::TooOld;
        }
        if r.seq > self.high {
            let d = r.seq - self.high;
            let gap = d - 1;
            let repaired = if gap > 0 { self.repair(r) } else { None };
            self.window = if d >= WINDOW { 0 } else { self.window << d };
            self.window |= 1;
            if gap > 0 {
                self.gaps_total += gap;
                if repaired.is_some() {
                    self.repaired_total += gap;
                    // The repaired reports are accounted for: a late original is now a duplicate.
                    let covered = gap.min(WINDOW - 1);
                    self.window |= ((1u128 << covered) - 1) << 1;
                } else {
                    self.missing += gap;
                }
            }
            self.high = r.seq;
            self.totals = r.total_entries.zip(r.total_exits);
            return Verdict::New { gap, repaired };
        }
        let off = self.high - r.seq;
        // A device that reboots starts again from 0 or 1, or far below where it was, and stamps
        // the new run later than anything seen. A re-stamped copy of a recent report is neither.
        let newer = self.last_ts.is_none_or(|t| r.ts > t);
        if newer && off > 0 && (r.seq <= 1 || off >= WINDOW) {
            self.resets_total += 1;
            self.start_run(r);
            self.run_start = Some(r.ts);
            return Verdict::Restarted;
        }
        if off < WINDOW {
            let bit = 1u128 << off;
            if self.window & bit != 0 {
                return Verdict::Duplicate;
            }
            self.window |= bit;
            self.missing = self.missing.saturating_sub(1);
            return Verdict::Late;
        }
        Verdict::TooOld
    }

    fn start_run(&mut self, r: &CountReport) {
        self.started = true;
        self.high = r.seq;
        self.window = 1;
        self.totals = r.total_entries.zip(r.total_exits);
    }

    /// Entries/exits that the missing reports must have carried: this report's totals minus the
    /// previous report's totals minus this report's own counts. Only when both totals exist and are
    /// consistent (a counter reset makes them go backwards: then nothing is invented).
    fn repair(&self, r: &CountReport) -> Option<(u32, u32)> {
        let (pe, px) = self.totals?;
        let (te, tx) = r.total_entries.zip(r.total_exits)?;
        let me = te.checked_sub(pe)?.checked_sub(u64::from(r.entries))?;
        let mx = tx.checked_sub(px)?.checked_sub(u64::from(r.exits))?;
        Some((u32::try_from(me).ok()?, u32::try_from(mx).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rep(seq: u64, minute: i64, e: u32, x: u32) -> CountReport {
        CountReport {
            seq,
            ts: Utc.timestamp_opt(1_700_000_000 + minute * 60, 0).unwrap(),
            entries: e,
            exits: x,
            period_s: None,
            total_entries: None,
            total_exits: None,
        }
    }

    fn with_totals(mut r: CountReport, te: u64, tx: u64) -> CountReport {
        r.total_entries = Some(te);
        r.total_exits = Some(tx);
        r
    }

    #[test]
    fn in_order_reports_are_new_and_redeliveries_duplicates() {
        let mut s = SeqState::default();
        for i in 1..=5 {
            assert_eq!(
                s.observe(&rep(i, i as i64, 1, 0)),
                Verdict::New {
                    gap: 0,
                    repaired: None
                }
            );
        }
        for i in 1..=5 {
            assert_eq!(
                s.observe(&rep(i, i as i64, 1, 0)),
                Verdict::Duplicate,
                "seq {i}"
            );
        }
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn gap_without_totals_is_missing_until_filled() {
        let mut s = SeqState::default();
        s.observe(&rep(1, 1, 1, 0));
        assert_eq!(
            s.observe(&rep(4, 4, 1, 0)),
            Verdict::New {
                gap: 2,
                repaired: None
            }
        );
        assert_eq!(s.missing, 2);
        assert_eq!(s.observe(&rep(2, 2, 1, 0)), Verdict::Late);
        assert_eq!(s.observe(&rep(2, 2, 1, 0)), Verdict::Duplicate);
        assert_eq!(s.missing, 1);
        assert_eq!(s.gaps_total, 2);
    }

    #[test]
    fn gap_with_totals_is_repaired_and_originals_become_duplicates() {
        let mut s = SeqState::default();
        s.observe(&with_totals(rep(1, 1, 2, 1), 10, 5));
        // seqs 2 and 3 lost: they carried 7 entries and 3 exits between them.
        let v = s.observe(&with_totals(rep(4, 4, 1, 1), 18, 9));
        assert_eq!(
            v,
            Verdict::New {
                gap: 2,
                repaired: Some((7, 3))
            }
        );
        assert_eq!(s.missing, 0);
        assert_eq!(s.observe(&rep(2, 2, 4, 2)), Verdict::Duplicate);
        assert_eq!(s.observe(&rep(3, 3, 3, 1)), Verdict::Duplicate);
    }

    #[test]
    fn totals_going_backwards_repair_nothing() {
        let mut s = SeqState::default();
        s.observe(&with_totals(rep(1, 1, 2, 1), 100, 50));
        let v = s.observe(&with_totals(rep(3, 3, 1, 1), 5, 5));
        assert_eq!(
            v,
            Verdict::New {
                gap: 1,
                repaired: None
            }
        );
        assert_eq!(s.missing, 1);
    }

    #[test]
    fn restart_with_later_timestamp_starts_a_new_run() {
        let mut s = SeqState::default();
        for i in 1..=300 {
            s.observe(&rep(i, i as i64, 1, 0));
        }
        assert_eq!(s.observe(&rep(1, 400, 1, 0)), Verdict::Restarted);
        assert_eq!(
            s.observe(&rep(2, 401, 1, 0)),
            Verdict::New {
                gap: 0,
                repaired: None
            }
        );
        // The old run's reports replayed after the restart are older than the new run.
        assert_eq!(s.observe(&rep(2, 2, 1, 0)), Verdict::TooOld);
        assert_eq!(s.observe(&rep(250, 250, 1, 0)), Verdict::TooOld);
    }

    #[test]
    fn restamped_copy_of_a_recent_report_is_a_duplicate_not_a_restart() {
        let mut s = SeqState::default();
        for i in 1..=5 {
            s.observe(&rep(i, i as i64, 1, 0));
        }
        assert_eq!(s.observe(&rep(5, 50, 1, 0)), Verdict::Duplicate);
        assert_eq!(s.observe(&rep(3, 50, 1, 0)), Verdict::Duplicate);
        assert_eq!(s.observe(&rep(1, 60, 1, 0)), Verdict::Restarted);
    }

    #[test]
    fn far_below_window_is_too_old() {
        let mut s = SeqState::default();
        s.observe(&rep(1, 1, 1, 0));
        s.observe(&rep(1000, 1000, 1, 0));
        assert_eq!(s.observe(&rep(5, 5, 1, 0)), Verdict::TooOld);
        assert_eq!(s.observe(&rep(999, 999, 1, 0)), Verdict::Late);
    }
}

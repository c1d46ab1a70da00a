//! What a database failover lost: the reports a device's state had when this process last
//! committed and acknowledged them, and that the state loaded from the promoted server lacks.
//! With an asynchronous standby the last acknowledged batches may never have reached it; the
//! broker no longer holds them and the devices will not send them again, so they are named
//! (device, seq ranges, time) rather than silently skipped. Pure.

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};

use super::seq::{SeqState, WINDOW};
use super::stamp::Stamp;
use crate::ids::DeviceIdx;

/// What a device's views show of its last loss: when it was found, how many reports, the first
/// and last missing seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LostMark {
    pub at: DateTime<Utc>,
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

impl Lost {
    pub fn mark(&self, at: DateTime<Utc>) -> LostMark {
        LostMark {
            at,
            count: self.count,
            first: self.seqs.first().map_or(0, |r| *r.start()),
            last: self.seqs.last().map_or(0, |r| *r.end()),
        }
    }
}

/// One device's reports stored before the failover and missing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub device: DeviceIdx,
    /// The missing seqs as ranges, ascending.
    pub seqs: Vec<RangeInclusive<u64>>,
    pub count: u64,
    /// The newest report the promoted server kept, and the newest one acknowledged.
    pub after: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// What a device's seq state says about which reports it holds, kept per device after each
/// acknowledged commit: a quarter of a [`SeqState`] (48 bytes), as a province has 100,000
/// devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub started: bool,
    pub high: u64,
    /// Bit i: seq `high - i` held by its own report (not by a repair).
    pub held: u128,
    pub run_start: Stamp,
    /// Timestamp of the newest report.
    pub newest: Stamp,
}

impl Mark {
    pub fn of(st: &SeqState) -> Self {
        Self {
            started: st.started,
            high: st.high,
            held: st.window & !st.repaired,
            run_start: st.run_start.into(),
            newest: st.high_ts.or(st.last_ts).into(),
        }
    }

    /// Whether seq `s` is held by its own report: `None` below the window (the raw table would
    /// know; taken as held).
    fn holds(&self, s: u64) -> Option<bool> {
        if !self.started || s > self.high {
            return Some(false);
        }
        let back = self.high - s;
        (back < WINDOW).then(|| self.held >> back & 1 == 1)
    }
}

/// The reports `acked` (this process's state after its last acknowledged commit) held that
/// `loaded` (from the server now written to) does not. Compared within one run of the device's
/// counter only: across a restart of its seq the two say nothing about each other.
pub fn lost(device: DeviceIdx, acked: &Mark, loaded: &Mark) -> Option<Lost> {
    if !acked.started || (loaded.started && loaded.run_start != acked.run_start) {
        return None;
    }
    let low = acked.high.saturating_sub(WINDOW - 1).max(1);
    // Below the acknowledged window nothing says which seqs arrived: above what the loaded state
    // holds, they were counted (the window moved past them), so they are taken as lost.
    let floor = if loaded.started { loaded.high + 1 } else { 1 };
    let mut seqs: Vec<RangeInclusive<u64>> = Vec::new();
    let mut push = |s: u64| match seqs.last_mut() {
        Some(r) if *r.end() + 1 == s => *r = *r.start()..=s,
        _ => seqs.push(s..=s),
    };
    for s in floor..low {
        push(s);
    }
    for s in low..=acked.high {
        if acked.holds(s) == Some(true) && loaded.holds(s) == Some(false) {
            push(s);
        }
    }
    let count = seqs.iter().map(|r| r.end() - r.start() + 1).sum();
    (count > 0).then_some(Lost {
        device,
        seqs,
        count,
        after: loaded.newest.get(),
        until: acked.newest.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mark of a state that saw `seqs` (in order) by their own reports.
    fn saw(seqs: &[u64]) -> Mark {
        Mark::of(&state(seqs))
    }

    fn state(seqs: &[u64]) -> SeqState {
        let mut st = SeqState::default();
        for &s in seqs {
            if !st.started {
                st = SeqState {
                    high: s,
                    window: 1,
                    started: true,
                    ..SeqState::default()
                };
            } else if s > st.high {
                let shift = s - st.high;
                st.window = if shift >= 128 { 0 } else { st.window << shift };
                st.window |= 1;
                st.high = s;
            } else {
                st.window |= 1 << (st.high - s);
            }
        }
        st
    }

    #[test]
    fn the_acknowledged_reports_the_promoted_server_lacks_are_named() {
        let acked = saw(&(1..=60).collect::<Vec<_>>());
        let loaded = saw(&(1..=40).collect::<Vec<_>>());
        let l = lost(DeviceIdx(3), &acked, &loaded).unwrap();
        assert_eq!(l.seqs, vec![41..=60]);
        assert_eq!(l.count, 20);
    }

    #[test]
    fn a_late_report_held_on_both_sides_is_not_lost_and_a_gap_is_not_invented() {
        // Acknowledged: 1..=50 without 45 (never arrived), then 45 late; the promoted server has
        // 1..=44 and the late 45 was not on it either; 46 was.
        let mut seqs: Vec<u64> = (1..=44).chain(46..=50).collect();
        seqs.push(45);
        let acked = saw(&seqs);
        let loaded = saw(&[(1..=44).collect::<Vec<_>>(), vec![46]].concat());
        let l = lost(DeviceIdx(0), &acked, &loaded).unwrap();
        assert_eq!(l.seqs, vec![45..=45, 47..=50]);
        // Acknowledged without 45 at all: 45 is a gap, not a loss.
        let acked = saw(&(1..=44).chain(46..=50).collect::<Vec<_>>());
        let l = lost(DeviceIdx(0), &acked, &loaded).unwrap();
        assert_eq!(l.seqs, vec![47..=50]);
    }

    #[test]
    fn nothing_lost_when_the_promoted_server_has_it_all_or_more() {
        let acked = saw(&(1..=60).collect::<Vec<_>>());
        assert_eq!(lost(DeviceIdx(0), &acked, &acked), None);
        let more = saw(&(1..=70).collect::<Vec<_>>());
        assert_eq!(lost(DeviceIdx(0), &acked, &more), None);
        assert_eq!(
            lost(DeviceIdx(0), &Mark::of(&SeqState::default()), &more),
            None
        );
    }

    #[test]
    fn beyond_the_window_the_whole_stretch_is_named() {
        let acked = saw(&(1..=400).collect::<Vec<_>>());
        let loaded = saw(&(1..=100).collect::<Vec<_>>());
        let l = lost(DeviceIdx(0), &acked, &loaded).unwrap();
        assert_eq!(l.seqs, vec![101..=400]);
        // A device the promoted server never heard of lost everything acknowledged.
        let l = lost(
            DeviceIdx(0),
            &saw(&[1, 2, 3]),
            &Mark::of(&SeqState::default()),
        )
        .unwrap();
        assert_eq!(l.seqs, vec![1..=3]);
    }
}

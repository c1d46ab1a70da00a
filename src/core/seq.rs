//! Per-device sequence tracking: the exactly-once half of "at-least-once delivery, exactly-once
//! effect". A report is new, a duplicate (QoS 1 redelivery, a backlog replayed twice), a late fill of
//! an earlier gap, or a restart of the device's counter. Gaps are repaired from cumulative totals
//! when the device sends them; otherwise they stay open and are reported as missing.
//!
//! The window is a 128-bit map of which of the last 128 seqs were seen (IPsec's anti-replay
//! window): constant memory per device, and late reports within it are settled in memory. What the
//! window cannot settle — a report below it, one from an earlier run of the counter, the original
//! of a report a repair stands for, an implausible jump ahead — is returned as
//! [`Verdict::Lookup`]: the ingester looks the report up in the raw table (the authority below the
//! window) and hands the answer back to [`SeqState::settle`].
//!
//! A report's identity is its device, seq and timestamp (the raw table's key) when the device
//! stamps its reports, and its device, seq and run when the report is stamped on receipt (then
//! its time says nothing). A run starts when the seq goes back with a later device timestamp (a
//! reboot, a restore from an old checkpoint); a report older than the current run belongs to an
//! earlier one. A seq seen in the current run proves a copy only for reports stamped on receipt:
//! a device-stamped one may come from a run that restarted unseen during an outage (its live
//! reports overtook the old seqs before its backlog arrived), so the raw table decides.

use chrono::{DateTime, TimeDelta, Utc};

use crate::decode::CountReport;

pub const WINDOW: u64 = 128;

/// How far ahead a seq may plausibly jump: `slack` seqs plus `per_second` for every second since
/// the device's newest timestamp. A jump beyond it (a flipped bit, a firmware bug) is an anomaly:
/// counted once, flagged, and neither opens missing reports nor silences the counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JumpBound {
    pub slack: u64,
    pub per_second: f64,
}

impl Default for JumpBound {
    fn default() -> Self {
        Self {
            slack: 10_000,
            per_second: 10.0,
        }
    }
}

impl JumpBound {
    fn allows(&self, ahead: u64, elapsed: TimeDelta) -> bool {
        let secs = elapsed.num_milliseconds().max(0) as f64 / 1000.0;
        (ahead as f64) <= self.slack as f64 + secs * self.per_second
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqState {
    /// Highest seq seen; meaningless while `started` is false.
    pub high: u64,
    /// Bit i set: seq `high - i` was seen (or covered by a gap repair).
    pub window: u128,
    /// Bit i set: seq `high - i` is covered by a repair, not (yet) by its own report.
    pub repaired: u128,
    pub started: bool,
    /// Newest report timestamp seen: tells a device restart (lower seq, later time) from a replay.
    pub last_ts: Option<DateTime<Utc>>,
    /// Timestamp of the report at `high`: where a repair's time begins.
    pub high_ts: Option<DateTime<Utc>>,
    /// Timestamp of the report that started the current run, if the sequence ever restarted.
    pub run_start: Option<DateTime<Utc>>,
    /// Start of the run before the current one.
    pub prev_run_start: Option<DateTime<Utc>>,
    /// Cumulative totals carried by the report at seq `high`, if it had them.
    pub totals: Option<(u64, u64)>,
    /// Reports known missing and not (yet) filled or repaired.
    pub missing: u64,
    /// Reports ever found missing, and those repaired from totals (for data-quality views).
    pub gaps_total: u64,
    pub repaired_total: u64,
    pub resets_total: u64,
    /// Implausible forward jumps seen, and the last one (its timestamp and seq).
    pub jumps_total: u64,
    pub last_jump: Option<(DateTime<Utc>, u64)>,
    /// Entries/exits of jump reports counted since `high` last moved: the next repair's totals
    /// include them, so it leaves them out.
    pub jumped: (u32, u32),
}

/// The timestamps bounding one run of a device's counter: `[from, until)`, open where `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Run {
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.until.is_none_or(|u| ts < u)
    }
}

/// Why the raw table must decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// Below the window of the current run.
    BelowWindow,
    /// Older than the current run: a report of an earlier run of the counter.
    EarlierRun,
    /// Inside a gap that a later report's totals repaired: the original of what the repair
    /// stands for, or a copy of it.
    FillsRepair,
    /// Far ahead of anything plausible.
    Jump,
    /// A seq seen in this run, with a device timestamp: a copy, or a report of a run that
    /// restarted unseen.
    Seen,
    /// A late report within the window, of a device whose counts were ever repaired: a repair
    /// may stand for it (by time, when a run restarted unseen).
    LateInWindow,
}

/// What the raw table has to answer for one report: is `(device, seq)` stored within `run`, and
/// if not, which stored report's repair covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub kind: LookupKind,
    pub run: Run,
    /// The device's timestamp: stored with exactly this one, or not stored (None: any time in
    /// `run`).
    pub exact: Option<DateTime<Utc>>,
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
    /// The window cannot tell: look the report up, then [`SeqState::settle`].
    Lookup(Lookup),
}

impl Verdict {
    pub fn counts(self) -> bool {
        matches!(
            self,
            Verdict::New { .. } | Verdict::Late | Verdict::Restarted
        )
    }
}

/// A stored report whose repaired counts cover a given seq, with what is left of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairOwner {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub entries: u32,
    pub exits: u32,
}

/// The raw table's answer for one [`Lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    pub present: bool,
    pub owner: Option<RepairOwner>,
}

/// What a looked-up report turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Duplicate,
    /// Not stored: count it once, in its own minute.
    Late,
    /// The original of part of `owner`'s repair: count it in its own minute and take the same
    /// counts (at most what is left) out of the repair.
    FillsRepair {
        owner: RepairOwner,
        moved: (u32, u32),
    },
    /// An implausible jump ahead, not stored: counted once, flagged.
    Jump,
}

impl SeqState {
    pub fn observe(&mut self, r: &CountReport, bound: &JumpBound) -> Verdict {
        let verdict = self.classify(r, bound);
        if verdict.counts() {
            self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
        }
        verdict
    }

    /// The current run's bounds.
    pub fn current_run(&self) -> Run {
        Run {
            from: self.run_start,
            until: None,
        }
    }

    /// The bounds of the run a report stamped `ts` belongs to (the current one, the one before,
    /// or any earlier one).
    pub fn run_of(&self, ts: DateTime<Utc>) -> Run {
        match (self.run_start, self.prev_run_start) {
            (Some(cur), _) if ts >= cur => self.current_run(),
            (Some(cur), Some(prev)) if ts >= prev => Run {
                from: Some(prev),
                until: Some(cur),
            },
            (Some(_), Some(prev)) => Run {
                from: None,
                until: Some(prev),
            },
            (Some(cur), None) => Run {
                from: None,
                until: Some(cur),
            },
            (None, _) => Run::default(),
        }
    }

    fn lookup(&self, r: &CountReport, kind: LookupKind, run: Run) -> Verdict {
        Verdict::Lookup(Lookup {
            kind,
            run,
            exact: r.ts_from_device.then_some(r.ts),
        })
    }

    fn classify(&mut self, r: &CountReport, bound: &JumpBound) -> Verdict {
        if !self.started {
            self.start_run(r);
            return Verdict::New {
                gap: 0,
                repaired: None,
            };
        }
        if self.run_start.is_some_and(|t| r.ts < t) {
            return self.lookup(r, LookupKind::EarlierRun, self.run_of(r.ts));
        }
        if r.seq > self.high {
            let ahead = r.seq - self.high;
            let elapsed = self.last_ts.map_or(TimeDelta::zero(), |t| r.ts - t);
            if !bound.allows(ahead, elapsed) {
                // The device may really have moved to a new base: a report that plausibly
                // follows the last jump (later seq, not earlier) starts a run from it.
                if let Some((jts, jseq)) = self.last_jump
                    && r.seq > jseq
                    && r.ts >= jts
                    && bound.allows(r.seq - jseq, r.ts - jts)
                {
                    self.rebase(jts, jseq);
                    return self.classify(r, bound);
                }
                return self.lookup(r, LookupKind::Jump, self.current_run());
            }
            let gap = ahead - 1;
            let repaired = if gap > 0 { self.repair(r) } else { None };
            self.jumped = (0, 0);
            self.shift(ahead);
            self.window |= 1;
            if gap > 0 {
                self.gaps_total += gap;
                if repaired.is_some() {
                    self.repaired_total += gap;
                    // The repair accounts for the gap: its originals, if they come, move their
                    // counts out of the repair (via the raw table) instead of adding them again.
                    let covered = gap.min(WINDOW - 1);
                    let bits = ((1u128 << covered) - 1) << 1;
                    self.window |= bits;
                    self.repaired |= bits;
                } else {
                    self.missing += gap;
                }
            }
            self.high = r.seq;
            self.high_ts = Some(r.ts);
            self.totals = r.total_entries.zip(r.total_exits);
            return Verdict::New { gap, repaired };
        }
        let off = self.high - r.seq;
        // The seq went back with a later device timestamp: the counter restarted (rebooted, or
        // restored from an old checkpoint), from whatever value. A report without a timestamp of
        // its own is stamped on receipt, so its time says nothing: it never restarts a run.
        let newer = r.ts_from_device && self.last_ts.is_none_or(|t| r.ts > t);
        // Stamped on receipt, only a seq back at its very start, far below the window, says
        // reboot (a LoRaWAN rejoin resets its frame counter to 0).
        let rebooted = !r.ts_from_device && r.seq <= 1 && off >= WINDOW;
        if (newer && off > 0) || rebooted {
            self.resets_total += 1;
            self.prev_run_start = self.run_start;
            self.start_run(r);
            self.run_start = Some(r.ts);
            return Verdict::Restarted;
        }
        if off < WINDOW {
            let bit = 1u128 << off;
            if self.repaired & bit != 0 {
                return self.lookup(r, LookupKind::FillsRepair, self.current_run());
            }
            if self.window & bit != 0 {
                if r.ts_from_device {
                    return self.lookup(r, LookupKind::Seen, self.current_run());
                }
                return Verdict::Duplicate;
            }
            if r.ts_from_device && self.repaired_total > 0 {
                return self.lookup(r, LookupKind::LateInWindow, self.current_run());
            }
            self.window |= bit;
            self.missing = self.missing.saturating_sub(1);
            return Verdict::Late;
        }
        self.lookup(r, LookupKind::BelowWindow, self.current_run())
    }

    /// Applies the raw table's answer for a report that [`SeqState::observe`] could not settle.
    pub fn settle(
        &mut self,
        r: &CountReport,
        lookup: &Lookup,
        found: Found,
        bound: &JumpBound,
    ) -> Settled {
        if found.present {
            return Settled::Duplicate;
        }
        // A seq far beyond anything plausible is flagged wherever it turns up; its counts are
        // real (a flipped bit spoils the seq, not the count), so a repair standing for its time
        // gives them back as for any late original.
        let absurd = lookup.kind == LookupKind::Jump
            || found
                .owner
                .is_some_and(|o| r.seq > o.seq && !bound.allows(r.seq - o.seq, TimeDelta::zero()));
        if absurd {
            self.flag_jump(r);
        }
        let settled = match found.owner {
            Some(owner) => Settled::FillsRepair {
                owner,
                moved: (r.entries.min(owner.entries), r.exits.min(owner.exits)),
            },
            None if absurd => {
                // After the report at `high`: the next repair's totals include it.
                if self.high_ts.is_none_or(|t| r.ts > t) {
                    self.jumped.0 = self.jumped.0.saturating_add(r.entries);
                    self.jumped.1 = self.jumped.1.saturating_add(r.exits);
                }
                self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
                return Settled::Jump;
            }
            None => Settled::Late,
        };
        // A late report closes a gap that was left missing (a repaired one was never missing).
        if found.owner.is_none()
            && matches!(
                lookup.kind,
                LookupKind::BelowWindow | LookupKind::EarlierRun | LookupKind::LateInWindow
            )
        {
            self.missing = self.missing.saturating_sub(1);
        }
        // Within the window the report is now its own: a copy of it is a plain duplicate.
        if lookup.run == self.current_run() && r.seq <= self.high && self.high - r.seq < WINDOW {
            let bit = 1u128 << (self.high - r.seq);
            self.window |= bit;
            self.repaired &= !bit;
        }
        self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
        settled
    }

    /// An implausible seq: counted once, flagged.
    fn flag_jump(&mut self, r: &CountReport) {
        self.jumps_total += 1;
        if self.last_jump.is_none_or(|(t, _)| r.ts >= t) {
            self.last_jump = Some((r.ts, r.seq));
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.window = 0;
            self.repaired = 0;
        } else {
            self.window <<= by;
            self.repaired <<= by;
        }
    }

    fn start_run(&mut self, r: &CountReport) {
        self.started = true;
        self.high = r.seq;
        self.window = 1;
        self.repaired = 0;
        self.jumped = (0, 0);
        self.high_ts = Some(r.ts);
        self.totals = r.total_entries.zip(r.total_exits);
    }

    /// The counter continues from its last jump: that report starts the current run.
    fn rebase(&mut self, ts: DateTime<Utc>, seq: u64) {
        self.prev_run_start = self.run_start;
        self.run_start = Some(ts);
        self.high = seq;
        self.high_ts = Some(ts);
        self.window = 1;
        self.repaired = 0;
        self.totals = None;
        self.last_jump = None;
        self.resets_total += 1;
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
    }

    /// Entries/exits that the missing reports must have carried: this report's totals minus the
    /// previous report's totals minus this report's own counts. Only when both totals exist and are
    /// consistent (a counter reset makes them go backwards: then nothing is invented).
    fn repair(&self, r: &CountReport) -> Option<(u32, u32)> {
        let (pe, px) = self.totals?;
        let (te, tx) = r.total_entries.zip(r.total_exits)?;
        let (je, jx) = self.jumped;
        let me = te
            .checked_sub(pe)?
            .checked_sub(u64::from(r.entries) + u64::from(je))?;
        let mx = tx
            .checked_sub(px)?
            .checked_sub(u64::from(r.exits) + u64::from(jx))?;
        Some((u32::try_from(me).ok()?, u32::try_from(mx).ok()?))
    }
}

#[cfg(test)]
mod tests;

//! Every device's [`SeqState`], stored in 120 bytes instead of 192: the window as two words (a
//! `u128` would align the cell to 16), the run's start as a [`Stamp`], the totals' presence as a
//! flag, and what few devices ever need — a window of repaired seqs, the start of the run before
//! the current one, the last implausible jump — in a map of the devices that have it. The two
//! times every report moves stay `DateTime`s: converting them each way cost ~400 instructions a
//! report. The de-duplication logic works on whole `SeqState`s ([`SeqStates::get`], then
//! [`SeqStates::set`]); only the storage is compact.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::seq::SeqState;
use super::stamp::Stamp;
use crate::ids::DeviceIdx;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeqStates {
    cells: Vec<Cell>,
    rare: HashMap<DeviceIdx, Rare>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    high: u64,
    /// Low and high halves.
    window: [u64; 2],
    last_ts: Option<DateTime<Utc>>,
    high_ts: Option<DateTime<Utc>>,
    run_start: Stamp,
    totals: (u64, u64),
    missing: u64,
    gaps_total: u64,
    repaired_total: u64,
    resets_total: u64,
    jumps_total: u64,
    /// `STARTED`, `HAS_TOTALS`, `HAS_RARE`.
    flags: u8,
}

const STARTED: u8 = 1;
const HAS_TOTALS: u8 = 2;
const HAS_RARE: u8 = 4;

/// The fields that are at their defaults for nearly every device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rare {
    repaired: u128,
    prev_run_start: Option<DateTime<Utc>>,
    last_jump: Option<(DateTime<Utc>, u64)>,
    jumped: (u32, u32),
}

impl SeqStates {
    pub fn new(devices: usize) -> Self {
        Self {
            cells: vec![Cell::default(); devices],
            rare: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn get(&self, d: DeviceIdx) -> SeqState {
        let c = &self.cells[d.get()];
        let has = |f: u8| c.flags & f != 0;
        let rare = if has(HAS_RARE) {
            self.rare.get(&d).copied().unwrap_or_default()
        } else {
            Rare::default()
        };
        SeqState {
            high: c.high,
            window: u128::from(c.window[0]) | u128::from(c.window[1]) << 64,
            repaired: rare.repaired,
            started: has(STARTED),
            last_ts: c.last_ts,
            high_ts: c.high_ts,
            run_start: c.run_start.get(),
            prev_run_start: rare.prev_run_start,
            totals: has(HAS_TOTALS).then_some(c.totals),
            missing: c.missing,
            gaps_total: c.gaps_total,
            repaired_total: c.repaired_total,
            resets_total: c.resets_total,
            jumps_total: c.jumps_total,
            last_jump: rare.last_jump,
            jumped: rare.jumped,
        }
    }

    pub fn set(&mut self, d: DeviceIdx, st: &SeqState) {
        let rare = Rare {
            repaired: st.repaired,
            prev_run_start: st.prev_run_start,
            last_jump: st.last_jump,
            jumped: st.jumped,
        };
        let has_rare = rare != Rare::default();
        let flag = |on: bool, f: u8| if on { f } else { 0 };
        let cell = &mut self.cells[d.get()];
        let had_rare = cell.flags & HAS_RARE != 0;
        *cell = Cell {
            high: st.high,
            window: [st.window as u64, (st.window >> 64) as u64],
            last_ts: st.last_ts,
            high_ts: st.high_ts,
            run_start: st.run_start.into(),
            totals: st.totals.unwrap_or_default(),
            missing: st.missing,
            gaps_total: st.gaps_total,
            repaired_total: st.repaired_total,
            resets_total: st.resets_total,
            jumps_total: st.jumps_total,
            flags: flag(st.started, STARTED)
                | flag(st.totals.is_some(), HAS_TOTALS)
                | flag(has_rare, HAS_RARE),
        };
        if has_rare {
            self.rare.insert(d, rare);
        } else if had_rare {
            self.rare.remove(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
        proptest::option::of(
            (1_500_000_000_000_000i64..2_000_000_000_000_000)
                .prop_map(|us| DateTime::from_timestamp_micros(us).expect("in range")),
        )
    }

    prop_compose! {
        fn seq_state()(
            high in any::<u64>(),
            bits in (any::<u128>(), prop_oneof![Just(0u128), any::<u128>()]),
            started in any::<bool>(),
            times in (instant(), instant(), instant(), instant()),
            totals in proptest::option::of((any::<u64>(), any::<u64>())),
            counts in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            jump in proptest::option::of((instant(), any::<u64>())),
            jumped in prop_oneof![Just((0u32, 0u32)), (any::<u32>(), any::<u32>())],
        ) -> SeqState {
            SeqState {
                high,
                window: bits.0,
                repaired: bits.1,
                started,
                last_ts: times.0,
                high_ts: times.1,
                run_start: times.2,
                prev_run_start: times.3,
                totals,
                missing: counts.0,
                gaps_total: counts.1,
                repaired_total: counts.2,
                resets_total: counts.3,
                jumps_total: counts.4,
                last_jump: jump.and_then(|(t, s)| Some((t?, s))),
                jumped,
            }
        }
    }

    proptest! {
        /// What is set is what is read, for every device, whatever was set before: the rare
        /// fields come and go with their device.
        #[test]
        fn a_state_reads_back_as_it_was_set(
            states in proptest::collection::vec(seq_state(), 1..12),
            later in proptest::collection::vec((0usize..12, seq_state()), 0..24),
        ) {
            let mut s = SeqStates::new(states.len());
            let mut model = states.clone();
            for (i, st) in states.iter().enumerate() {
                s.set(DeviceIdx(i as u32), st);
            }
            for (i, st) in later {
                let i = i % states.len();
                s.set(DeviceIdx(i as u32), &st);
                model[i] = st;
            }
            for (i, st) in model.iter().enumerate() {
                prop_assert_eq!(s.get(DeviceIdx(i as u32)), *st);
            }
            let with_rare = model
                .iter()
                .filter(|st| st.repaired != 0 || st.prev_run_start.is_some()
                    || st.last_jump.is_some() || st.jumped != (0, 0))
                .count();
            prop_assert_eq!(s.rare.len(), with_rare);
        }
    }

    #[test]
    fn a_cell_is_well_under_a_seq_state() {
        assert!(std::mem::size_of::<Cell>() <= 120);
        assert!(std::mem::size_of::<SeqState>() >= 192);
        assert_eq!(SeqStates::new(3).get(DeviceIdx(2)), SeqState::default());
    }
}

//! When the ingester's state reaches its tables. Under sustained load most batches append what
//! they changed to `state_journal` (one row of arrays) instead of upserting a `device_state`,
//! `space_state` and `space_series_1m` row per device, space and minute touched; a checkpoint
//! batch then writes everything changed since the last one, buckets merged, and empties the
//! journal. This module owns that bookkeeping and the decision, without I/O: `batch.rs` encodes
//! what it says, the ingester flushes when input pauses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::core::{Batch, BucketDelta};
use crate::ids::{DeviceIdx, SpaceIdx};

/// How state is written (`[ingest]` `state_checkpoint_ms`, `state_direct_rows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// The longest time changed state stays in the journal only.
    pub every: Duration,
    /// Up to this many changed rows since the last checkpoint are written directly: for a county's
    /// few counters that costs less than a journal row, and the tables stay current.
    pub direct_rows: usize,
    /// False where other instances read the state tables (partitioned ingest): every batch
    /// writes its state.
    pub journal: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            direct_rows: 256,
            journal: true,
        }
    }
}

/// How one batch writes its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateWrite {
    /// Everything changed since the last checkpoint into the tables; the journal is emptied.
    Checkpoint,
    /// This batch's changes as one journal row.
    Journal,
}

/// A minute bucket's changes over several batches, merged as `sql::UPSERT_BUCKETS` merges them
/// into the stored row: counts add up, the newest known occupancy wins, the peak is the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergedBucket {
    pub entries: i64,
    pub exits: i64,
    pub occupancy: Option<u64>,
    pub peak: Option<u64>,
    pub correction: i64,
}

impl MergedBucket {
    /// Adds one batch's change.
    pub fn add(&mut self, d: &BucketDelta) {
        self.merge(&Self::of(d));
    }

    /// Adds a later change of the same bucket.
    pub fn merge(&mut self, later: &MergedBucket) {
        self.entries += later.entries;
        self.exits += later.exits;
        self.correction += later.correction;
        if later.occupancy.is_some() {
            self.occupancy = later.occupancy;
        }
        self.peak = match (self.peak, later.peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// One batch's change (its occupancy is the batch's only sample, hence its peak).
    pub fn of(d: &BucketDelta) -> Self {
        Self {
            entries: d.entries,
            exits: d.exits,
            occupancy: d.occupancy,
            peak: d.occupancy,
            correction: d.correction,
        }
    }
}

/// What changed since the last checkpoint.
#[derive(Debug)]
pub struct Unwritten {
    devices: Vec<DeviceIdx>,
    device_mark: Vec<bool>,
    spaces: Vec<SpaceIdx>,
    space_mark: Vec<bool>,
    buckets: Vec<(SpaceIdx, i64, MergedBucket)>,
    bucket_index: HashMap<(SpaceIdx, i64), usize>,
    /// When the last checkpoint was encoded.
    since: Instant,
    /// Journal rows were written since (a checkpoint must empty the journal).
    journaled: bool,
    /// The next batch is a checkpoint (input paused).
    forced: bool,
}

/// What a checkpoint writes: each changed device and space (their current state is read from the
/// core when encoding) and the merged buckets.
#[derive(Debug, Default)]
pub struct Changed {
    pub devices: Vec<DeviceIdx>,
    pub spaces: Vec<SpaceIdx>,
    pub buckets: Vec<(SpaceIdx, i64, MergedBucket)>,
    pub clear_journal: bool,
}

impl Unwritten {
    pub fn new(now: Instant) -> Self {
        Self {
            devices: Vec::new(),
            device_mark: Vec::new(),
            spaces: Vec::new(),
            space_mark: Vec::new(),
            buckets: Vec::new(),
            bucket_index: HashMap::new(),
            since: now,
            journaled: false,
            forced: false,
        }
    }

    /// Adds a finished batch's changes.
    pub fn note(&mut self, batch: &Batch) {
        for &d in &batch.devices {
            if mark(&mut self.device_mark, d.get()) {
                self.devices.push(d);
            }
        }
        for &s in &batch.spaces {
            if mark(&mut self.space_mark, s.get()) {
                self.spaces.push(s);
            }
        }
        for (s, minute, d) in batch.buckets.iter() {
            let buckets = &mut self.buckets;
            let i = *self.bucket_index.entry((s, minute)).or_insert_with(|| {
                buckets.push((s, minute, MergedBucket::default()));
                buckets.len() - 1
            });
            buckets[i].2.add(d);
        }
    }

    /// Rows a checkpoint now would write.
    pub fn rows(&self) -> usize {
        self.devices.len() + self.spaces.len() + self.buckets.len()
    }

    /// Journal rows wait for a checkpoint.
    pub fn journaled(&self) -> bool {
        self.journaled
    }

    /// How the batch just noted writes its state.
    pub fn decide(&self, policy: &CheckpointPolicy, now: Instant) -> StateWrite {
        if !policy.journal
            || self.forced
            || self.rows() <= policy.direct_rows
            || now.saturating_duration_since(self.since) >= policy.every
        {
            StateWrite::Checkpoint
        } else {
            StateWrite::Journal
        }
    }

    /// Makes the next batch a checkpoint.
    pub fn force(&mut self) {
        self.forced = true;
    }

    /// The batch was journaled.
    pub fn journal(&mut self) {
        self.journaled = true;
    }

    /// Everything changed since the last checkpoint, for a checkpoint encoded at `now`; starts
    /// afresh.
    pub fn checkpoint(&mut self, now: Instant) -> Changed {
        for d in &self.devices {
            self.device_mark[d.get()] = false;
        }
        for s in &self.spaces {
            self.space_mark[s.get()] = false;
        }
        self.bucket_index.clear();
        self.since = now;
        self.forced = false;
        Changed {
            devices: std::mem::take(&mut self.devices),
            spaces: std::mem::take(&mut self.spaces),
            buckets: std::mem::take(&mut self.buckets),
            clear_journal: std::mem::take(&mut self.journaled),
        }
    }
}

/// Marks index `i` (growing `marks` as needed); true if it was not marked yet.
fn mark(marks: &mut Vec<bool>, i: usize) -> bool {
    if marks.len() <= i {
        marks.resize(i + 1, false);
    }
    !std::mem::replace(&mut marks[i], true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn delta(entries: i64, exits: i64, occupancy: Option<u64>) -> BucketDelta {
        BucketDelta {
            entries,
            exits,
            occupancy,
            correction: 0,
        }
    }

    #[test]
    fn small_changes_are_written_directly_large_ones_journaled_until_due() {
        let t0 = Instant::now();
        let policy = CheckpointPolicy {
            every: Duration::from_secs(2),
            direct_rows: 3,
            journal: true,
        };
        let mut u = Unwritten::new(t0);
        u.devices = vec![DeviceIdx(1), DeviceIdx(2)];
        assert_eq!(u.decide(&policy, t0), StateWrite::Checkpoint);
        u.spaces = vec![SpaceIdx(1), SpaceIdx(2)];
        assert_eq!(u.decide(&policy, t0), StateWrite::Journal);
        assert_eq!(
            u.decide(&policy, t0 + Duration::from_millis(1999)),
            StateWrite::Journal
        );
        assert_eq!(
            u.decide(&policy, t0 + Duration::from_secs(2)),
            StateWrite::Checkpoint
        );
        let partitioned = CheckpointPolicy {
            journal: false,
            ..policy
        };
        assert_eq!(u.decide(&partitioned, t0), StateWrite::Checkpoint);
    }

    #[test]
    fn a_checkpoint_takes_everything_once_and_says_whether_to_empty_the_journal() {
        let t0 = Instant::now();
        let mut u = Unwritten::new(t0);
        assert!(mark(&mut u.device_mark, 3));
        assert!(!mark(&mut u.device_mark, 3));
        u.devices.push(DeviceIdx(3));
        u.journal();
        let c = u.checkpoint(t0 + Duration::from_secs(1));
        assert_eq!(c.devices, [DeviceIdx(3)]);
        assert!(c.clear_journal);
        let again = u.checkpoint(t0 + Duration::from_secs(2));
        assert!(again.devices.is_empty() && !again.clear_journal);
        assert!(!u.device_mark[3], "marks are cleared for the next round");
    }

    #[test]
    fn merged_bucket_keeps_newest_occupancy_and_highest_peak() {
        let mut m = MergedBucket::of(&delta(5, 1, Some(40)));
        m.add(&delta(2, 0, None));
        m.add(&delta(0, 10, Some(32)));
        assert_eq!(
            m,
            MergedBucket {
                entries: 7,
                exits: 11,
                occupancy: Some(32),
                peak: Some(40),
                correction: 0
            }
        );
    }

    proptest! {
        /// Merging batches in memory, then once into a stored row, equals merging each batch into
        /// the stored row as it came (what every batch's upsert did before checkpoints).
        #[test]
        fn merging_first_equals_upserting_each(
            deltas in prop::collection::vec((-50i64..50, -50i64..50, prop::option::of(0u64..500), -5i64..5), 1..20),
            stored in prop::option::of((0i64..1000, 0i64..1000, prop::option::of(0u64..500), prop::option::of(0u64..500))),
        ) {
            // The stored row as sql::UPSERT_BUCKETS merges: (entries, exits, occupancy, peak, correction).
            type Row = (i64, i64, Option<u64>, Option<u64>, i64);
            let upsert = |row: Option<Row>, m: &MergedBucket| -> Row {
                match row {
                    None => (m.entries, m.exits, m.occupancy, m.peak, m.correction),
                    Some((e, x, o, p, c)) => (
                        e + m.entries,
                        x + m.exits,
                        m.occupancy.or(o),
                        // GREATEST ignores NULLs.
                        match (p, m.peak) { (Some(a), Some(b)) => Some(a.max(b)), (a, b) => a.or(b) },
                        c + m.correction,
                    ),
                }
            };
            let start: Option<Row> = stored.map(|(e, x, o, p)| (e, x, o, p, 0));
            let ds: Vec<BucketDelta> = deltas.iter().map(|&(e, x, o, c)| BucketDelta { entries: e, exits: x, occupancy: o, correction: c }).collect();
            let mut each = start;
            for d in &ds {
                each = Some(upsert(each, &MergedBucket::of(d)));
            }
            let mut merged = MergedBucket::default();
            for d in &ds {
                merged.add(d);
            }
            prop_assert_eq!(Some(upsert(start, &merged)), each);
        }
    }
}

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
    /// A checkpoint writes at most this many device and space rows per batch, so a province's
    /// 100,000 changed counters are written over several batches rather than built in memory
    /// at once.
    pub slice_rows: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            direct_rows: 256,
            journal: true,
            slice_rows: 5_000,
        }
    }
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

/// What one batch writes besides its reports.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// This batch's own changes as journal row number `seq`.
    pub journal: Option<u64>,
    /// A checkpoint's slice: these devices' and spaces' current state…
    pub devices: Vec<DeviceIdx>,
    pub spaces: Vec<SpaceIdx>,
    /// …and, with its last slice, the buckets merged since the checkpoint began…
    pub buckets: Vec<(SpaceIdx, i64, MergedBucket)>,
    /// …when journal rows up to this number are covered and deleted.
    pub clear_upto: Option<u64>,
}

/// A checkpoint in progress: what changed before it began, written a slice per batch.
#[derive(Debug)]
struct Round {
    devices: Vec<DeviceIdx>,
    spaces: Vec<SpaceIdx>,
    buckets: Vec<(SpaceIdx, i64, MergedBucket)>,
    /// Devices, then spaces, written so far.
    done: usize,
    /// The journal rows its buckets come from.
    upto: Option<u64>,
}

/// The ingester's state bookkeeping between checkpoints.
///
/// Why it is safe: every batch's changes are either in the tables when it commits (a checkpoint
/// that completes in it) or in its journal row. A checkpoint begun in one batch writes device and
/// space state (last writer wins, so a slice written early is harmless: the journal rows after it
/// are folded over it in order) and deletes the journal rows it covers only with its last slice,
/// in the same transaction as the bucket changes it merged from them (which add up, so they must
/// never be in the tables and the journal at once).
#[derive(Debug)]
pub struct Checkpoints {
    unwritten: Unwritten,
    round: Option<Round>,
    /// When the last checkpoint began.
    since: Instant,
    /// The next batch begins a checkpoint (input paused).
    forced: bool,
    /// Journal rows written this session, and through which they are deleted.
    seq: u64,
    cleared: u64,
}

impl Checkpoints {
    pub fn new(now: Instant) -> Self {
        Self {
            unwritten: Unwritten::default(),
            round: None,
            since: now,
            forced: false,
            seq: 0,
            cleared: 0,
        }
    }

    /// Journal rows or a checkpoint wait to be finished (the ingester flushes when input pauses).
    pub fn pending(&self) -> bool {
        self.round.is_some() || self.seq > self.cleared
    }

    /// Makes the next batch begin a checkpoint.
    pub fn force(&mut self) {
        self.forced = true;
    }

    /// What `batch` (finished at `now`) writes.
    pub fn plan(&mut self, batch: &Batch, policy: &CheckpointPolicy, now: Instant) -> Plan {
        let buckets: Vec<_> = batch.buckets.iter().map(|(s, m, d)| (s, m, *d)).collect();
        self.plan_changes(&batch.devices, &batch.spaces, &buckets, policy, now)
    }

    fn plan_changes(
        &mut self,
        devices: &[DeviceIdx],
        spaces: &[SpaceIdx],
        buckets: &[(SpaceIdx, i64, BucketDelta)],
        policy: &CheckpointPolicy,
        now: Instant,
    ) -> Plan {
        self.unwritten.note(devices, spaces, buckets);
        let changes_state = !(devices.is_empty() && spaces.is_empty() && buckets.is_empty());
        let mut plan = Plan::default();
        let due = !policy.journal
            || self.forced
            || self.unwritten.rows() <= policy.direct_rows
            || now.saturating_duration_since(self.since) >= policy.every;
        let slice = if policy.journal {
            policy.slice_rows.max(1)
        } else {
            usize::MAX
        };
        if self.round.is_none() && due {
            let (devices, spaces, buckets) = self.unwritten.take();
            // A checkpoint finished within this batch covers it; one that takes several needs
            // this batch's own journal row until its last slice.
            if devices.len() + spaces.len() > slice && changes_state {
                self.seq += 1;
                plan.journal = Some(self.seq);
            }
            let upto = (self.seq > self.cleared).then_some(self.seq);
            self.round = Some(Round {
                devices,
                spaces,
                buckets,
                done: 0,
                upto,
            });
            self.since = now;
            self.forced = false;
        } else if policy.journal && changes_state {
            self.seq += 1;
            plan.journal = Some(self.seq);
        }
        if let Some(r) = &mut self.round {
            let (nd, ns) = (r.devices.len(), r.spaces.len());
            let end = (r.done + slice).min(nd + ns);
            plan.devices = r.devices[r.done.min(nd)..end.min(nd)].to_vec();
            plan.spaces = r.spaces[r.done.max(nd) - nd..end.max(nd) - nd].to_vec();
            r.done = end;
            if end == nd + ns {
                plan.buckets = std::mem::take(&mut r.buckets);
                plan.clear_upto = r.upto;
                if let Some(u) = r.upto {
                    self.cleared = self.cleared.max(u);
                }
                self.round = None;
            }
        }
        plan
    }
}

/// What changed since the last checkpoint began.
#[derive(Debug, Default)]
struct Unwritten {
    devices: Vec<DeviceIdx>,
    device_mark: Vec<bool>,
    spaces: Vec<SpaceIdx>,
    space_mark: Vec<bool>,
    buckets: Vec<(SpaceIdx, i64, MergedBucket)>,
    bucket_index: HashMap<(SpaceIdx, i64), usize>,
}

type Taken = (
    Vec<DeviceIdx>,
    Vec<SpaceIdx>,
    Vec<(SpaceIdx, i64, MergedBucket)>,
);

impl Unwritten {
    fn note(
        &mut self,
        devices: &[DeviceIdx],
        spaces: &[SpaceIdx],
        buckets: &[(SpaceIdx, i64, BucketDelta)],
    ) {
        for &d in devices {
            if mark(&mut self.device_mark, d.get()) {
                self.devices.push(d);
            }
        }
        for &s in spaces {
            if mark(&mut self.space_mark, s.get()) {
                self.spaces.push(s);
            }
        }
        for &(s, minute, ref d) in buckets {
            let buckets = &mut self.buckets;
            let i = *self.bucket_index.entry((s, minute)).or_insert_with(|| {
                buckets.push((s, minute, MergedBucket::default()));
                buckets.len() - 1
            });
            buckets[i].2.add(d);
        }
    }

    fn rows(&self) -> usize {
        self.devices.len() + self.spaces.len() + self.buckets.len()
    }

    /// Everything noted so far; starts afresh.
    fn take(&mut self) -> Taken {
        for d in &self.devices {
            self.device_mark[d.get()] = false;
        }
        for s in &self.spaces {
            self.space_mark[s.get()] = false;
        }
        self.bucket_index.clear();
        (
            std::mem::take(&mut self.devices),
            std::mem::take(&mut self.spaces),
            std::mem::take(&mut self.buckets),
        )
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

    /// One batch of the model: devices, spaces and buckets (each +1 entry) it changes.
    type ModelBatch = (Vec<u32>, Vec<u32>, Vec<(u32, i64)>);

    fn model_batch() -> impl Strategy<Value = ModelBatch> {
        (
            prop::collection::btree_set(0u32..12, 0..6).prop_map(|s| s.into_iter().collect()),
            prop::collection::btree_set(0u32..6, 0..4).prop_map(|s| s.into_iter().collect()),
            prop::collection::btree_set((0u32..6, 0i64..3), 0..4)
                .prop_map(|s| s.into_iter().collect()),
        )
    }

    proptest! {
        /// Whatever the policy, the slicing and where a crash falls: after every commit the state
        /// tables with the journal folded over them in order hold exactly every committed change
        /// (each device's and space's newest version, each bucket's full sum).
        #[test]
        fn tables_plus_journal_always_equal_what_was_committed(
            batches in prop::collection::vec((model_batch(), any::<bool>(), 0u64..4), 1..40),
            direct_rows in 0usize..6,
            slice_rows in 1usize..5,
            every_ms in 1u64..8,
        ) {
            let policy = CheckpointPolicy {
                every: Duration::from_millis(every_ms),
                direct_rows,
                journal: true,
                slice_rows,
            };
            let t0 = Instant::now();
            let mut cp = Checkpoints::new(t0);
            // The core: each device's and space's version (the batch that last changed it).
            let (mut dev_now, mut space_now) = (HashMap::new(), HashMap::new());
            let mut bucket_total: HashMap<(u32, i64), i64> = HashMap::new();
            // The tables, and the journal: (seq, devices, spaces, bucket deltas).
            let (mut dev_t, mut space_t) = (HashMap::new(), HashMap::new());
            let mut bucket_t: HashMap<(u32, i64), i64> = HashMap::new();
            type Row = (u64, Vec<(u32, usize)>, Vec<(u32, usize)>, Vec<((u32, i64), i64)>);
            let mut journal: Vec<Row> = Vec::new();
            let mut clock = t0;
            for (i, ((devs, spaces, buckets), force, advance)) in batches.iter().enumerate() {
                clock += Duration::from_millis(*advance);
                for &d in devs { dev_now.insert(d, i); }
                for &sp in spaces { space_now.insert(sp, i); }
                for &b in buckets { *bucket_total.entry(b).or_default() += 1; }
                if *force { cp.force(); }
                let d: Vec<DeviceIdx> = devs.iter().map(|&d| DeviceIdx(d)).collect();
                let sp: Vec<SpaceIdx> = spaces.iter().map(|&s| SpaceIdx(s)).collect();
                let b: Vec<(SpaceIdx, i64, BucketDelta)> = buckets
                    .iter()
                    .map(|&(s, m)| (SpaceIdx(s), m, delta(1, 0, None)))
                    .collect();
                let plan = cp.plan_changes(&d, &sp, &b, &policy, clock);
                // The batch's transaction.
                if let Some(seq) = plan.journal {
                    journal.push((
                        seq,
                        devs.iter().map(|&d| (d, i)).collect(),
                        spaces.iter().map(|&s| (s, i)).collect(),
                        buckets.iter().map(|&b| (b, 1)).collect(),
                    ));
                }
                for d in &plan.devices { dev_t.insert(d.0, dev_now[&d.0]); }
                for s in &plan.spaces { space_t.insert(s.0, space_now[&s.0]); }
                for &(s, m, mb) in &plan.buckets { *bucket_t.entry((s.0, m)).or_default() += mb.entries; }
                if let Some(upto) = plan.clear_upto {
                    journal.retain(|r| r.0 > upto);
                }
                // A crash now: the fold at the next start.
                let (mut dev_f, mut space_f, mut bucket_f) = (dev_t.clone(), space_t.clone(), bucket_t.clone());
                for (_, ds, ss, bs) in &journal {
                    for &(d, v) in ds { dev_f.insert(d, v); }
                    for &(s, v) in ss { space_f.insert(s, v); }
                    for &(b, n) in bs { *bucket_f.entry(b).or_default() += n; }
                }
                prop_assert_eq!(&dev_f, &dev_now, "devices after batch {}", i);
                prop_assert_eq!(&space_f, &space_now, "spaces after batch {}", i);
                prop_assert_eq!(&bucket_f, &bucket_total, "buckets after batch {}", i);
            }
            // Input pauses: flush batches until nothing is pending; the tables alone are then whole.
            cp.force();
            let mut flushes = 0;
            while cp.pending() {
                let plan = cp.plan_changes(&[], &[], &[], &policy, clock);
                prop_assert!(plan.journal.is_none(), "an empty batch journals nothing");
                for d in &plan.devices { dev_t.insert(d.0, dev_now[&d.0]); }
                for s in &plan.spaces { space_t.insert(s.0, space_now[&s.0]); }
                for &(s, m, mb) in &plan.buckets { *bucket_t.entry((s.0, m)).or_default() += mb.entries; }
                if let Some(upto) = plan.clear_upto { journal.retain(|r| r.0 > upto); }
                flushes += 1;
                prop_assert!(flushes < 100, "the flush ends");
            }
            prop_assert!(journal.is_empty());
            prop_assert_eq!(dev_t, dev_now);
            prop_assert_eq!(space_t, space_now);
            prop_assert_eq!(bucket_t, bucket_total);
        }
    }

    #[test]
    fn a_province_checkpoint_is_written_in_slices_and_clears_the_journal_with_the_last() {
        let policy = CheckpointPolicy {
            every: Duration::from_secs(5),
            direct_rows: 10,
            journal: true,
            slice_rows: 40,
        };
        let t0 = Instant::now();
        let mut cp = Checkpoints::new(t0);
        let devices: Vec<DeviceIdx> = (0..100).map(DeviceIdx).collect();
        let b = [(SpaceIdx(0), 1, delta(100, 0, Some(100)))];
        let first = cp.plan_changes(&devices, &[], &b, &policy, t0);
        assert_eq!(first.journal, Some(1), "under load a batch journals");
        assert!(first.devices.is_empty() && first.clear_upto.is_none());
        let later = t0 + Duration::from_secs(5);
        let start = cp.plan_changes(&devices[..2], &[], &[], &policy, later);
        assert_eq!(
            start.journal,
            Some(2),
            "a checkpoint over several batches journals its first"
        );
        assert_eq!(start.devices.len(), 40);
        assert!(start.buckets.is_empty() && start.clear_upto.is_none());
        let mid = cp.plan_changes(&[], &[], &[], &policy, later);
        assert_eq!((mid.devices.len(), mid.clear_upto), (40, None));
        let last = cp.plan_changes(&[], &[], &[], &policy, later);
        assert_eq!(last.devices.len(), 20);
        assert_eq!(
            last.buckets.len(),
            1,
            "the buckets come with the last slice"
        );
        assert_eq!(last.clear_upto, Some(2));
        assert!(!cp.pending());
    }

    #[test]
    fn partitioned_state_is_written_whole_with_every_batch() {
        let policy = CheckpointPolicy {
            journal: false,
            slice_rows: 1,
            ..CheckpointPolicy::default()
        };
        let mut cp = Checkpoints::new(Instant::now());
        let devices: Vec<DeviceIdx> = (0..10).map(DeviceIdx).collect();
        let plan = cp.plan_changes(&devices, &[SpaceIdx(1)], &[], &policy, Instant::now());
        assert_eq!(plan.journal, None);
        assert_eq!((plan.devices.len(), plan.spaces.len()), (10, 1));
        assert!(!cp.pending());
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

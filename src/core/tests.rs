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
        Config::from_toml(REG).unwrap().registry().unwrap(),
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
        ts_from_device: true,
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

// ---- Counting integrity under real device behaviour, against a model of the raw table ----

/// The raw table as the ingester sees it: committed rows, answering lookups with the semantics of
/// `store::sql::LOOKUP_REPORTS`, and taking repair moves as `MOVE_REPAIRS` does.
#[derive(Default)]
struct RawTable {
    rows: Vec<RawRow>,
    buckets: HashMap<(SpaceIdx, i64), (i64, i64, i64)>,
}

impl RawTable {
    /// One batch through the ingester's steps: apply, settle, finish, commit.
    fn ingest(&mut self, core: &mut Core, dev: DeviceIdx, reports: &[CountReport]) {
        let mut batch = core.new_batch();
        for r in reports {
            core.apply(dev, r, r.ts, &mut batch);
        }
        let found: Vec<Found> = batch
            .pending
            .iter()
            .map(|p| lookup_rows(&self.rows, p))
            .collect();
        core.settle(&mut batch, &found);
        core.finish_batch(&mut batch);
        move_repairs(&mut self.rows, &batch.repair_moves);
        for row in &batch.rows {
            assert!(
                !self
                    .rows
                    .iter()
                    .any(|r| r.device == row.device && r.seq == row.seq && r.ts == row.ts),
                "stored twice: seq {} at {}",
                row.seq,
                row.ts
            );
        }
        self.rows.extend(batch.rows.iter().copied());
        for (s, m, d) in batch.buckets.iter() {
            let b = self.buckets.entry((s, m)).or_default();
            b.0 += d.entries;
            b.1 += d.exits;
            b.2 += d.correction;
        }
    }
}

/// A device's life: runs of consecutive seqs (a restart begins a new run from a lower seq),
/// timestamps one minute apart throughout, cumulative totals when `totals` (kept across restarts,
/// as counters keep them in flash; a reset of the totals repairs nothing, see `seq::tests`).
fn device_life(counts: &[(u32, u32)], restarts: &[(usize, u64)], totals: bool) -> Vec<CountReport> {
    let start = t("2026-05-01T09:00:00+08:00");
    let mut out: Vec<CountReport> = Vec::with_capacity(counts.len());
    let mut seq = 1u64;
    let (mut te, mut tx) = (0u64, 0u64);
    for (i, &(e, x)) in counts.iter().enumerate() {
        if let Some(&(_, to)) = restarts.iter().find(|(at, _)| *at == i && i > 0) {
            // Back to a lower seq than the run reached (a reboot or an old checkpoint).
            seq = to % seq;
        }
        te += u64::from(e);
        tx += u64::from(x);
        let mut r = rep(seq, start + TimeDelta::minutes(i as i64), e, x);
        if totals {
            r.total_entries = Some(te);
            r.total_exits = Some(tx);
        }
        out.push(r);
        seq += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Live reports, a backlog sent after them, redeliveries far beyond the window, restarts from
    /// arbitrary seqs, one-off seq jumps and (with totals) reports lost for good: the stored set
    /// is the published set, every minute bucket equals its recomputation from the raw rows, and
    /// the day's entries and exits are exactly what the device counted.
    #[test]
    fn hostile_arrival_orders_are_counted_once(
        counts in proptest::collection::vec((0u32..9, 0u32..9), 20..400),
        outage in (0usize..400, 0usize..300),
        restarts in proptest::collection::vec((1usize..400, any::<u64>()), 0..3),
        redeliveries in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..40),
        jumps in proptest::collection::vec((any::<prop::sample::Index>(), 20u32..62), 0..3),
        lost in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        totals in any::<bool>(),
        batch_size in 1usize..300,
    ) {
        // The device's first report arrives first: a gap needs a report before it to be
        // repaired from totals.
        let (from, len) = (1 + outage.0 % (counts.len() - 1), outage.1);
        let restarts: Vec<(usize, u64)> = {
            let mut r = restarts;
            r.sort();
            r.dedup_by_key(|x| x.0);
            // With totals, a restart during the outage whose new run overtakes the old seqs
            // before the backlog arrives is not modelled: a repair would then span both runs
            // (docs/reliability.md, "Counting integrity", says what that costs).
            if totals {
                r.retain(|&(at, _)| at + 3 < from);
            }
            r
        };
        let life = device_life(&counts, &restarts, totals);
        let n = life.len();
        // One-off jumps: a flipped bit spoils a report's seq (its counts are real, and in the
        // totals). Two flips of the same high bit would look exactly like a counter moving to a
        // new base (the second plausibly follows the first): one per bit.
        let mut life = life;
        // Not the very first report: a jump is far ahead of something seen.
        let mut jumps: Vec<(usize, u32)> =
            jumps.iter().map(|(at, bits)| (1 + at.index(n - 1), *bits)).collect();
        jumps.sort_by_key(|j| j.1);
        jumps.dedup_by_key(|j| j.1);
        // Nor the first report after a reboot (then the next one would be seen as the reboot).
        jumps.retain(|j| !restarts.iter().any(|r| r.0 == j.0));
        for &(i, bits) in &jumps {
            life[i].seq += 1u64 << bits;
        }
        let life = life;
        let sent: Vec<CountReport> = life.clone();
        // Lost for good (only where totals repair them): never published. Never the first or
        // last of a run, so a later report's totals cover them.
        let run_edges: Vec<usize> = std::iter::once(0)
            .chain(restarts.iter().map(|r| r.0).filter(|&i| i > 0 && i < n))
            .collect();
        let to = (from + len).min(sent.len());
        let lost: Vec<(u64, DateTime<Utc>)> = if totals {
            lost.iter()
                .map(|i| i.index(n))
                .filter(|&i| {
                    // The next report that moves the seq on (not a jump) repairs it, in the
                    // same run.
                    let next = (i + 1..n).find(|k| !jumps.iter().any(|j| j.0 == *k));
                    next.is_some_and(|k| !run_edges.iter().any(|&e| e >= i && e <= k))
                })
                .map(|i| (life[i].seq, life[i].ts))
                .collect()
        } else {
            Vec::new()
        };
        let is_lost = |r: &CountReport| lost.contains(&(r.seq, r.ts));
        // Arrival: the outage's reports are held back and sent after the live ones.
        let mut arrival: Vec<CountReport> = sent[..from].to_vec();
        arrival.extend_from_slice(&sent[to..]);
        arrival.extend_from_slice(&sent[from..to]);
        arrival.retain(|r| !is_lost(r));
        // Redeliveries of anything already sent, at any later point.
        for (what, when) in &redeliveries {
            let w = what.index(arrival.len());
            let at = w + 1 + when.index(arrival.len() - w);
            let copy = arrival[w];
            arrival.insert(at.min(arrival.len()), copy);
        }

        let mut core = core();
        let gate = core.registry.device_idx("gate").unwrap();
        let zone = core.registry.space_idx("zone").unwrap();
        let mut table = RawTable::default();
        for chunk in arrival.chunks(batch_size) {
            table.ingest(&mut core, gate, chunk);
        }

        // Stored set = published set.
        let mut stored: Vec<(u64, DateTime<Utc>)> = table.rows.iter().map(|r| (r.seq, r.ts)).collect();
        stored.sort();
        let mut published: Vec<(u64, DateTime<Utc>)> =
            sent.iter().filter(|r| !is_lost(r)).map(|r| (r.seq, r.ts)).collect();
        published.sort();
        published.dedup();
        prop_assert_eq!(&stored, &published);

        // Every bucket = its recomputation from the raw rows (repairs included).
        let mut recomputed: HashMap<i64, (i64, i64)> = HashMap::new();
        for r in &table.rows {
            let m = unix_minute(r.ts - TimeDelta::microseconds(1));
            let b = recomputed.entry(m).or_default();
            b.0 += i64::from(r.entries + r.repaired_entries);
            b.1 += i64::from(r.exits + r.repaired_exits);
        }
        for (&(s, m), &(e, x, _)) in &table.buckets {
            if s == zone {
                let want = recomputed.get(&m).copied().unwrap_or_default();
                prop_assert_eq!((e, x), want, "minute {}", m);
            }
        }

        // Nothing lost, nothing counted twice; a repair ends up in the minutes it belongs to
        // once its originals arrived (none is lost without totals).
        let sum = |it: &mut dyn Iterator<Item = &CountReport>| {
            it.fold((0u64, 0u64), |a, r| (a.0 + u64::from(r.entries), a.1 + u64::from(r.exits)))
        };
        let device_counted = sum(&mut sent.iter());
        let c = core.counts[zone.get()];
        prop_assert_eq!((c.entries, c.exits), device_counted);
        if lost.is_empty() {
            for r in &table.rows {
                prop_assert_eq!((r.repaired_entries, r.repaired_exits), (0, 0), "seq {}", r.seq);
            }
        }
        prop_assert_eq!(
            i128::from(c.occupancy()),
            i128::from(c.entries) - i128::from(c.exits) + i128::from(c.drift())
        );
    }
}

#[test]
fn a_head_count_corrects_the_zone_and_its_area_and_is_kept_as_a_correction() {
    let mut c = core();
    let mut b = c.new_batch();
    let gate = c.registry.device_idx("gate").unwrap();
    let at = t("2026-05-01T10:00:00+08:00");
    c.apply(gate, &rep(1, at, 50, 10), at, &mut b);
    let [zone, area, county, park] =
        ["zone", "area", "county", "park"].map(|id| c.registry.space_idx(id).unwrap());
    assert_eq!(c.counts[zone.get()].occupancy(), 40);
    let when = at + TimeDelta::minutes(5);
    let (before, delta) = c.recount(zone, 25, when, &mut b);
    assert_eq!((before, delta), (40, -15));
    for s in [zone, area, county] {
        let k = &c.counts[s.get()];
        assert_eq!(k.occupancy(), 25);
        assert_eq!((k.entries, k.exits, k.corrected), (50, 10, -15));
        assert_eq!(
            i128::from(k.occupancy()),
            i128::from(k.entries) - i128::from(k.exits)
                + i128::from(k.drift())
                + i128::from(k.corrected)
        );
        let m = unix_minute(when);
        let bucket = b
            .buckets
            .iter()
            .find(|(bs, bm, _)| *bs == s && *bm == m)
            .unwrap();
        assert_eq!(bucket.2.correction, -15);
    }
    assert_eq!(c.counts[park.get()].corrected, 0);
    // Counting goes on from the head count.
    c.apply(
        gate,
        &rep(2, when + TimeDelta::minutes(1), 5, 0),
        at,
        &mut b,
    );
    assert_eq!(c.counts[zone.get()].occupancy(), 30);
    // A head count of the area alone leaves the zone as it was.
    c.recount(area, 100, when + TimeDelta::minutes(2), &mut b);
    assert_eq!(c.counts[area.get()].occupancy(), 100);
    assert_eq!(c.counts[zone.get()].occupancy(), 30);
    assert_eq!(c.counts[county.get()].occupancy(), 100);
}

#[test]
fn late_counts_of_a_finished_day_revise_it() {
    let mut c = core();
    let mut b = c.new_batch();
    let gate = c.registry.device_idx("gate").unwrap();
    let today = t("2026-05-02T10:00:00+08:00");
    c.apply(gate, &rep(1000, today, 3, 0), today, &mut b);
    // Yesterday's backlog, far below the window: settled by the raw table as late.
    let yesterday = t("2026-05-01T15:00:00+08:00");
    let v = c.apply(gate, &rep(1, yesterday, 7, 2), today, &mut b);
    assert!(matches!(v, Verdict::Lookup(_)));
    c.settle(&mut b, &[Found::default()]);
    let area = c.registry.space_idx("area").unwrap();
    assert_eq!(
        c.counts[area.get()].entries,
        3,
        "today's figures stay today's"
    );
    let r = b.revisions.iter().find(|r| r.space == area).unwrap();
    assert_eq!(
        (r.day, r.reports, r.entries, r.exits),
        (NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(), 1, 7, 2)
    );
    assert_eq!(b.stats.late, 1);
}

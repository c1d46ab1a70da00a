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
        ts_from_device: true,
    }
}

fn with_totals(mut r: CountReport, te: u64, tx: u64) -> CountReport {
    r.total_entries = Some(te);
    r.total_exits = Some(tx);
    r
}

fn observe(s: &mut SeqState, r: &CountReport) -> Verdict {
    s.observe(r, &JumpBound::default())
}

fn settle(s: &mut SeqState, r: &CountReport, l: &Lookup, f: Found) -> Settled {
    s.settle(r, l, f, &JumpBound::default())
}

fn new(gap: u64) -> Verdict {
    Verdict::New {
        gap,
        repaired: None,
    }
}

/// A copy of a device-stamped report seen in this run: the raw table is asked by exact key, and
/// finding it settles the report as a duplicate without changing anything.
fn assert_copy(s: &mut SeqState, r: &CountReport) {
    let v = observe(s, r);
    let Verdict::Lookup(l) = v else {
        panic!("seq {}: {v:?}", r.seq)
    };
    assert_eq!((l.kind, l.exact), (LookupKind::Seen, Some(r.ts)));
    let before = *s;
    let found = Found {
        present: true,
        owner: None,
    };
    assert_eq!(settle(s, r, &l, found), Settled::Duplicate);
    assert_eq!(*s, before);
}

fn lookup_kind(v: Verdict) -> Option<LookupKind> {
    match v {
        Verdict::Lookup(l) => Some(l.kind),
        _ => None,
    }
}

#[test]
fn in_order_reports_are_new_and_redeliveries_duplicates() {
    let mut s = SeqState::default();
    for i in 1..=5 {
        assert_eq!(observe(&mut s, &rep(i, i as i64, 1, 0)), new(0));
    }
    for i in 1..=5 {
        assert_copy(&mut s, &rep(i, i as i64, 1, 0));
    }
    assert_eq!(s.missing, 0);
    // Stamped on receipt, a redelivery is settled in memory.
    let mut r = rep(3, 3, 1, 0);
    r.ts_from_device = false;
    assert_eq!(observe(&mut s, &r), Verdict::Duplicate);
}

#[test]
fn gap_without_totals_is_missing_until_filled() {
    let mut s = SeqState::default();
    observe(&mut s, &rep(1, 1, 1, 0));
    assert_eq!(observe(&mut s, &rep(4, 4, 1, 0)), new(2));
    assert_eq!(s.missing, 2);
    assert_eq!(observe(&mut s, &rep(2, 2, 1, 0)), Verdict::Late);
    assert_copy(&mut s, &rep(2, 2, 1, 0));
    assert_eq!(s.missing, 1);
    assert_eq!(s.gaps_total, 2);
}

#[test]
fn gap_with_totals_is_repaired_and_originals_go_to_the_raw_table() {
    let mut s = SeqState::default();
    observe(&mut s, &with_totals(rep(1, 1, 2, 1), 10, 5));
    // seqs 2 and 3 lost: they carried 7 entries and 3 exits between them.
    let v = observe(&mut s, &with_totals(rep(4, 4, 1, 1), 18, 9));
    assert_eq!(
        v,
        Verdict::New {
            gap: 2,
            repaired: Some((7, 3))
        }
    );
    assert_eq!(s.missing, 0);
    // The original of seq 2 arrives: the repair at seq 4 gives back its share.
    let original = rep(2, 2, 4, 2);
    let Verdict::Lookup(l) = observe(&mut s, &original) else {
        panic!("the original of a repaired report is settled by the raw table")
    };
    assert_eq!(l.kind, LookupKind::FillsRepair);
    let owner = RepairOwner {
        seq: 4,
        ts: rep(4, 4, 0, 0).ts,
        entries: 7,
        exits: 3,
    };
    assert_eq!(
        settle(
            &mut s,
            &original,
            &l,
            Found {
                present: false,
                owner: Some(owner)
            }
        ),
        Settled::FillsRepair {
            owner,
            moved: (4, 2)
        }
    );
    // Now it is its own: a copy is a plain duplicate; seq 3 still goes to the raw table.
    assert_copy(&mut s, &original);
    assert_eq!(
        lookup_kind(observe(&mut s, &rep(3, 3, 3, 1))),
        Some(LookupKind::FillsRepair)
    );
}

#[test]
fn totals_going_backwards_repair_nothing() {
    let mut s = SeqState::default();
    observe(&mut s, &with_totals(rep(1, 1, 2, 1), 100, 50));
    let v = observe(&mut s, &with_totals(rep(3, 3, 1, 1), 5, 5));
    assert_eq!(v, new(1));
    assert_eq!(s.missing, 1);
}

#[test]
fn restart_with_later_timestamp_starts_a_new_run_from_any_seq() {
    let mut s = SeqState::default();
    for i in 1..=300 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    assert_eq!(observe(&mut s, &rep(1, 400, 1, 0)), Verdict::Restarted);
    assert_eq!(observe(&mut s, &rep(2, 401, 1, 0)), new(0));
    // The old run's reports replayed after the restart belong to the earlier run: the raw table
    // tells a copy from a late one.
    let v = observe(&mut s, &rep(2, 2, 1, 0));
    let Verdict::Lookup(l) = v else {
        panic!("{v:?}")
    };
    assert_eq!(l.kind, LookupKind::EarlierRun);
    assert_eq!(l.run.until, Some(rep(1, 400, 0, 0).ts));
    assert!(l.run.contains(rep(2, 2, 0, 0).ts));
    assert!(!l.run.contains(rep(2, 401, 0, 0).ts));

    // Restored from an old checkpoint: back to seq 250 (seen in the first run) with a later
    // timestamp is a new run too, not a duplicate.
    let mut s = SeqState::default();
    for i in 1..=300 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    assert_eq!(observe(&mut s, &rep(250, 500, 1, 0)), Verdict::Restarted);
    assert_eq!(observe(&mut s, &rep(251, 501, 1, 0)), new(0));
    assert_eq!(s.resets_total, 1);
}

#[test]
fn a_replay_with_old_timestamps_stays_a_duplicate() {
    let mut s = SeqState::default();
    for i in 1..=5 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    assert_copy(&mut s, &rep(3, 3, 1, 0));
    assert_copy(&mut s, &rep(5, 5, 1, 0));
}

#[test]
fn a_run_that_restarted_unseen_is_told_apart_by_its_timestamps() {
    // Seqs 1–12, an outage in which the counter rebooted to seq 4 and reached 20, its live
    // reports first: they look like a continuing run with a gap.
    let mut s = SeqState::default();
    for i in 1..=12 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    assert_eq!(observe(&mut s, &rep(20, 100, 1, 0)), new(7));
    // Then the backlog: the old run's 13–19 fill the gap, its 20 is not the new run's 20.
    assert_eq!(observe(&mut s, &rep(13, 13, 1, 0)), Verdict::Late);
    let old20 = rep(20, 20, 1, 0);
    let Verdict::Lookup(l) = observe(&mut s, &old20) else {
        panic!()
    };
    assert_eq!(l.exact, Some(old20.ts));
    assert_eq!(settle(&mut s, &old20, &l, Found::default()), Settled::Late);
}

#[test]
fn reports_stamped_on_receipt_never_restart_a_run() {
    let mut s = SeqState::default();
    for i in 1..=5 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    // Redelivered after a crash, stamped on receipt: later time, same seqs.
    let mut again = rep(3, 60, 1, 0);
    again.ts_from_device = false;
    assert_eq!(observe(&mut s, &again), Verdict::Duplicate);
    assert_eq!(s.resets_total, 0);
}

#[test]
fn below_the_window_the_raw_table_decides() {
    let mut s = SeqState::default();
    observe(&mut s, &rep(1, 1, 1, 0));
    observe(&mut s, &rep(1000, 1000, 1, 0));
    assert_eq!(s.missing, 998);
    let late = rep(5, 5, 1, 0);
    let Verdict::Lookup(l) = observe(&mut s, &late) else {
        panic!()
    };
    assert_eq!(l.kind, LookupKind::BelowWindow);
    assert_eq!(l.run, Run::default());
    let copy = s;
    assert_eq!(
        settle(
            &mut s,
            &late,
            &l,
            Found {
                present: true,
                owner: None
            }
        ),
        Settled::Duplicate
    );
    assert_eq!(s, copy, "a duplicate changes nothing");
    assert_eq!(settle(&mut s, &late, &l, Found::default()), Settled::Late);
    assert_eq!(s.missing, 997);
    assert_eq!(observe(&mut s, &rep(999, 999, 1, 0)), Verdict::Late);
}

#[test]
fn a_one_off_jump_is_flagged_and_does_not_silence_the_counter() {
    let mut s = SeqState::default();
    for i in 1..=5 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    let bogus = rep(5 + (1 << 40), 6, 1, 0);
    let Verdict::Lookup(l) = observe(&mut s, &bogus) else {
        panic!()
    };
    assert_eq!(l.kind, LookupKind::Jump);
    assert_eq!(settle(&mut s, &bogus, &l, Found::default()), Settled::Jump);
    assert_eq!(s.jumps_total, 1);
    assert_eq!(s.last_jump, Some((bogus.ts, bogus.seq)));
    // Its redelivery is found stored.
    assert!(matches!(observe(&mut s, &bogus), Verdict::Lookup(_)));
    // The stream goes on where it was: nothing missing, nothing refused.
    for i in 6..=10 {
        assert_eq!(observe(&mut s, &rep(i, i as i64 + 1, 1, 0)), new(0), "{i}");
    }
    assert_eq!((s.high, s.missing, s.gaps_total), (10, 0, 0));
}

#[test]
fn a_counter_that_really_moved_to_a_new_base_continues_from_it() {
    let mut s = SeqState::default();
    for i in 1..=5 {
        observe(&mut s, &rep(i, i as i64, 1, 0));
    }
    let base = 1u64 << 40;
    let first = rep(base, 6, 1, 0);
    let Verdict::Lookup(l) = observe(&mut s, &first) else {
        panic!()
    };
    settle(&mut s, &first, &l, Found::default());
    assert_eq!(observe(&mut s, &rep(base + 1, 7, 1, 0)), new(0));
    assert_eq!(observe(&mut s, &rep(base + 2, 8, 1, 0)), new(0));
    assert_eq!(s.high, base + 2);
    assert_copy(&mut s, &first);
}

#[test]
fn a_long_outage_is_plausible_at_the_device_rate() {
    let bound = JumpBound {
        slack: 10,
        per_second: 1.0 / 60.0,
    };
    let mut s = SeqState::default();
    s.observe(&rep(1, 0, 1, 0), &bound);
    // Two days of one report a minute, then back: 2,880 ahead after 2,880 minutes.
    assert_eq!(s.observe(&rep(2881, 2880, 1, 0), &bound), new(2879));
    assert!(matches!(
        s.observe(&rep(100_000, 2881, 1, 0), &bound),
        Verdict::Lookup(Lookup {
            kind: LookupKind::Jump,
            ..
        })
    ));
}

#[test]
fn a_counter_without_timestamps_that_rejoins_at_zero_starts_a_new_run() {
    let mut s = SeqState::default();
    let stamped = |seq: u64| {
        let mut r = rep(seq, seq as i64, 1, 0);
        r.ts_from_device = false;
        r
    };
    for i in 1..=5000 {
        observe(&mut s, &stamped(i));
    }
    assert_eq!(observe(&mut s, &stamped(0)), Verdict::Restarted);
    assert_eq!(observe(&mut s, &stamped(1)), new(0));
    assert_eq!(observe(&mut s, &stamped(2)), new(0));
    assert_eq!(s.high, 2);
}

//! Engine-level tests, in virtual time only.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;

const CAP: u32 = 1000;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn secs(s: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(s)
}

fn mins(m: i64) -> DateTime<Utc> {
    secs(m * 60)
}

fn engine_with(cfg: RulesConfig) -> Engine {
    Engine::new(cfg, [SpaceDef::new(SpaceId::new("canyon"))]).unwrap()
}

fn engine() -> Engine {
    engine_with(RulesConfig::default())
}

fn gate() -> DeviceId {
    DeviceId::new("gate-1")
}

/// Occupancy `occ` against an instantaneous capacity of 1000, counted by a device heard at `now`.
fn inp(now: DateTime<Utc>, occ: u64) -> SpaceInput {
    SpaceInput {
        occupancy: occ,
        instant_capacity: Some(CAP),
        devices: vec![DeviceHealth::heard(gate(), now)],
        ..Default::default()
    }
}

const S: SpaceIdx = SpaceIdx(0);

fn eval(e: &mut Engine, now: DateTime<Utc>, occ: u64) -> Evaluation {
    e.evaluate(S, now, &inp(now, occ))
}

/// The instantaneous level transitions as (change, from, to).
fn level_changes(ev: &Evaluation) -> Vec<(Change, Level, Level)> {
    ev.transitions
        .iter()
        .filter(|t| t.kind == AlertKind::InstantLevel)
        .map(|t| (t.change, t.from.unwrap(), t.to.unwrap()))
        .collect()
}

fn kinds(ev: &Evaluation) -> Vec<(AlertKind, Change)> {
    ev.transitions
        .iter()
        .map(|t| (t.kind.clone(), t.change))
        .collect()
}

fn is_open(ev: &Evaluation, kind: &AlertKind) -> bool {
    ev.status.alerts.iter().any(|a| a.kind == *kind)
}

/// The devices of the open `silent_devices` alert, if one is open; checks there is one at most.
fn silent_devices(ev: &Evaluation) -> Option<Vec<DeviceId>> {
    let open: Vec<&OpenAlert> = ev
        .status
        .alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::SilentDevices | AlertKind::Silent { .. }))
        .collect();
    assert!(open.len() <= 1, "{open:?}");
    open.first().map(|a| a.devices.clone())
}

fn dev(n: usize) -> DeviceId {
    DeviceId::new(format!("gate-{n}"))
}

/// Devices `gate-1` … `gate-{n}`, those in `quiet` last heard at minute 0, the others at `now`.
fn gates(n: usize, quiet: &[usize], now: DateTime<Utc>) -> Vec<DeviceHealth> {
    (1..=n)
        .map(|i| DeviceHealth::heard(dev(i), if quiet.contains(&i) { mins(0) } else { now }))
        .collect()
}

#[test]
fn crossing_up_enters_immediately() {
    let mut e = engine();
    let ev = eval(&mut e, mins(0), 599);
    assert_eq!(ev.status.instant.level, Some(Level::Normal));
    assert!(ev.transitions.is_empty());

    let ev = eval(&mut e, secs(1), 600);
    assert_eq!(
        level_changes(&ev),
        [(Change::Open, Level::Normal, Level::Blue)]
    );
    assert_eq!(ev.transitions[0].severity, Severity::Warning);

    let ev = eval(&mut e, secs(2), 800);
    assert_eq!(
        level_changes(&ev),
        [(Change::Escalate, Level::Blue, Level::Yellow)]
    );
    let t = &ev.transitions[0];
    assert!(
        t.message_zh.contains("启动交通管制和入口管控（LB/T 034）"),
        "{}",
        t.message_zh
    );
    assert!(
        t.message_en
            .contains("Start traffic and entrance control (LB/T 034)")
    );
    assert!(t.message_en.contains("80%"));
    assert_eq!(
        t.since,
        secs(1),
        "an escalation keeps the alert's opening time"
    );
    assert_eq!(
        ev.status.instant.action_en,
        t.message_en.rsplit(". ").next().unwrap()
    );
}

#[test]
fn just_below_exit_for_less_than_dwell_keeps_the_level() {
    let mut e = engine();
    eval(&mut e, mins(0), 850); // yellow
    // 74% is below 80 − 5; 1 min 50 s of it is not enough.
    for s in (10..=120).step_by(10) {
        let ev = eval(&mut e, secs(s), 740);
        assert_eq!(ev.status.instant.level, Some(Level::Yellow), "at {s}s");
        assert!(ev.transitions.is_empty());
    }
    // Back into the margin band (76%) restarts the dwell.
    eval(&mut e, secs(125), 760);
    for s in (130..=245).step_by(5) {
        let ev = eval(&mut e, secs(s), 740);
        assert!(ev.transitions.is_empty(), "at {s}s");
    }
    // 2 min after 130 s.
    let ev = eval(&mut e, secs(250), 740);
    assert_eq!(
        level_changes(&ev),
        [(Change::DeEscalate, Level::Yellow, Level::Blue)]
    );
}

#[test]
fn dwell_elapsed_steps_down_one_level_at_a_time() {
    let mut e = engine();
    eval(&mut e, mins(0), 1000);
    let mut seen = Vec::new();
    for s in (10..=900).step_by(10) {
        let ev = eval(&mut e, secs(s), 100);
        for c in level_changes(&ev) {
            seen.push((s, c));
        }
    }
    assert_eq!(
        seen,
        [
            (130, (Change::DeEscalate, Level::Red, Level::Orange)),
            (250, (Change::DeEscalate, Level::Orange, Level::Yellow)),
            (370, (Change::DeEscalate, Level::Yellow, Level::Blue)),
            (490, (Change::Resolve, Level::Blue, Level::Normal)),
        ]
    );
}

#[test]
fn a_jump_enters_the_highest_level_crossed_in_one_transition() {
    let mut e = engine();
    eval(&mut e, mins(0), 500);
    let ev = eval(&mut e, mins(1), 950);
    assert_eq!(ev.transitions.len(), 1);
    assert_eq!(
        level_changes(&ev),
        [(Change::Open, Level::Normal, Level::Orange)]
    );
    assert_eq!(ev.transitions[0].severity, Severity::Major);
    assert!(
        ev.transitions[0]
            .message_zh
            .contains("《旅游法》第四十五条")
    );
    let ev = eval(&mut e, mins(2), 1001);
    assert_eq!(
        level_changes(&ev),
        [(Change::Escalate, Level::Orange, Level::Red)]
    );
    assert_eq!(ev.transitions[0].severity, Severity::Critical);
    assert!(ev.transitions[0].message_zh.contains("立即停止售票"));
    assert!(
        ev.transitions[0]
            .message_en
            .contains("Stop ticket sales now")
    );
}

#[test]
fn policy_cap_lowers_effective_capacity_until_it_ends() {
    let cap = PolicyCap {
        limit: CapLimit::Percent(75.0),
        applies_to: CapScope::Both,
        reason: "疫情防控限流".into(),
        starts: mins(10),
        ends: Some(mins(60)),
    };
    let with_cap = |now, occ| SpaceInput {
        caps: vec![cap.clone()],
        ..inp(now, occ)
    };
    let mut e = engine();
    // Before it starts: 70% of the approved capacity is blue.
    let ev = e.evaluate(S, mins(0), &with_cap(mins(0), 700));
    assert_eq!(ev.status.instant.level, Some(Level::Blue));
    assert_eq!(ev.status.instant.effective_capacity, Some(1000));

    let ev = e.evaluate(S, mins(10), &with_cap(mins(10), 700));
    let s = &ev.status.instant;
    assert_eq!(
        (s.approved_capacity, s.effective_capacity),
        (Some(1000), Some(750))
    );
    assert!((s.load_pct.unwrap() - 93.33).abs() < 0.01);
    assert_eq!(s.level, Some(Level::Orange));
    assert_eq!(s.cap.as_ref().unwrap().reason, "疫情防控限流");
    assert_eq!(
        level_changes(&ev),
        [(Change::Escalate, Level::Blue, Level::Orange)]
    );
    assert!(
        ev.transitions[0]
            .message_zh
            .contains("政策限流75%（疫情防控限流），核定1000人")
    );

    // At its end the effective capacity is the approved one again; the level steps down by dwell.
    let ev = e.evaluate(S, mins(60), &with_cap(mins(60), 700));
    assert_eq!(ev.status.instant.effective_capacity, Some(1000));
    assert!(ev.status.instant.cap.is_none());
    assert_eq!(ev.status.instant.level, Some(Level::Orange));
    let ev = e.evaluate(S, mins(62), &with_cap(mins(62), 700));
    assert_eq!(
        level_changes(&ev),
        [(Change::DeEscalate, Level::Orange, Level::Yellow)]
    );
    let ev = e.evaluate(S, mins(64), &with_cap(mins(64), 700));
    assert_eq!(
        level_changes(&ev),
        [(Change::DeEscalate, Level::Yellow, Level::Blue)]
    );
}

#[test]
fn daily_level_is_independent_of_the_instantaneous_one() {
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let mut e = engine();
    let input = |now, occ, entries, day| SpaceInput {
        day: Some(day),
        entries_today: entries,
        daily_capacity: Some(10_000),
        ..inp(now, occ)
    };
    let ev = e.evaluate(S, mins(0), &input(mins(0), 100, 9_500, day));
    assert_eq!(ev.status.instant.level, Some(Level::Normal));
    assert_eq!(ev.status.daily.level, Some(Level::Orange));
    assert_eq!(kinds(&ev), [(AlertKind::DailyLevel, Change::Open)]);
    assert!(ev.transitions[0].message_zh.contains("日承载率95%"));

    let ev = e.evaluate(S, mins(1), &input(mins(1), 1_000, 9_600, day));
    assert_eq!(ev.status.instant.level, Some(Level::Red));
    assert_eq!(ev.status.daily.level, Some(Level::Orange));
    assert_eq!(kinds(&ev), [(AlertKind::InstantLevel, Change::Open)]);

    // A new business day clears the daily level at once (no dwell steps through yesterday).
    let next = day.succ_opt().unwrap();
    let ev = e.evaluate(S, mins(2), &input(mins(2), 1_000, 0, next));
    assert_eq!(ev.status.daily.level, Some(Level::Normal));
    assert_eq!(kinds(&ev), [(AlertKind::DailyLevel, Change::Resolve)]);
    assert_eq!(ev.transitions[0].from, Some(Level::Orange));
    assert_eq!(ev.status.instant.level, Some(Level::Red));
}

#[test]
fn booked_visitors_still_to_come_raise_the_daily_level_before_they_arrive() {
    let day = NaiveDate::from_ymd_opt(2026, 10, 2).unwrap();
    let mut e = engine();
    let input = |now, entries, expected| SpaceInput {
        day: Some(day),
        entries_today: entries,
        booked: vec![BookedArrivals {
            from: now,
            until: now + TimeDelta::hours(8),
            people: expected,
        }],
        daily_capacity: Some(10_000),
        ..inp(now, 100)
    };
    // 2,000 in, 8,000 sold and on their way: the whole day is spoken for.
    let ev = e.evaluate(S, mins(0), &input(mins(0), 2_000, 8_000));
    assert_eq!(ev.status.daily.level, Some(Level::Red));
    assert_eq!(ev.status.daily.count, 10_000);
    // Without the bookings the same entries are an ordinary morning.
    let mut plain = engine();
    let ev = plain.evaluate(S, mins(0), &input(mins(0), 2_000, 0));
    assert_eq!(ev.status.daily.level, Some(Level::Normal));
}

/// +20 people/min from 300 at minute 0 to 500 at minute 10, evaluated each minute.
fn ramp(e: &mut Engine) -> Vec<Evaluation> {
    (0..=10)
        .map(|m| eval(e, mins(m), 300 + 20 * m as u64))
        .collect()
}

#[test]
fn steady_inflow_forecasts_red_and_warns_within_the_horizon() {
    let mut e = engine();
    let evs = ramp(&mut e);
    let last = evs.last().unwrap();
    let f = last.status.forecast.as_ref().unwrap();
    assert!((f.slope_per_min - 20.0).abs() < 1e-9);
    assert_eq!(f.to_red, Some(TimeDelta::minutes(25)));
    assert_eq!(f.to_orange, Some(TimeDelta::minutes(20)));
    assert!(is_open(
        last,
        &AlertKind::EarlyWarning { target: Level::Red }
    ));
    assert!(is_open(
        last,
        &AlertKind::EarlyWarning {
            target: Level::Orange
        }
    ));
    let red: Vec<_> = evs
        .iter()
        .flat_map(|ev| &ev.transitions)
        .filter(|t| t.kind == AlertKind::EarlyWarning { target: Level::Red })
        .collect();
    assert_eq!(
        red.len(),
        1,
        "raised once, not re-sent as the forecast moves"
    );
    assert_eq!(red[0].change, Change::Open);
    assert_eq!(red[0].severity, Severity::Major);
    assert!(red[0].forecast.is_some());
    assert!(
        red[0].message_en.contains("forecast to reach red"),
        "{}",
        red[0].message_en
    );

    let mut short = engine_with(RulesConfig {
        horizon_s: 10 * 60,
        ..Default::default()
    });
    let evs = ramp(&mut short);
    let last = evs.last().unwrap();
    assert_eq!(
        last.status.forecast.as_ref().unwrap().to_red,
        Some(TimeDelta::minutes(25))
    );
    assert!(evs.iter().all(|ev| ev.transitions.is_empty()));
}

#[test]
fn falling_occupancy_gives_no_time_to_threshold_and_no_warning() {
    let mut e = engine();
    let evs: Vec<_> = (0..=10)
        .map(|m| eval(&mut e, mins(m), 800 - 30 * m as u64))
        .collect();
    let f = evs.last().unwrap().status.forecast.as_ref().unwrap();
    assert!(f.slope_per_min < 0.0);
    assert_eq!((f.to_orange, f.to_red), (None, None));
    assert!(
        evs.iter()
            .flat_map(|ev| &ev.transitions)
            .all(|t| !matches!(t.kind, AlertKind::EarlyWarning { .. }))
    );
}

#[test]
fn too_few_samples_give_no_forecast() {
    let mut e = engine();
    for s in [0, 60, 120] {
        let ev = eval(&mut e, secs(s), 500 + s as u64);
        assert!(ev.status.forecast.is_none(), "span under 5 min at {s}s");
    }
}

#[test]
fn early_warning_clears_only_after_calm_for_the_dwell() {
    let mut e = engine();
    ramp(&mut e);
    let red = AlertKind::EarlyWarning { target: Level::Red };
    // Flat at 500: no longer rising, but the warning holds for the dwell once the slope flattens.
    let mut cleared = None;
    for m in 11..=60 {
        let ev = eval(&mut e, mins(m), 500);
        if ev
            .transitions
            .iter()
            .any(|t| t.kind == red && t.change == Change::Resolve)
        {
            cleared = Some(m);
            break;
        }
    }
    let m = cleared.expect("the warning clears");
    let ev_before = {
        // The Theil–Sen slope turns non-positive once half the window's pairs are flat; the
        // warning must outlast that by the dwell.
        let mut probe = engine();
        ramp(&mut probe);
        let mut first_calm = None;
        for k in 11..=60 {
            let ev = eval(&mut probe, mins(k), 500);
            let eta = ev.status.forecast.as_ref().and_then(|f| f.to_red);
            if first_calm.is_none() && eta.is_none_or(|d| d > TimeDelta::minutes(35)) {
                first_calm = Some(k);
            }
        }
        first_calm.unwrap()
    };
    assert_eq!(
        m,
        ev_before + 2,
        "clears exactly one dwell after the forecast calmed"
    );
}

#[test]
fn reaching_the_target_resolves_its_early_warning_at_once() {
    let mut e = engine();
    ramp(&mut e);
    let ev = eval(&mut e, mins(11), 900);
    let ks = kinds(&ev);
    assert!(ks.contains(&(AlertKind::InstantLevel, Change::Open)));
    assert!(ks.contains(&(
        AlertKind::EarlyWarning {
            target: Level::Orange
        },
        Change::Resolve
    )));
    assert!(
        !ks.iter()
            .any(|(k, _)| *k == AlertKind::EarlyWarning { target: Level::Red })
    );
    let resolved = ev
        .transitions
        .iter()
        .find(|t| {
            t.kind
                == AlertKind::EarlyWarning {
                    target: Level::Orange,
                }
        })
        .unwrap();
    assert!(
        resolved.message_en.contains("orange reached"),
        "{}",
        resolved.message_en
    );
}

#[test]
fn silent_devices_make_the_space_stale_never_normal() {
    let mut e = engine();
    // Orange while data flows.
    eval(&mut e, mins(0), 950);
    // The only gate is last heard at minute 0; 3 × 5 min later it is silent.
    let quiet = |now| SpaceInput {
        devices: vec![DeviceHealth::heard(gate(), mins(0))],
        ..inp(now, 100)
    };
    let ev = e.evaluate(S, mins(15), &quiet(mins(15)));
    assert!(!ev.status.stale, "exactly 3 periods is not yet silent");
    let ev = e.evaluate(S, mins(16), &quiet(mins(16)));
    assert!(ev.status.stale);
    let s = &ev.status.instant;
    assert_eq!(
        (s.reading, s.level, s.load_pct),
        (Reading::Stale, None, None)
    );
    assert_eq!(s.last_level, Level::Orange);
    let mut ks = kinds(&ev);
    ks.sort();
    assert_eq!(
        ks,
        [
            (AlertKind::Stale, Change::Open),
            (AlertKind::SilentDevices, Change::Open),
        ]
    );
    assert!(
        is_open(&ev, &AlertKind::InstantLevel),
        "orange is kept, not resolved"
    );
    assert_eq!(ev.status.severity(), Severity::Major);
    // Staying stale for a long time neither steps the level down nor re-sends anything.
    for m in 17..40 {
        assert!(
            e.evaluate(S, mins(m), &quiet(mins(m)))
                .transitions
                .is_empty()
        );
    }
    // Data returns (the crowd has gone): the conditions resolve, the dwell starts afresh.
    let ev = eval(&mut e, mins(40), 100);
    let mut ks = kinds(&ev);
    ks.sort();
    assert_eq!(
        ks,
        [
            (AlertKind::Stale, Change::Resolve),
            (AlertKind::SilentDevices, Change::Resolve),
        ]
    );
    assert_eq!(ev.status.instant.level, Some(Level::Orange));
    let ev = eval(&mut e, mins(42), 100);
    assert_eq!(
        level_changes(&ev),
        [(Change::DeEscalate, Level::Orange, Level::Yellow)]
    );
}

#[test]
fn never_heard_no_devices_and_partial_silence() {
    let mut e = engine();
    let never = SpaceInput {
        devices: vec![DeviceHealth {
            last_received: None,
            ..DeviceHealth::heard(gate(), mins(0))
        }],
        ..inp(mins(0), 0)
    };
    let ev = e.evaluate(S, mins(0), &never);
    assert!(ev.status.stale);
    assert!(
        ev.transitions
            .iter()
            .any(|t| t.message_en.contains("never reported"))
    );

    let mut e = engine();
    let none = SpaceInput {
        devices: vec![],
        ..inp(mins(0), 0)
    };
    let ev = e.evaluate(S, mins(0), &none);
    assert!(ev.status.stale);
    assert_eq!(ev.status.instant.level, None);

    // One of two gates silent (its own 1-minute period): a condition, not a stale space.
    let mut e = engine();
    let g2 = DeviceId::new("gate-2");
    let partial = SpaceInput {
        devices: vec![
            DeviceHealth::heard(gate(), mins(10)),
            DeviceHealth {
                period: Some(TimeDelta::minutes(1)),
                ..DeviceHealth::heard(g2.clone(), mins(6))
            },
        ],
        ..inp(mins(10), 650)
    };
    let ev = e.evaluate(S, mins(10), &partial);
    assert!(!ev.status.stale);
    assert_eq!(ev.status.instant.level, Some(Level::Blue));
    assert_eq!(silent_devices(&ev), Some(vec![g2.clone()]));
    assert!(!is_open(&ev, &AlertKind::Stale));
    let t = ev
        .transitions
        .iter()
        .find(|t| t.kind == AlertKind::SilentDevices)
        .unwrap();
    assert_eq!(
        t.message_en,
        "canyon: 1 of 2 counters silent: gate-2 (silent for 4 min, period 1 min)"
    );
    assert_eq!(
        t.message_zh,
        "canyon2台计数设备中1台无数据：gate-2（4分钟无数据，上报周期1分钟）"
    );
    assert_eq!(t.devices, [g2]);
}

#[test]
fn one_silent_devices_alert_per_space_follows_its_set_without_transitions() {
    let mut e = engine();
    let at = |now, quiet: &[usize]| SpaceInput {
        devices: gates(4, quiet, now),
        ..inp(now, 100)
    };
    let ev = e.evaluate(S, mins(0), &at(mins(0), &[]));
    assert!(ev.transitions.is_empty() && silent_devices(&ev).is_none());

    // Three of four silent: one alert naming the three, one transition.
    let ev = e.evaluate(S, mins(20), &at(mins(20), &[1, 2, 3]));
    assert_eq!(kinds(&ev), [(AlertKind::SilentDevices, Change::Open)]);
    assert_eq!(silent_devices(&ev), Some(vec![dev(1), dev(2), dev(3)]));
    assert!(!ev.status.stale, "gate-4 is fresh");
    let t = &ev.transitions[0];
    assert_eq!(t.severity, Severity::Warning);
    assert_eq!(t.alert_id(), "canyon/silent_devices");
    assert_eq!(t.devices, [dev(1), dev(2), dev(3)]);
    assert!(
        t.message_en
            .starts_with("canyon: 3 of 4 counters silent: gate-1 (silent for 20 min"),
        "{}",
        t.message_en
    );
    let opened = ev.status.alerts[0].clone();

    // gate-2 recovers: the same alert, a shorter list, nothing sent.
    let ev = e.evaluate(S, mins(21), &at(mins(21), &[1, 3]));
    assert!(ev.transitions.is_empty(), "{:?}", kinds(&ev));
    assert_eq!(silent_devices(&ev), Some(vec![dev(1), dev(3)]));
    let a = &ev.status.alerts[0];
    assert_eq!((a.since, a.updated), (opened.since, opened.updated));
    // gate-4 falls silent too: still no transition.
    let quiet_4 = SpaceInput {
        devices: vec![
            DeviceHealth::heard(dev(1), mins(0)),
            DeviceHealth::heard(dev(2), mins(22)),
            DeviceHealth::heard(dev(3), mins(0)),
            DeviceHealth::heard(dev(4), mins(2)),
        ],
        ..inp(mins(22), 100)
    };
    let ev = e.evaluate(S, mins(22), &quiet_4);
    assert!(ev.transitions.is_empty());
    assert_eq!(silent_devices(&ev), Some(vec![dev(1), dev(3), dev(4)]));

    // All back: resolved.
    let ev = e.evaluate(S, mins(23), &at(mins(23), &[]));
    assert_eq!(kinds(&ev), [(AlertKind::SilentDevices, Change::Resolve)]);
    assert!(ev.transitions[0].devices.is_empty());
    assert_eq!(
        ev.transitions[0].message_en,
        "canyon: every counter is reporting again"
    );
    assert!(ev.status.alerts.is_empty());
}

#[test]
fn a_long_silent_list_is_cut_in_messages_but_complete_in_the_status() {
    let mut e = engine();
    let quiet: Vec<usize> = (1..=12).collect();
    let input = SpaceInput {
        devices: gates(20, &quiet, mins(20)),
        ..inp(mins(20), 100)
    };
    let ev = e.evaluate(S, mins(20), &input);
    assert_eq!(silent_devices(&ev).unwrap().len(), 12);
    let t = &ev.transitions[0];
    assert_eq!(t.devices.len(), 12);
    assert!(
        t.message_en
            .starts_with("canyon: 12 of 20 counters silent: gate-1 (")
    );
    assert!(
        t.message_en
            .ends_with("gate-5 (silent for 20 min, period 5 min), +7 more"),
        "{}",
        t.message_en
    );
    assert!(!t.message_en.contains("gate-6"));
    assert!(t.message_zh.ends_with("等，另有7台"), "{}", t.message_zh);
}

#[test]
fn parts_counters_stale_the_parent_but_alert_only_their_own_space() {
    let defs = [
        SpaceDef::new(SpaceId::new("area")),
        SpaceDef::new(SpaceId::new("zone")),
    ];
    let mut e = Engine::new(RulesConfig::default(), defs).unwrap();
    let (area, zone) = (SpaceIdx(0), SpaceIdx(1));
    let now = mins(20);
    // The zone's three gates count in the area too; two are silent.
    let zone_gates = gates(3, &[1, 2], now);
    let tally = |gates: &[DeviceHealth], e: &Engine| {
        let mut p = PartDevices::default();
        for g in gates {
            p.add(!e.is_silent(g, now));
        }
        p
    };
    let area_input = |parts| SpaceInput {
        devices: vec![],
        parts,
        ..inp(now, 100)
    };
    let ev = e.evaluate(
        zone,
        now,
        &SpaceInput {
            devices: zone_gates.clone(),
            ..inp(now, 100)
        },
    );
    assert_eq!(silent_devices(&ev), Some(vec![dev(1), dev(2)]));
    let parts = tally(&zone_gates, &e);
    assert_eq!(parts, PartDevices { total: 3, fresh: 1 });
    let ev = e.evaluate(area, now, &area_input(parts));
    assert!(!ev.status.stale);
    assert!(
        ev.transitions.is_empty() && ev.status.alerts.is_empty(),
        "{:?}",
        kinds(&ev)
    );

    // Every counter of the zone silent: the area is stale (its level unknown) but names no device.
    let all_quiet = gates(3, &[1, 2, 3], now);
    let parts = tally(&all_quiet, &e);
    assert_eq!(parts.fresh, 0);
    let ev = e.evaluate(area, now, &area_input(parts));
    assert!(ev.status.stale);
    assert_eq!(ev.status.instant.reading, Reading::Stale);
    assert_eq!(kinds(&ev), [(AlertKind::Stale, Change::Open)]);
    assert!(silent_devices(&ev).is_none());
    // A fresh counter of its own makes it rated again, silent parts notwithstanding.
    let ev = e.evaluate(
        area,
        now,
        &SpaceInput {
            devices: vec![DeviceHealth::heard(DeviceId::new("area-gate"), now)],
            ..area_input(parts)
        },
    );
    assert!(!ev.status.stale);
    assert_eq!(kinds(&ev), [(AlertKind::Stale, Change::Resolve)]);
    // No counter at all, own or parts': no data.
    assert!(
        e.evaluate(area, now, &area_input(PartDevices::default()))
            .status
            .stale
    );
}

#[test]
fn legacy_per_device_silence_alerts_load_and_resolve_on_restore() {
    let mut e = engine();
    eval(&mut e, mins(0), 950); // orange
    // A state as earlier versions saved it: per-device silence alerts, no `devices` field.
    let mut state = serde_json::to_value(e.snapshot()).unwrap();
    let open = state["spaces"][0]["state"]["open"].as_array_mut().unwrap();
    assert!(open[0].get("devices").is_none(), "{open:?}");
    for g in ["gate-1", "gate-9"] {
        open.push(serde_json::json!({
            "kind": {"type": "silent", "device": g},
            "severity": "warning",
            "level": null,
            "since": "2026-05-01T01:00:00Z",
            "updated": "2026-05-01T01:00:00Z",
        }));
    }
    let state: EngineState = serde_json::from_value(state).unwrap();
    let (mut r, resolves) = Engine::restore(
        RulesConfig::default(),
        [SpaceDef::new(SpaceId::new("canyon"))],
        state,
        mins(1),
    )
    .unwrap();
    let ids: Vec<String> = resolves.iter().map(|t| t.alert_id()).collect();
    assert_eq!(ids, ["canyon/silent.gate-1", "canyon/silent.gate-9"]);
    assert!(resolves.iter().all(|t| t.change == Change::Resolve
        && t.severity == Severity::Warning
        && t.at == mins(1)
        && t.since == mins(-60)));
    assert_eq!(
        r.open_alerts(S),
        e.open_alerts(S),
        "the level alert carries on"
    );
    // The first evaluation opens the space's one alert for what is still silent.
    let input = SpaceInput {
        devices: gates(9, &[9], mins(20)),
        ..inp(mins(20), 950)
    };
    let ev = r.evaluate(S, mins(20), &input);
    assert_eq!(kinds(&ev), [(AlertKind::SilentDevices, Change::Open)]);
    assert_eq!(silent_devices(&ev), Some(vec![dev(9)]));
    // A state saved now restores as it was, but for the device list, which is not saved (it
    // follows the input) and returns with the next evaluation, without a transition.
    let json = serde_json::to_string(&r.snapshot()).unwrap();
    assert!(!json.contains("gate-9"), "{json}");
    let (mut r2, none) = Engine::restore(
        RulesConfig::default(),
        [SpaceDef::new(SpaceId::new("canyon"))],
        serde_json::from_str(&json).unwrap(),
        mins(21),
    )
    .unwrap();
    assert!(none.is_empty());
    assert_eq!(r2.open_alerts(S).len(), r.open_alerts(S).len());
    let (a, b) = (
        r.evaluate(S, mins(21), &input),
        r2.evaluate(S, mins(21), &input),
    );
    assert!(b.transitions.is_empty());
    assert_eq!(a, b);
}

/// A county as large as the one that opened 300,000 alerts at start-up: 1 county, 30 areas,
/// 1,000 zones of 100 counters each, none of which has ever reported.
#[test]
fn a_fresh_county_of_100k_counters_opens_one_silent_alert_per_space_with_counters() {
    const AREAS: usize = 30;
    const ZONES: usize = 1_000;
    const PER_ZONE: usize = 100;
    let county = SpaceIdx(0);
    let area = |z: usize| SpaceIdx(1 + (z % AREAS) as u32);
    let zone = |z: usize| SpaceIdx((1 + AREAS + z) as u32);
    let defs = std::iter::once(SpaceDef::new(SpaceId::new("county")))
        .chain((0..AREAS).map(|a| SpaceDef::new(SpaceId::new(format!("area-{a}")))))
        .chain((0..ZONES).map(|z| SpaceDef::new(SpaceId::new(format!("zone-{z}")))));
    let mut e = Engine::new(RulesConfig::default(), defs).unwrap();
    let spaces = e.len();
    let ids: Vec<DeviceId> = (0..ZONES * PER_ZONE)
        .map(|d| DeviceId::new(format!("zone-{}-gate-{}", d / PER_ZONE, d % PER_ZONE)))
        .collect();

    // As the alerting shell builds the inputs: each device once, its health to its own zone, its
    // freshness tallied in the zone's area and the county.
    let evaluate_all = |e: &mut Engine, now: DateTime<Utc>| {
        let started = std::time::Instant::now();
        let mut own: Vec<Vec<DeviceHealth>> = vec![Vec::new(); spaces];
        let mut parts = vec![PartDevices::default(); spaces];
        for (d, id) in ids.iter().enumerate() {
            let z = d / PER_ZONE;
            let h = DeviceHealth {
                last_received: None,
                ..DeviceHealth::heard(id.clone(), now)
            };
            let fresh = !e.is_silent(&h, now);
            parts[area(z).get()].add(fresh);
            parts[county.get()].add(fresh);
            own[zone(z).get()].push(h);
        }
        let evs: Vec<Evaluation> = (0..spaces)
            .map(|s| {
                let input = SpaceInput {
                    occupancy: 0,
                    instant_capacity: Some(1_000),
                    devices: std::mem::take(&mut own[s]),
                    parts: parts[s],
                    ..Default::default()
                };
                e.evaluate(SpaceIdx(s as u32), now, &input)
            })
            .collect();
        (evs, started.elapsed())
    };

    let (evs, first) = evaluate_all(&mut e, mins(0));
    let transitions: Vec<&Transition> = evs.iter().flat_map(|ev| &ev.transitions).collect();
    let silent_opened = transitions
        .iter()
        .filter(|t| t.kind == AlertKind::SilentDevices && t.change == Change::Open)
        .count();
    assert_eq!(
        silent_opened, ZONES,
        "one per zone, none for areas or the county"
    );
    let open_silent: Vec<usize> = evs
        .iter()
        .filter_map(|ev| silent_devices(ev).map(|d| d.len()))
        .collect();
    assert_eq!(open_silent, vec![PER_ZONE; ZONES]);
    // Plus one stale alert per space: every level is unknown.
    assert_eq!(transitions.len(), ZONES + spaces);
    assert!(evs.iter().all(|ev| ev.status.stale));
    let root = &evs[county.get()].status;
    assert_eq!(
        root.alerts.iter().map(|a| &a.kind).collect::<Vec<_>>(),
        [&AlertKind::Stale]
    );
    assert!(root.alerts.iter().all(|a| a.devices.is_empty()));

    // The next round changes nothing.
    let (evs, steady) = evaluate_all(&mut e, mins(1));
    assert!(evs.iter().all(|ev| ev.transitions.is_empty()));
    let snapshot = serde_json::to_string(&e.snapshot()).unwrap();
    println!(
        "{} spaces, {} counters never heard: first evaluation of every space {:.1} ms \
         ({} transitions), next {:.1} ms; saved state {} KiB",
        spaces,
        ids.len(),
        first.as_secs_f64() * 1e3,
        transitions.len(),
        steady.as_secs_f64() * 1e3,
        snapshot.len() / 1024
    );
}

#[test]
fn drift_missing_reports_and_clock_skew() {
    let mut e = engine();
    let with = |now, entries, drift, missing, skew_s: Option<i64>| SpaceInput {
        entries_today: entries,
        drift_today: drift,
        devices: vec![DeviceHealth {
            missing_reports: missing,
            clock_skew: skew_s.map(TimeDelta::seconds),
            ..DeviceHealth::heard(gate(), now)
        }],
        ..inp(now, 100)
    };
    // 60 > max(50, 2% of 1000).
    let ev = e.evaluate(S, mins(0), &with(mins(0), 1000, 60, 0, None));
    assert_eq!(kinds(&ev), [(AlertKind::Drift, Change::Open)]);
    assert_eq!(ev.transitions[0].severity, Severity::Info);
    // New day: drift back to 0.
    let ev = e.evaluate(S, mins(1), &with(mins(1), 10, 0, 0, None));
    assert_eq!(kinds(&ev), [(AlertKind::Drift, Change::Resolve)]);
    // 60 ≤ 2% of 5000 = 100: large days tolerate proportional noise.
    let ev = e.evaluate(S, mins(2), &with(mins(2), 5000, 60, 0, None));
    assert!(ev.transitions.is_empty());

    let ev = e.evaluate(S, mins(3), &with(mins(3), 5000, 0, 3, None));
    assert_eq!(kinds(&ev), [(AlertKind::MissingReports, Change::Open)]);
    assert!(ev.transitions[0].message_en.contains("3 reports missing"));
    let ev = e.evaluate(S, mins(4), &with(mins(4), 5000, 0, 0, None));
    assert_eq!(kinds(&ev), [(AlertKind::MissingReports, Change::Resolve)]);

    let ev = e.evaluate(S, mins(5), &with(mins(5), 5000, 0, 0, Some(150)));
    assert_eq!(kinds(&ev), [(AlertKind::ClockSkew, Change::Open)]);
    assert!(ev.transitions[0].message_en.contains("gate-1 +150 s"));
    // Above 80% of the bound it stays open; below, it clears.
    let ev = e.evaluate(S, mins(6), &with(mins(6), 5000, 0, 0, Some(-100)));
    assert!(ev.transitions.is_empty());
    let ev = e.evaluate(S, mins(7), &with(mins(7), 5000, 0, 0, Some(90)));
    assert_eq!(kinds(&ev), [(AlertKind::ClockSkew, Change::Resolve)]);
}

#[test]
fn hazard_closes_the_space_and_clears_when_removed() {
    let mut e = engine();
    let flood = Hazard {
        kind: "flash_flood".into(),
        severity: Severity::Critical,
        message_zh: "山洪预警".into(),
        message_en: "Flash flood warning".into(),
        since: mins(0),
        until: Some(mins(30)),
    };
    let with = |now, hazards: Vec<Hazard>| SpaceInput {
        hazards,
        ..inp(now, 100)
    };
    let kind = AlertKind::Hazard {
        hazard: "flash_flood".into(),
    };
    let ev = e.evaluate(S, mins(1), &with(mins(1), vec![flood.clone()]));
    assert!(ev.status.closed);
    assert_eq!(kinds(&ev), [(kind.clone(), Change::Open)]);
    let t = &ev.transitions[0];
    assert_eq!(t.severity, Severity::Critical);
    assert!(t.message_zh.contains("山洪预警") && t.message_en.contains("closed for dispatch"));
    assert_eq!(t.alert_id(), "canyon/hazard.flash_flood");
    // Downgraded: same alert, de-escalated.
    let milder = Hazard {
        severity: Severity::Major,
        ..flood.clone()
    };
    let ev = e.evaluate(S, mins(2), &with(mins(2), vec![milder]));
    assert_eq!(kinds(&ev), [(kind.clone(), Change::DeEscalate)]);
    // Removed: resolved at once, open again.
    let ev = e.evaluate(S, mins(3), &with(mins(3), vec![]));
    assert!(!ev.status.closed);
    assert_eq!(kinds(&ev), [(kind.clone(), Change::Resolve)]);
    // Expiry (`until`) clears it too.
    e.evaluate(S, mins(4), &with(mins(4), vec![flood.clone()]));
    let ev = e.evaluate(S, mins(30), &with(mins(30), vec![flood]));
    assert!(!ev.status.closed);
    assert_eq!(kinds(&ev), [(kind, Change::Resolve)]);
}

#[test]
fn restore_mid_dwell_continues_the_timer_without_resending() {
    let mut e = engine();
    ramp(&mut e);
    eval(&mut e, mins(11), 950); // orange
    eval(&mut e, mins(12), 800); // below 85: dwell starts
    let saved = serde_json::to_string(&e.snapshot()).unwrap();
    let state: EngineState = serde_json::from_str(&saved).unwrap();
    let (mut r, orphaned) = Engine::restore(
        RulesConfig::default(),
        [SpaceDef::new(SpaceId::new("canyon"))],
        state,
        mins(13),
    )
    .unwrap();
    assert!(orphaned.is_empty());
    assert_eq!(r.open_alerts(S), e.open_alerts(S));
    // The original and the restored engine agree from here on.
    for s in [13 * 60, 13 * 60 + 30, 13 * 60 + 59] {
        let a = eval(&mut e, secs(s), 800);
        let b = eval(&mut r, secs(s), 800);
        assert_eq!(a, b);
        assert!(b.transitions.is_empty(), "nothing re-sent at {s}s");
    }
    let ev = eval(&mut r, mins(14), 800);
    assert_eq!(
        level_changes(&ev),
        [(Change::DeEscalate, Level::Orange, Level::Yellow)],
        "the dwell that began before the restart completes on time"
    );
}

#[test]
fn restore_resolves_alerts_of_removed_spaces_and_rejects_other_versions() {
    let defs = || {
        [
            SpaceDef::new(SpaceId::new("a")),
            SpaceDef::new(SpaceId::new("b")),
        ]
    };
    let mut e = Engine::new(RulesConfig::default(), defs()).unwrap();
    let b = e.space_idx("b").unwrap();
    e.evaluate(b, mins(0), &inp(mins(0), 990));
    let state = e.snapshot();
    // "b" is gone and a new "c" comes first.
    let (r, orphaned) = Engine::restore(
        RulesConfig::default(),
        [
            SpaceDef::new(SpaceId::new("c")),
            SpaceDef::new(SpaceId::new("a")),
        ],
        state.clone(),
        mins(1),
    )
    .unwrap();
    assert_eq!(orphaned.len(), 1);
    assert_eq!(orphaned[0].alert_id(), "b/instant_level");
    assert_eq!(orphaned[0].change, Change::Resolve);
    assert_eq!(r.len(), 2);
    assert!(r.open_alerts(SpaceIdx(0)).is_empty());

    let bad = EngineState {
        version: STATE_VERSION + 1,
        ..state
    };
    assert!(Engine::restore(RulesConfig::default(), defs(), bad, mins(1)).is_err());
}

#[test]
fn zero_or_missing_capacity_means_no_level() {
    let mut e = engine();
    for cap in [Some(0), None] {
        let input = SpaceInput {
            instant_capacity: cap,
            daily_capacity: cap,
            ..inp(mins(0), 5_000)
        };
        let ev = e.evaluate(S, mins(0), &input);
        assert_eq!(ev.status.instant.reading, Reading::NoCapacity);
        assert_eq!(ev.status.instant.level, None);
        assert!(ev.transitions.is_empty());
    }
    // A capacity withdrawn while red resolves the level alert.
    eval(&mut e, mins(1), 1_000);
    let input = SpaceInput {
        instant_capacity: None,
        ..inp(mins(2), 1_000)
    };
    let ev = e.evaluate(S, mins(2), &input);
    assert_eq!(kinds(&ev), [(AlertKind::InstantLevel, Change::Resolve)]);
}

#[test]
fn per_space_ladders_and_config_errors() {
    let cfg: RulesConfig = toml::from_str(
        r#"
        [spaces.b.ladder]
        blue_pct = 60
        yellow_pct = 60
        orange_pct = 80
        "#,
    )
    .unwrap();
    let mut e = Engine::new(
        cfg.clone(),
        [
            SpaceDef::new(SpaceId::new("a")),
            SpaceDef::new(SpaceId::new("b")),
        ],
    )
    .unwrap();
    let (a, b) = (SpaceIdx(0), SpaceIdx(1));
    assert_eq!(
        e.evaluate(a, mins(0), &inp(mins(0), 850))
            .status
            .instant
            .level,
        Some(Level::Yellow)
    );
    assert_eq!(
        e.evaluate(b, mins(0), &inp(mins(0), 850))
            .status
            .instant
            .level,
        Some(Level::Orange)
    );
    assert_eq!(e.ladder(b).orange_pct, 80.0);

    let err = Engine::new(cfg, [SpaceDef::new(SpaceId::new("a"))]).unwrap_err();
    assert!(
        err.to_string().contains("rules.spaces.b: no such space"),
        "{err}"
    );
    let err = Engine::new(
        RulesConfig::default(),
        [
            SpaceDef::new(SpaceId::new("a")),
            SpaceDef::new(SpaceId::new("a")),
        ],
    )
    .unwrap_err();
    assert!(err.to_string().contains("given twice"));
    let bad: RulesConfig = toml::from_str("[ladder]\norange_pct = 70").unwrap();
    assert!(Engine::new(bad, [SpaceDef::new(SpaceId::new("a"))]).is_err());
}

#[test]
fn wired_from_the_registry_and_the_live_view() {
    let reg = crate::sim::testutil::registry();
    let mut e = Engine::for_registry(RulesConfig::default(), &reg).unwrap();
    assert_eq!(e.len(), reg.spaces.len());
    let canyon = reg.space_idx("canyon").unwrap();
    assert_eq!(e.space_idx("canyon"), Some(canyon));
    let now = crate::live::SpaceNow {
        day: NaiveDate::from_ymd_opt(2026, 5, 1),
        occupancy: 7_300,
        entries_today: 12_000,
        exits_today: 4_700,
        ..Default::default()
    };
    let mut input = SpaceInput::from_live(reg.space(canyon), &now);
    input.devices = reg
        .devices
        .iter()
        .filter(|d| reg.targets(d.idx).contains(&canyon))
        .map(|d| DeviceHealth::heard(d.id.clone(), mins(0)))
        .collect();
    let ev = e.evaluate(canyon, mins(0), &input);
    // 7300 / 8000 = 91%: orange, named as the registry names it.
    assert_eq!(ev.status.instant.level, Some(Level::Orange));
    assert_eq!(ev.status.daily.level, Some(Level::Normal));
    assert!(
        ev.transitions[0]
            .message_zh
            .starts_with("大峡谷瞬时承载率91%")
    );
    assert!(
        ev.transitions[0]
            .message_en
            .starts_with("Grand Canyon: instantaneous load 91%")
    );
}

#[test]
fn serialized_shapes_are_snake_case() {
    let mut e = engine();
    let ramp = ramp(&mut e);
    let ev = eval(&mut e, mins(11), 950);
    let j = serde_json::to_value(&ev).unwrap();
    let t = &j["transitions"][0];
    assert_eq!(t["kind"]["type"], "instant_level");
    assert_eq!(t["change"], "open");
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str()),
        (Some("normal"), Some("orange"))
    );
    assert_eq!(t["severity"], "major");
    assert_eq!(j["status"]["instant"]["reading"], "rated");
    let f = serde_json::to_value(ramp[10].status.forecast.as_ref().unwrap()).unwrap();
    assert_eq!(f["to_red_s"], 25 * 60);
    let ew = serde_json::to_value(AlertKind::EarlyWarning { target: Level::Red }).unwrap();
    assert_eq!(
        ew,
        serde_json::json!({"type": "early_warning", "target": "red"})
    );
    assert!(Level::Red > Level::Orange && Level::Blue > Level::Normal);
}

/// The CalIt2 door counts as per-minute occupancy samples: a daily reset at midnight, then
/// linear interpolation within each 30-minute slot. `reflect` clamps the running sum at zero as
/// `core::occupancy` does live (surplus exits become drift); without it the naive sum is shown
/// clamped at zero but carries on below it (the dataset README's "weekday peak about 36").
fn calit2_minutes(reflect: bool) -> Vec<(DateTime<Utc>, u64)> {
    let slots = crate::sim::parse_calit2(&crate::sim::testutil::data_file(
        "calit2/calit2_inout_merged.csv",
    ))
    .unwrap();
    let mut samples = Vec::with_capacity(slots.len() * 30);
    let mut sum: i64 = 0;
    for s in &slots {
        if s.start.time() == chrono::NaiveTime::MIN {
            sum = 0;
        }
        let start = sum;
        sum += i64::from(s.in_count.unwrap_or(0)) - i64::from(s.out_count.unwrap_or(0));
        if reflect {
            sum = sum.max(0);
        }
        for m in 0..30 {
            let v = start as f64 + (sum - start) as f64 * f64::from(m) / 30.0;
            let at = s.start.and_utc() + TimeDelta::minutes(m.into());
            samples.push((at, v.round().max(0.0) as u64));
        }
    }
    samples
}

#[test]
fn calit2_forecast_warns_before_most_crossings() {
    let cfg = RulesConfig::default();
    for (name, reflect, capacity) in [
        ("naive daily sum", false, 40),
        ("reflected at zero (as core::occupancy)", true, 40),
        ("reflected at zero (as core::occupancy)", true, 80),
    ] {
        let report = replay_forecast(&calit2_minutes(reflect), capacity, &cfg).unwrap();
        let sum = report.summary();
        let per_level = |l: Level| {
            let c: Vec<_> = report.crossings.iter().filter(|c| c.level == l).collect();
            let warned = c.iter().filter(|c| c.lead.is_some()).count();
            format!("{} crossings, {warned} warned", c.len())
        };
        eprintln!("CalIt2, {name}, capacity {capacity}, default rules: {sum}");
        eprintln!(
            "  orange: {}; red: {}",
            per_level(Level::Orange),
            per_level(Level::Red)
        );
        assert!(sum.crossings >= 10, "the series must cross levels: {sum}");
        assert!(
            sum.warned * 2 > sum.crossings,
            "most crossings warned: {sum}"
        );
        assert!(
            report
                .crossings
                .iter()
                .all(|c| c.lead.is_none_or(|l| l > TimeDelta::zero()))
        );
    }
}

/// Drives one space through `loads` (percent of 10 000, at the given second offsets) and returns
/// the instantaneous-level transitions with their times.
fn drive(e: &mut Engine, steps: &[(i64, f64)]) -> Vec<(DateTime<Utc>, Change, Level, Level)> {
    let mut out = Vec::new();
    for &(s, load) in steps {
        let now = secs(s);
        let input = SpaceInput {
            occupancy: (load * 100.0).round() as u64,
            instant_capacity: Some(10_000),
            devices: vec![DeviceHealth::heard(gate(), now)],
            ..Default::default()
        };
        for t in e.evaluate(S, now, &input).transitions {
            if t.kind == AlertKind::InstantLevel {
                out.push((t.at, t.change, t.from.unwrap(), t.to.unwrap()));
            }
        }
    }
    out
}

fn cumulative(gaps: &[i64]) -> Vec<i64> {
    gaps.iter()
        .scan(0, |t, g| {
            *t += g;
            Some(*t)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A load oscillating within ±(margin − ε) of any threshold makes no storm: at most two
    /// transitions in any dwell period (and in fact at most two overall).
    #[test]
    fn no_storm_around_a_threshold(
        threshold in prop::sample::select(vec![60.0, 80.0, 90.0, 100.0]),
        margin in 1.0f64..9.0,
        eps in 0.05f64..0.5,
        dwell_s in 30u32..600,
        steps in prop::collection::vec((1i64..90, -1.0f64..=1.0), 10..300),
    ) {
        let mut e = engine_with(RulesConfig { margin_pct: margin, dwell_s, ..Default::default() });
        let times = cumulative(&steps.iter().map(|s| s.0).collect::<Vec<_>>());
        let loads: Vec<_> = times
            .iter()
            .zip(&steps)
            .map(|(&t, &(_, u))| (t, threshold + u * (margin - eps)))
            .collect();
        let tr = drive(&mut e, &loads);
        prop_assert!(tr.len() <= 2, "{tr:?}");
        let dwell = TimeDelta::seconds(dwell_s.into());
        for (i, a) in tr.iter().enumerate() {
            let in_window = tr[i..].iter().filter(|b| b.0 - a.0 < dwell).count();
            prop_assert!(in_window <= 2, "{tr:?}");
        }
    }

    /// For any load sequence, steps down are at least a dwell apart and go one level at a time.
    #[test]
    fn steps_down_are_single_and_a_dwell_apart(
        dwell_s in 0u32..300,
        steps in prop::collection::vec((1i64..120, 0.0f64..130.0), 1..200),
    ) {
        let mut e = engine_with(RulesConfig { dwell_s, ..Default::default() });
        let times = cumulative(&steps.iter().map(|s| s.0).collect::<Vec<_>>());
        let loads: Vec<_> = times.iter().zip(&steps).map(|(&t, &(_, l))| (t, l)).collect();
        let tr = drive(&mut e, &loads);
        let downs: Vec<_> = tr.iter().filter(|t| t.3 < t.2).collect();
        for d in &downs {
            prop_assert_eq!(Ladder::default().step_down(d.2), d.3);
        }
        let dwell = TimeDelta::seconds(dwell_s.into());
        for w in downs.windows(2) {
            prop_assert!(w[1].0 - w[0].0 >= dwell, "{downs:?}");
        }
    }

    /// At steady state the level is monotone in the load: after any common history, holding a
    /// lower load long enough never shows a higher level than holding a higher one.
    #[test]
    fn steady_state_levels_are_monotone(
        history in prop::collection::vec(0.0f64..130.0, 0..20),
        a in 0.0f64..130.0,
        b in 0.0f64..130.0,
    ) {
        // Loads as the engine sees them (occupancy out of 10 000).
        let (a, b) = ((a * 100.0).round() / 100.0, (b * 100.0).round() / 100.0);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut base = engine();
        let hist: Vec<_> = history.iter().enumerate().map(|(i, &l)| (i as i64 * 30, l)).collect();
        drive(&mut base, &hist);
        let start = hist.len() as i64 * 30;
        let hold = |load: f64| -> Level {
            let mut e = base.clone();
            let steady: Vec<_> = (0..60).map(|k| (start + k * 20, load)).collect();
            drive(&mut e, &steady);
            e.open_alerts(S)
                .iter()
                .find(|o| o.kind == AlertKind::InstantLevel)
                .and_then(|o| o.level)
                .unwrap_or(Level::Normal)
        };
        let (l_lo, l_hi) = (hold(lo), hold(hi));
        prop_assert!(l_lo <= l_hi, "{lo} → {l_lo:?}, {hi} → {l_hi:?}");
        // And within the hysteresis band: between the raw level and the raw level + margin.
        let ladder = Ladder::default();
        prop_assert!(ladder.level_for(lo) <= l_lo && l_lo <= ladder.level_for(lo + 5.0));
    }

    /// `evaluate` never panics, whatever the input; and a snapshot → JSON → restore at any point
    /// is invisible in what follows.
    #[test]
    fn never_panics_and_restore_is_transparent(
        ops in prop::collection::vec(
            (
                -600i64..3600,
                any::<u64>(),
                prop::option::of(any::<u32>()),
                prop::option::of(0u32..3),
                prop::option::of(-10_000i64..10_000),
                prop::option::of(-600i64..600),
                prop::option::of(prop::sample::select(vec![f64::NAN, -5.0, 0.0, 75.0, 250.0, f64::INFINITY])),
                any::<bool>(),
                0u64..100,
                (0u32..3, 0u32..4),
            ),
            1..40,
        ),
        restart_at in 0usize..40,
    ) {
        let mut a = engine_with(RulesConfig { dwell_s: 0, forecast_min_span_s: 0, ..Default::default() });
        let mut b = a.clone();
        let mut now = t0();
        for (i, (dt, occ, cap, small_cap, heard_ago, period, pct, hazard, missing, (parts, fresh))) in ops.into_iter().enumerate() {
            now += TimeDelta::seconds(dt);
            let occ = if occ % 3 == 0 { occ } else { occ % 2_000 };
            let cap = small_cap.or(cap);
            let input = SpaceInput {
                day: Some(now.date_naive()),
                occupancy: occ,
                entries_today: occ.wrapping_mul(3),
                exits_today: occ,
                drift_today: occ / 7,
                instant_capacity: cap,
                daily_capacity: cap.map(|c| c.wrapping_mul(5)),
                outlook: None,
                booked: vec![crate::rules::BookedArrivals {
                    from: now + TimeDelta::minutes(occ as i64 % 60 - 30),
                    until: now + TimeDelta::minutes(occ as i64 % 90),
                    people: occ / 5,
                }],
                devices: heard_ago
                    .map(|s| DeviceHealth {
                        period: period.map(TimeDelta::seconds),
                        missing_reports: missing,
                        clock_skew: period.map(|p| TimeDelta::seconds(p * 3)),
                        ..DeviceHealth::heard(gate(), now - TimeDelta::seconds(s))
                    })
                    .into_iter()
                    .collect(),
                // `fresh` may exceed `total`: the engine must not trust it.
                parts: PartDevices { total: parts, fresh },
                caps: pct
                    .map(|p| PolicyCap {
                        limit: CapLimit::Percent(p),
                        applies_to: CapScope::Both,
                        reason: "r".into(),
                        starts: now - TimeDelta::seconds(30),
                        ends: Some(now - TimeDelta::seconds(60)),
                    })
                    .into_iter()
                    .chain(pct.map(|p| PolicyCap {
                        limit: CapLimit::Percent(p),
                        applies_to: CapScope::Instant,
                        reason: "r".into(),
                        starts: now,
                        ends: None,
                    }))
                    .collect(),
                hazards: if hazard {
                    vec![Hazard {
                        kind: "landslide".into(),
                        severity: Severity::Major,
                        message_zh: "滑坡".into(),
                        message_en: "Landslide".into(),
                        since: now,
                        until: Some(now - TimeDelta::seconds(1)),
                    }]
                } else {
                    vec![]
                },
            };
            if i == restart_at {
                let json = serde_json::to_string(&b.snapshot()).unwrap();
                let state: EngineState = serde_json::from_str(&json).unwrap();
                let (r, orphaned) = Engine::restore(
                    b.config().clone(),
                    [SpaceDef::new(SpaceId::new("canyon"))],
                    state,
                    now,
                )
                .unwrap();
                prop_assert!(orphaned.is_empty());
                b = r;
            }
            let ea = a.evaluate(S, now, &input);
            let eb = b.evaluate(S, now, &input);
            if let Some(l) = ea.status.instant.load_pct {
                prop_assert!(l.is_finite() && l >= 0.0);
            }
            prop_assert_eq!(ea, eb);
        }
    }
}

#[test]
fn a_booked_slot_about_to_open_warns_before_any_visitor_arrives() {
    // Flat at 500 of 1,000 for ten minutes; 900 visitors are booked for a slot opening at
    // minute 20 and arriving over 30 minutes (slot plus grace). The straight line foresees
    // nothing; with the bookings (30/min from minute 20), orange (900) is 23⅓ min away and red
    // (1,000) 26⅔ min.
    let slot = BookedArrivals {
        from: mins(20),
        until: mins(50),
        people: 900,
    };
    let mut plain = engine();
    let mut booked = engine();
    let mut evs = Vec::new();
    for m in 0..=10 {
        eval(&mut plain, mins(m), 500);
        let input = SpaceInput {
            booked: vec![slot],
            ..inp(mins(m), 500)
        };
        evs.push(booked.evaluate(S, mins(m), &input));
    }
    let f = evs[10].status.forecast.as_ref().unwrap();
    assert_eq!(f.to_orange, Some(TimeDelta::seconds(23 * 60 + 20)));
    assert_eq!(f.to_red, Some(TimeDelta::seconds(26 * 60 + 40)));
    assert_eq!((f.booked_per_min, f.booked_next_hour), (0.0, 900));
    let early = evs
        .iter()
        .flat_map(|ev| &ev.transitions)
        .filter(|t| matches!(t.kind, AlertKind::EarlyWarning { .. }))
        .count();
    assert_eq!(early, 2, "the default 30-min horizon covers both");
    let f = eval(&mut plain, mins(11), 500).status.forecast.unwrap();
    assert_eq!((f.to_orange, f.to_red), (None, None));
}

#[test]
fn a_day_ahead_outlook_opens_its_warning_and_its_absence_resolves_it() {
    use crate::rules::outlook::DayOutlook;
    let mut e = engine();
    // 1,000 instantaneous: 950 expected at noon (95 %: orange on LB/T 034), quiet now.
    let outlook = DayOutlook {
        day: t0().date_naive().succ_opt().unwrap(),
        tomorrow: true,
        occupancy: (0..24)
            .map(|h| if h == 12 { 950.0 } else { 100.0 })
            .collect(),
        occupancy_hi80: vec![1100.0; 24],
        entries: 2000.0,
        warn_from: Level::Yellow,
    };
    let input = SpaceInput {
        outlook: Some(outlook),
        ..inp(mins(0), 100)
    };
    let ev = e.evaluate(S, mins(0), &input);
    let opened: Vec<_> = ev
        .transitions
        .iter()
        .filter(|t| matches!(t.kind, AlertKind::Outlook { .. }))
        .collect();
    assert_eq!(opened.len(), 1, "{:?}", ev.transitions);
    let t = opened[0];
    assert_eq!(
        t.kind,
        AlertKind::Outlook {
            target: Level::Orange
        }
    );
    assert_eq!(t.kind.key(), "forecast.orange");
    assert_eq!(t.change, Change::Open);
    assert_eq!(t.load_pct, Some(95.0));
    assert!(
        t.message_en
            .contains("tomorrow 12:00–13:00 expected at orange"),
        "{}",
        t.message_en
    );
    // The same outlook again: nothing new; none any more: resolved.
    let again = e.evaluate(S, mins(1), &input);
    assert!(
        again
            .transitions
            .iter()
            .all(|t| !matches!(t.kind, AlertKind::Outlook { .. }))
    );
    let gone = e.evaluate(S, mins(2), &inp(mins(2), 100));
    let resolved: Vec<_> = gone
        .transitions
        .iter()
        .filter(|t| matches!(t.kind, AlertKind::Outlook { .. }))
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].change, Change::Resolve);
}

#[test]
fn per_space_saved_states_override_the_whole_document_of_the_same_version() {
    let two = || {
        Engine::new(
            RulesConfig::default(),
            [
                SpaceDef::new(SpaceId::new("canyon")),
                SpaceDef::new(SpaceId::new("village")),
            ],
        )
        .unwrap()
    };
    let mut before = two();
    let whole = before.snapshot();
    // The canyon fills after the whole document was saved; only its own state is saved again.
    before.evaluate(SpaceIdx(0), t0(), &inp(t0(), 0));
    let ev = before.evaluate(SpaceIdx(0), secs(1), &inp(secs(1), 950));
    assert!(!level_changes(&ev).is_empty());
    let canyon = before.snapshot_of(&[SpaceIdx(0)]);
    let stale = before.snapshot_of(&[SpaceIdx(1)]);
    let rows = vec![
        (STATE_VERSION, canyon[0].clone()),
        (STATE_VERSION + 1, stale[0].clone()),
    ];
    let saved = EngineState::saved(Some(whole.clone()), rows).unwrap();
    assert_eq!(saved.spaces.len(), 2);
    assert_eq!(saved.spaces[0], canyon[0], "the canyon's own row wins");
    assert_eq!(
        saved.spaces[1], whole.spaces[1],
        "another version's row is left out"
    );
    // Restored from it, the canyon's red level is not sent again.
    let (mut after, resolves) = Engine::restore(
        RulesConfig::default(),
        two()
            .snapshot()
            .spaces
            .iter()
            .map(|s| SpaceDef::new(s.space.clone())),
        saved,
        t0(),
    )
    .unwrap();
    assert!(resolves.is_empty());
    let again = after.evaluate(SpaceIdx(0), secs(2), &inp(secs(2), 950));
    assert!(level_changes(&again).is_empty(), "{:?}", again.transitions);
    assert!(EngineState::saved(None, Vec::new()).is_none());
}

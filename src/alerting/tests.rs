//! Evaluating only what a commit touched (and its ancestors) against evaluating every space.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::inputs::{self, Controls, Owners, Read};
use crate::core::snapshot::{DeviceNow, DeviceTable, SpaceNow};
use crate::ids::SpaceIdx;
use crate::live::Live;
use crate::registry::Registry;
use crate::rules::{Engine, RulesConfig, Status, Transition};
use scale::{province, t0};

type Outcome = HashMap<SpaceIdx, (Status, Vec<Transition>)>;

fn evaluate(
    reg: &Registry,
    engine: &mut Engine,
    figures: (&[SpaceNow], &[DeviceNow]),
    which: &[SpaceIdx],
    now: DateTime<Utc>,
) -> Outcome {
    let controls = Controls::default();
    let devices: DeviceTable = figures.1.iter().copied().collect();
    let read = Read {
        spaces: figures.0,
        devices: &devices,
        controls: &controls,
    };
    let owners = Owners::new(reg);
    let all = inputs::space_inputs(
        reg,
        &owners,
        &read,
        |at| engine.is_silent_since(at, now),
        which,
    );
    which
        .iter()
        .zip(&all)
        .map(|(&s, input)| {
            let ev = engine.evaluate(s, now, input);
            (s, (ev.status, ev.transitions))
        })
        .collect()
}

/// Zones fill and empty one at a time, their areas and the county summing them. One engine
/// evaluates every space each step, the other only the spaces the live view marked as published
/// and their ancestors: for every space the second evaluates, both agree exactly, and every
/// transition of the first is among those the second made.
#[test]
fn evaluating_the_touched_spaces_and_their_ancestors_matches_a_full_evaluation() {
    let reg = province(13, 24, 100);
    let n = reg.spaces.len();
    let live = Live::new(n, reg.devices.len());
    let mut full = Engine::for_registry(RulesConfig::default(), &reg).unwrap();
    let mut partial = full.clone();
    let mut spaces = vec![SpaceNow::default(); n];
    let mut devices = vec![
        DeviceNow {
            last_received: Some(t0()),
            ..Default::default()
        };
        reg.devices.len()
    ];
    let every = inputs::every_space(&reg);
    let a = evaluate(&reg, &mut full, (&spaces, &devices), &every, t0());
    let b = evaluate(&reg, &mut partial, (&spaces, &devices), &every, t0());
    assert_eq!(a, b);
    let zones: Vec<SpaceIdx> = reg
        .spaces
        .iter()
        .filter(|s| s.children.is_empty() && s.parent.is_some())
        .map(|s| s.idx)
        .collect();
    let mut ancestors_changed = 0;
    for step in 1..60i64 {
        let now = t0() + TimeDelta::seconds(step);
        let zone = zones[step as usize % zones.len()];
        // 0 → 95 → 50 → 0 people: orange, then yellow, then normal in that zone.
        let occupancy = [95, 50, 0][(step as usize / zones.len()) % 3];
        spaces[zone.get()].occupancy = occupancy;
        live.set_space(zone, spaces[zone.get()]);
        for d in reg.devices.iter().filter(|d| d.space == zone) {
            devices[d.idx.get()].last_received = Some(now);
        }
        // The ancestors' sums, as the ingester's rollup publishes them.
        let mut up = reg.space(zone).parent;
        while let Some(p) = up {
            let sum = reg
                .space(p)
                .children
                .iter()
                .map(|c| spaces[c.get()].occupancy)
                .sum();
            spaces[p.get()].occupancy = sum;
            up = reg.space(p).parent;
        }
        let which = inputs::with_ancestors(&reg, live.take_due());
        assert!(which.len() >= 3 && which.len() < n, "{which:?}");
        let a = evaluate(&reg, &mut full, (&spaces, &devices), &every, now);
        let b = evaluate(&reg, &mut partial, (&spaces, &devices), &which, now);
        for (s, got) in &b {
            assert_eq!(got, &a[s], "space {s:?} at step {step}");
        }
        for (s, (_, transitions)) in &a {
            assert!(
                b.contains_key(s) || transitions.is_empty(),
                "step {step}: {s:?} changed but was not evaluated: {transitions:?}"
            );
            if *s != zone && !transitions.is_empty() {
                ancestors_changed += 1;
            }
        }
    }
    assert!(
        ancestors_changed > 0,
        "the scenario moves an area's level through its zone"
    );
}

#[test]
fn ancestors_are_added_once_and_sorted() {
    let reg = province(13, 24, 100);
    let zone = reg.space_idx("zone-5").unwrap();
    let area = reg.space(zone).parent.unwrap();
    let county = reg.space_idx("county").unwrap();
    let which = inputs::with_ancestors(&reg, [zone, zone, area]);
    let mut want = vec![zone, area, county];
    want.sort();
    assert_eq!(which, want);
    assert_eq!(
        inputs::with_ancestors(&reg, []),
        Vec::<SpaceIdx>::new(),
        "nothing published, nothing due"
    );
}

/// A partial evaluation's input of a space is the full evaluation's: own counters and the parts'
/// tally over the whole registry, not only over the spaces evaluated.
#[test]
fn partial_inputs_equal_full_inputs() {
    let reg = province(13, 24, 100);
    let now = t0() + TimeDelta::minutes(20);
    let spaces = vec![SpaceNow::default(); reg.spaces.len()];
    // Half the counters heard now, half not for 20 minutes (silent).
    let devices: DeviceTable = (0..reg.devices.len())
        .map(|i| DeviceNow {
            last_received: Some(if i % 2 == 0 { now } else { t0() }),
            ..Default::default()
        })
        .collect();
    let engine = Engine::for_registry(RulesConfig::default(), &reg).unwrap();
    let controls = Controls::default();
    let read = Read {
        spaces: &spaces,
        devices: &devices,
        controls: &controls,
    };
    let owners = Owners::new(&reg);
    let silent = |at| engine.is_silent_since(at, now);
    let every = inputs::every_space(&reg);
    let all = inputs::space_inputs(&reg, &owners, &read, silent, &every);
    let which = inputs::with_ancestors(&reg, [reg.space_idx("zone-3").unwrap()]);
    let some = inputs::space_inputs(&reg, &owners, &read, silent, &which);
    for (s, input) in which.iter().zip(&some) {
        assert_eq!(input, &all[s.get()]);
    }
    let county = &some[0];
    assert_eq!(county.parts.total, 24);
    assert_eq!(county.parts.fresh, 12);
}

/// A province-sized registry for the evaluation's cost: `cargo test --release --lib
/// alerting::tests::scale -- --ignored --nocapture` prints what each part of an evaluation takes.
pub(super) mod scale {
    use std::time::Instant;

    use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

    use super::super::inputs::{self, Controls, Owners, Read};
    use crate::config::Config;
    use crate::core::snapshot::{DeviceNow, DeviceTable, SpaceNow};
    use crate::ids::SpaceIdx;
    use crate::registry::Registry;
    use crate::rules::{Engine, RulesConfig};

    /// County → ~√n areas → zones, counters spread over the zones (as `vf-bench`'s scale scenario).
    /// Zones hold `zone_capacity`, areas twice that.
    pub(super) fn province(spaces: usize, devices: usize, zone_capacity: u32) -> Registry {
        let areas = ((spaces - 1) as f64).sqrt().round() as usize;
        let zones = spaces - 1 - areas;
        let mut toml = String::from(
            "[[spaces]]\nid = \"county\"\nkind = \"county\"\nname_zh = \"县\"\nname_en = \"County\"\n",
        );
        for a in 0..areas {
            toml += &format!(
                "[[spaces]]\nid = \"area-{a}\"\nkind = \"scenic_area\"\nparent = \"county\"\n\
                 name_zh = \"a\"\nname_en = \"a\"\ninstant_capacity = {}\n",
                zone_capacity * 2
            );
        }
        for z in 0..zones {
            toml += &format!(
                "[[spaces]]\nid = \"zone-{z}\"\nkind = \"zone\"\nparent = \"area-{}\"\n\
                 name_zh = \"z\"\nname_en = \"z\"\ninstant_capacity = {zone_capacity}\n",
                z % areas
            );
        }
        for d in 0..devices {
            toml += &format!(
                "[[devices]]\nid = \"cam-{d}\"\nspace = \"zone-{}\"\nkind = \"camera\"\n",
                d % zones
            );
        }
        Config::from_toml(&toml).unwrap().registry().unwrap()
    }

    pub(super) fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_777_600_000, 0).unwrap()
    }

    /// Live figures at `now`: every space counted today, every device heard `heard_ago` before.
    pub(super) fn figures(
        reg: &Registry,
        now: DateTime<Utc>,
        heard_ago: TimeDelta,
    ) -> (Vec<SpaceNow>, DeviceTable) {
        let day = NaiveDate::from_ymd_opt(2026, 5, 1);
        let spaces = (0..reg.spaces.len())
            .map(|i| SpaceNow {
                day,
                occupancy: (i as u64 * 7 + (now - t0()).num_seconds() as u64) % 500,
                entries_today: 1_000,
                ..Default::default()
            })
            .collect();
        let devices = (0..reg.devices.len())
            .map(|_| DeviceNow {
                last_received: Some(now - heard_ago),
                ..Default::default()
            })
            .collect();
        (spaces, devices)
    }

    #[test]
    #[ignore = "timing only: run in release with --nocapture"]
    fn evaluation_cost_at_province_scale() {
        let reg = province(10_000, 20_000, 10_000);
        let mut engine = Engine::for_registry(RulesConfig::default(), &reg).unwrap();
        let owners = Owners::new(&reg);
        // Half an hour of evaluations 20 s apart fill every space's samples (Theil–Sen at its size),
        // then evaluations a second apart, as on the tick.
        for k in 0..120 {
            let now = t0() + TimeDelta::seconds(20 * k.min(100) + (k - 100).max(0));
            let (spaces, devices) = figures(&reg, now, TimeDelta::seconds(5));
            let controls = Controls::default();
            let read = Read {
                spaces: &spaces,
                devices: &devices,
                controls: &controls,
            };
            let started = Instant::now();
            let which = inputs::every_space(&reg);
            let all = inputs::space_inputs(
                &reg,
                &owners,
                &read,
                |at| engine.is_silent_since(at, now),
                &which,
            );
            let built = started.elapsed();
            let started = Instant::now();
            let mut transitions = 0;
            for (i, input) in all.iter().enumerate() {
                transitions += engine
                    .evaluate(SpaceIdx(i as u32), now, input)
                    .transitions
                    .len();
            }
            let evaluated = started.elapsed();
            if k % 20 == 19 || k > 100 {
                let started = Instant::now();
                let json = serde_json::to_value(engine.snapshot()).unwrap();
                let saved = started.elapsed();
                drop(json);
                println!(
                    "k={k}: inputs {built:?}, evaluate {evaluated:?} ({transitions} transitions), snapshot {saved:?}"
                );
            }
        }
    }
}

//! A province-sized registry for the evaluation's cost: `cargo test --release --lib
//! alerting::scale_tests -- --ignored --nocapture` prints what each part of an evaluation takes.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::inputs::{self, Controls, Owners, Read};
use crate::config::Config;
use crate::core::snapshot::{DeviceNow, SpaceNow};
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
) -> (Vec<SpaceNow>, Vec<DeviceNow>) {
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

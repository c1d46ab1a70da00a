//! The rules engine's inputs for every space, built in one pass from what the alerting loop read:
//! the live snapshots, the active policy caps and hazards (indexed by space once, not filtered
//! again for each space), and each device's health. Pure: the loop reads, this assembles.

use std::collections::HashMap;

use crate::core::snapshot::{DeviceNow, SpaceNow};
use crate::registry::Registry;
use crate::rules::{
    CapLimit, CapScope, DeviceHealth, Hazard, PartDevices, PolicyCap, Severity, SpaceInput,
};
use crate::store::controls::{CapRow, HazardRow};

/// What the loop read for one evaluation.
pub struct Read<'a> {
    pub spaces: &'a [SpaceNow],
    pub devices: &'a [DeviceNow],
    pub caps: &'a [CapRow],
    pub hazards: &'a [HazardRow],
}

/// One [`SpaceInput`] per registry space, in index order. Each device is visited once: its health
/// goes to its own space, a tally of its freshness (`is_silent` false) to every other space it
/// counts in (the county root must not carry 100,000 devices).
pub fn space_inputs(
    registry: &Registry,
    read: &Read<'_>,
    is_silent: impl Fn(&DeviceHealth) -> bool,
) -> Vec<SpaceInput> {
    let n = registry.spaces.len();
    let mut own: Vec<Vec<DeviceHealth>> = vec![Vec::new(); n];
    let mut parts = vec![PartDevices::default(); n];
    for d in &registry.devices {
        let live = read.devices[d.idx.get()];
        let health = DeviceHealth {
            device: d.id.clone(),
            last_received: live.last_received,
            period: None,
            missing_reports: live.missing_reports,
            clock_skew: None,
            last_seq_jump: live.last_seq_jump,
            lost: live.lost,
        };
        let fresh = !is_silent(&health);
        for &s in d.targets.iter().filter(|&&s| s != d.space) {
            parts[s.get()].add(fresh);
        }
        own[d.space.get()].push(health);
    }
    let mut caps = by_space(registry, read.caps, |c| &c.space_id, policy_cap);
    let mut hazards = by_space(registry, read.hazards, |h| &h.space_id, hazard);
    registry
        .spaces
        .iter()
        .map(|space| {
            let i = space.idx.get();
            let mut input = SpaceInput::from_live(space, &read.spaces[i]);
            input.devices = std::mem::take(&mut own[i]);
            input.parts = parts[i];
            input.caps = std::mem::take(&mut caps[i]);
            input.hazards = std::mem::take(&mut hazards[i]);
            input
        })
        .collect()
}

/// `rows` converted and grouped by their space's index; rows of unknown spaces are dropped.
fn by_space<R, T>(
    registry: &Registry,
    rows: &[R],
    space: impl Fn(&R) -> &String,
    convert: impl Fn(&R) -> T,
) -> Vec<Vec<T>> {
    let index: HashMap<&str, usize> = registry
        .spaces
        .iter()
        .map(|s| (s.id.as_str(), s.idx.get()))
        .collect();
    let mut out: Vec<Vec<T>> = std::iter::repeat_with(Vec::new)
        .take(registry.spaces.len())
        .collect();
    for r in rows {
        if let Some(&i) = index.get(space(r).as_str()) {
            out[i].push(convert(r));
        }
    }
    out
}

fn policy_cap(c: &CapRow) -> PolicyCap {
    PolicyCap {
        limit: CapLimit::Percent(c.percent),
        applies_to: CapScope::Both,
        reason: c.reason.clone(),
        starts: c.starts_at,
        ends: c.ends_at,
    }
}

fn hazard(h: &HazardRow) -> Hazard {
    Hazard {
        kind: h.kind.clone(),
        severity: severity_of(&h.severity),
        message_zh: h.message.clone(),
        message_en: h.message.clone(),
        since: h.since,
        until: h.until,
    }
}

/// A hazard's stored severity; anything unknown is informational.
pub fn severity_of(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "major" => Severity::Major,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;
    use crate::config::Config;

    const REG: &str = include_str!("../../tests/data/county.toml");

    fn cap(space: &str, percent: f64) -> CapRow {
        CapRow {
            id: 1,
            space_id: space.into(),
            percent,
            reason: "policy".into(),
            starts_at: DateTime::from_timestamp(0, 0).unwrap(),
            ends_at: None,
            created_by: None,
            created_at: None,
            revoked_at: None,
            revoked_by: None,
        }
    }

    fn hazard_row(space: &str, severity: &str) -> HazardRow {
        HazardRow {
            id: 2,
            space_id: space.into(),
            kind: "storm".into(),
            severity: severity.into(),
            message: "雷雨".into(),
            since: DateTime::from_timestamp(0, 0).unwrap(),
            until: None,
        }
    }

    #[test]
    fn caps_hazards_and_devices_reach_their_own_space_only() {
        let reg = Config::from_toml(REG).unwrap().registry().unwrap();
        let now = DateTime::from_timestamp(1_777_600_000, 0).unwrap();
        let mut devices = vec![DeviceNow::default(); reg.devices.len()];
        // gate-1 reported a minute ago; the others never did.
        let gate = reg.device_idx("gate-1").unwrap();
        devices[gate.get()].last_received = Some(now - TimeDelta::minutes(1));
        let spaces = vec![SpaceNow::default(); reg.spaces.len()];
        let caps = [cap("canyon", 75.0), cap("nowhere", 50.0)];
        let hazards = [hazard_row("village", "major"), hazard_row("canyon", "odd")];
        let read = Read {
            spaces: &spaces,
            devices: &devices,
            caps: &caps,
            hazards: &hazards,
        };
        let inputs = space_inputs(&reg, &read, |h| h.last_received.is_none());
        assert_eq!(inputs.len(), reg.spaces.len());
        let at = |id: &str| &inputs[reg.space_idx(id).unwrap().get()];
        assert_eq!(at("canyon").caps.len(), 1);
        assert_eq!(at("canyon").caps[0].limit, CapLimit::Percent(75.0));
        assert!(at("village").caps.is_empty() && at("county").caps.is_empty());
        assert_eq!(at("village").hazards[0].severity, Severity::Major);
        assert_eq!(at("canyon").hazards[0].severity, Severity::Info);
        // Devices: own health in their space, a freshness tally in the spaces they count in.
        let canyon_devices: Vec<_> = at("canyon")
            .devices
            .iter()
            .map(|d| d.device.as_str())
            .collect();
        assert_eq!(canyon_devices, ["gate-1", "gate-2"]);
        assert!(at("county").devices.is_empty());
        let county = at("county").parts;
        assert_eq!(county.fresh, 1, "only gate-1 is fresh: {county:?}");
        assert!(
            county.total >= 3,
            "the areas' counters count in the county: {county:?}"
        );
        assert_eq!(at("canyon").parts.total, 0, "its own gates are not parts");
    }
}

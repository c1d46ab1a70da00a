//! The rules engine's inputs for the spaces one evaluation covers, built in one pass from what the
//! alerting loop read: the live figures, the active policy caps and hazards (indexed by space
//! once, not filtered again for each space), and each device's health. Pure: the loop reads,
//! this assembles.
//!
//! An evaluation after a commit covers only the spaces it touched and their ancestors
//! ([`with_ancestors`]); the steady tick covers every space. A space's input is the same either
//! way: its own counters' health, and a tally of its parts' counters over the whole registry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::core::snapshot::{DeviceNow, DeviceTable, SpaceNow};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;
use crate::rules::{
    CapLimit, CapScope, DeviceHealth, Hazard, PartDevices, PolicyCap, Severity, SpaceInput,
};
use crate::store::controls::{CapRow, HazardRow};

/// What the loop read for one evaluation.
pub struct Read<'a> {
    pub spaces: &'a [SpaceNow],
    pub devices: &'a DeviceTable,
    pub controls: &'a Controls,
}

/// Each space's own counters (registered in it), built once per registry.
pub struct Owners {
    /// Device indices grouped by space: space `s` owns `devices[start[s]..start[s + 1]]`.
    devices: Vec<DeviceIdx>,
    start: Vec<usize>,
}

impl Owners {
    pub fn new(registry: &Registry) -> Self {
        let n = registry.spaces.len();
        let mut count = vec![0usize; n + 1];
        for d in &registry.devices {
            count[d.space.get() + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        let start = count.clone();
        let mut devices = vec![DeviceIdx(0); registry.devices.len()];
        // Registry order within a space, as a full pass over the devices lists them.
        for d in &registry.devices {
            let at = &mut count[d.space.get()];
            devices[*at] = d.idx;
            *at += 1;
        }
        Self { devices, start }
    }

    fn of(&self, s: SpaceIdx) -> &[DeviceIdx] {
        &self.devices[self.start[s.get()]..self.start[s.get() + 1]]
    }

    /// `which` (sorted) in consecutive groups owning about `devices` counters each (a space with
    /// more is a group of its own): an evaluation builds, and holds, one group's inputs at a time
    /// — every counter's health at once is ~15 MB for a province.
    pub fn groups<'a>(
        &'a self,
        which: &'a [SpaceIdx],
        devices: usize,
    ) -> impl Iterator<Item = &'a [SpaceIdx]> + 'a {
        let mut rest = which;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let mut owned = 0;
            let mut n = 0;
            while n < rest.len() {
                owned += self.of(rest[n]).len();
                if n > 0 && owned > devices {
                    break;
                }
                n += 1;
            }
            let (group, tail) = rest.split_at(n);
            rest = tail;
            Some(group)
        })
    }
}

/// The active policy caps and hazards, converted and grouped by space (spaces with none are
/// absent); rows of unknown spaces are dropped.
#[derive(Debug, Default, PartialEq)]
pub struct Controls {
    caps: HashMap<SpaceIdx, Vec<PolicyCap>>,
    hazards: HashMap<SpaceIdx, Vec<Hazard>>,
}

impl Controls {
    pub fn new(registry: &Registry, caps: &[CapRow], hazards: &[HazardRow]) -> Self {
        Self {
            caps: by_space(registry, caps, |c| &c.space_id, policy_cap),
            hazards: by_space(registry, hazards, |h| &h.space_id, hazard),
        }
    }

    /// The spaces whose caps or hazards differ between `self` and `before`: an operator's change
    /// is evaluated at once, not at the next tick.
    pub fn changed_since(&self, before: &Controls) -> Vec<SpaceIdx> {
        fn diff<T: PartialEq>(
            a: &HashMap<SpaceIdx, Vec<T>>,
            b: &HashMap<SpaceIdx, Vec<T>>,
            out: &mut Vec<SpaceIdx>,
        ) {
            let differs = |s: &SpaceIdx, x: &HashMap<SpaceIdx, Vec<T>>, y: &HashMap<_, Vec<T>>| {
                x.get(s) != y.get(s)
            };
            out.extend(a.keys().filter(|s| differs(s, a, b)));
            out.extend(b.keys().filter(|s| differs(s, b, a)));
        }
        let mut out = Vec::new();
        diff(&self.caps, &before.caps, &mut out);
        diff(&self.hazards, &before.hazards, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn caps(&self, s: SpaceIdx) -> Vec<PolicyCap> {
        self.caps.get(&s).cloned().unwrap_or_default()
    }

    fn hazards(&self, s: SpaceIdx) -> Vec<Hazard> {
        self.hazards.get(&s).cloned().unwrap_or_default()
    }
}

/// `spaces` with every ancestor of each, sorted and without duplicates: a space's counts and
/// freshness reach its ancestors, so they are evaluated with it.
pub fn with_ancestors(
    registry: &Registry,
    spaces: impl IntoIterator<Item = SpaceIdx>,
) -> Vec<SpaceIdx> {
    let mut on = vec![false; registry.spaces.len()];
    let mut out = Vec::new();
    for s in spaces {
        let mut cur = Some(s);
        while let Some(c) = cur.filter(|c| c.get() < on.len() && !on[c.get()]) {
            on[c.get()] = true;
            out.push(c);
            cur = registry.spaces[c.get()].parent;
        }
    }
    out.sort_unstable();
    out
}

/// Every space of the registry, in index order.
pub fn every_space(registry: &Registry) -> Vec<SpaceIdx> {
    registry.spaces.iter().map(|s| s.idx).collect()
}

/// Each space's tally of the fresh and silent counters that count in it other than its own (the
/// county root must not carry 100,000 device healths). `silent_since(last_received)` says
/// whether a counter last heard then is silent now.
pub fn part_devices(
    registry: &Registry,
    devices: &DeviceTable,
    silent_since: impl Fn(Option<DateTime<Utc>>) -> bool,
) -> Vec<PartDevices> {
    let mut parts = vec![PartDevices::default(); registry.spaces.len()];
    for d in &registry.devices {
        let fresh = !silent_since(devices.last_received(d.idx));
        for &s in registry.targets(d.idx).iter().filter(|&&s| s != d.space) {
            parts[s.get()].add(fresh);
        }
    }
    parts
}

/// The live figures of the spaces in `which` and of their own counters, copied: read under
/// the live view's locks, so publishing waits for a copy of one group's figures only, never for
/// the building of its inputs.
pub struct Figures {
    spaces: Vec<SpaceNow>,
    /// The counters of each space of `which` in turn, as [`Owners`] lists them.
    devices: Vec<DeviceNow>,
}

impl Figures {
    pub fn read(
        owners: &Owners,
        spaces: &[SpaceNow],
        devices: &DeviceTable,
        which: &[SpaceIdx],
    ) -> Self {
        Self {
            spaces: which.iter().map(|s| spaces[s.get()]).collect(),
            devices: which
                .iter()
                .flat_map(|&s| owners.of(s))
                .map(|&d| devices.get(d))
                .collect(),
        }
    }
}

/// The inputs of the spaces in `which` (sorted, as [`with_ancestors`] returns them), in that
/// order, from their [`Figures`] and the tallies of [`part_devices`]; health is built only for
/// the counters of the spaces evaluated.
pub fn build(
    registry: &Registry,
    owners: &Owners,
    figures: &Figures,
    controls: &Controls,
    parts: &[PartDevices],
    which: &[SpaceIdx],
) -> Vec<SpaceInput> {
    let mut devices = figures.devices.iter();
    which
        .iter()
        .zip(&figures.spaces)
        .map(|(&s, now)| {
            let mut input = SpaceInput::from_live(registry.space(s), now);
            input.devices = owners
                .of(s)
                .iter()
                .zip(devices.by_ref())
                .map(|(&d, live)| health(registry, d, live))
                .collect();
            input.parts = parts[s.get()];
            input.caps = controls.caps(s);
            input.hazards = controls.hazards(s);
            input
        })
        .collect()
}

/// [`part_devices`] and [`build`] in one: the inputs of `which` from one reading.
pub fn space_inputs(
    registry: &Registry,
    owners: &Owners,
    read: &Read<'_>,
    silent_since: impl Fn(Option<DateTime<Utc>>) -> bool,
    which: &[SpaceIdx],
) -> Vec<SpaceInput> {
    let parts = part_devices(registry, read.devices, silent_since);
    let figures = Figures::read(owners, read.spaces, read.devices, which);
    build(registry, owners, &figures, read.controls, &parts, which)
}

fn health(
    registry: &Registry,
    d: DeviceIdx,
    live: &crate::core::snapshot::DeviceNow,
) -> DeviceHealth {
    DeviceHealth {
        device: registry.devices[d.get()].id.clone(),
        last_received: live.last_received,
        period: None,
        missing_reports: live.missing_reports,
        clock_skew: None,
        last_seq_jump: live.last_seq_jump,
        lost: live.lost,
    }
}

/// `rows` converted and grouped by their space's index; rows of unknown spaces are dropped.
fn by_space<R, T>(
    registry: &Registry,
    rows: &[R],
    space: impl Fn(&R) -> &String,
    convert: impl Fn(&R) -> T,
) -> HashMap<SpaceIdx, Vec<T>> {
    let mut out: HashMap<SpaceIdx, Vec<T>> = HashMap::new();
    for r in rows {
        if let Some(s) = registry.space_idx(space(r).as_str()) {
            out.entry(s).or_default().push(convert(r));
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
        let devices: DeviceTable = devices.into_iter().collect();
        let spaces = vec![SpaceNow::default(); reg.spaces.len()];
        let caps = [cap("canyon", 75.0), cap("nowhere", 50.0)];
        let hazards = [hazard_row("village", "major"), hazard_row("canyon", "odd")];
        let controls = Controls::new(&reg, &caps, &hazards);
        let read = Read {
            spaces: &spaces,
            devices: &devices,
            controls: &controls,
        };
        let owners = Owners::new(&reg);
        let inputs = space_inputs(&reg, &owners, &read, |at| at.is_none(), &every_space(&reg));
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

    #[test]
    fn groups_cover_every_space_once_in_order_within_the_device_budget() {
        let reg = Config::from_toml(REG).unwrap().registry().unwrap();
        let owners = Owners::new(&reg);
        let every = every_space(&reg);
        for budget in [0, 1, 2, 3, 100] {
            let groups: Vec<&[SpaceIdx]> = owners.groups(&every, budget).collect();
            assert_eq!(groups.concat(), every, "budget {budget}");
            for g in &groups {
                let owned: usize = g.iter().map(|&s| owners.of(s).len()).sum();
                assert!(
                    g.len() == 1 || owned <= budget,
                    "budget {budget}: {g:?} owns {owned}"
                );
            }
        }
        assert_eq!(owners.groups(&every, 100).count(), 1);
        assert_eq!(owners.groups(&[], 100).count(), 0);
    }
}

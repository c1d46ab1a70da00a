//! The partition plan, without I/O: where each unit (and so each space and device) goes, which
//! topics a partition subscribes, what a new map would move, when an instance is ready, and how
//! a derived space (a county root nobody counts) adds up from its parts. `mod.rs` holds the
//! locks, the database and the live view around these decisions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use super::{PartitionConfig, PartitionError};
use crate::core::business_day;
use crate::core::snapshot::SpaceNow;
use crate::ids::SpaceIdx;
use crate::registry::Registry;

/// The partition a unit goes to: rendezvous (highest-random-weight) hashing. Every instance
/// computes the same answer from the id alone, and going from `count` to `count + 1` moves only
/// the units the new partition wins (about 1 in `count + 1`), never one between old partitions.
pub fn place(unit: &str, count: u32) -> u32 {
    let h = fnv1a(unit.as_bytes());
    (0..count.max(1))
        .max_by_key(|&p| (mix(h ^ mix(u64::from(p) + 1)), std::cmp::Reverse(p)))
        .unwrap_or(0)
}

/// FNV-1a: stable across Rust versions and machines (std's hasher is neither promised).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where every space of a registry goes.
#[derive(Debug, Clone)]
pub struct PartitionMap {
    pub count: u32,
    /// Each space's partition (its unit's).
    pub partition: Vec<u32>,
    /// Spaces that no partition counts: their figures are the sum of [`PartitionMap::parts`].
    pub derived: Vec<bool>,
    /// For each derived space, the spaces that add up to it (those whose devices' roll-up would
    /// have reached it: the county's scenic areas).
    pub parts: Vec<(SpaceIdx, Vec<SpaceIdx>)>,
    /// Each unit's id and partition: what the fence compares.
    pub units: Vec<(String, u32)>,
}

impl PartitionMap {
    pub fn build(reg: &Registry, cfg: &PartitionConfig) -> Result<Self, PartitionError> {
        let count = cfg.count;
        if count == 0 || count > 4096 {
            return Err(PartitionError::Config(format!(
                "count = {count}: between 1 and 4096"
            )));
        }
        for n in cfg.run.iter().chain(&cfg.standby) {
            if *n >= count {
                return Err(PartitionError::Config(format!(
                    "partition {n} does not exist (count = {count}: 0 … {})",
                    count - 1
                )));
            }
        }
        // A unit is a space directly below a root, or a root itself.
        let unit_of = |s: SpaceIdx| -> SpaceIdx {
            let mut cur = s;
            while let Some(p) = reg.space(cur).parent {
                if reg.space(p).parent.is_none() {
                    return cur;
                }
                cur = p;
            }
            cur
        };
        for (id, n) in &cfg.assign {
            let Some(s) = reg.space_idx(id) else {
                return Err(PartitionError::Config(format!("assign: no space {id:?}")));
            };
            if unit_of(s) != s {
                return Err(PartitionError::Config(format!(
                    "assign: {id:?} is inside {:?}; only an area (a child of the root) or the root is placed",
                    reg.space(unit_of(s)).id.as_str()
                )));
            }
            if *n >= count {
                return Err(PartitionError::Config(format!(
                    "assign: {id:?} = {n}, but count = {count}"
                )));
            }
        }
        let mut unit_partition: BTreeMap<SpaceIdx, u32> = BTreeMap::new();
        let partition: Vec<u32> = reg
            .spaces
            .iter()
            .map(|s| {
                let u = unit_of(s.idx);
                *unit_partition.entry(u).or_insert_with(|| {
                    let id = reg.space(u).id.as_str();
                    cfg.assign
                        .get(id)
                        .copied()
                        .unwrap_or_else(|| place(id, count))
                })
            })
            .collect();
        // A root that devices of its units roll up into is shared by every partition: no one
        // counts it, readers add up its parts.
        let mut derived = vec![false; reg.spaces.len()];
        let mut parts: BTreeMap<SpaceIdx, Vec<SpaceIdx>> = BTreeMap::new();
        for d in &reg.devices {
            for w in reg.targets(d.idx).windows(2) {
                let (part, up) = (w[0], w[1]);
                if reg.space(up).parent.is_none() {
                    derived[up.get()] = true;
                    let v = parts.entry(up).or_default();
                    if !v.contains(&part) {
                        v.push(part);
                    }
                }
            }
        }
        let units = unit_partition
            .iter()
            .map(|(u, p)| (reg.space(*u).id.as_str().to_owned(), *p))
            .collect();
        Ok(Self {
            count,
            partition,
            derived,
            parts: parts.into_iter().collect(),
            units,
        })
    }

    /// Which spaces partition `n` owns (topics, state rows, hazards), derived ones included.
    pub fn owned(&self, n: u32) -> Vec<bool> {
        self.partition.iter().map(|&p| p == n).collect()
    }

    /// The topic filters of partition `n`: its spaces' counts, statuses, hazards and tickets. Topics name
    /// the device's own space, so there is one filter per space, not per area.
    pub fn filters(&self, reg: &Registry, n: u32, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for s in reg
            .spaces
            .iter()
            .filter(|s| self.partition[s.idx.get()] == n)
        {
            let id = s.id.as_str();
            out.push(format!("{prefix}/{id}/+/counts"));
            out.push(format!("{prefix}/{id}/+/status"));
            out.push(format!("{prefix}/{id}/hazard"));
            out.push(format!("{prefix}/{id}/tickets"));
        }
        out
    }
}

/// Where a partition stands on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Held {
    /// No session, or between sessions.
    Down = 0,
    /// Another instance holds it; this one waits to take over.
    Elsewhere = 1,
    /// Claimed and loaded here; the broker session is not up yet.
    Claimed = 2,
    /// Claimed, loaded and subscribed.
    Connected = 3,
}

impl Held {
    pub(super) fn of(v: u8) -> Held {
        match v {
            1 => Held::Elsewhere,
            2 => Held::Claimed,
            3 => Held::Connected,
            _ => Held::Down,
        }
    }

    pub(super) fn here(self) -> bool {
        matches!(self, Held::Claimed | Held::Connected)
    }
}

/// Ready: every partition in `run` is here and subscribed, or held by another instance.
/// Broker: every partition held here is subscribed (vacuously true on a pure standby).
pub(super) fn flags(held: &[Held], runs: &[bool]) -> (bool, bool) {
    let ready = held
        .iter()
        .zip(runs)
        .all(|(h, run)| !run || matches!(h, Held::Connected | Held::Elsewhere));
    let broker = held.iter().all(|h| *h != Held::Claimed);
    (ready, broker)
}

/// The units a map moves away from the stored one, as `unit: pA → pB`. Units new to the
/// stored map move nothing.
pub fn moved_units(units: &[(String, u32)], stored: &HashMap<String, i32>) -> Vec<String> {
    units
        .iter()
        .filter_map(|(u, p)| {
            let was = *stored.get(u)?;
            (i64::from(was) != i64::from(*p)).then(|| format!("{u}: p{was} → p{p}"))
        })
        .collect()
}

/// The fence's verdict on a map that moves `moved` while `others` sessions hold partitions:
/// `Ok(None)` moves nothing, `Ok(Some(summary))` is adopted (everything else was stopped),
/// `Err` refuses (the same area would be counted by two partitions).
pub fn fence(moved: &[String], others: i64) -> Result<Option<String>, PartitionError> {
    if moved.is_empty() {
        return Ok(None);
    }
    let summary = format!(
        "{} unit(s) move, e.g. {}",
        moved.len(),
        moved[..moved.len().min(3)].join(", ")
    );
    if others > 0 {
        Err(PartitionError::Fence(summary))
    } else {
        Ok(Some(summary))
    }
}

/// A derived space's day, highest sum that day, and when it was seen.
pub type Peak = (NaiveDate, u64, DateTime<Utc>);

/// Each derived space as the sum of its parts' figures for their current day. Entries, exits,
/// drift and corrections add up exactly (so `occupancy = entries − exits + drift + corrections`
/// still holds); the peak is the highest sum seen today, kept in `peaks` between calls.
pub fn derived_figures(
    reg: &Registry,
    map: &PartitionMap,
    spaces: &[SpaceNow],
    peaks: &mut HashMap<SpaceIdx, Peak>,
    now: DateTime<Utc>,
) -> Vec<(SpaceIdx, SpaceNow)> {
    let mut out = Vec::with_capacity(map.parts.len());
    for (d, parts) in &map.parts {
        let day = business_day(reg.tz, reg.space(*d).opens_at, now);
        let mut sum = SpaceNow::default();
        let mut any = false;
        for &p in parts {
            let part = &spaces[p.get()];
            if part.day != Some(business_day(reg.tz, reg.space(p).opens_at, now)) {
                continue; // yesterday's figures of a quiet area are not today's
            }
            any = true;
            sum.occupancy += part.occupancy;
            sum.entries_today += part.entries_today;
            sum.exits_today += part.exits_today;
            sum.drift_today += part.drift_today;
            sum.corrected_today += part.corrected_today;
            sum.last_report = sum.last_report.max(part.last_report);
        }
        if any {
            sum.day = Some(day);
            let peak = peaks.entry(*d).or_insert((day, 0, now));
            if peak.0 != day {
                *peak = (day, 0, now);
            }
            if sum.occupancy > peak.1 || peak.1 == 0 {
                *peak = (day, sum.occupancy, now);
            }
            sum.peak_today = peak.1;
            sum.peak_at = Some(peak.2);
        }
        out.push((*d, sum));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use chrono::TimeZone;

    /// A county with `areas` scenic areas, each with a zone, a car park and devices in each.
    fn county(areas: usize, assign: &str) -> (Registry, PartitionConfig) {
        let mut t = String::from(
            "[[spaces]]\nid = \"county\"\nkind = \"county\"\nname_zh = \"县\"\nname_en = \"C\"\n\
             [[spaces]]\nid = \"hub\"\nkind = \"hub\"\nparent = \"county\"\nname_zh = \"集散\"\nname_en = \"H\"\n\
             [[devices]]\nid = \"hub-gate\"\nspace = \"hub\"\nkind = \"gate\"\n",
        );
        for a in 0..areas {
            t.push_str(&format!(
                "[[spaces]]\nid = \"a{a}\"\nkind = \"scenic_area\"\nparent = \"county\"\nname_zh = \"景\"\nname_en = \"A\"\n\
                 [[spaces]]\nid = \"a{a}-z\"\nkind = \"zone\"\nparent = \"a{a}\"\nname_zh = \"区\"\nname_en = \"Z\"\n\
                 [[spaces]]\nid = \"a{a}-p\"\nkind = \"car_park\"\nparent = \"a{a}\"\nname_zh = \"停\"\nname_en = \"P\"\n\
                 [[devices]]\nid = \"a{a}-cam\"\nspace = \"a{a}-z\"\nkind = \"camera\"\n\
                 [[devices]]\nid = \"a{a}-bar\"\nspace = \"a{a}-p\"\nkind = \"vehicle_counter\"\n"
            ));
        }
        t.push_str(&format!("[partition]\ncount = 3\n{assign}\n"));
        let cfg = Config::from_toml(&t).unwrap();
        (cfg.registry().unwrap(), cfg.partition.clone().unwrap())
    }

    #[test]
    fn placement_is_deterministic_and_spread() {
        let ids: Vec<String> = (0..3000).map(|i| format!("area-{i}")).collect();
        let mut per = [0u32; 3];
        for id in &ids {
            let p = place(id, 3);
            assert_eq!(p, place(id, 3));
            per[p as usize] += 1;
        }
        // Pinned values: a change of hash would silently move every area of a running county.
        assert_eq!(
            [place("canyon", 3), place("village", 3), place("lake", 3)],
            PINNED
        );
        for n in per {
            assert!((900..=1100).contains(&n), "uneven spread {per:?}");
        }
    }

    const PINNED: [u32; 3] = [2, 2, 0];

    #[test]
    fn adding_a_partition_moves_only_units_it_wins() {
        let ids: Vec<String> = (0..3000).map(|i| format!("area-{i}")).collect();
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (place(id, 4), place(id, 5));
            if before != after {
                assert_eq!(after, 4, "{id} moved between old partitions");
                moved += 1;
            }
        }
        // About a fifth of the units go to the new partition, no more.
        assert!((450..=750).contains(&moved), "{moved} moved");
    }

    #[test]
    fn every_space_and_device_follows_its_area() {
        let (reg, cfg) = county(20, "");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        for s in &reg.spaces {
            let mut unit = s.idx;
            while let Some(p) = reg.space(unit).parent {
                if reg.space(p).parent.is_none() {
                    break;
                }
                unit = p;
            }
            assert_eq!(map.partition[s.idx.get()], map.partition[unit.get()]);
        }
        // Each space is owned by exactly one partition.
        let owned: Vec<Vec<bool>> = (0..3).map(|n| map.owned(n)).collect();
        for s in 0..reg.spaces.len() {
            assert_eq!(owned.iter().filter(|o| o[s]).count(), 1);
        }
        // Every partition gets some of the 20 areas.
        for o in &owned {
            assert!(o.iter().filter(|x| **x).count() >= 3);
        }
    }

    #[test]
    fn county_is_derived_from_its_areas_and_nobody_counts_it() {
        let (reg, cfg) = county(6, "");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        let county = reg.space_idx("county").unwrap();
        assert!(map.derived[county.get()]);
        assert_eq!(map.derived.iter().filter(|d| **d).count(), 1);
        let (d, parts) = &map.parts[0];
        assert_eq!(*d, county);
        let mut ids: Vec<&str> = parts.iter().map(|p| reg.space(*p).id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["a0", "a1", "a2", "a3", "a4", "a5"]);
        for n in 0..3 {
            let r = reg.restricted(&map.owned(n), &map.derived);
            for d in &r.devices {
                assert!(
                    !r.targets(d.idx).contains(&county),
                    "{} still counts the county",
                    d.id
                );
                if r.device_idx(d.id.as_str()).is_some() {
                    assert!(!r.targets(d.idx).is_empty());
                    assert!(r.targets(d.idx).iter().all(|t| map.partition[t.get()] == n));
                }
            }
        }
        // The camera of a zone still counts in its zone and area, in its own partition.
        let cam = reg.device_idx("a0-cam").unwrap();
        let n = map.partition[cam.get()];
        let r = reg.restricted(&map.owned(n), &map.derived);
        let t: Vec<&str> = r
            .targets(cam)
            .iter()
            .map(|s| r.space(*s).id.as_str())
            .collect();
        assert_eq!(t, ["a0-z", "a0"]);
    }

    #[test]
    fn a_partition_answers_only_for_its_own_ids_and_topics() {
        let (reg, cfg) = county(6, "assign = { a0 = 1, hub = 2 }");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        let r1 = reg.restricted(&map.owned(1), &map.derived);
        assert!(r1.device_idx("a0-cam").is_some());
        assert!(r1.space_idx("a0-p").is_some());
        assert!(r1.device_idx("hub-gate").is_none());
        let f = map.filters(&reg, 1, "vf");
        assert!(f.contains(&"vf/a0-z/+/counts".to_string()));
        assert!(f.contains(&"vf/a0/hazard".to_string()));
        assert!(!f.iter().any(|t| t.starts_with("vf/hub/")));
        let f2 = map.filters(&reg, 2, "vf");
        assert!(f2.contains(&"vf/hub/+/counts".to_string()));
        // Indices are the global ones, so a partition's core writes into the shared live view.
        assert_eq!(r1.spaces.len(), reg.spaces.len());
        assert_eq!(r1.device_idx("a0-cam"), reg.device_idx("a0-cam"));
    }

    #[test]
    fn bad_partition_sections_are_refused() {
        for (assign, want) in [
            ("assign = { a0-z = 1 }", "inside"),
            ("assign = { nowhere = 1 }", "no space"),
            ("assign = { a0 = 3 }", "count = 3"),
            ("run = [0, 5]", "does not exist"),
        ] {
            let (reg, cfg) = county(2, assign);
            let e = PartitionMap::build(&reg, &cfg).unwrap_err().to_string();
            assert!(e.contains(want), "{assign}: {e}");
        }
    }

    #[test]
    fn ready_waits_for_every_partition_it_runs() {
        use Held::*;
        let runs = [true, false, true];
        assert_eq!(flags(&[Connected, Down, Elsewhere], &runs), (true, true));
        assert_eq!(flags(&[Claimed, Down, Connected], &runs), (false, false));
        assert_eq!(flags(&[Down, Connected, Connected], &runs), (false, true));
        // A pure standby: ready and "connected" while it holds nothing.
        assert_eq!(flags(&[Elsewhere, Down], &[false, false]), (true, true));
    }

    #[test]
    fn a_map_that_moves_units_is_refused_while_others_hold_partitions() {
        let units = vec![
            ("a".to_owned(), 0),
            ("b".to_owned(), 1),
            ("new".to_owned(), 2),
        ];
        let stored: HashMap<String, i32> = [("a".to_owned(), 0), ("b".to_owned(), 2)].into();
        let moved = moved_units(&units, &stored);
        assert_eq!(moved, ["b: p2 → p1"]);
        assert!(
            matches!(fence(&moved, 1), Err(PartitionError::Fence(s)) if s.contains("b: p2 → p1"))
        );
        assert_eq!(
            fence(&moved, 0).unwrap().as_deref(),
            Some("1 unit(s) move, e.g. b: p2 → p1")
        );
        assert_eq!(fence(&[], 5).unwrap(), None);
    }

    #[test]
    fn a_derived_county_adds_up_todays_parts_and_keeps_its_peak() {
        let (reg, cfg) = county(2, "");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        let root = reg.space_idx("county").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap();
        let today = business_day(reg.tz, reg.space(root).opens_at, now);
        let mut spaces = vec![SpaceNow::default(); reg.spaces.len()];
        let part = |occ, ent, ex, drift, corr| SpaceNow {
            day: Some(today),
            occupancy: occ,
            entries_today: ent,
            exits_today: ex,
            drift_today: drift,
            corrected_today: corr,
            ..SpaceNow::default()
        };
        spaces[reg.space_idx("a0").unwrap().get()] = part(10, 15, 6, 1, 0);
        spaces[reg.space_idx("a1").unwrap().get()] = part(5, 9, 2, 0, -2);
        // Yesterday's figures of a quiet area are left out.
        spaces[reg.space_idx("hub").unwrap().get()] = SpaceNow {
            day: today.pred_opt(),
            occupancy: 99,
            ..SpaceNow::default()
        };
        let mut peaks = HashMap::new();
        let out = derived_figures(&reg, &map, &spaces, &mut peaks, now);
        let (d, sum) = out.iter().find(|(d, _)| *d == root).copied().unwrap();
        assert_eq!(d, root);
        assert_eq!(
            (sum.occupancy, sum.entries_today, sum.exits_today),
            (15, 24, 8)
        );
        assert_eq!((sum.drift_today, sum.corrected_today), (1, -2));
        assert_eq!(
            sum.occupancy as i64,
            (sum.entries_today as i64) - (sum.exits_today as i64)
                + sum.drift_today as i64
                + sum.corrected_today
        );
        assert_eq!((sum.peak_today, sum.peak_at), (15, Some(now)));
        // Fewer inside later: the peak stays.
        spaces[reg.space_idx("a0").unwrap().get()] = part(2, 15, 14, 1, 0);
        let later = now + chrono::Duration::hours(1);
        let out = derived_figures(&reg, &map, &spaces, &mut peaks, later);
        let sum = out.iter().find(|(d, _)| *d == root).unwrap().1;
        assert_eq!(
            (sum.occupancy, sum.peak_today, sum.peak_at),
            (7, 15, Some(now))
        );
    }
}

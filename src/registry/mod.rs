//! The validated registry: the county's space tree and its devices, resolved to dense indices.
//! `Registry::build` reports every problem in a config at once, each with its location, which is
//! what `visitorflow check-config` prints.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

use chrono::NaiveTime;
use chrono_tz::Tz;

mod config;
mod csv;
mod device;
mod index;

use crate::ids::{DeviceId, DeviceIdx, SpaceId, SpaceIdx};
pub use config::{
    CountyConfig, DeviceConfig, DeviceKind, Direction, LineConfig, PayloadFormat, PollConfig,
    RegistryConfig, SpaceConfig, SpaceKind,
};
pub use csv::COLUMNS as CSV_COLUMNS;
use device::Devices;
pub use device::Origin;
use index::DeviceIndex;

/// What a space counts: people or vehicles. Counts never roll up across units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    People,
    Vehicles,
}

#[derive(Debug, Clone)]
pub struct Space {
    pub idx: SpaceIdx,
    pub id: SpaceId,
    pub kind: SpaceKind,
    pub parent: Option<SpaceIdx>,
    pub children: Vec<SpaceIdx>,
    pub name_zh: String,
    pub name_en: String,
    pub instant_capacity: Option<u32>,
    pub daily_capacity: Option<u32>,
    pub opens_at: NaiveTime,
    pub unit: Unit,
    /// True when devices are bound to this space itself; otherwise its figures are its parts' sum.
    pub measured: bool,
    /// Spaces whose counts the reports of a device bound here change: this space, then each
    /// ancestor that is not measured at its own gates (zone → area → county), stopping at a
    /// change of unit or kind. Kept once per space, not per device (a province has 100,000).
    pub targets: Box<[SpaceIdx]>,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub idx: DeviceIdx,
    pub id: DeviceId,
    pub space: SpaceIdx,
    pub kind: DeviceKind,
    pub format: PayloadFormat,
    pub direction: Direction,
    /// A boxed slice, not a vector: a registry holds 100,000 devices, and a vector's capacity
    /// word and slack are paid by each.
    pub lines: Box<[LineConfig]>,
    /// Hikvision: the camera channel (`None`: 1).
    pub channel: Option<u32>,
    /// SHA-256 of the device's HTTP push secret; `None`: it cannot push over HTTP (boxed: most
    /// devices publish over MQTT and would carry 33 bytes for nothing).
    pub http_sha256: Option<Box<[u8; 32]>>,
    /// Polled devices: where and how often to ask (boxed: ~100 bytes most devices lack).
    pub poll: Option<Box<PollConfig>>,
}

/// 32 bytes from 64 hex digits.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub spaces: Vec<Space>,
    pub devices: Vec<Device>,
    pub tz: Tz,
    space_by_id: HashMap<SpaceId, SpaceIdx>,
    device_by_id: DeviceIndex,
    /// Per space: counted by this registry's ingester (empty: all of them; see `restricted`).
    counted: Vec<bool>,
}

/// One problem found in a config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the registry:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RegistryError(pub Vec<Problem>);

fn space_loc(i: usize, s: &SpaceConfig) -> String {
    format!("spaces[{i}] (id = {:?})", s.id)
}

pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id != "."
        && id != ".."
}

impl Registry {
    /// Validates the registry's sections of the configuration (`[county]`, `[[spaces]]`,
    /// `[[devices]]`).
    pub fn build(
        county: &CountyConfig,
        space_cfgs: &[SpaceConfig],
        device_cfgs: &[DeviceConfig],
    ) -> Result<Self, RegistryError> {
        Self::build_with(county, space_cfgs, device_cfgs, None::<(&str, &[u8])>)
    }

    /// As [`Registry::build`], with more devices read from a CSV (`(name, text)`: its name for
    /// locations, see [`CSV_COLUMNS`]) after the `[[devices]]` tables, one row at a time;
    /// `Config::registry` calls it with the file's sections and `[registry] devices_csv`.
    pub fn build_with(
        county: &CountyConfig,
        space_cfgs: &[SpaceConfig],
        device_cfgs: &[DeviceConfig],
        csv: Option<(&str, impl BufRead)>,
    ) -> Result<Self, RegistryError> {
        let mut problems = Vec::new();
        let mut push =
            |location: String, message: String| problems.push(Problem { location, message });

        let tz: Tz = match county.time_zone.parse() {
            Ok(tz) => tz,
            Err(_) => {
                push(
                    "county.time_zone".into(),
                    format!(
                        "unknown time zone {:?} (use an IANA name such as \"Asia/Shanghai\")",
                        county.time_zone
                    ),
                );
                chrono_tz::Asia::Shanghai
            }
        };

        let mut space_by_id: HashMap<SpaceId, SpaceIdx> = HashMap::new();
        let mut spaces: Vec<Space> = Vec::with_capacity(space_cfgs.len());
        for (i, s) in space_cfgs.iter().enumerate() {
            let loc = space_loc(i, s);
            if !is_valid_id(&s.id) {
                push(
                    loc.clone(),
                    "id must be 1–64 characters of A–Z a–z 0–9 - _ . (it is a topic segment)"
                        .into(),
                );
            }
            let id = SpaceId::new(s.id.as_str());
            if space_by_id.contains_key(&id) {
                push(loc.clone(), format!("duplicate space id {:?}", s.id));
                continue;
            }
            let opens_at = match &s.opens_at {
                None => NaiveTime::MIN,
                Some(t) => NaiveTime::parse_from_str(t, "%H:%M").unwrap_or_else(|_| {
                    push(
                        format!("{loc}.opens_at"),
                        format!("{t:?} is not a time of day HH:MM"),
                    );
                    NaiveTime::MIN
                }),
            };
            for (field, v) in [
                ("instant_capacity", s.instant_capacity),
                ("daily_capacity", s.daily_capacity),
            ] {
                if v == Some(0) {
                    push(
                        format!("{loc}.{field}"),
                        "a capacity must be positive (omit it when unknown)".into(),
                    );
                }
            }
            if s.kind == SpaceKind::County && s.parent.is_some() {
                push(
                    format!("{loc}.parent"),
                    "the county is the root and has no parent".into(),
                );
            }
            let idx = SpaceIdx(spaces.len() as u32);
            space_by_id.insert(id.clone(), idx);
            spaces.push(Space {
                idx,
                id,
                kind: s.kind,
                parent: None,
                children: Vec::new(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
                instant_capacity: s.instant_capacity,
                daily_capacity: s.daily_capacity,
                opens_at,
                unit: if s.kind == SpaceKind::CarPark {
                    Unit::Vehicles
                } else {
                    Unit::People
                },
                measured: false,
                targets: Box::default(),
            });
        }

        // Resolve parents in a second pass so a parent may be declared after its child.
        let mut cfg_of_idx = Vec::with_capacity(spaces.len());
        for (i, s) in space_cfgs.iter().enumerate() {
            let Some(&idx) = space_by_id.get(s.id.as_str()) else {
                continue;
            };
            if cfg_of_idx.len() > idx.get() {
                continue; // a duplicate, already reported
            }
            cfg_of_idx.push(i);
            let loc = space_loc(i, s);
            let Some(parent_id) = &s.parent else {
                if s.kind != SpaceKind::County {
                    push(
                        format!("{loc}.parent"),
                        format!("a {} needs a parent", s.kind.as_str()),
                    );
                }
                continue;
            };
            let Some(&pidx) = space_by_id.get(parent_id.as_str()) else {
                push(
                    format!("{loc}.parent"),
                    format!("unknown parent {parent_id:?}"),
                );
                continue;
            };
            let pkind = spaces[pidx.get()].kind;
            let allowed = match s.kind {
                SpaceKind::County => false,
                SpaceKind::ScenicArea => pkind == SpaceKind::County,
                SpaceKind::Zone => matches!(pkind, SpaceKind::ScenicArea | SpaceKind::Zone),
                SpaceKind::CarPark | SpaceKind::Hub => {
                    matches!(
                        pkind,
                        SpaceKind::County | SpaceKind::ScenicArea | SpaceKind::Hub
                    )
                }
            };
            if !allowed {
                push(
                    format!("{loc}.parent"),
                    format!(
                        "a {} cannot sit under the {} {parent_id:?}",
                        s.kind.as_str(),
                        pkind.as_str()
                    ),
                );
                continue;
            }
            spaces[idx.get()].parent = Some(pidx);
        }
        // Cycles (zone → zone → …) would make roll-ups loop forever.
        for i in 0..spaces.len() {
            let mut seen = 0;
            let mut cur = spaces[i].parent;
            while let Some(p) = cur {
                seen += 1;
                if p.get() == i || seen > spaces.len() {
                    push(
                        space_loc(cfg_of_idx[i], &space_cfgs[cfg_of_idx[i]]),
                        "parents form a cycle".into(),
                    );
                    spaces[i].parent = None;
                    break;
                }
                cur = spaces[p.get()].parent;
            }
        }
        for i in 0..spaces.len() {
            if let Some(p) = spaces[i].parent {
                let idx = spaces[i].idx;
                spaces[p.get()].children.push(idx);
            }
        }
        // A zone cannot hold more than the area (or zone) it lies in.
        for s in &spaces {
            let Some(p) = s.parent else { continue };
            let parent = &spaces[p.get()];
            if s.kind != SpaceKind::Zone {
                continue;
            }
            for (field, mine, theirs) in [
                (
                    "instant_capacity",
                    s.instant_capacity,
                    parent.instant_capacity,
                ),
                ("daily_capacity", s.daily_capacity, parent.daily_capacity),
            ] {
                if let (Some(m), Some(t)) = (mine, theirs)
                    && m > t
                {
                    push(
                        format!(
                            "{}.{field}",
                            space_loc(
                                cfg_of_idx[s.idx.get()],
                                &space_cfgs[cfg_of_idx[s.idx.get()]]
                            )
                        ),
                        format!("{m} exceeds the {t} of its parent {:?}", parent.id.as_str()),
                    );
                }
            }
        }
        let counties = spaces
            .iter()
            .filter(|s| s.kind == SpaceKind::County)
            .count();
        if counties > 1 {
            push(
                "spaces".into(),
                format!("{counties} spaces of kind county; there must be at most one root"),
            );
        }

        let mut devices = Devices::with_capacity(device_cfgs.len());
        for (index, d) in device_cfgs.iter().enumerate() {
            devices.add(
                Origin::Toml { index },
                d,
                &mut spaces,
                &space_by_id,
                &mut problems,
            );
        }
        if let Some((name, reader)) = csv {
            csv::read_devices(
                name,
                reader,
                |origin, d, problems: &mut Vec<Problem>| {
                    devices.add(origin, d, &mut spaces, &space_by_id, problems)
                },
                &mut problems,
            );
        }

        if !problems.is_empty() {
            return Err(RegistryError(problems));
        }
        let Devices {
            list: mut devices,
            by_id: mut device_by_id,
            ..
        } = devices;
        let targets: Vec<Box<[SpaceIdx]>> = (0..spaces.len())
            .map(|s| targets_of(&spaces, SpaceIdx(s as u32)).into_boxed_slice())
            .collect();
        for (s, t) in spaces.iter_mut().zip(targets) {
            s.targets = t;
        }
        // A streamed CSV grows these by doubling; give the slack back.
        devices.shrink_to_fit();
        device_by_id.shrink_to_fit(&devices);
        Ok(Self {
            spaces,
            devices,
            tz,
            space_by_id,
            device_by_id,
            counted: Vec::new(),
        })
    }

    pub fn space(&self, idx: SpaceIdx) -> &Space {
        &self.spaces[idx.get()]
    }

    pub fn device(&self, idx: DeviceIdx) -> &Device {
        &self.devices[idx.get()]
    }

    /// The spaces a report of device `idx` counts in ([`Space::targets`] of its space).
    pub fn targets(&self, idx: DeviceIdx) -> &[SpaceIdx] {
        &self.spaces[self.devices[idx.get()].space.get()].targets
    }

    pub fn space_idx(&self, id: &str) -> Option<SpaceIdx> {
        self.space_by_id.get(id).copied()
    }

    pub fn device_idx(&self, id: &str) -> Option<DeviceIdx> {
        self.device_by_id.get(&self.devices, id)
    }

    /// The registry as one ingest partition sees it (`crate::partition`): same spaces, devices
    /// and indices, but only the spaces `owned` answer to their id, only their devices to theirs
    /// (a report for anything else is refused as unknown), and a device's targets stop at spaces
    /// the partition owns and are not `derived` (summed by readers instead of counted).
    pub fn restricted(&self, owned: &[bool], derived: &[bool]) -> Registry {
        let mut r = self.clone();
        r.space_by_id.retain(|_, s| owned[s.get()]);
        r.device_by_id
            .retain(|d| owned[self.devices[d.get()].space.get()]);
        for sp in &mut r.spaces {
            let kept = sp.targets.iter().copied();
            sp.targets = kept
                .filter(|s| owned[s.get()] && !derived[s.get()])
                .collect();
        }
        r.counted = (0..self.spaces.len())
            .map(|i| owned[i] && !derived[i])
            .collect();
        r
    }

    /// The spaces a head count in `space` corrects: itself and those its counts roll up to, as
    /// for a counter placed in it.
    pub fn rollup(&self, space: SpaceIdx) -> Vec<SpaceIdx> {
        let mut out = targets_of(&self.spaces, space);
        out.retain(|s| self.counted.get(s.get()).copied().unwrap_or(true));
        out
    }
}

/// People counted at a zone's gates are also inside its area, and the area's inside the county,
/// unless that ancestor is measured at its own gates (then counting them again would double).
fn targets_of(spaces: &[Space], own: SpaceIdx) -> Vec<SpaceIdx> {
    let mut out = vec![own];
    let s = &spaces[own.get()];
    if !matches!(s.kind, SpaceKind::Zone | SpaceKind::ScenicArea) {
        return out;
    }
    let mut cur = s.parent;
    while let Some(p) = cur {
        let ps = &spaces[p.get()];
        if !matches!(
            ps.kind,
            SpaceKind::Zone | SpaceKind::ScenicArea | SpaceKind::County
        ) || ps.measured
        {
            break;
        }
        out.push(p);
        cur = ps.parent;
    }
    out
}

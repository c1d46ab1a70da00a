//! One device entry — a `[[devices]]` table or a row of the devices CSV — checked against the
//! spaces and added to the registry. Entries arrive one at a time, so a CSV of 100,000 counters is
//! validated as it is read, never held whole.

use std::collections::{HashMap, HashSet};

use super::index::DeviceIndex;
use super::{
    Device, DeviceConfig, DeviceKind, Direction, LineConfig, PayloadFormat, Problem, Space,
    SpaceKind, is_valid_id, parse_sha256,
};
use crate::ids::{DeviceId, DeviceIdx, SpaceId, SpaceIdx};

/// Where a device entry was written; formatted only when the entry has a problem.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// The `index`-th `[[devices]]` table of the TOML file.
    Toml { index: usize },
    /// Line `line` (1-based, the header is line 1) of the devices CSV `file`.
    Csv { file: &'a str, line: usize },
}

impl Origin<'_> {
    /// The entry's location, as `check-config` prints it (a field is appended as `.field`).
    pub fn at(&self, id: &str) -> String {
        match self {
            Origin::Toml { index } => format!("devices[{index}] (id = {id:?})"),
            Origin::Csv { file, line } => format!("{file}:{line} (id = {id:?})"),
        }
    }
}

/// The devices accepted so far, and their ids.
#[derive(Default)]
pub(super) struct Devices {
    pub list: Vec<Device>,
    pub by_id: DeviceIndex,
    /// Ids of entries refused outright (bound to no space), so a later duplicate is still
    /// reported; every other id seen is in `by_id`.
    refused: HashSet<DeviceId>,
}

impl Devices {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            list: Vec::with_capacity(n),
            by_id: DeviceIndex::with_capacity(n),
            refused: HashSet::new(),
        }
    }

    /// Checks `d` and adds it (unless it is a duplicate or bound to no space), pushing every
    /// problem found. A space with a device becomes `measured`.
    pub fn add(
        &mut self,
        origin: Origin<'_>,
        d: &DeviceConfig,
        spaces: &mut [Space],
        space_by_id: &HashMap<SpaceId, SpaceIdx>,
        problems: &mut Vec<Problem>,
    ) {
        let loc = origin.at(&d.id);
        let mut push =
            |location: String, message: String| problems.push(Problem { location, message });
        if !is_valid_id(&d.id) {
            push(
                loc.clone(),
                "id must be 1–64 characters of A–Z a–z 0–9 - _ . (it is a topic segment)".into(),
            );
        }
        if self.by_id.get(&self.list, d.id.as_str()).is_some()
            || self.refused.contains(d.id.as_str())
        {
            push(loc, format!("duplicate device id {:?}", d.id));
            return;
        }
        let id = DeviceId::new(d.id.as_str());
        let Some(&space) = space_by_id.get(d.space.as_str()) else {
            push(
                format!("{loc}.space"),
                format!("bound to no known space ({:?})", d.space),
            );
            self.refused.insert(id);
            return;
        };
        let skind = spaces[space.get()].kind;
        match (d.kind, skind) {
            (DeviceKind::VehicleCounter, SpaceKind::CarPark) => {}
            (DeviceKind::VehicleCounter, _) => push(
                format!("{loc}.kind"),
                format!(
                    "a vehicle_counter belongs in a car_park, not the {} {:?}",
                    skind.as_str(),
                    d.space
                ),
            ),
            (_, SpaceKind::CarPark) => push(
                format!("{loc}.kind"),
                format!(
                    "a car park counts vehicles: use kind = \"vehicle_counter\" for {:?}",
                    d.id
                ),
            ),
            _ => {}
        }
        match (&d.poll, d.format.polled()) {
            (None, true) => push(
                format!("{loc}.poll"),
                format!(
                    "a {:?} device is polled: give poll = {{ url = \"http://…\" }}",
                    d.format
                ),
            ),
            (Some(_), false) => push(
                format!("{loc}.poll"),
                "only axis_live_sum, dahua_summary and hikvision_counting devices are polled"
                    .into(),
            ),
            (Some(p), true) => {
                let scheme_ok = url::Url::parse(&p.url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !scheme_ok {
                    push(
                        format!("{loc}.poll.url"),
                        format!("{:?}: an http(s) URL with a host", p.url),
                    );
                }
                if !(1..=3600).contains(&p.interval_s) {
                    push(format!("{loc}.poll.interval_s"), "1 to 3600 seconds".into());
                }
                if p.password.is_some() && p.password_file.is_some() {
                    push(
                        format!("{loc}.poll"),
                        "password or password_file, not both".into(),
                    );
                }
            }
            (None, false) => {}
        }
        if d.channel.is_some() && d.format != PayloadFormat::HikvisionIsapi {
            push(
                format!("{loc}.channel"),
                "channel applies to the hikvision_isapi format only".into(),
            );
        }
        let http_sha256 = match d.http_sha256.as_deref().map(parse_sha256) {
            None => None,
            Some(Some(h)) => Some(Box::new(h)),
            Some(None) => {
                push(
                    format!("{loc}.http_sha256"),
                    "not a SHA-256 in hex (64 characters 0-9a-f)".into(),
                );
                None
            }
        };
        match d.format {
            PayloadFormat::Native if !d.lines.is_empty() => push(
                format!("{loc}.lines"),
                "lines do not apply to the native format".into(),
            ),
            PayloadFormat::HikvisionIsapi if d.lines.len() > 1 => push(
                format!("{loc}.lines"),
                "a Hikvision camera pushes each counting region as its own event: one region per device".into(),
            ),
            PayloadFormat::HikvisionIsapi | PayloadFormat::Xovis => {}
            PayloadFormat::AxisLiveSum
            | PayloadFormat::DahuaSummary
            | PayloadFormat::HikvisionCounting
                if !d.lines.is_empty() =>
            {
                push(
                    format!("{loc}.lines"),
                    "a polled counter has no lines to choose".into(),
                )
            }
            PayloadFormat::AxisLiveSum
            | PayloadFormat::DahuaSummary
            | PayloadFormat::HikvisionCounting => {}
            PayloadFormat::MilesightVs13x => {
                for (j, l) in d.lines.iter().enumerate() {
                    if !(1..=4).contains(&l.line) {
                        push(
                            format!("{loc}.lines[{j}]"),
                            format!("line {} does not exist (VS13x has lines 1–4)", l.line),
                        );
                    }
                }
            }
            PayloadFormat::Native => {}
        }
        let lines: Box<[LineConfig]> =
            if d.format == PayloadFormat::MilesightVs13x && d.lines.is_empty() {
                Box::new([LineConfig {
                    line: 1,
                    direction: Direction::Normal,
                }])
            } else {
                d.lines.as_slice().into()
            };
        spaces[space.get()].measured = true;
        let idx = DeviceIdx(self.list.len() as u32);
        self.list.push(Device {
            idx,
            id,
            space,
            kind: d.kind,
            format: d.format,
            direction: d.direction,
            lines,
            channel: d.channel,
            http_sha256,
            poll: d.poll.clone().map(Box::new),
        });
        self.by_id.insert(&self.list, idx);
    }
}

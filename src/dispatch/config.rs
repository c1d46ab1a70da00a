//! The `[dispatch]` section: which distribution centre (hub) runs which shuttle fleet on which
//! routes, which car parks serve which area, and the policy knobs of the advisor. [`DispatchConfig`]
//! is the TOML shape (`Config::dispatch`; its `policy` and fleet entries are the model's own
//! [`PolicyConfig`] and [`FleetConfig`]); [`DispatchModel::build`] checks it against the
//! registry and reports every problem at once, each with its location, like `Registry::build`.
//!
//! Car-park semantics (the advisor applies them):
//! - `routes[].car_parks` are the car parks a shuttle route *needs* (its drop-off has no bus bay of
//!   its own): when every one of them is full the route pauses. A route without car parks has a
//!   dedicated drop-off and never pauses for parking.
//! - An area is served, for self-drive visitors, by the union of its routes' car parks and its
//!   `[[areas]]` extras. When every serving car park is full, self-drive traffic to the area pauses
//!   (drivers are sent to a hub's park-and-ride), but shuttles without car parks of their own keep
//!   running: a full car park says nothing about the room left inside the area.
//! - "Full" means at or above `policy.car_park_full_at` of the car park's capacity, or closed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{Area, DispatchModel, FleetConfig, Hub, Level, PolicyConfig, Route};
use crate::ids::SpaceId;
use crate::registry::SpaceKind;
use crate::registry::{Problem, Registry};

/// `[dispatch]`: the policy, the hubs with their fleets and routes, per-area extras.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub hubs: Vec<HubConfig>,
    #[serde(default)]
    pub areas: Vec<AreaConfig>,
}

impl DispatchConfig {
    /// Parses a stand-alone dispatch section (the `[dispatch]` table of a config, unwrapped).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// One distribution centre (游客集散中心) and its shuttles.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Space id of the hub; its waiting hall is a counted space and its occupancy is the queue.
    pub hub: String,
    #[serde(default)]
    pub fleet: Vec<FleetConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Scenic area the shuttle goes to.
    pub area: String,
    /// One-way travel time in minutes.
    pub travel_min: u32,
    /// Car parks the route needs at its drop-off (they also serve the area's self-drive traffic).
    #[serde(default)]
    pub car_parks: Vec<String>,
    /// Share of the hub's queue heading here when the queue per destination is unknown. Give it on
    /// every route of the hub or on none (then the queue is split equally).
    #[serde(default)]
    pub share: Option<f64>,
}

/// Per-area extras: car parks that serve the area's self-drive visitors but no shuttle route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaConfig {
    pub area: String,
    #[serde(default)]
    pub car_parks: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the dispatch configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct DispatchConfigError(pub Vec<Problem>);

struct Check<'a> {
    registry: &'a Registry,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn push(&mut self, location: impl Into<String>, message: impl fmt::Display) {
        self.problems.push(Problem {
            location: location.into(),
            message: message.to_string(),
        });
    }

    /// The space `id` if it exists and is of `kind`; a located problem otherwise.
    fn space(&mut self, loc: &str, id: &str, kind: SpaceKind) -> Option<SpaceId> {
        let Some(idx) = self.registry.space_idx(id) else {
            self.push(loc, format!("unknown space {id:?}"));
            return None;
        };
        let s = self.registry.space(idx);
        if s.kind != kind {
            self.push(
                loc,
                format!("{id:?} is a {}, not a {}", s.kind.as_str(), kind.as_str()),
            );
            return None;
        }
        Some(s.id.clone())
    }

    fn car_parks(&mut self, loc: &str, ids: &[String]) -> Vec<SpaceId> {
        let mut out: Vec<SpaceId> = Vec::new();
        for (k, c) in ids.iter().enumerate() {
            let l = format!("{loc}.car_parks[{k}]");
            if let Some(id) = self.space(&l, c, SpaceKind::CarPark) {
                if out.contains(&id) {
                    self.push(l, format!("car park {c:?} listed twice"));
                } else {
                    out.push(id);
                }
            }
        }
        out
    }

    fn names(&self, id: &SpaceId) -> (String, String) {
        let s = self
            .registry
            .space(self.registry.space_idx(id.as_str()).expect("checked id"));
        (s.name_zh.clone(), s.name_en.clone())
    }
}

impl DispatchModel {
    pub fn build(cfg: &DispatchConfig, registry: &Registry) -> Result<Self, DispatchConfigError> {
        let mut ck = Check {
            registry,
            problems: Vec::new(),
        };
        check_policy(&mut ck, &cfg.policy);

        let mut areas: BTreeMap<SpaceId, Area> = BTreeMap::new();
        let mut hubs = Vec::with_capacity(cfg.hubs.len());
        let mut seen_hubs = HashSet::new();
        let mut self_drive: Vec<(SpaceId, Vec<SpaceId>)> = Vec::new();
        for (i, h) in cfg.hubs.iter().enumerate() {
            let loc = format!("hubs[{i}] (hub = {:?})", h.hub);
            let hub_id = ck.space(&format!("{loc}.hub"), &h.hub, SpaceKind::Hub);
            if !seen_hubs.insert(h.hub.as_str()) {
                ck.push(loc.clone(), format!("hub {:?} configured twice", h.hub));
            }
            if h.fleet.is_empty() && !h.routes.is_empty() {
                ck.push(
                    format!("{loc}.fleet"),
                    "a hub with routes needs a fleet ([{ vehicles = …, seats = … }])",
                );
            }
            for (j, f) in h.fleet.iter().enumerate() {
                if f.seats == 0 {
                    ck.push(
                        format!("{loc}.fleet[{j}].seats"),
                        "a shuttle needs at least one seat",
                    );
                }
                if f.vehicles == 0 {
                    ck.push(
                        format!("{loc}.fleet[{j}].vehicles"),
                        "zero vehicles: remove the entry instead",
                    );
                }
            }
            let with_share = h.routes.iter().filter(|r| r.share.is_some()).count();
            if with_share != 0 && with_share != h.routes.len() {
                ck.push(
                    format!("{loc}.routes"),
                    "give `share` on every route of the hub or on none",
                );
            }
            let mut routes = Vec::with_capacity(h.routes.len());
            let mut seen_areas = HashSet::new();
            for (j, r) in h.routes.iter().enumerate() {
                let rloc = format!("{loc}.routes[{j}] (area = {:?})", r.area);
                let area = ck.space(&format!("{rloc}.area"), &r.area, SpaceKind::ScenicArea);
                if !seen_areas.insert(r.area.as_str()) {
                    ck.push(
                        rloc.clone(),
                        format!("a second route to {:?} from the same hub", r.area),
                    );
                }
                if r.travel_min == 0 {
                    ck.push(
                        format!("{rloc}.travel_min"),
                        "travel time must be at least one minute",
                    );
                }
                if let Some(s) = r.share
                    && !(s.is_finite() && s > 0.0)
                {
                    ck.push(format!("{rloc}.share"), "a share must be positive");
                }
                let car_parks = ck.car_parks(&rloc, &r.car_parks);
                if let (Some(hub), Some(area)) = (&hub_id, area) {
                    ensure_area(&mut areas, &ck, &area);
                    self_drive.push((area.clone(), car_parks.clone()));
                    routes.push(Route {
                        id: format!("{hub}:{area}"),
                        hub: hub.clone(),
                        area,
                        travel_min: r.travel_min,
                        car_parks,
                        share: r.share.unwrap_or(1.0),
                    });
                }
            }
            let total: f64 = routes.iter().map(|r| r.share).sum();
            if total > 0.0 {
                for r in &mut routes {
                    r.share /= total;
                }
            }
            if let Some(id) = hub_id {
                let (name_zh, name_en) = ck.names(&id);
                // One class per seat count (the ledger tracks vehicles out by seats), largest
                // first: full big buses go before small ones top up the remainder.
                let mut fleet: Vec<FleetConfig> = Vec::new();
                for f in h.fleet.iter().filter(|f| f.seats > 0) {
                    match fleet.iter_mut().find(|g| g.seats == f.seats) {
                        Some(g) => g.vehicles += f.vehicles,
                        None => fleet.push(*f),
                    }
                }
                fleet.sort_by_key(|f| std::cmp::Reverse(f.seats));
                hubs.push(Hub {
                    id,
                    name_zh,
                    name_en,
                    fleet,
                    routes,
                });
            }
        }
        let mut seen_extra = HashSet::new();
        for (i, a) in cfg.areas.iter().enumerate() {
            let loc = format!("areas[{i}] (area = {:?})", a.area);
            if !seen_extra.insert(a.area.as_str()) {
                ck.push(loc.clone(), format!("area {:?} configured twice", a.area));
            }
            let area = ck.space(&format!("{loc}.area"), &a.area, SpaceKind::ScenicArea);
            let car_parks = ck.car_parks(&loc, &a.car_parks);
            if let Some(area) = area {
                ensure_area(&mut areas, &ck, &area);
                self_drive.push((area, car_parks));
            }
        }
        for (area, parks) in self_drive {
            let entry = areas.get_mut(&area).expect("entered above");
            for p in parks {
                if !entry.car_parks.contains(&p) {
                    entry.car_parks.push(p);
                }
            }
        }
        if !ck.problems.is_empty() {
            return Err(DispatchConfigError(ck.problems));
        }
        Ok(Self {
            policy: cfg.policy.clone(),
            hubs,
            areas,
        })
    }
}

fn ensure_area(areas: &mut BTreeMap<SpaceId, Area>, ck: &Check<'_>, id: &SpaceId) {
    if !areas.contains_key(id) {
        let (name_zh, name_en) = ck.names(id);
        areas.insert(
            id.clone(),
            Area {
                id: id.clone(),
                name_zh,
                name_en,
                car_parks: Vec::new(),
            },
        );
    }
}

fn check_policy(ck: &mut Check<'_>, p: &PolicyConfig) {
    let share = |v: f64| v.is_finite() && v > 0.0 && v <= 1.0;
    if !share(p.target_utilisation) {
        ck.push(
            "policy.target_utilisation",
            format!("{} is not a share in (0, 1]", p.target_utilisation),
        );
    }
    if !share(p.car_park_full_at) {
        ck.push(
            "policy.car_park_full_at",
            format!("{} is not a share in (0, 1]", p.car_park_full_at),
        );
    }
    if !(p.min_fill.is_finite() && (0.0..=1.0).contains(&p.min_fill)) {
        ck.push(
            "policy.min_fill",
            format!("{} is not a share in [0, 1]", p.min_fill),
        );
    }
    if !(p.diversion_overhead_min.is_finite() && p.diversion_overhead_min >= 0.0) {
        ck.push(
            "policy.diversion_overhead_min",
            "must be a non-negative number of minutes",
        );
    }
    if p.max_alternatives == 0 {
        ck.push("policy.max_alternatives", "offer at least one alternative");
    }
    if p.pause_at == Level::Normal {
        ck.push(
            "policy.pause_at",
            "pausing at \"normal\" would never send a shuttle",
        );
    }
}

//! The dispatch model the advisor runs on: which distribution centre (hub) runs which shuttle
//! fleet on which routes, which car parks serve which area, and the policy knobs. Everything else
//! in `dispatch` reads it; it imports nothing of `dispatch` itself. `config` builds it from the
//! `[dispatch]` section and checks it against the registry ([`DispatchModel::build`]).
//!
//! [`PolicyConfig`] and [`FleetConfig`] are also TOML shapes of `[dispatch]`: the model carries them
//! as written (fleet entries merged per seat count), so they live here and `config` reads into them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::SpaceId;

/// Capacity level of an area: the rule engine's (blue 60%, yellow 80%, orange 90%, red 100% of
/// the effective instantaneous capacity by default).
pub use crate::rules::Level;

/// How the advisor trades crowding against waiting.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Shuttles may fill an area up to this share of its effective instantaneous capacity. Below 1
    /// so walk-ins, forecast error and the last bus never push it to red (100%).
    pub target_utilisation: f64,
    /// Routes to an area at or above this level pause (orange = 90% in the rule engine's ladder).
    pub pause_at: Level,
    /// A car park counts as full at this share of its capacity: drivers do not find the last bays.
    pub car_park_full_at: f64,
    /// A partly filled vehicle leaves only with at least this share of its seats taken…
    pub min_fill: f64,
    /// …or once its first passenger has waited this long (minutes).
    pub max_hold_min: u32,
    /// Minutes a shuttle spends at the destination before driving back empty.
    pub turnaround_min: u32,
    /// Longest list of alternatives offered for one diversion.
    pub max_alternatives: usize,
    /// Fixed cost of any diversion in the score, in minutes (see `advisor` for the score).
    pub diversion_overhead_min: f64,
    /// `diff` ignores changes of a route's `send_now` up to this many vehicles.
    pub diff_vehicle_tolerance: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            target_utilisation: 0.9,
            pause_at: Level::Orange,
            car_park_full_at: 0.95,
            min_fill: 0.5,
            max_hold_min: 15,
            turnaround_min: 10,
            max_alternatives: 3,
            diversion_overhead_min: 30.0,
            diff_vehicle_tolerance: 1,
        }
    }
}

/// `vehicles` shuttles of `seats` seats each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    pub vehicles: u32,
    pub seats: u32,
}

/// The validated model the advisor runs on.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchModel {
    pub policy: PolicyConfig,
    pub hubs: Vec<Hub>,
    /// Every area on a route or in `[[areas]]`, by id.
    pub areas: BTreeMap<SpaceId, Area>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hub {
    pub id: SpaceId,
    pub name_zh: String,
    pub name_en: String,
    /// Vehicle classes, largest seats first (the order the advisor fills them in).
    pub fleet: Vec<FleetConfig>,
    pub routes: Vec<Route>,
}

impl Hub {
    pub fn vehicles(&self) -> u32 {
        self.fleet.iter().map(|f| f.vehicles).sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// `"{hub}:{area}"`: stable across restarts and unique (one route per hub and area).
    pub id: String,
    pub hub: SpaceId,
    pub area: SpaceId,
    pub travel_min: u32,
    pub car_parks: Vec<SpaceId>,
    /// Normalised demand share within the hub (sums to 1 over its routes).
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Area {
    pub id: SpaceId,
    pub name_zh: String,
    pub name_en: String,
    /// Car parks serving self-drive visitors: every route's car parks plus the area's extras.
    pub car_parks: Vec<SpaceId>,
}

impl DispatchModel {
    pub fn hub(&self, id: &str) -> Option<&Hub> {
        self.hubs.iter().find(|h| h.id.as_str() == id)
    }

    pub fn area(&self, id: &str) -> Option<&Area> {
        self.areas.get(id)
    }

    /// Every route, hub by hub.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.hubs.iter().flat_map(|h| h.routes.iter())
    }
}

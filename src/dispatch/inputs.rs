//! What the advisor reads ([`Inputs`]): plain figures the wiring fills from the live view, the rule
//! engine's view of each area and the [`OnRoad`] ledger, keyed by space id; and the default level
//! ladder for callers without the rule engine (the simulation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ledger::OnRoad;
use super::model::Level;
use crate::ids::SpaceId;

/// Everything the advisor reads. Areas, car parks and hubs are keyed by space id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inputs {
    pub areas: BTreeMap<SpaceId, AreaInput>,
    pub car_parks: BTreeMap<SpaceId, CarParkInput>,
    pub hubs: BTreeMap<SpaceId, HubInput>,
    /// Shuttles on their way (visitors heading to each area, vehicles away from each hub).
    pub on_road: OnRoad,
}

/// One area's live figures and the rule engine's view of it. An area on a route without an entry
/// has no live figures: its routes pause (`no_data`), since nothing says it has room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AreaInput {
    pub occupancy: u32,
    /// Effective instantaneous capacity (after any reduction by the rule engine); `None` unknown.
    pub capacity: Option<u32>,
    pub level: Level,
    /// Forecast minutes until red at the current net inflow; `None` when not heading to red.
    pub minutes_to_red: Option<f64>,
    /// Forecast net inflow other than the shuttles in the ledger (people per minute): the gate
    /// figure minus `OnRoad::arrived_to` over the same window. When absent it is derived from
    /// `minutes_to_red` (room to red ÷ minutes), which counts arriving shuttles twice (they are
    /// also on the road) and so errs on the safe side. Outflow (negative) is not credited.
    pub net_inflow_per_min: Option<f64>,
    /// Closed by a hazard (rule engine): nothing goes there, its visitors are diverted.
    pub closed: bool,
}

/// A car park's live figures (vehicles). No entry, or no capacity, means it is never judged full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CarParkInput {
    pub occupancy: u32,
    pub capacity: Option<u32>,
    pub closed: bool,
}

/// A hub's waiting hall.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubInput {
    /// People in the waiting hall (the hub's live occupancy).
    pub queue: u32,
    /// People waiting per destination when ticketing knows it. Empty: the queue is split by the
    /// routes' `share` (equally without shares).
    pub by_area: BTreeMap<SpaceId, AreaQueue>,
    /// Minutes the longest-waiting person in the hall has waited, when known.
    pub oldest_wait_min: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AreaQueue {
    pub people: u32,
    pub oldest_wait_min: Option<u32>,
}

/// The default ladder applied to raw figures, for callers without the rule engine (the
/// simulation).
pub fn level_from_utilisation(occupancy: u32, capacity: u32) -> Level {
    if capacity == 0 {
        return Level::Red;
    }
    let u = f64::from(occupancy) / f64::from(capacity);
    match u {
        u if u >= 1.0 => Level::Red,
        u if u >= 0.9 => Level::Orange,
        u if u >= 0.8 => Level::Yellow,
        u if u >= 0.6 => Level::Blue,
        _ => Level::Normal,
    }
}

//! What the advisor returns: per hub ([`HubAdvice`]), the shuttles to send, the routes held or
//! paused, the diversions with their ranked alternatives and the hub-wide hold, each with its
//! [`Reason`] (both languages and a code for machines) and the [`Explanation`] figures it came
//! from. This is the shape the API, the webhooks, the ledger and `diff` see.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::Level;
use crate::ids::SpaceId;

/// What one hub should do now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubAdvice {
    pub hub: SpaceId,
    pub at: DateTime<Utc>,
    /// People in the waiting hall.
    pub queue: u32,
    /// Vehicles at the hub before this advice (fleet minus vehicles out on round trips).
    pub vehicles_available: u32,
    pub shuttles: Vec<ShuttleAdvice>,
    pub held: Vec<HeldRoute>,
    pub paused: Vec<PausedRoute>,
    pub diversions: Vec<Diversion>,
    /// Set when visitors wait, nothing can go for lack of room and there is no alternative.
    pub hold: Option<Reason>,
}

/// Send `send_now` vehicles with `seats` seats in all, carrying `passengers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShuttleAdvice {
    pub route: String,
    pub area: SpaceId,
    pub send_now: u32,
    pub seats: u32,
    pub passengers: u32,
    pub vehicles: Vec<VehicleUse>,
    pub travel_min: u32,
    pub reason: Reason,
    pub explanation: Explanation,
}

/// `count` vehicles of `seats` seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleUse {
    pub seats: u32,
    pub count: u32,
}

/// Visitors for an open route who cannot go now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRoute {
    pub route: String,
    pub area: SpaceId,
    /// Visitors left waiting for this destination.
    pub waiting: u32,
    pub reason: Reason,
    pub explanation: Explanation,
}

/// Which traffic a pause applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Shuttle,
    SelfDrive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PausedRoute {
    pub route: String,
    pub area: SpaceId,
    pub mode: Mode,
    pub reason: Reason,
    pub explanation: Explanation,
}

/// Visitors heading to `from_area` should go to one of `to` (best first); empty `to`: hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversion {
    pub from_area: SpaceId,
    /// Visitors at this hub waiting for `from_area`.
    pub visitors: u32,
    pub to: Vec<Alternative>,
    pub reason: Reason,
    pub explanation: Explanation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub area: SpaceId,
    pub route: String,
    /// Room left there for this trip, after the shuttles advised in this round.
    pub spare: i64,
    pub travel_min: u32,
    /// See the module docs: visitors absorbable per minute of journey.
    pub score: f64,
    pub reason: Reason,
    pub explanation: Explanation,
}

/// Why, in both languages, with a code for machines (`diff`, dashboards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Shuttles sent within the area's spare.
    Dispatch,
    /// Shuttles sent to an area without a known capacity: not bounded.
    DispatchUnbounded,
    /// Waiting for the last vehicle to fill.
    Filling,
    /// No room for another vehicle in the area for this trip.
    NoSpare,
    /// Every vehicle is out.
    NoVehicles,
    /// Closed by a hazard.
    Closed,
    /// No live figures for the area.
    NoData,
    /// At or above the pause level.
    Level,
    /// Forecast at red before the shuttle arrives.
    RedOnArrival,
    /// Every car park the route needs is full.
    CarParksFull,
    /// Every car park serving the area's self-drive visitors is full; park and ride.
    SelfDriveFull,
    /// Diversion with alternatives.
    Divert,
    /// Diversion without alternatives: wait at the hub.
    NoAlternative,
    /// A ranked alternative.
    Alternative,
    /// Every destination full and nowhere to divert.
    HoldAll,
}

/// The figures an item came from. `spare = ⌊capacity × target⌋ − occupancy − on_road −
/// forecast_inflow` whenever the capacity is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub occupancy: Option<u32>,
    pub capacity: Option<u32>,
    pub spare: Option<i64>,
    /// Visitors on their way by shuttle, plus seats given to nearer routes in this round.
    pub on_road: u32,
    /// Forecast minutes to red.
    pub forecast_min: Option<f64>,
    /// Forecast net inflow during the trip.
    pub forecast_inflow: u32,
    /// Visitors waiting at the hub for this destination.
    pub queue: u32,
    pub level: Option<Level>,
    pub travel_min: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub car_parks: Vec<CarParkFigure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarParkFigure {
    pub car_park: SpaceId,
    pub occupancy: Option<u32>,
    pub capacity: Option<u32>,
    pub full: bool,
}

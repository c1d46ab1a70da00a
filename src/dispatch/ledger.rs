//! The `OnRoad` ledger: shuttles that have left a hub, so the advisor neither sends visitors into
//! room already promised to a bus on the road nor counts a vehicle at home while it is out.
//! A trip carries its visitors toward the area until `arrives` (departure + travel) and keeps its
//! vehicles away from the hub until `back` (a round trip plus the turnaround at the destination).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::advice::{HubAdvice, VehicleUse};
use super::model::{DispatchModel, Route};
use crate::ids::SpaceId;

/// Trips are kept this long after arriving, so [`OnRoad::arrived_to`] covers a forecast window.
pub const KEEP_ARRIVED_MIN: i64 = 60;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnRoad {
    trips: Vec<Trip>,
}

/// One departure of one or more vehicles on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    pub route: String,
    pub hub: SpaceId,
    pub area: SpaceId,
    pub departed: DateTime<Utc>,
    pub arrives: DateTime<Utc>,
    pub back: DateTime<Utc>,
    pub passengers: u32,
    pub vehicles: Vec<VehicleUse>,
}

impl Trip {
    pub fn new(
        route: &Route,
        departed: DateTime<Utc>,
        passengers: u32,
        vehicles: Vec<VehicleUse>,
        turnaround_min: u32,
    ) -> Self {
        let travel = TimeDelta::minutes(i64::from(route.travel_min));
        Self {
            route: route.id.clone(),
            hub: route.hub.clone(),
            area: route.area.clone(),
            departed,
            arrives: departed + travel,
            back: departed + travel * 2 + TimeDelta::minutes(i64::from(turnaround_min)),
            passengers,
            vehicles,
        }
    }
}

impl OnRoad {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, trip: Trip) {
        self.trips.push(trip);
    }

    /// Records every shuttle of `advice` as leaving at `now`: for a caller that follows the advice
    /// as given. A caller that boards fewer visitors records its own [`Trip`]s instead.
    pub fn record_advice(
        &mut self,
        model: &DispatchModel,
        advice: &[HubAdvice],
        now: DateTime<Utc>,
    ) {
        for a in advice {
            let Some(hub) = model.hub(a.hub.as_str()) else {
                continue;
            };
            for s in &a.shuttles {
                if let Some(route) = hub.routes.iter().find(|r| r.id == s.route) {
                    self.record(Trip::new(
                        route,
                        now,
                        s.passengers,
                        s.vehicles.clone(),
                        model.policy.turnaround_min,
                    ));
                }
            }
        }
    }

    /// Visitors travelling to `area` at `now` (departed, not yet arrived).
    pub fn passengers_to(&self, area: &str, now: DateTime<Utc>) -> u32 {
        self.trips
            .iter()
            .filter(|t| t.area.as_str() == area && t.departed <= now && now < t.arrives)
            .map(|t| t.passengers)
            .sum()
    }

    /// Visitors who arrived at `area` by shuttle in `(since, now]`. The rule engine's net inflow is
    /// measured at the gates and so contains them; subtracting them gives the inflow *other than*
    /// shuttles, which is what [`super::inputs::AreaInput::net_inflow_per_min`] should carry, since the
    /// shuttles still coming are already counted on the road.
    pub fn arrived_to(&self, area: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
        self.trips
            .iter()
            .filter(|t| t.area.as_str() == area && since < t.arrives && t.arrives <= now)
            .map(|t| t.passengers)
            .sum()
    }

    /// Vehicles of `seats` seats away from `hub` at `now`.
    pub fn vehicles_out(&self, hub: &str, seats: u32, now: DateTime<Utc>) -> u32 {
        self.trips
            .iter()
            .filter(|t| t.hub.as_str() == hub && t.departed <= now && now < t.back)
            .flat_map(|t| t.vehicles.iter())
            .filter(|v| v.seats == seats)
            .map(|v| v.count)
            .sum()
    }

    /// Forgets trips whose vehicles are back by `now` and that arrived over
    /// [`KEEP_ARRIVED_MIN`] ago.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let keep = TimeDelta::minutes(KEEP_ARRIVED_MIN);
        self.trips
            .retain(|t| t.back > now || t.arrives + keep > now);
    }

    pub fn trips(&self) -> &[Trip] {
        &self.trips
    }
}

//! The pure dispatch advisor: from live figures ([`Inputs`]) and the [`DispatchModel`], what each
//! distribution centre should do now — send how many shuttles where, which routes to pause, where
//! to divert visitors whose destination is full. No I/O and no clock: the same inputs give the same
//! advice, so the caller can run it every minute and `diff` the results.
//!
//! How a route is decided:
//! 1. **Pause** (nothing is sent, visitors are diverted) when the area is closed by a hazard, has no
//!    live figures, is at `policy.pause_at` (orange) or above, will be at red when the shuttle
//!    arrives (`minutes_to_red ≤ travel_min`), or every car park the route needs is full.
//! 2. **Spare** for a trip = ⌊capacity × target_utilisation⌋ − occupancy − on the road − forecast
//!    net inflow during the trip. "On the road" is every hub's passengers already travelling there
//!    (the [`OnRoad`] ledger) plus the seats nearer routes were given in this same call: routes to
//!    one area share its spare, the shortest trip first, since its visitors arrive soonest and its
//!    forecast is the most certain. A farther route gets what is left after its own, longer, inflow.
//! 3. **Send** `⌈demand ÷ seats⌉` vehicles (full big ones first; one vehicle for everyone left when
//!    it would be `min_fill` full), but never more seats than the spare and never more vehicles
//!    than the hub has at home (fleet minus vehicles out on round trips). A last vehicle less than
//!    `min_fill` full waits until its first passenger has waited `max_hold_min`. Whatever cannot
//!    go is **held** with the cause.
//! 4. **Divert** the visitors of a paused route, or of one held for lack of spare, to the hub's other
//!    routes that are open, below `pause_at`, not closed, with a known capacity and room for at
//!    least one of the hub's vehicles. Score (visitors absorbable per minute of journey):
//!    `min(spare, max(visitors, largest seats)) ÷ (travel_min + diversion_overhead_min)` — when
//!    every alternative can take everyone, the nearest wins; when room is short, room wins unless
//!    it is much farther. Ties: shorter travel, more spare, then area id.
//! 5. **Hold everyone** (`HubAdvice::hold`) when visitors wait, nothing can be sent for lack of
//!    room and no diversion has an alternative.
//!
//! An area whose capacity is unknown is not bounded (shuttles follow demand, flagged
//! `dispatch_unbounded`) and is never offered as an alternative: nothing says it has room.
//! Self-drive: when every car park serving an area is full, the hub shows a `self_drive` pause for
//! the area; drivers park at the hub and ride the shuttle while the shuttle route is open, and
//! otherwise follow the shuttle route's diversion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::{DispatchModel, FleetConfig, Hub, PolicyConfig, Route};
use super::ledger::OnRoad;
use crate::ids::SpaceId;

/// Capacity level of an area: the rule engine's (blue 60%, yellow 80%, orange 90%, red 100% of
/// the effective instantaneous capacity by default).
pub use crate::rules::Level;

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

// ---------------------------------------------------------------------------------------------
// Inputs: plain figures the wiring fills from the live view, the rule engine and the ledger.

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

// ---------------------------------------------------------------------------------------------
// Advice

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

// ---------------------------------------------------------------------------------------------

/// One area's view for this call.
struct AreaView<'a> {
    input: Option<&'a AreaInput>,
    on_road: u32,
    /// Forecast net inflow, people per minute, never negative.
    rate: f64,
    names: (&'a str, &'a str),
}

impl AreaView<'_> {
    fn inflow(&self, travel_min: u32) -> u32 {
        (self.rate * f64::from(travel_min)).ceil() as u32
    }

    /// Spare for a trip of `travel_min`, with `committed` seats already given this round.
    fn spare(&self, travel_min: u32, target: f64, committed: u32) -> Option<i64> {
        let a = self.input?;
        let cap = a.capacity?;
        let room = (f64::from(cap) * target).floor() as i64;
        Some(
            room - i64::from(a.occupancy)
                - i64::from(self.on_road)
                - i64::from(committed)
                - i64::from(self.inflow(travel_min)),
        )
    }

    fn explain(
        &self,
        p: &PolicyConfig,
        travel_min: u32,
        committed: u32,
        queue: u32,
    ) -> Explanation {
        Explanation {
            occupancy: self.input.map(|a| a.occupancy),
            capacity: self.input.and_then(|a| a.capacity),
            spare: self.spare(travel_min, p.target_utilisation, committed),
            on_road: self.on_road + committed,
            forecast_min: self.input.and_then(|a| a.minutes_to_red),
            forecast_inflow: self.inflow(travel_min),
            queue,
            level: self.input.map(|a| a.level),
            travel_min,
            car_parks: Vec::new(),
        }
    }
}

fn view<'a>(
    model: &'a DispatchModel,
    inputs: &'a Inputs,
    now: DateTime<Utc>,
) -> BTreeMap<&'a str, AreaView<'a>> {
    model
        .areas
        .values()
        .map(|area| {
            let input = inputs.areas.get(&area.id);
            let rate = input.map_or(0.0, |a| {
                let r = a.net_inflow_per_min.or_else(|| {
                    let (cap, m) = (a.capacity?, a.minutes_to_red?);
                    (m > 0.0).then(|| f64::from(cap.saturating_sub(a.occupancy)) / m)
                });
                r.filter(|r| r.is_finite()).unwrap_or(0.0).max(0.0)
            });
            let v = AreaView {
                input,
                on_road: inputs.on_road.passengers_to(area.id.as_str(), now),
                rate,
                names: (area.name_zh.as_str(), area.name_en.as_str()),
            };
            (area.id.as_str(), v)
        })
        .collect()
}

fn car_parks(ids: &[SpaceId], inputs: &Inputs, full_at: f64) -> Vec<CarParkFigure> {
    ids.iter()
        .map(|id| {
            let c = inputs.car_parks.get(id);
            let capacity = c.and_then(|c| c.capacity);
            let occupancy = c.map(|c| c.occupancy);
            let full = c.is_some_and(|c| {
                c.closed
                    || capacity
                        .is_some_and(|cap| f64::from(c.occupancy) >= f64::from(cap) * full_at)
            });
            CarParkFigure {
                car_park: id.clone(),
                occupancy,
                capacity,
                full,
            }
        })
        .collect()
}

fn all_full(figs: &[CarParkFigure]) -> bool {
    !figs.is_empty() && figs.iter().all(|f| f.full)
}

/// Why a route sends nothing at all, in order of precedence.
#[derive(Debug, Clone, Copy)]
enum Pause {
    NoData,
    Closed,
    Level(Level),
    RedOnArrival(f64),
    CarParksFull,
}

fn pause_of(
    p: &PolicyConfig,
    route: &Route,
    v: &AreaView<'_>,
    parks: &[CarParkFigure],
) -> Option<Pause> {
    let Some(a) = v.input else {
        return Some(Pause::NoData);
    };
    if a.closed {
        return Some(Pause::Closed);
    }
    if a.level >= p.pause_at {
        return Some(Pause::Level(a.level));
    }
    if let Some(m) = a.minutes_to_red
        && m <= f64::from(route.travel_min)
    {
        return Some(Pause::RedOnArrival(m));
    }
    if all_full(parks) {
        return Some(Pause::CarParksFull);
    }
    None
}

/// Why visitors for an open route are left waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Filling,
    NoSpare,
    NoVehicles,
}

/// Vehicles chosen for one route.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pick {
    pub vehicles: Vec<VehicleUse>,
    pub seats: u32,
    pub passengers: u32,
    pub held: Option<Held>,
}

impl Pick {
    pub fn count(&self) -> u32 {
        self.vehicles.iter().map(|v| v.count).sum()
    }
}

/// Chooses vehicles for `demand` people, never more seats in all than `seat_budget` and never a
/// vehicle not in `avail` (decremented; same order as `fleet`, largest seats first). Repeatedly:
/// if one vehicle can take everyone left and would be `min_fill` full (or the queue is `overdue`),
/// the smallest such vehicle goes and the queue is empty; otherwise the largest vehicle that the
/// queue fills goes full; otherwise the rest wait for the vehicle to fill (`Filling`).
pub(crate) fn pick_vehicles(
    demand: u32,
    seat_budget: Option<u32>,
    fleet: &[FleetConfig],
    avail: &mut [u32],
    min_fill: f64,
    overdue: bool,
) -> Pick {
    let mut pick = Pick::default();
    loop {
        let remaining = demand - pick.passengers;
        if remaining == 0 {
            break;
        }
        let left = seat_budget.map(|b| b.saturating_sub(pick.seats));
        let fits: Vec<usize> = (0..fleet.len())
            .filter(|&k| avail[k] > 0 && left.is_none_or(|l| fleet[k].seats <= l))
            .collect();
        if fits.is_empty() {
            pick.held = Some(if avail.iter().any(|&n| n > 0) {
                Held::NoSpare
            } else {
                Held::NoVehicles
            });
            break;
        }
        let seats = |k: usize| fleet[k].seats;
        // Smallest vehicle that takes everyone left and would be full enough.
        let one_for_all = fits.iter().rev().copied().find(|&k| {
            seats(k) >= remaining
                && (overdue || f64::from(remaining) >= min_fill * f64::from(seats(k)))
        });
        let (k, passengers) = match (
            one_for_all,
            fits.iter().copied().find(|&k| seats(k) <= remaining),
        ) {
            (Some(k), _) => (k, remaining),
            (None, Some(k)) => (k, seats(k)),
            (None, None) => {
                pick.held = Some(Held::Filling);
                break;
            }
        };
        avail[k] -= 1;
        pick.seats += seats(k);
        pick.passengers += passengers;
        match pick.vehicles.iter_mut().find(|v| v.seats == seats(k)) {
            Some(v) => v.count += 1,
            None => pick.vehicles.push(VehicleUse {
                seats: seats(k),
                count: 1,
            }),
        }
    }
    pick
}

/// Splits a count by weights (largest remainder; ties to the earlier entry).
pub(crate) fn split(total: u32, weights: &[f64]) -> Vec<u32> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| f64::from(total) * w / sum).collect();
    let mut out: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = total.saturating_sub(out.iter().sum::<u32>());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for k in order {
        if left == 0 {
            break;
        }
        out[k] += 1;
        left -= 1;
    }
    out
}

/// Visitors waiting per route of `hub`, and whether each route's first passenger is overdue.
fn demand(hub: &Hub, input: Option<&HubInput>, max_hold_min: u32) -> Vec<(u32, bool)> {
    let Some(i) = input else {
        return vec![(0, false); hub.routes.len()];
    };
    let overdue = |w: Option<u32>| w.is_some_and(|w| w >= max_hold_min);
    if i.by_area.is_empty() {
        let shares: Vec<f64> = hub.routes.iter().map(|r| r.share).collect();
        split(i.queue, &shares)
            .into_iter()
            .map(|n| (n, overdue(i.oldest_wait_min)))
            .collect()
    } else {
        hub.routes
            .iter()
            .map(|r| {
                let q = i.by_area.get(&r.area).copied().unwrap_or_default();
                (q.people, overdue(q.oldest_wait_min.or(i.oldest_wait_min)))
            })
            .collect()
    }
}

enum Outcome {
    Paused(Pause),
    /// Considered for dispatch: what it got and the seats nearer routes had taken before it.
    Open {
        pick: Pick,
        committed: u32,
    },
}

/// The advice for every hub of the model, in the model's order.
pub fn advise(now: DateTime<Utc>, model: &DispatchModel, inputs: &Inputs) -> Vec<HubAdvice> {
    let p = &model.policy;
    let views = view(model, inputs, now);
    let demands: Vec<Vec<(u32, bool)>> = model
        .hubs
        .iter()
        .map(|h| demand(h, inputs.hubs.get(&h.id), p.max_hold_min))
        .collect();
    let mut avail: Vec<Vec<u32>> = model
        .hubs
        .iter()
        .map(|h| {
            h.fleet
                .iter()
                .map(|f| {
                    f.vehicles.saturating_sub(inputs.on_road.vehicles_out(
                        h.id.as_str(),
                        f.seats,
                        now,
                    ))
                })
                .collect()
        })
        .collect();
    let available: Vec<u32> = avail.iter().map(|a| a.iter().sum()).collect();

    let route_parks: Vec<Vec<Vec<CarParkFigure>>> = model
        .hubs
        .iter()
        .map(|h| {
            h.routes
                .iter()
                .map(|r| car_parks(&r.car_parks, inputs, p.car_park_full_at))
                .collect()
        })
        .collect();
    let mut outcomes: Vec<Vec<Option<Outcome>>> = model
        .hubs
        .iter()
        .enumerate()
        .map(|(h, hub)| {
            hub.routes
                .iter()
                .enumerate()
                .map(|(r, route)| {
                    pause_of(p, route, &views[route.area.as_str()], &route_parks[h][r])
                        .map(Outcome::Paused)
                })
                .collect()
        })
        .collect();

    // Shared spare: shortest trips first, then hub and route order (deterministic).
    let mut order: Vec<(u32, usize, usize)> = Vec::new();
    for (h, hub) in model.hubs.iter().enumerate() {
        for (r, route) in hub.routes.iter().enumerate() {
            if outcomes[h][r].is_none() {
                order.push((route.travel_min, h, r));
            }
        }
    }
    order.sort_unstable();
    let mut committed: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, h, r) in order {
        let hub = &model.hubs[h];
        let route = &hub.routes[r];
        let v = &views[route.area.as_str()];
        let before = committed.get(route.area.as_str()).copied().unwrap_or(0);
        let budget = v
            .spare(route.travel_min, p.target_utilisation, before)
            .map(|s| s.clamp(0, i64::from(u32::MAX)) as u32);
        let (want, overdue) = demands[h][r];
        let pick = pick_vehicles(want, budget, &hub.fleet, &mut avail[h], p.min_fill, overdue);
        *committed.entry(route.area.as_str()).or_default() += pick.seats;
        outcomes[h][r] = Some(Outcome::Open {
            pick,
            committed: before,
        });
    }

    model
        .hubs
        .iter()
        .enumerate()
        .map(|(h, hub)| {
            let ctx = HubCtx {
                p,
                model,
                inputs,
                views: &views,
                committed: &committed,
                hub,
                demand: &demands[h],
                outcomes: &outcomes[h],
                route_parks: &route_parks[h],
                vehicles_available: available[h],
            };
            ctx.assemble(now)
        })
        .collect()
}

struct HubCtx<'a> {
    p: &'a PolicyConfig,
    model: &'a DispatchModel,
    inputs: &'a Inputs,
    views: &'a BTreeMap<&'a str, AreaView<'a>>,
    /// Seats given to each area in this round, over every hub.
    committed: &'a BTreeMap<&'a str, u32>,
    hub: &'a Hub,
    demand: &'a [(u32, bool)],
    outcomes: &'a [Option<Outcome>],
    route_parks: &'a [Vec<CarParkFigure>],
    vehicles_available: u32,
}

impl HubCtx<'_> {
    fn assemble(&self, now: DateTime<Utc>) -> HubAdvice {
        let mut shuttles = Vec::new();
        let mut held = Vec::new();
        let mut paused = Vec::new();
        // Routes whose visitors need somewhere else: (route index, visitors, explanation, pause).
        let mut divert: Vec<(usize, u32, Explanation, Option<Pause>)> = Vec::new();
        let mut blocked_by_room = 0;
        let mut waiting_otherwise = false;
        for (r, route) in self.hub.routes.iter().enumerate() {
            let v = &self.views[route.area.as_str()];
            let (want, _) = self.demand[r];
            let (zh, en) = v.names;
            match self.outcomes[r].as_ref().expect("every route decided") {
                Outcome::Paused(why) => {
                    let mut e = v.explain(self.p, route.travel_min, 0, want);
                    e.car_parks = self.route_parks[r].clone();
                    paused.push(PausedRoute {
                        route: route.id.clone(),
                        area: route.area.clone(),
                        mode: Mode::Shuttle,
                        reason: pause_reason(*why, zh, en, self.p, route.travel_min),
                        explanation: e.clone(),
                    });
                    if want > 0 {
                        blocked_by_room += 1;
                    }
                    divert.push((r, want, e, Some(*why)));
                }
                Outcome::Open { pick, committed } => {
                    let e = v.explain(self.p, route.travel_min, *committed, want);
                    if pick.passengers > 0 {
                        let unbounded = e.spare.is_none();
                        let n = pick.count();
                        let (pz, pe) = (pick.passengers, pick.seats);
                        let reason = if unbounded {
                            Reason {
                                code: ReasonCode::DispatchUnbounded,
                                zh: format!(
                                    "发车{n}辆（共{pe}座）前往{zh}，载客{pz}人；该景区未配置承载量，发车未受限，请录入核定承载量"
                                ),
                                en: format!(
                                    "send {n} shuttle(s) ({pe} seats) to {en} with {pz} visitors; no capacity is configured for it, so dispatch is not bounded: enter the approved capacity"
                                ),
                            }
                        } else {
                            let s = e.spare.unwrap_or(0);
                            Reason {
                                code: ReasonCode::Dispatch,
                                zh: format!(
                                    "发车{n}辆（共{pe}座）前往{zh}，载客{pz}人；本趟到达时余量{s}人，占用{pe}座"
                                ),
                                en: format!(
                                    "send {n} shuttle(s) ({pe} seats) to {en} with {pz} visitors; {s} spare for this trip, {pe} of it taken now"
                                ),
                            }
                        };
                        shuttles.push(ShuttleAdvice {
                            route: route.id.clone(),
                            area: route.area.clone(),
                            send_now: n,
                            seats: pick.seats,
                            passengers: pick.passengers,
                            vehicles: pick.vehicles.clone(),
                            travel_min: route.travel_min,
                            reason,
                            explanation: e.clone(),
                        });
                    }
                    let left = want - pick.passengers;
                    if let Some(cause) = pick.held.filter(|_| left > 0) {
                        let smallest = self.hub.fleet.last().map_or(0, |f| f.seats);
                        let reason = held_reason(cause, zh, en, left, smallest);
                        if cause == Held::NoSpare {
                            blocked_by_room += 1;
                            divert.push((r, left, e.clone(), None));
                        } else {
                            waiting_otherwise = true;
                        }
                        held.push(HeldRoute {
                            route: route.id.clone(),
                            area: route.area.clone(),
                            waiting: left,
                            reason,
                            explanation: e,
                        });
                    }
                }
            }
            // Self-drive: every car park serving the area full.
            let area = &self.model.areas[&route.area];
            let figs = car_parks(&area.car_parks, self.inputs, self.p.car_park_full_at);
            if all_full(&figs) {
                let shuttle_open = matches!(self.outcomes[r], Some(Outcome::Open { .. }));
                let mut e = v.explain(self.p, route.travel_min, 0, want);
                e.car_parks = figs;
                let (rz, re) = if shuttle_open {
                    (
                        format!("{zh}自驾停车场已满：自驾游客请在本集散中心停车，换乘接驳车前往"),
                        format!(
                            "the car parks serving {en} are full: drivers should park at this hub and take the shuttle"
                        ),
                    )
                } else {
                    (
                        format!("{zh}自驾停车场已满且接驳暂停：自驾游客请按分流建议前往其他景区"),
                        format!(
                            "the car parks serving {en} are full and its shuttles are paused: drivers should follow the diversion"
                        ),
                    )
                };
                paused.push(PausedRoute {
                    route: route.id.clone(),
                    area: route.area.clone(),
                    mode: Mode::SelfDrive,
                    reason: Reason {
                        code: ReasonCode::SelfDriveFull,
                        zh: rz,
                        en: re,
                    },
                    explanation: e,
                });
            }
        }

        let diversions: Vec<Diversion> = divert
            .into_iter()
            .map(|(r, visitors, explanation, why)| self.diversion(r, visitors, explanation, why))
            .collect();
        let total: u32 = self.demand.iter().map(|d| d.0).sum();
        let hold = (total > 0
            && shuttles.is_empty()
            && !waiting_otherwise
            && blocked_by_room > 0
            && diversions.iter().all(|d| d.to.is_empty()))
        .then(|| Reason {
            code: ReasonCode::HoldAll,
            zh: format!(
                "所有目的地均已满或暂停，且无可分流的景区：请{total}名游客在{}等候，并发布等候公告",
                self.hub.name_zh
            ),
            en: format!(
                "every destination is full or paused and no alternative has room: hold all {total} visitors at {} and announce the wait",
                self.hub.name_en
            ),
        });
        HubAdvice {
            hub: self.hub.id.clone(),
            at: now,
            queue: self.inputs.hubs.get(&self.hub.id).map_or(0, |i| i.queue),
            vehicles_available: self.vehicles_available,
            shuttles,
            held,
            paused,
            diversions,
            hold,
        }
    }

    fn diversion(
        &self,
        from: usize,
        visitors: u32,
        explanation: Explanation,
        why: Option<Pause>,
    ) -> Diversion {
        let p = self.p;
        let source = &self.hub.routes[from];
        let largest = self.hub.fleet.first().map_or(1, |f| f.seats);
        let smallest = self.hub.fleet.last().map_or(1, |f| f.seats);
        let mut to: Vec<Alternative> = Vec::new();
        for (r, route) in self.hub.routes.iter().enumerate() {
            if r == from || route.area == source.area {
                continue;
            }
            let Some(Outcome::Open { .. }) = self.outcomes[r] else {
                continue;
            };
            let v = &self.views[route.area.as_str()];
            let Some(a) = v.input else { continue };
            if a.closed || a.level >= p.pause_at {
                continue;
            }
            let used = self
                .committed
                .get(route.area.as_str())
                .copied()
                .unwrap_or(0);
            let Some(spare) = v.spare(route.travel_min, p.target_utilisation, used) else {
                continue;
            };
            if spare < i64::from(smallest) {
                continue;
            }
            let useful = spare.min(i64::from(visitors.max(largest))) as f64;
            let score = useful / (f64::from(route.travel_min) + p.diversion_overhead_min).max(1.0);
            let score = (score * 1000.0).round() / 1000.0;
            let (zh, en) = v.names;
            let (m, level) = (route.travel_min, a.level);
            to.push(Alternative {
                area: route.area.clone(),
                route: route.id.clone(),
                spare,
                travel_min: m,
                score,
                reason: Reason {
                    code: ReasonCode::Alternative,
                    zh: format!(
                        "{zh}：余量{spare}人，车程{m}分钟，等级：{}",
                        level.name_zh()
                    ),
                    en: format!(
                        "{en}: {spare} spare, {m} min away, level {}",
                        level.as_str()
                    ),
                },
                explanation: v.explain(p, m, used, 0),
            });
        }
        to.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.travel_min.cmp(&b.travel_min))
                .then(b.spare.cmp(&a.spare))
                .then(a.area.cmp(&b.area))
        });
        to.truncate(p.max_alternatives);
        let (zh, en) = self.views[source.area.as_str()].names;
        let why_zh_en = match why {
            Some(w) => pause_reason(w, zh, en, p, source.travel_min),
            None => held_reason(Held::NoSpare, zh, en, visitors, smallest),
        };
        let reason = if let Some(best) = to.first() {
            let (bz, be) = self.views[best.area.as_str()].names;
            Reason {
                code: ReasonCode::Divert,
                zh: format!("{}；建议{visitors}名游客改往{bz}等景区", why_zh_en.zh),
                en: format!("{}; divert {visitors} visitors, best to {be}", why_zh_en.en),
            }
        } else {
            Reason {
                code: ReasonCode::NoAlternative,
                zh: format!(
                    "{}；暂无有余量的替代景区，请{visitors}名游客在集散中心等候",
                    why_zh_en.zh
                ),
                en: format!(
                    "{}; no alternative has room: {visitors} visitors wait at the hub",
                    why_zh_en.en
                ),
            }
        };
        Diversion {
            from_area: source.area.clone(),
            visitors,
            to,
            reason,
            explanation,
        }
    }
}

fn pause_reason(why: Pause, zh: &str, en: &str, p: &PolicyConfig, travel: u32) -> Reason {
    let (code, rz, re) = match why {
        Pause::NoData => (
            ReasonCode::NoData,
            format!("{zh}暂无实时客流数据，暂停发车"),
            format!("no live figures for {en}: shuttles paused"),
        ),
        Pause::Closed => (
            ReasonCode::Closed,
            format!("{zh}因险情关闭，暂停发车"),
            format!("{en} is closed by a hazard: shuttles paused"),
        ),
        Pause::Level(l) => (
            ReasonCode::Level,
            format!(
                "{zh}已达{}预警（暂停阈值为{}），暂停发车",
                l.name_zh(),
                p.pause_at.name_zh()
            ),
            format!(
                "{en} is at {} (routes pause at {}): shuttles paused",
                l.as_str(),
                p.pause_at.as_str()
            ),
        ),
        Pause::RedOnArrival(m) => (
            ReasonCode::RedOnArrival,
            format!("预计{m:.0}分钟后{zh}达到红色预警，早于接驳车程{travel}分钟，暂停发车"),
            format!(
                "{en} is forecast at red in {m:.0} min, before a {travel}-min shuttle arrives: shuttles paused"
            ),
        ),
        Pause::CarParksFull => (
            ReasonCode::CarParksFull,
            format!("{zh}接驳车所需停车场已满，暂停发车"),
            format!("the car parks the shuttle to {en} needs are full: shuttles paused"),
        ),
    };
    Reason {
        code,
        zh: rz,
        en: re,
    }
}

fn held_reason(cause: Held, zh: &str, en: &str, left: u32, smallest: u32) -> Reason {
    let (code, rz, re) = match cause {
        Held::Filling => (
            ReasonCode::Filling,
            format!("前往{zh}的{left}名游客等待满座发车"),
            format!("{left} visitors for {en} wait for the shuttle to fill"),
        ),
        Held::NoSpare => (
            ReasonCode::NoSpare,
            format!("{zh}本趟到达时余量不足一车（{smallest}座），{left}名游客暂缓发车"),
            format!(
                "{en} has no room for another shuttle ({smallest} seats) on arrival: {left} visitors held"
            ),
        ),
        Held::NoVehicles => (
            ReasonCode::NoVehicles,
            format!("接驳车均在途，前往{zh}的{left}名游客等待车辆返回"),
            format!("every shuttle is out: {left} visitors for {en} wait for one to return"),
        ),
    };
    Reason {
        code,
        zh: rz,
        en: re,
    }
}

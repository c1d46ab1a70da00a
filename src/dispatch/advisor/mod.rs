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
//!    (the [`OnRoad`](super::ledger::OnRoad) ledger) plus the seats nearer routes were given in this same call: routes to
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
//!
//! This file decides every route (pause or open, and the vehicles an open one gets from the shared
//! spare); `area` is each area's spare and why a route pauses, `shuttles` who waits for each
//! route and which vehicles take them, `assemble` one hub's advice and `divert` the ranked
//! alternatives.

mod area;
mod assemble;
mod divert;
mod shuttles;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use self::area::{car_parks, pause_of, view};
use self::assemble::{HubCtx, Outcome};
use self::shuttles::demand;
pub(crate) use self::shuttles::pick_vehicles;
use super::advice::{CarParkFigure, HubAdvice};
use super::inputs::Inputs;
use super::model::DispatchModel;

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

#[cfg(test)]
mod tests;

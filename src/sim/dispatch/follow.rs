//! The `AdviceFollowed` policy: the rule engine and the wiring are emulated to turn the county into
//! the advisor's [`Inputs`] (levels from utilisation, net inflow at the gates over the last minutes
//! less the shuttle arrivals the ledger knows), the hubs send exactly the advised shuttles, and
//! waiting parties are offered the diversions once.

use chrono::TimeDelta;
use rand::Rng;

use super::scenario::DIVERSION_ACCEPT;
use super::step::Sim;
use crate::dispatch::advice::Diversion;
use crate::dispatch::advisor::advise;
use crate::dispatch::inputs::{
    AreaInput, AreaQueue, CarParkInput, HubInput, Inputs, level_from_utilisation,
};
use crate::dispatch::ledger::Trip;

impl Sim<'_> {
    fn inputs(&self, m: usize) -> Inputs {
        let mut inputs = Inputs {
            on_road: self.ledger.clone(),
            ..Inputs::default()
        };
        let now = self.now(m);
        for id in self.model.areas.keys() {
            let a = &self.areas[self.area_idx[id]];
            // The rule engine sees the gates: net inflow over the window, shuttles included.
            // `history` ends at the close of each of the last `window` minutes, the oldest first.
            let window = a.history.len();
            let (rate, by_shuttle) = match a.history.front() {
                Some(&old) if window > 0 => {
                    let since = now - TimeDelta::minutes(window as i64);
                    let shuttles = self.ledger.arrived_to(id.as_str(), since, now);
                    let w = window as f64;
                    (
                        (f64::from(a.occ) - f64::from(old)) / w,
                        f64::from(shuttles) / w,
                    )
                }
                _ => (0.0, 0.0),
            };
            let minutes_to_red =
                (rate > 0.0).then(|| f64::from(a.cap.saturating_sub(a.occ)) / rate);
            inputs.areas.insert(
                id.clone(),
                AreaInput {
                    occupancy: a.occ,
                    capacity: Some(a.cap),
                    level: level_from_utilisation(a.occ, a.cap),
                    minutes_to_red,
                    // The wiring's job: shuttles still coming are on the road already.
                    net_inflow_per_min: Some(rate - by_shuttle),
                    closed: false,
                },
            );
        }
        for p in &self.parks {
            inputs.car_parks.insert(
                p.id.clone(),
                CarParkInput {
                    occupancy: p.occ,
                    capacity: Some(p.cap),
                    closed: false,
                },
            );
        }
        for (h, hub) in self.model.hubs.iter().enumerate() {
            let mut input = HubInput::default();
            for (r, route) in hub.routes.iter().enumerate() {
                let q = AreaQueue {
                    people: self.people(h, r),
                    oldest_wait_min: self.oldest(m, h, r),
                };
                input.queue += q.people;
                input.oldest_wait_min = input.oldest_wait_min.max(q.oldest_wait_min);
                input.by_area.insert(route.area.clone(), q);
            }
            inputs.hubs.insert(hub.id.clone(), input);
        }
        inputs
    }

    pub(super) fn follow_advice(&mut self, m: usize) {
        let now = self.now(m);
        let advice = advise(now, self.model, &self.inputs(m));
        for (h, a) in advice.iter().enumerate() {
            for s in &a.shuttles {
                let r = self.model.hubs[h]
                    .routes
                    .iter()
                    .position(|x| x.id == s.route)
                    .expect("advice names the hub's routes");
                let trip = Trip::new(
                    &self.model.hubs[h].routes[r],
                    now,
                    s.passengers,
                    s.vehicles.clone(),
                    self.model.policy.turnaround_min,
                );
                self.depart(m, h, r, s.passengers, trip);
            }
            for d in a.diversions.iter().filter(|d| !d.to.is_empty()) {
                self.divert(h, d);
            }
        }
        self.last_advice = advice;
    }

    /// Offers each party waiting for `d.from_area` (not yet asked) the alternatives, best first,
    /// within each alternative's spare.
    fn divert(&mut self, h: usize, d: &Diversion) {
        let routes = &self.model.hubs[h].routes;
        let Some(from) = routes.iter().position(|r| r.area == d.from_area) else {
            return;
        };
        let mut room: Vec<(usize, i64)> =
            d.to.iter()
                .filter_map(|t| Some((routes.iter().position(|r| r.area == t.area)?, t.spare)))
                .collect();
        let q = std::mem::take(&mut self.queues[h][from]);
        for mut p in q {
            if p.offered {
                self.queues[h][from].push_back(p);
                continue;
            }
            if self.choice.random::<f64>() >= DIVERSION_ACCEPT {
                p.offered = true;
                self.queues[h][from].push_back(p);
                continue;
            }
            match room.iter_mut().find(|(_, s)| *s >= i64::from(p.people)) {
                Some((to, s)) => {
                    *s -= i64::from(p.people);
                    p.offered = true;
                    self.diverted += p.people;
                    let q = &mut self.queues[h][*to];
                    let at = q.partition_point(|x| x.arrived <= p.arrived);
                    q.insert(at, p);
                }
                // Willing, but no room left this minute: asked again next minute.
                None => self.queues[h][from].push_back(p),
            }
        }
    }
}

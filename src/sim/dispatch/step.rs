//! One minute of the simulated county, for either policy, and the state it runs on: visitors leave
//! the areas and car parks, shuttles reach the gates, new parties queue at a hub or drive up (and
//! are refused at a full gate or car park), the impatient give up, then the hubs dispatch — when
//! full without advice (this file), or as advised ([`super::follow`]).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::scenario::{self, FORECAST_WINDOW, HORIZON, Party, Policy, START_MIN, Source};
use crate::dispatch::advice::{HubAdvice, Mode};
use crate::dispatch::advisor::pick_vehicles;
use crate::dispatch::ledger::{OnRoad, Trip};
use crate::dispatch::model::DispatchModel;
use crate::ids::SpaceId;
use crate::registry::Registry;
use crate::registry::SpaceKind;

pub(super) struct AreaSim {
    pub(super) id: SpaceId,
    pub(super) cap: u32,
    pub(super) occ: u32,
    leave: Vec<u32>,
    pub(super) history: VecDeque<u32>,
    pub(super) red: u32,
    pub(super) peak: u32,
    pub(super) demanded: bool,
}

pub(super) struct ParkSim {
    pub(super) id: SpaceId,
    pub(super) cap: u32,
    pub(super) occ: u32,
    leave: Vec<u32>,
    /// The hub this car park belongs to (its park-and-ride).
    hub: Option<usize>,
}

pub(super) struct Transit {
    area: usize,
    travel: u32,
    pub(super) parties: Vec<Party>,
}

pub(super) struct Sim<'a> {
    pub(super) model: &'a DispatchModel,
    pub(super) policy: Policy,
    t0: DateTime<Utc>,
    pub(super) areas: Vec<AreaSim>,
    pub(super) area_idx: BTreeMap<SpaceId, usize>,
    pub(super) parks: Vec<ParkSim>,
    /// Per hub, per route: parties waiting, oldest first.
    pub(super) queues: Vec<Vec<VecDeque<Party>>>,
    arrivals: Vec<Vec<(Source, Party)>>,
    pub(super) transit: Vec<Vec<Transit>>,
    pub(super) ledger: OnRoad,
    pub(super) last_advice: Vec<HubAdvice>,
    pub(super) choice: StdRng,
    pub(super) waits: Vec<u64>,
    pub(super) visitors: u32,
    pub(super) served: u32,
    pub(super) turned_gate: u32,
    pub(super) turned_park: u32,
    pub(super) gave_up: u32,
    pub(super) diverted: u32,
    pub(super) park_and_ride: u32,
    pub(super) departures: u32,
}

impl<'a> Sim<'a> {
    pub(super) fn new(
        registry: &Registry,
        model: &'a DispatchModel,
        seed: u64,
        policy: Policy,
    ) -> Self {
        let date = scenario::date();
        let local = registry
            .tz
            .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .single()
            .expect("no DST in China");
        let t0 = local.with_timezone(&Utc) + TimeDelta::minutes(START_MIN);
        let mut areas = Vec::new();
        let mut area_idx = BTreeMap::new();
        let mut parks = Vec::new();
        for s in &registry.spaces {
            match s.kind {
                SpaceKind::ScenicArea => {
                    area_idx.insert(s.id.clone(), areas.len());
                    areas.push(AreaSim {
                        id: s.id.clone(),
                        cap: s.instant_capacity.unwrap_or(u32::MAX),
                        occ: 0,
                        leave: vec![0; HORIZON],
                        history: VecDeque::new(),
                        red: 0,
                        peak: 0,
                        demanded: false,
                    });
                }
                SpaceKind::CarPark => {
                    let hub = s.parent.and_then(|p| {
                        let pid = &registry.space(p).id;
                        model.hubs.iter().position(|h| &h.id == pid)
                    });
                    parks.push(ParkSim {
                        id: s.id.clone(),
                        cap: s.instant_capacity.unwrap_or(u32::MAX),
                        occ: 0,
                        leave: vec![0; HORIZON],
                        hub,
                    });
                }
                _ => {}
            }
        }
        let demand = scenario::generate(model, &area_idx, &mut StdRng::seed_from_u64(seed));
        for a in demand.demanded {
            areas[a].demanded = true;
        }
        let queues = model
            .hubs
            .iter()
            .map(|h| vec![VecDeque::new(); h.routes.len()])
            .collect();
        Self {
            model,
            policy,
            t0,
            areas,
            area_idx,
            parks,
            queues,
            arrivals: demand.arrivals,
            transit: (0..HORIZON).map(|_| Vec::new()).collect(),
            ledger: OnRoad::new(),
            last_advice: Vec::new(),
            // Policy choices draw from their own stream so both policies see the same demand.
            choice: StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            waits: vec![0; HORIZON + 1],
            visitors: 0,
            served: 0,
            turned_gate: 0,
            turned_park: 0,
            gave_up: 0,
            diverted: 0,
            park_and_ride: 0,
            departures: 0,
        }
    }

    pub(super) fn now(&self, m: usize) -> DateTime<Utc> {
        self.t0 + TimeDelta::minutes(m as i64)
    }

    pub(super) fn minute(&mut self, m: usize) {
        let now = self.now(m);
        self.ledger.prune(now);
        for a in &mut self.areas {
            a.occ -= a.leave[m];
        }
        for p in &mut self.parks {
            p.occ -= p.leave[m];
        }
        for t in std::mem::take(&mut self.transit[m]) {
            for party in t.parties {
                self.gate(m, t.area, party, t.travel);
            }
        }
        for (source, party) in std::mem::take(&mut self.arrivals[m]) {
            self.visitors += party.people;
            match source {
                Source::Hub { hub, route } => self.queues[hub][route].push_back(party),
                Source::Drive { area } => self.drive(m, area, party, true),
            }
        }
        self.lose_patience(m);
        match self.policy {
            Policy::NoAdvice => self.dispatch_when_full(m),
            Policy::AdviceFollowed => self.follow_advice(m),
        }
        for a in &mut self.areas {
            if a.occ >= a.cap {
                a.red += 1;
            }
            a.peak = a.peak.max(a.occ);
            a.history.push_back(a.occ);
            if a.history.len() > FORECAST_WINDOW {
                a.history.pop_front();
            }
        }
    }

    fn schedule(leave: &mut [u32], at: usize, n: u32) {
        if let Some(slot) = leave.get_mut(at) {
            *slot += n;
        }
    }

    /// A party reaches an area's gate (by shuttle after `travel` minutes, or on foot with 0).
    fn gate(&mut self, m: usize, area: usize, party: Party, travel: u32) {
        let a = &mut self.areas[area];
        let admitted = a.occ.saturating_add(party.people) <= a.cap;
        if admitted {
            a.occ += party.people;
            Self::schedule(&mut a.leave, m + party.dwell as usize, party.people);
            self.served += party.people;
        } else {
            self.turned_gate += party.people;
        }
        if let Some(c) = party.car {
            let back = if admitted {
                party.dwell + travel
            } else {
                travel
            };
            Self::schedule(&mut self.parks[c].leave, m + back as usize, 1);
        }
    }

    /// A self-drive party heading for `area`.
    fn drive(&mut self, m: usize, area: usize, mut party: Party, may_divert: bool) {
        let id = self.areas[area].id.clone();
        let serving: Vec<usize> = self
            .model
            .area(id.as_str())
            .map(|a| {
                a.car_parks
                    .iter()
                    .filter_map(|c| self.parks.iter().position(|p| &p.id == c))
                    .collect()
            })
            .unwrap_or_default();
        if serving.is_empty() {
            self.gate(m, area, party, 0);
            return;
        }
        if self.policy == Policy::AdviceFollowed && self.self_drive_paused(&id) {
            if let Some((h, r, c)) = self.park_and_ride(&id, &serving) {
                self.parks[c].occ += 1;
                party.car = Some(c);
                self.park_and_ride += party.people;
                self.queues[h][r].push_back(party);
                return;
            }
            if may_divert && let Some(alt) = self.first_alternative(&id) {
                self.diverted += party.people;
                self.drive(m, alt, party, false);
                return;
            }
            self.turned_park += party.people;
            return;
        }
        let best = serving
            .iter()
            .copied()
            .filter(|&c| self.parks[c].occ < self.parks[c].cap)
            .max_by_key(|&c| (self.parks[c].cap - self.parks[c].occ, std::cmp::Reverse(c)));
        let Some(c) = best else {
            self.turned_park += party.people;
            return;
        };
        self.parks[c].occ += 1;
        party.car = Some(c);
        let ride = self.parks[c].hub.and_then(|h| {
            let r = self.model.hubs[h]
                .routes
                .iter()
                .position(|r| r.area == id)?;
            Some((h, r))
        });
        match ride {
            Some((h, r)) => self.queues[h][r].push_back(party),
            None => self.gate(m, area, party, 0),
        }
    }

    fn self_drive_paused(&self, area: &SpaceId) -> bool {
        self.last_advice.iter().any(|h| {
            h.paused
                .iter()
                .any(|p| p.mode == Mode::SelfDrive && &p.area == area)
        })
    }

    /// A hub with an open shuttle route to `area` and room in its own car park (not one of the
    /// full ones serving the area).
    fn park_and_ride(&self, area: &SpaceId, serving: &[usize]) -> Option<(usize, usize, usize)> {
        for advice in &self.last_advice {
            let h = self.model.hubs.iter().position(|x| x.id == advice.hub)?;
            let shuttle_paused = advice
                .paused
                .iter()
                .any(|p| p.mode == Mode::Shuttle && &p.area == area);
            let Some(r) = self.model.hubs[h]
                .routes
                .iter()
                .position(|r| &r.area == area)
            else {
                continue;
            };
            if shuttle_paused {
                continue;
            }
            let park = (0..self.parks.len()).find(|&c| {
                self.parks[c].hub == Some(h)
                    && !serving.contains(&c)
                    && self.parks[c].occ < self.parks[c].cap
            });
            if let Some(c) = park {
                return Some((h, r, c));
            }
        }
        None
    }

    fn first_alternative(&self, area: &SpaceId) -> Option<usize> {
        self.last_advice
            .iter()
            .flat_map(|h| h.diversions.iter())
            .find(|d| &d.from_area == area && !d.to.is_empty())
            .map(|d| self.area_idx[&d.to[0].area])
    }

    fn lose_patience(&mut self, m: usize) {
        for h in 0..self.queues.len() {
            for r in 0..self.queues[h].len() {
                let q = std::mem::take(&mut self.queues[h][r]);
                for p in q {
                    if m - p.arrived >= p.patience as usize {
                        self.gave_up += p.people;
                        self.waits[p.patience as usize] += u64::from(p.people);
                        if let Some(c) = p.car {
                            Self::schedule(&mut self.parks[c].leave, m, 1);
                        }
                    } else {
                        self.queues[h][r].push_back(p);
                    }
                }
            }
        }
    }

    /// Takes `n` visitors from the front of a queue (the last party may be split).
    fn board(&mut self, m: usize, h: usize, r: usize, n: u32) -> Vec<Party> {
        let mut out = Vec::new();
        let mut left = n;
        let q = &mut self.queues[h][r];
        while left > 0 {
            let Some(front) = q.front_mut() else { break };
            let mut p = *front;
            if p.people > left {
                front.people -= left;
                p.people = left;
                // The car stays with the part of the party still waiting.
                p.car = None;
            } else {
                q.pop_front();
            }
            left -= p.people;
            self.waits[m - p.arrived] += u64::from(p.people);
            out.push(p);
        }
        out
    }

    pub(super) fn depart(&mut self, m: usize, h: usize, r: usize, passengers: u32, trip: Trip) {
        let parties = self.board(m, h, r, passengers);
        let route = &self.model.hubs[h].routes[r];
        let area = self.area_idx[&route.area];
        self.departures += trip.vehicles.iter().map(|v| v.count).sum::<u32>();
        let arrive = m + route.travel_min as usize;
        if let Some(slot) = self.transit.get_mut(arrive) {
            slot.push(Transit {
                area,
                travel: route.travel_min,
                parties,
            });
        }
        self.ledger.record(trip);
    }

    pub(super) fn oldest(&self, m: usize, h: usize, r: usize) -> Option<u32> {
        self.queues[h][r]
            .iter()
            .map(|p| (m - p.arrived) as u32)
            .max()
    }

    pub(super) fn people(&self, h: usize, r: usize) -> u32 {
        self.queues[h][r].iter().map(|p| p.people).sum()
    }

    /// No advice: a vehicle leaves when full (or half full after 15 min) for wherever its
    /// passengers want to go.
    fn dispatch_when_full(&mut self, m: usize) {
        let now = self.now(m);
        let p = &self.model.policy;
        for h in 0..self.model.hubs.len() {
            let hub = &self.model.hubs[h];
            let mut avail: Vec<u32> = hub
                .fleet
                .iter()
                .map(|f| {
                    f.vehicles.saturating_sub(self.ledger.vehicles_out(
                        hub.id.as_str(),
                        f.seats,
                        now,
                    ))
                })
                .collect();
            let mut order: Vec<usize> = (0..hub.routes.len()).collect();
            order.sort_by_key(|&r| (hub.routes[r].travel_min, r));
            for r in order {
                let want = self.people(h, r);
                if want == 0 {
                    continue;
                }
                let overdue = self.oldest(m, h, r).is_some_and(|w| w >= p.max_hold_min);
                let pick = pick_vehicles(want, None, &hub.fleet, &mut avail, p.min_fill, overdue);
                if pick.passengers > 0 {
                    let trip = Trip::new(
                        &hub.routes[r],
                        now,
                        pick.passengers,
                        pick.vehicles.clone(),
                        p.turnaround_min,
                    );
                    self.depart(m, h, r, pick.passengers, trip);
                }
            }
        }
    }
}

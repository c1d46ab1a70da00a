//! The advisor's evaluation: a minute-by-minute Golden-Week day (2 October) for the county, run
//! once with shuttles that ignore crowding (`NoAdvice`) and once following `advise` every minute
//! (`AdviceFollowed`), on the same seeded demand. Pure and deterministic for a seed (and a build:
//! `StdRng`'s algorithm may change between `rand` releases).
//!
//! The day, 06:00–22:00 local time:
//! - **Hub arrivals** (tour coaches, city buses) from 07:00 to 16:00, 80% in a morning wave centred
//!   on 09:30 (sd 60 min: most between 08:00 and 11:00) and 20% in an early-afternoon one, in
//!   parties of 1–5 with a destination drawn from the hub's preferences (most want the Tianshan
//!   Grand Canyon). Visitors queue per destination and give up after 90–180 min of waiting.
//! - **Self-drive** cars (1–5 people) on the same curve, half an hour later. An area with car parks
//!   in the dispatch model needs a bay (a full car park turns the car away); a bay at a hub's car
//!   park means park-and-ride: the party joins that hub's queue (the canyon's visitor centre). An
//!   area without modelled car parks is walked into.
//! - **Shuttles**: the example fleets and travel times (the `[dispatch]` section of `config/county.toml`), vehicles
//!   busy for the round trip plus turnaround. Both policies load buses the same way (the advisor's
//!   vehicle choice): full vehicles leave at once, as does one at least half full that takes
//!   everyone left; a less full one leaves once its first passenger has waited 15 min.
//! - **Areas**: the shipped registry's instantaneous capacities; the gate refuses a party that
//!   would take the area past 100% (LB/T 034: stop admissions at the maximum), and the party is
//!   turned away. Visitors stay 2–4 h (uniform).
//! - **AdviceFollowed**: the rule engine is emulated (level from utilisation, net inflow at the
//!   gates over the last 10 minutes, minutes to red from it); the wiring's part is too (the
//!   net inflow given to the advisor excludes shuttle arrivals, which the ledger knows); the hubs
//!   send exactly the advised shuttles, offer
//!   each waiting party a diversion once (70% accept, within the alternative's spare), and drivers
//!   heading to full car parks are intercepted to a hub's park-and-ride (or the first alternative,
//!   or told not to come: turned away) using the previous minute's advice.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::advisor::{
    self, AreaInput, AreaQueue, CarParkInput, HubAdvice, HubInput, Inputs, Mode,
    level_from_utilisation,
};
use super::config::DispatchModel;
use super::ledger::{OnRoad, Trip};
use crate::config::{Config, EMBEDDED_DEFAULT, SpaceKind};
use crate::ids::SpaceId;
use crate::registry::Registry;

/// The simulated day: National Day Golden Week.
pub const DAY: (i32, u32, u32) = (2026, 10, 2);
/// Local minute the simulation starts (06:00) and its length (to 22:00).
const START_MIN: i64 = 6 * 60;
const MINUTES: usize = 16 * 60;
/// Events (departures) may be scheduled past the end of the day.
const HORIZON: usize = MINUTES + 12 * 60;
const DWELL_MIN: (u32, u32) = (120, 240);
const PATIENCE_MIN: (u32, u32) = (90, 180);
const PARTY: (u32, u32) = (1, 5);
const DIVERSION_ACCEPT: f64 = 0.7;
/// The emulated rule engine's net-inflow window (minutes).
const FORECAST_WINDOW: usize = 10;

/// Walk-in demand at a hub (people over the day) and where they want to go.
struct HubDemand {
    hub: &'static str,
    people: u32,
    prefs: &'static [(&'static str, f64)],
}

/// A busy Golden-Week day: the canyon draws most hub visitors.
const HUB_DEMAND: &[HubDemand] = &[
    HubDemand {
        hub: "tsc-visitor-centre",
        people: 7_000,
        prefs: &[("tianshan-canyon", 0.92), ("muxutai", 0.08)],
    },
    HubDemand {
        hub: "banfanggou-station",
        people: 2_500,
        prefs: &[
            ("tianshan-canyon", 0.5),
            ("muxutai", 0.15),
            ("juhuatai", 0.1),
            ("xueling-yinggu", 0.1),
            ("west-baiyanggou", 0.15),
        ],
    },
    HubDemand {
        hub: "nanlv-base",
        people: 9_000,
        prefs: &[
            ("tianshan-canyon", 0.4),
            ("shuixigou-town", 0.15),
            ("silk-road-resort", 0.15),
            ("east-baiyanggou", 0.06),
            ("apricot-village", 0.06),
            ("west-baiyanggou", 0.06),
            ("miaoergou", 0.06),
            ("xiaoquzi", 0.03),
            ("wulasitai-grassland", 0.03),
        ],
    },
];

/// Self-drive cars per area over the day.
const SELF_DRIVE: &[(&str, u32)] = &[
    ("tianshan-canyon", 1_600),
    ("silk-road-resort", 330),
    ("shuixigou-town", 250),
    ("muxutai", 200),
    ("east-baiyanggou", 120),
    ("west-baiyanggou", 200),
    ("xueling-yinggu", 100),
    ("wulasitai-grassland", 150),
    ("juhuatai", 100),
    ("xiaoquzi", 50),
    ("miaoergou", 70),
    ("apricot-village", 40),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Shuttles leave for the preferred destination whatever the crowding.
    NoAdvice,
    /// Every minute `advise` runs and the hubs do what it says.
    AdviceFollowed,
}

/// One policy's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub policy: Policy,
    /// Visitors who set out (hub walk-ins and self-drive).
    pub visitors: u32,
    /// Visitors admitted to an area.
    pub served: u32,
    /// Area-minutes at red (occupancy ≥ 100% of instantaneous capacity), summed over areas.
    pub red_minutes: u32,
    pub red_minutes_by_area: BTreeMap<SpaceId, u32>,
    /// Refused at a full gate or a full car park (or told not to drive up).
    pub turned_away: u32,
    pub turned_away_at_gates: u32,
    pub turned_away_at_car_parks: u32,
    /// Left a hub queue after running out of patience.
    pub gave_up: u32,
    /// Still queueing or on a shuttle at 22:00: `visitors = served + turned_away + gave_up +
    /// still_waiting`.
    pub still_waiting: u32,
    /// Minutes waited at a hub, over everyone who queued (boarded, gave up or still waiting).
    pub wait_avg_min: f64,
    pub wait_p95_min: u32,
    /// Accepted a diversion to another area.
    pub diverted: u32,
    /// Drivers intercepted to a hub's park-and-ride.
    pub park_and_ride: u32,
    /// Vehicle departures.
    pub shuttle_departures: u32,
    /// Highest occupancy ÷ capacity of each area with hub or self-drive demand.
    pub peak_utilisation: BTreeMap<SpaceId, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub seed: u64,
    pub date: NaiveDate,
    pub no_advice: Metrics,
    pub advice_followed: Metrics,
}

/// Both policies on the shipped registry and the example dispatch model, same demand.
pub fn evaluate(seed: u64) -> Comparison {
    let (registry, model) = shipped();
    Comparison {
        seed,
        date: date(),
        no_advice: run(&registry, &model, seed, Policy::NoAdvice),
        advice_followed: run(&registry, &model, seed, Policy::AdviceFollowed),
    }
}

/// The shipped registry and the example dispatch model (both validated by tests).
pub fn shipped() -> (Registry, DispatchModel) {
    let cfg = Config::from_toml(EMBEDDED_DEFAULT).expect("the embedded config parses");
    let registry = cfg.registry().expect("the embedded registry is valid");
    let model = DispatchModel::build(&cfg.dispatch, &registry)
        .expect("the shipped dispatch model is valid");
    (registry, model)
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).expect("a valid date")
}

/// One policy's day on `registry` and `model`.
pub fn run(registry: &Registry, model: &DispatchModel, seed: u64, policy: Policy) -> Metrics {
    let mut sim = Sim::new(registry, model, seed, policy);
    for m in 0..MINUTES {
        sim.minute(m);
    }
    sim.finish()
}

#[derive(Debug, Clone, Copy)]
struct Party {
    /// Minute the party started to wait at a hub (or arrived by car).
    arrived: usize,
    people: u32,
    dwell: u32,
    patience: u32,
    /// The car park holding the party's car while it rides a shuttle.
    car: Option<usize>,
    /// Already offered a diversion (asked once).
    offered: bool,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Hub { hub: usize, route: usize },
    Drive { area: usize },
}

struct AreaSim {
    id: SpaceId,
    cap: u32,
    occ: u32,
    leave: Vec<u32>,
    history: VecDeque<u32>,
    red: u32,
    peak: u32,
    demanded: bool,
}

struct ParkSim {
    id: SpaceId,
    cap: u32,
    occ: u32,
    leave: Vec<u32>,
    /// The hub this car park belongs to (its park-and-ride).
    hub: Option<usize>,
}

struct Transit {
    area: usize,
    travel: u32,
    parties: Vec<Party>,
}

struct Sim<'a> {
    model: &'a DispatchModel,
    policy: Policy,
    t0: DateTime<Utc>,
    areas: Vec<AreaSim>,
    area_idx: BTreeMap<SpaceId, usize>,
    parks: Vec<ParkSim>,
    /// Per hub, per route: parties waiting, oldest first.
    queues: Vec<Vec<VecDeque<Party>>>,
    arrivals: Vec<Vec<(Source, Party)>>,
    transit: Vec<Vec<Transit>>,
    ledger: OnRoad,
    last_advice: Vec<HubAdvice>,
    choice: StdRng,
    waits: Vec<u64>,
    visitors: u32,
    served: u32,
    turned_gate: u32,
    turned_park: u32,
    gave_up: u32,
    diverted: u32,
    park_and_ride: u32,
    departures: u32,
}

/// Share of the day's arrivals in local minute `m` (unnormalised): the morning wave and the
/// early-afternoon one, from 07:00 to 16:00, shifted by `late` minutes.
fn shape(m: f64, late: f64) -> f64 {
    if !(7.0 * 60.0 + late..16.0 * 60.0 + late).contains(&m) {
        return 0.0;
    }
    let g = |mu: f64, sd: f64| (-0.5 * ((m - mu) / sd).powi(2)).exp() / sd;
    0.8 * g(9.5 * 60.0 + late, 60.0) + 0.2 * g(13.5 * 60.0 + late, 75.0)
}

/// Expected arrivals per simulated minute for `total` over the day.
fn curve(total: u32, late: f64) -> Vec<f64> {
    let raw: Vec<f64> = (0..MINUTES)
        .map(|i| shape(START_MIN as f64 + i as f64 + 0.5, late))
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|r| f64::from(total) * r / sum).collect()
}

/// A whole number with the right expectation.
fn draw(rng: &mut StdRng, x: f64) -> u32 {
    let base = x.floor();
    base as u32 + u32::from(rng.random::<f64>() < x - base)
}

impl<'a> Sim<'a> {
    fn new(registry: &Registry, model: &'a DispatchModel, seed: u64, policy: Policy) -> Self {
        let date = date();
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
        let queues = model
            .hubs
            .iter()
            .map(|h| vec![VecDeque::new(); h.routes.len()])
            .collect();
        let mut sim = Self {
            model,
            policy,
            t0,
            areas,
            area_idx,
            parks,
            queues,
            arrivals: vec![Vec::new(); MINUTES],
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
        };
        sim.generate(&mut StdRng::seed_from_u64(seed));
        sim
    }

    fn party(rng: &mut StdRng, arrived: usize, people: u32) -> Party {
        Party {
            arrived,
            people,
            dwell: rng.random_range(DWELL_MIN.0..=DWELL_MIN.1),
            patience: rng.random_range(PATIENCE_MIN.0..=PATIENCE_MIN.1),
            car: None,
            offered: false,
        }
    }

    /// The day's demand, drawn once from `rng`.
    fn generate(&mut self, rng: &mut StdRng) {
        for d in HUB_DEMAND {
            let h = self
                .model
                .hubs
                .iter()
                .position(|h| h.id.as_str() == d.hub)
                .expect("hub in the example model");
            let routes: Vec<(usize, f64)> = d
                .prefs
                .iter()
                .map(|(area, w)| {
                    let r = self.model.hubs[h]
                        .routes
                        .iter()
                        .position(|r| r.area.as_str() == *area)
                        .expect("preferred area on a route of the hub");
                    (r, *w)
                })
                .collect();
            let total_w: f64 = routes.iter().map(|r| r.1).sum();
            for (m, x) in curve(d.people, 0.0).into_iter().enumerate() {
                let mut n = draw(rng, x);
                while n > 0 {
                    let people = rng.random_range(PARTY.0..=PARTY.1).min(n);
                    n -= people;
                    let mut u = rng.random::<f64>() * total_w;
                    let route = routes
                        .iter()
                        .find(|(_, w)| {
                            u -= w;
                            u < 0.0
                        })
                        .map_or(routes[routes.len() - 1].0, |r| r.0);
                    let p = Self::party(rng, m, people);
                    self.arrivals[m].push((Source::Hub { hub: h, route }, p));
                }
            }
            for (r, _) in &routes {
                let area = &self.model.hubs[h].routes[*r].area;
                self.areas[self.area_idx[area]].demanded = true;
            }
        }
        for (area, cars) in SELF_DRIVE {
            let a = self.area_idx[*area];
            self.areas[a].demanded = true;
            for (m, x) in curve(*cars, 30.0).into_iter().enumerate() {
                for _ in 0..draw(rng, x) {
                    let people = rng.random_range(PARTY.0..=PARTY.1);
                    let p = Self::party(rng, m, people);
                    self.arrivals[m].push((Source::Drive { area: a }, p));
                }
            }
        }
    }

    fn now(&self, m: usize) -> DateTime<Utc> {
        self.t0 + TimeDelta::minutes(m as i64)
    }

    fn minute(&mut self, m: usize) {
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

    fn depart(&mut self, m: usize, h: usize, r: usize, passengers: u32, trip: Trip) {
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

    fn oldest(&self, m: usize, h: usize, r: usize) -> Option<u32> {
        self.queues[h][r]
            .iter()
            .map(|p| (m - p.arrived) as u32)
            .max()
    }

    fn people(&self, h: usize, r: usize) -> u32 {
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
                let pick =
                    advisor::pick_vehicles(want, None, &hub.fleet, &mut avail, p.min_fill, overdue);
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

    fn follow_advice(&mut self, m: usize) {
        let now = self.now(m);
        let advice = advisor::advise(now, self.model, &self.inputs(m));
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
    fn divert(&mut self, h: usize, d: &advisor::Diversion) {
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

    fn finish(mut self) -> Metrics {
        let end = MINUTES - 1;
        let mut still_waiting = 0;
        for h in 0..self.queues.len() {
            for r in 0..self.queues[h].len() {
                for p in std::mem::take(&mut self.queues[h][r]) {
                    self.waits[end - p.arrived] += u64::from(p.people);
                    still_waiting += p.people;
                }
            }
        }
        still_waiting += self.transit[MINUTES..]
            .iter()
            .flatten()
            .flat_map(|t| t.parties.iter())
            .map(|p| p.people)
            .sum::<u32>();
        let total: u64 = self.waits.iter().sum();
        let weighted: u64 = self
            .waits
            .iter()
            .enumerate()
            .map(|(w, n)| w as u64 * n)
            .sum();
        let mut seen = 0;
        let mut p95 = 0;
        for (w, n) in self.waits.iter().enumerate() {
            seen += n;
            if total > 0 && seen * 100 >= total * 95 {
                p95 = w as u32;
                break;
            }
        }
        let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
        Metrics {
            policy: self.policy,
            visitors: self.visitors,
            served: self.served,
            red_minutes: self.areas.iter().map(|a| a.red).sum(),
            red_minutes_by_area: self
                .areas
                .iter()
                .filter(|a| a.red > 0)
                .map(|a| (a.id.clone(), a.red))
                .collect(),
            turned_away: self.turned_gate + self.turned_park,
            turned_away_at_gates: self.turned_gate,
            turned_away_at_car_parks: self.turned_park,
            gave_up: self.gave_up,
            still_waiting,
            wait_avg_min: if total > 0 {
                round(weighted as f64 / total as f64, 1)
            } else {
                0.0
            },
            wait_p95_min: p95,
            diverted: self.diverted,
            park_and_ride: self.park_and_ride,
            shuttle_departures: self.departures,
            peak_utilisation: self
                .areas
                .iter()
                .filter(|a| a.demanded)
                .map(|a| (a.id.clone(), round(f64::from(a.peak) / f64::from(a.cap), 3)))
                .collect(),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (&self.no_advice, &self.advice_followed);
        writeln!(
            f,
            "Golden-Week day {} (seed {}), Urumqi County registry + example dispatch model",
            self.date, self.seed
        )?;
        writeln!(
            f,
            "{:<48} {:>12} {:>16}",
            "", "no advice", "advice followed"
        )?;
        let rows: [(&str, String, String); 13] = [
            (
                "visitors setting out",
                a.visitors.to_string(),
                b.visitors.to_string(),
            ),
            (
                "served (admitted to an area)",
                a.served.to_string(),
                b.served.to_string(),
            ),
            (
                "area-minutes at red (≥100%)",
                a.red_minutes.to_string(),
                b.red_minutes.to_string(),
            ),
            (
                "turned away",
                a.turned_away.to_string(),
                b.turned_away.to_string(),
            ),
            (
                "  at a full gate",
                a.turned_away_at_gates.to_string(),
                b.turned_away_at_gates.to_string(),
            ),
            (
                "  at a full car park",
                a.turned_away_at_car_parks.to_string(),
                b.turned_away_at_car_parks.to_string(),
            ),
            (
                "gave up waiting at a hub",
                a.gave_up.to_string(),
                b.gave_up.to_string(),
            ),
            (
                "diverted to another area",
                a.diverted.to_string(),
                b.diverted.to_string(),
            ),
            (
                "drivers sent to park-and-ride",
                a.park_and_ride.to_string(),
                b.park_and_ride.to_string(),
            ),
            (
                "hub wait, average (min)",
                format!("{:.1}", a.wait_avg_min),
                format!("{:.1}", b.wait_avg_min),
            ),
            (
                "hub wait, p95 (min)",
                a.wait_p95_min.to_string(),
                b.wait_p95_min.to_string(),
            ),
            (
                "shuttle departures (vehicles)",
                a.shuttle_departures.to_string(),
                b.shuttle_departures.to_string(),
            ),
            (
                "peak utilisation, Tianshan Grand Canyon",
                format!(
                    "{:.0}%",
                    100.0
                        * a.peak_utilisation
                            .get("tianshan-canyon")
                            .copied()
                            .unwrap_or(0.0)
                ),
                format!(
                    "{:.0}%",
                    100.0
                        * b.peak_utilisation
                            .get("tianshan-canyon")
                            .copied()
                            .unwrap_or(0.0)
                ),
            ),
        ];
        for (label, x, y) in rows {
            // Pad by characters, not bytes (labels may hold non-ASCII).
            let pad = 48usize.saturating_sub(label.chars().count());
            writeln!(f, "{label}{:pad$} {x:>12} {y:>16}", "")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed_and_the_same_demand_for_both_policies() {
        let a = evaluate(7);
        assert_eq!(a, evaluate(7));
        assert_ne!(a.no_advice.visitors, evaluate(8).no_advice.visitors);
        assert_eq!(a.no_advice.visitors, a.advice_followed.visitors);
    }

    #[test]
    fn every_visitor_is_accounted_for() {
        for m in [&evaluate(3).no_advice, &evaluate(3).advice_followed] {
            assert_eq!(
                m.visitors,
                m.served + m.turned_away + m.gave_up + m.still_waiting,
                "{m:#?}"
            );
            assert_eq!(
                m.turned_away,
                m.turned_away_at_gates + m.turned_away_at_car_parks
            );
        }
    }

    /// The no-advice day must really overload the county, or the comparison says nothing.
    #[test]
    fn without_advice_the_canyon_overflows() {
        let c = evaluate(42);
        let n = &c.no_advice;
        assert!(
            n.red_minutes_by_area.contains_key("tianshan-canyon"),
            "{n:#?}"
        );
        assert!(n.turned_away_at_gates > 500, "{n:#?}");
        assert!(n.turned_away_at_car_parks > 500, "{n:#?}");
        assert_eq!(n.diverted + n.park_and_ride, 0);
    }

    /// Following the advice removes red and turn-aways without making waits explode. The wait
    /// bounds: the 95th percentile may grow by at most an hour and stay within two hours. Two
    /// hours is the shortest visit in the model — a hold longer than a visit is a lost day, and
    /// the hub should rather tell people not to come — and an hour is about what a visitor turned
    /// away at the canyon gate without advice has already lost (the ride there and back from the
    /// Southern Tourism Base is 2 × 60 min).
    #[test]
    fn advice_reduces_red_and_turn_aways_without_exploding_waits() {
        for seed in [42, 1, 2, 3] {
            let c = evaluate(seed);
            println!("{c}");
            let (n, a) = (&c.no_advice, &c.advice_followed);
            assert!(a.red_minutes < n.red_minutes, "seed {seed}: red {a:#?}");
            assert!(a.red_minutes * 10 <= n.red_minutes, "seed {seed}");
            assert!(
                a.turned_away * 10 <= n.turned_away,
                "seed {seed}: turned away"
            );
            assert!(a.turned_away < n.turned_away);
            // Holding people is not a way of losing them: more are served.
            assert!(a.served >= n.served, "seed {seed}: served");
            assert!(
                a.turned_away + a.gave_up < n.turned_away + n.gave_up,
                "seed {seed}: lost visitors"
            );
            assert!(a.wait_p95_min <= 120, "seed {seed}: p95 {}", a.wait_p95_min);
            assert!(a.wait_p95_min <= n.wait_p95_min + 60, "seed {seed}: p95");
            assert!(
                a.wait_avg_min <= 30.0,
                "seed {seed}: average {}",
                a.wait_avg_min
            );
            // The advice stays within its own target.
            let canyon = a.peak_utilisation["tianshan-canyon"];
            assert!(
                (0.8..=0.9).contains(&canyon),
                "seed {seed}: canyon peak {canyon}"
            );
            assert!(a.diverted > 0 && a.park_and_ride > 0);
        }
    }

    #[test]
    fn comparison_serialises_and_prints() {
        let c = evaluate(42);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["no_advice"]["policy"], "no_advice");
        assert_eq!(v["advice_followed"]["policy"], "advice_followed");
        assert_eq!(v["date"], "2026-10-02");
        let table = c.to_string();
        assert!(table.contains("area-minutes at red") && table.contains("advice followed"));
    }
}

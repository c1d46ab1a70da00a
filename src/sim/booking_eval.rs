//! The ticketing evaluation: a Golden-Week day at the Tianshan Grand Canyon, minute by minute,
//! with more visitors wanting to come than the area may admit — once with sales controlled by the
//! live levels alone (the service before timed entry: one day ticket, paused while a level is
//! red) and once booking-aware (`[admission]`: slot quotas, the daily load counting booked
//! visitors, a walk-in reserve). Same seeded demand; the real rules engine and the real admission
//! decisions (`rules::Engine`, `admission::{quotas, tally, decide}`) on the shipped registry and
//! plan. Pure and deterministic for a seed. `examples/admission_eval`.
//!
//! The day (2 October 2026, local time):
//! - **Demand**: 1.45 × the approved daily maximum want to come; 12% have no phone and come to
//!   buy at the gate (walk-ins), the rest buy online. Preferred arrival times: 70% around 10:00,
//!   30% around 13:30 (sd 75 min, within 08:00–17:00). 40% of online buyers bought before the
//!   day, the rest 30 min to 4 h before they set out. 5% of ticket holders never come. Visitors
//!   stay 2–3½ h.
//! - **Gates** honour every ticket (a paid ticket is admitted, as areas do). A walk-in is sold a
//!   ticket at the gate while sales are open (levels only) or while the walk-in reserve lasts and
//!   the instantaneous level is not red (booking-aware); otherwise turned away at the gate.
//! - **Online sales** obey the signal of the minute before: `open` sells, anything else tells the
//!   buyer before they travel. Booking-aware, a buyer takes the slot of their preferred time; a
//!   full slot sends 60% of them to the next slot with places, the rest stay home.

use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::admission::{self, AreaPlan, Reservations, Sales, SlotCounts};
use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::ids::{DeviceId, SpaceIdx};
use crate::registry::Registry;
use crate::rules::{DeviceHealth, Engine, Level, SpaceInput};

pub const DAY: (i32, u32, u32) = (2026, 10, 2);
pub const AREA: &str = "tianshan-canyon";
const DEMAND_FACTOR: f64 = 1.45;
const WALK_IN_SHARE: f64 = 0.12;
const BOUGHT_BEFORE_THE_DAY: f64 = 0.4;
const NO_SHOW: f64 = 0.05;
const TAKES_A_LATER_SLOT: f64 = 0.6;
const DWELL_MIN: (u32, u32) = (120, 210);
const MINUTES: usize = 24 * 60;

/// How sales are controlled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// One day ticket; sales pause while the live instantaneous or daily level is red.
    LevelsOnly,
    /// Timed-entry slots with quotas, booked visitors in the daily load, a walk-in reserve.
    BookingAware,
}

#[derive(Debug, Clone)]
struct Visitor {
    /// Preferred arrival, minutes from local midnight.
    wants: usize,
    /// When they buy (online buyers); 0 = before the day.
    buys_at: usize,
    dwell: usize,
    walk_in: bool,
    no_show: bool,
    flexible: bool,
}

/// One control's day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub admitted: u64,
    pub admitted_walk_ins: u64,
    /// Online buyers refused when buying: they stayed home.
    pub told_before_travel: u64,
    /// Came to the gate and were refused.
    pub turned_away_at_gate: u64,
    /// Booking-aware only: took a later slot than they wanted.
    pub moved_to_later_slot: u64,
    pub minutes_over_instant: u64,
    pub peak_occupancy: u64,
    pub minutes_sales_paused: u64,
    /// Changes of the sales signal (pauses and resumptions).
    pub sales_changes: u64,
}

/// Both controls on the same demand.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub seed: u64,
    pub date: NaiveDate,
    pub area: &'static str,
    pub instant_capacity: u32,
    pub daily_capacity: u32,
    pub demand: u64,
    pub walk_in_demand: u64,
    pub levels_only: Outcome,
    pub booking_aware: Outcome,
}

/// Both controls on the shipped registry, rules and `[admission]` plan.
pub fn evaluate(seed: u64) -> Comparison {
    let cfg = Config::from_toml(EMBEDDED_DEFAULT).expect("the embedded config parses");
    let registry = cfg.registry().expect("the embedded registry is valid");
    let reservations =
        Reservations::build(&cfg.admission, &registry).expect("the shipped plan is valid");
    let space = registry
        .space_idx(AREA)
        .expect("the canyon is in the registry");
    let plan = reservations
        .plan(space)
        .expect("the canyon sells timed entry");
    let s = registry.space(space);
    let (instant, daily) = (
        s.instant_capacity.unwrap_or(0),
        s.daily_capacity.unwrap_or(0),
    );
    let visitors = demand(seed, daily);
    let day = date();
    let run = |control| {
        let engine = Engine::for_registry(cfg.rules.clone(), &registry).expect("shipped rules");
        Day::new(&registry, space, plan, &reservations, engine, day, control).run(&visitors)
    };
    Comparison {
        seed,
        date: day,
        area: AREA,
        instant_capacity: instant,
        daily_capacity: daily,
        demand: visitors.len() as u64,
        walk_in_demand: visitors.iter().filter(|v| v.walk_in).count() as u64,
        levels_only: run(Control::LevelsOnly),
        booking_aware: run(Control::BookingAware),
    }
}

pub fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).expect("a valid date")
}

fn demand(seed: u64, daily: u32) -> Vec<Visitor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (f64::from(daily) * DEMAND_FACTOR).round() as usize;
    (0..n)
        .map(|_| {
            let centre = if rng.random::<f64>() < 0.7 {
                600.0
            } else {
                810.0
            };
            let wants = (centre + 75.0 * normal(&mut rng)).clamp(480.0, 1020.0) as usize;
            let lead = rng.random_range(30..=240);
            let buys_at = if rng.random::<f64>() < BOUGHT_BEFORE_THE_DAY {
                0
            } else {
                wants.saturating_sub(lead)
            };
            Visitor {
                wants,
                buys_at,
                dwell: rng.random_range(DWELL_MIN.0..=DWELL_MIN.1) as usize,
                walk_in: rng.random::<f64>() < WALK_IN_SHARE,
                no_show: rng.random::<f64>() < NO_SHOW,
                flexible: rng.random::<f64>() < TAKES_A_LATER_SLOT,
            }
        })
        .collect()
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A ticket holder on the way, booked for `slot` (booking-aware).
struct Ticket {
    slot: Option<usize>,
    no_show: bool,
    dwell: usize,
}

struct Day<'a> {
    registry: &'a Registry,
    space: SpaceIdx,
    plan: &'a AreaPlan,
    grace: TimeDelta,
    engine: Engine,
    day: NaiveDate,
    control: Control,
    instant: u32,
    daily: u32,
    occupancy: u64,
    entries: u64,
    walk_in_reserve: u64,
    /// Per slot: still booked (not arrived), checked in.
    booked: Vec<u64>,
    checked_in: Vec<u64>,
    arrivals: Vec<Vec<Ticket>>,
    leaving: Vec<u64>,
    sales: Sales,
    instant_red: bool,
    remaining: Vec<u64>,
    out: Outcome,
}

impl<'a> Day<'a> {
    fn new(
        registry: &'a Registry,
        space: SpaceIdx,
        plan: &'a AreaPlan,
        reservations: &Reservations,
        engine: Engine,
        day: NaiveDate,
        control: Control,
    ) -> Self {
        let s = registry.space(space);
        let daily = s.daily_capacity.unwrap_or(0);
        let slots = plan.slots.len();
        Self {
            registry,
            space,
            plan,
            grace: reservations.no_show_grace,
            engine,
            day,
            control,
            instant: s.instant_capacity.unwrap_or(0),
            daily,
            occupancy: 0,
            entries: 0,
            walk_in_reserve: u64::from(daily - admission::online_places(daily, plan.walk_in_share)),
            booked: vec![0; slots],
            checked_in: vec![0; slots],
            arrivals: (0..MINUTES + 1).map(|_| Vec::new()).collect(),
            leaving: vec![0; MINUTES + 24 * 60],
            sales: Sales::Open,
            instant_red: false,
            remaining: plan.quotas(daily).into_iter().map(u64::from).collect(),
            out: Outcome::default(),
        }
    }

    fn at(&self, minute: usize) -> DateTime<Utc> {
        self.day
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_local_timezone(self.registry.tz)
            .earliest()
            .expect("midnight exists")
            .to_utc()
            + TimeDelta::minutes(minute as i64)
    }

    /// The slot whose window holds `minute` (the first before opening, the last after).
    fn slot_of(&self, minute: usize) -> usize {
        let t = self.at(minute);
        let slots = &self.plan.slots;
        slots
            .iter()
            .position(|s| t < s.end_on(self.registry.tz, self.day))
            .unwrap_or(slots.len() - 1)
    }

    fn run(mut self, visitors: &[Visitor]) -> Outcome {
        let mut buying: Vec<Vec<usize>> = vec![Vec::new(); MINUTES];
        let mut walking: Vec<Vec<usize>> = vec![Vec::new(); MINUTES];
        for (i, v) in visitors.iter().enumerate() {
            if v.walk_in {
                walking[v.wants].push(i);
            } else {
                buying[v.buys_at].push(i);
            }
        }
        let mut rng = StdRng::seed_from_u64(0x736c_6f74);
        for m in 0..MINUTES {
            self.occupancy -= std::mem::take(&mut self.leaving[m]);
            for &i in &buying[m] {
                self.buy(&visitors[i], m, &mut rng);
            }
            for t in std::mem::take(&mut self.arrivals[m]) {
                if let Some(k) = t.slot {
                    self.booked[k] -= 1;
                }
                if t.no_show {
                    continue;
                }
                if let Some(k) = t.slot {
                    self.checked_in[k] += 1;
                }
                self.admit(m, t.dwell, false);
            }
            for &i in &walking[m] {
                let v = &visitors[i];
                let sells = match self.control {
                    Control::LevelsOnly => self.sales == Sales::Open,
                    Control::BookingAware => self.walk_in_reserve > 0 && !self.instant_red,
                };
                if sells {
                    self.walk_in_reserve = self.walk_in_reserve.saturating_sub(1);
                    self.admit(m, v.dwell, true);
                } else {
                    self.out.turned_away_at_gate += 1;
                }
            }
            self.evaluate(m);
        }
        self.out
    }

    fn admit(&mut self, m: usize, dwell: usize, walk_in: bool) {
        self.occupancy += 1;
        self.entries += 1;
        self.leaving[m + dwell] += 1;
        self.out.admitted += 1;
        if walk_in {
            self.out.admitted_walk_ins += 1;
        }
    }

    fn buy(&mut self, v: &Visitor, m: usize, rng: &mut StdRng) {
        if self.control == Control::LevelsOnly {
            if self.sales == Sales::Open {
                self.arrivals[v.wants.max(m)].push(Ticket {
                    slot: None,
                    no_show: v.no_show,
                    dwell: v.dwell,
                });
            } else {
                self.out.told_before_travel += 1;
            }
            return;
        }
        // Booking-aware: a red level or a hazard stops every sale; a full slot only its own.
        if self.sales != Sales::Open && self.remaining.iter().any(|&r| r > 0) {
            self.out.told_before_travel += 1;
            return;
        }
        let want = self.slot_of(v.wants);
        let now = self.at(m);
        let tz = self.registry.tz;
        let open = |k: usize, remaining: &[u64]| {
            remaining[k] > 0 && self.plan.slots[k].end_on(tz, self.day) > now
        };
        let slot = if open(want, &self.remaining) {
            Some(want)
        } else if v.flexible {
            (want + 1..self.plan.slots.len()).find(|&k| open(k, &self.remaining))
        } else {
            None
        };
        let Some(k) = slot else {
            self.out.told_before_travel += 1;
            return;
        };
        let spec = &self.plan.slots[k];
        let start = (spec.start_on(tz, self.day) - self.at(0)).num_minutes() as usize;
        let end = (spec.end_on(tz, self.day) - self.at(0)).num_minutes() as usize;
        let arrive = if k == want {
            v.wants.max(m)
        } else {
            self.out.moved_to_later_slot += 1;
            rng.random_range(start.max(m)..end.max(start.max(m) + 1))
        };
        self.remaining[k] -= 1;
        self.booked[k] += 1;
        self.arrivals[arrive.min(MINUTES)].push(Ticket {
            slot: Some(k),
            no_show: v.no_show,
            dwell: v.dwell,
        });
    }

    /// The rules engine and the admission decision on the minute's figures.
    fn evaluate(&mut self, m: usize) {
        let now = self.at(m + 1);
        let mut input = SpaceInput {
            day: Some(self.day),
            occupancy: self.occupancy,
            entries_today: self.entries,
            instant_capacity: Some(self.instant),
            daily_capacity: Some(self.daily),
            devices: vec![DeviceHealth::heard(DeviceId::new("gate"), now)],
            ..SpaceInput::default()
        };
        let mut sold_out = false;
        let mut remaining = None;
        if self.control == Control::BookingAware {
            let quotas = self.plan.quotas(self.daily);
            let counts: Vec<_> = self
                .plan
                .slots
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let c = SlotCounts {
                        booked: self.booked[k],
                        checked_in: self.checked_in[k],
                        cancelled: 0,
                    };
                    (s.start, c)
                })
                .collect();
            let tz = self.registry.tz;
            let slots =
                admission::tally(self.plan, &quotas, &counts, tz, self.day, self.grace, now);
            input.booked = admission::booked_arrivals(&slots, self.grace);
            let left = admission::remaining_today(&slots, now);
            // As the service decides: only while slots are still to come.
            sold_out = left == 0 && slots.iter().any(|s| s.ends_at > now);
            remaining = Some(left);
        }
        let ev = self.engine.evaluate(self.space, now, &input);
        let signal = admission::decide(&ev.status, sold_out, remaining);
        self.instant_red = ev.status.instant.level == Some(Level::Red);
        if signal.state != self.sales {
            self.out.sales_changes += 1;
            self.sales = signal.state;
        }
        if self.sales != Sales::Open && (480..1080).contains(&m) {
            self.out.minutes_sales_paused += 1;
        }
        if self.occupancy > u64::from(self.instant) {
            self.out.minutes_over_instant += 1;
        }
        self.out.peak_occupancy = self.out.peak_occupancy.max(self.occupancy);
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (&self.levels_only, &self.booking_aware);
        writeln!(
            f,
            "Golden-Week day {} (seed {}), {}: instantaneous max {}, daily max {}, {} want to come ({} walk-ins)",
            self.date,
            self.seed,
            self.area,
            self.instant_capacity,
            self.daily_capacity,
            self.demand,
            self.walk_in_demand
        )?;
        writeln!(
            f,
            "{:<44} {:>14} {:>14}",
            "", "levels only", "booking-aware"
        )?;
        let pct = |n: u64, of: u32| format!("{:.0}%", 100.0 * n as f64 / f64::from(of.max(1)));
        let rows: [(&str, String, String); 10] = [
            ("admitted", a.admitted.to_string(), b.admitted.to_string()),
            (
                "admitted / daily maximum",
                pct(a.admitted, self.daily_capacity),
                pct(b.admitted, self.daily_capacity),
            ),
            (
                "minutes over the instantaneous maximum",
                a.minutes_over_instant.to_string(),
                b.minutes_over_instant.to_string(),
            ),
            (
                "peak crowd / instantaneous maximum",
                pct(a.peak_occupancy, self.instant_capacity),
                pct(b.peak_occupancy, self.instant_capacity),
            ),
            (
                "turned away at the gate (had travelled)",
                a.turned_away_at_gate.to_string(),
                b.turned_away_at_gate.to_string(),
            ),
            (
                "told before travelling (sale refused)",
                a.told_before_travel.to_string(),
                b.told_before_travel.to_string(),
            ),
            (
                "took a later slot",
                a.moved_to_later_slot.to_string(),
                b.moved_to_later_slot.to_string(),
            ),
            (
                "walk-ins admitted (no phone)",
                format!("{} of {}", a.admitted_walk_ins, self.walk_in_demand),
                format!("{} of {}", b.admitted_walk_ins, self.walk_in_demand),
            ),
            (
                "minutes sales paused (08:00–18:00)",
                a.minutes_sales_paused.to_string(),
                b.minutes_sales_paused.to_string(),
            ),
            (
                "sales signal changes",
                a.sales_changes.to_string(),
                b.sales_changes.to_string(),
            ),
        ];
        for (name, x, y) in rows {
            writeln!(f, "{name:<44} {x:>14} {y:>14}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_aware_control_keeps_the_crowd_within_the_maximum_and_tells_visitors_early() {
        let c = evaluate(42);
        let (a, b) = (&c.levels_only, &c.booking_aware);
        // Every visitor is accounted for exactly once in each control.
        for o in [a, b] {
            let no_shows = o.admitted + o.told_before_travel + o.turned_away_at_gate;
            assert!(no_shows <= c.demand, "{c}");
            assert!(
                c.demand - no_shows < c.demand / 10,
                "only no-shows unaccounted: {c}"
            );
        }
        // Ticket holders are honoured, so selling on live levels alone admits past the daily
        // maximum; booking-aware control stays within it and within the instantaneous maximum.
        assert!(a.admitted > u64::from(c.daily_capacity), "{c}");
        assert!(b.admitted <= u64::from(c.daily_capacity), "{c}");
        assert!(b.minutes_over_instant < a.minutes_over_instant, "{c}");
        // Refusals move from the gate to the moment of sale, and the walk-in window stays open.
        assert!(b.turned_away_at_gate < a.turned_away_at_gate, "{c}");
        assert!(b.told_before_travel > a.told_before_travel, "{c}");
        assert!(b.admitted_walk_ins > a.admitted_walk_ins, "{c}");
        assert_eq!(evaluate(42).booking_aware, *b, "deterministic for a seed");
    }
}

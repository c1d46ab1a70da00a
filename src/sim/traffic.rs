//! The pure traffic model: how many people (vehicles, for car parks) enter and leave each space of
//! the registry during a tick of simulated local time, split over the space's devices; plus the
//! calendar (weekends, Golden Weeks) and the simulated [`Clock`]. No I/O, no wall clock: the same
//! seed and the same sequence of `step` calls give the same flows (for one build: `StdRng`'s
//! algorithm may change between `rand` releases).
//!
//! Shape of a day, per space role:
//! - scenic area: arrivals from `opens_at` (default 08:00), a morning peak around 10:30 and a smaller
//!   one early afternoon, last admission 90 min before closing (20:00); a mean stay of 3 h and an
//!   exit rate that climbs towards closing, so the area is near-empty by 20:00;
//! - zone: a later, shorter visit (1 h), never more visitors than 90% of its area's;
//! - car park: the area's arrival curve, a bit earlier, ≈ visitors / 3 vehicles shared by capacity
//!   among the area's car parks, refused when full; at a hub, park-and-ride (the hub's morning
//!   wave, parked for a 4-hour visit);
//! - hub (transport / distribution centre): a sharp morning queue around 08:30 and an afternoon
//!   return, short waits.
//!
//! Each day is calibrated so the space's peak occupancy is a share of its instantaneous capacity:
//! about 31% on a weekday, ×1.6 at weekends, ×3 on holidays (80–100%), jittered per day and space,
//! capped by the daily capacity. Departures are drawn from the people present at the start of each
//! sub-step, so no space ever holds fewer than zero people, whatever its devices report.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::SimError;
use crate::calendar::{Calendar, DayKind};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;
use crate::registry::SpaceKind;

/// Peak occupancy of an ordinary weekday as a share of instantaneous capacity.
const WEEKDAY_PEAK_SHARE: f64 = 0.31;
/// Day-to-day variation of demand (weather, events), per space.
const JITTER: (f64, f64) = (0.97, 1.07);
pub const WEEKEND_FACTOR: f64 = 1.6;
pub const HOLIDAY_FACTOR: f64 = 3.0;
const VISITORS_PER_VEHICLE: f64 = 3.0;
/// A zone draws its visitors from its area: at most this share of them.
const ZONE_MAX_SHARE: f64 = 0.9;
/// Longest internal step: long ticks are integrated minute by minute so their totals do not depend
/// on where the tick boundaries fall within the day's curve.
const SUB_STEP_MS: i64 = 60_000;
const MINUTES_PER_DAY: f64 = 1440.0;

/// Golden Weeks: Labour Day (May 1–5) and National Day (Oct 1–7), for years the calendar does
/// not cover.
pub fn is_holiday(date: NaiveDate) -> bool {
    matches!((date.month(), date.day()), (5, 1..=5) | (10, 1..=7))
}

/// Demand multiplier of a local date: 3 on public holidays, 1.6 on other days off (weekends not
/// worked), else 1 — by `calendar` where it covers the year (make-up working days are working
/// days), by the Golden Weeks and weekends elsewhere.
pub fn day_factor_in(calendar: &Calendar, date: NaiveDate) -> f64 {
    if calendar.coverage(date.year()).is_none() {
        return day_factor(date);
    }
    match calendar.kind(date) {
        DayKind::Holiday => HOLIDAY_FACTOR,
        DayKind::Weekend => WEEKEND_FACTOR,
        DayKind::Workday | DayKind::MakeUpWorkday => 1.0,
    }
}

/// Demand multiplier of a local date without a calendar: 3 in the Golden Weeks, 1.6 at
/// weekends, else 1.
pub fn day_factor(date: NaiveDate) -> f64 {
    if is_holiday(date) {
        HOLIDAY_FACTOR
    } else if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        WEEKEND_FACTOR
    } else {
        1.0
    }
}

/// People (or vehicles) through one device during a tick, as they moved: `entered` went into the
/// device's space. [`super::report`] turns this into what the device reports (`direction`, lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    pub entered: u32,
    pub left: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Area,
    Zone,
    CarPark,
    Hub,
}

#[derive(Debug, Clone, Copy)]
struct Peak {
    at: f64,
    sd: f64,
    weight: f64,
}

/// One space's daily curve, in minutes since local midnight.
#[derive(Debug, Clone)]
struct Profile {
    open: f64,
    close: f64,
    last_admission: f64,
    peaks: [Peak; 2],
    /// Mean stay (minutes) during opening hours.
    dwell: f64,
    /// Σ of the unnormalised arrival shape over the day's minutes.
    norm: f64,
    /// Peak occupancy per daily visitor: turns a target peak into a number of visitors.
    peak_per_visitor: f64,
}

impl Profile {
    /// `source`: for a car park, the role of the space it serves (a hub's is park-and-ride).
    fn new(role: Role, source: Option<Role>, open: f64) -> Self {
        let close = if open <= 14.0 * 60.0 {
            20.0 * 60.0
        } else {
            (open + 360.0).min(MINUTES_PER_DAY - 1.0)
        };
        let peak = |offset: f64, not_before: f64, sd: f64, weight: f64| Peak {
            at: (open + offset).max(not_before),
            sd,
            weight,
        };
        let (peaks, dwell, admission_ends) = match role {
            Role::Area => (
                [
                    peak(120.0, 630.0, 75.0, 1.0),
                    peak(270.0, 810.0, 90.0, 0.45),
                ],
                180.0,
                90.0,
            ),
            Role::Zone => (
                [peak(150.0, 660.0, 60.0, 1.0), peak(300.0, 840.0, 75.0, 0.4)],
                60.0,
                60.0,
            ),
            // Park-and-ride: the hub's morning wave parks for the visit; few arrive later.
            Role::CarPark if source == Some(Role::Hub) => (
                [peak(50.0, 500.0, 50.0, 1.0), peak(170.0, 950.0, 60.0, 0.1)],
                240.0,
                30.0,
            ),
            Role::CarPark => (
                [
                    peak(100.0, 610.0, 75.0, 1.0),
                    peak(250.0, 790.0, 90.0, 0.45),
                ],
                200.0,
                90.0,
            ),
            Role::Hub => (
                [peak(60.0, 510.0, 50.0, 1.0), peak(180.0, 960.0, 60.0, 0.5)],
                25.0,
                30.0,
            ),
        };
        let mut p = Self {
            open,
            close,
            last_admission: close - admission_ends,
            peaks,
            dwell,
            norm: 0.0,
            peak_per_visitor: 0.0,
        };
        p.calibrate();
        p
    }

    fn shape(&self, m: f64) -> f64 {
        if m < self.open || m >= self.last_admission {
            return 0.0;
        }
        self.peaks
            .iter()
            .map(|p| p.weight * (-0.5 * ((m - p.at) / p.sd).powi(2)).exp())
            .sum()
    }

    /// Share of the day's visitors arriving per minute at minute `m`.
    fn density(&self, m: f64) -> f64 {
        if self.norm > 0.0 {
            self.shape(m) / self.norm
        } else {
            0.0
        }
    }

    /// Leaving rate (per minute, per person present) at minute `m`: the mean stay while open,
    /// climbing over the last two hours so the space empties by closing, then fast.
    fn hazard(&self, m: f64) -> f64 {
        if m < self.open || m >= self.close {
            1.0 / 5.0
        } else if m >= self.close - 120.0 {
            let ramp = (m - (self.close - 120.0)) / 120.0;
            1.0 / self.dwell + ramp * ramp / 12.0
        } else {
            1.0 / self.dwell
        }
    }

    /// Integrates the expected occupancy of one visitor-normalised day, minute by minute, in the
    /// same order as `TrafficModel::sub_step` (departures, then arrivals).
    fn calibrate(&mut self) {
        self.norm = (0..1440).map(|i| self.shape(f64::from(i) + 0.5)).sum();
        let (mut n, mut peak) = (0.0_f64, 0.0_f64);
        for i in 0..1440 {
            let m = f64::from(i) + 0.5;
            n = n * (-self.hazard(m)).exp() + self.density(m);
            peak = peak.max(n);
        }
        self.peak_per_visitor = peak;
    }
}

#[derive(Debug, Clone)]
struct SpaceSim {
    space: SpaceIdx,
    role: Role,
    profile: Profile,
    capacity: f64,
    daily_capacity: Option<f64>,
    /// Car parks refuse vehicles when full; people spaces can be overcrowded (that is what the
    /// service alarms on).
    hard_cap: Option<u64>,
    /// Position (in `TrafficModel::sims`) of the space whose visitors drive this one.
    source: Option<usize>,
    /// Car parks: this park's share of its source's vehicles.
    share: f64,
    visitors_today: f64,
    /// Arrivals since the model's day began.
    entered_today: u64,
    occupancy: u64,
    devices: Vec<(DeviceIdx, f64)>,
}

/// The seeded model. See the module docs for the shape of a day.
#[derive(Debug, Clone)]
pub struct TrafficModel {
    tz: Tz,
    seed: u64,
    intensity: f64,
    rng: StdRng,
    /// Sources before the spaces they drive (areas and hubs, then zones, then car parks).
    sims: Vec<SpaceSim>,
    sim_of_space: Vec<Option<usize>>,
    n_devices: usize,
    day: Option<NaiveDate>,
    /// Which days are holidays and days off (the shipped calendar unless set).
    calendar: Arc<Calendar>,
}

impl TrafficModel {
    /// A model for every scenic area, zone, car park and hub of `registry` (and the county when
    /// devices are bound to it), all empty.
    pub fn new(registry: &Registry, seed: u64) -> Self {
        let role_of = |idx: SpaceIdx| -> Option<Role> {
            let s = registry.space(idx);
            match s.kind {
                SpaceKind::ScenicArea => Some(Role::Area),
                SpaceKind::Zone => Some(Role::Zone),
                SpaceKind::CarPark => Some(Role::CarPark),
                SpaceKind::Hub => Some(Role::Hub),
                SpaceKind::County => registry
                    .devices
                    .iter()
                    .any(|d| d.space == idx)
                    .then_some(Role::Area),
            }
        };
        let rank = |r: Role| match r {
            Role::Area | Role::Hub => 0,
            Role::Zone => 1,
            Role::CarPark => 2,
        };
        let mut order: Vec<(SpaceIdx, Role)> = registry
            .spaces
            .iter()
            .filter_map(|s| role_of(s.idx).map(|r| (s.idx, r)))
            .collect();
        order.sort_by_key(|&(_, r)| rank(r));

        let mut sim_of_space = vec![None; registry.spaces.len()];
        let mut sims: Vec<SpaceSim> = Vec::with_capacity(order.len());
        for (idx, role) in order {
            let space = registry.space(idx);
            // Zones draw on the nearest enclosing area; car parks on the area or hub they serve.
            let source = match role {
                Role::Zone => {
                    let mut cur = space.parent;
                    loop {
                        match cur {
                            Some(p) if registry.space(p).kind == SpaceKind::Zone => {
                                cur = registry.space(p).parent;
                            }
                            Some(p) => break sim_of_space[p.get()],
                            None => break None,
                        }
                    }
                }
                Role::CarPark => space
                    .parent
                    .and_then(|p| sim_of_space[p.get()])
                    .filter(|&i: &usize| matches!(sims[i].role, Role::Area | Role::Hub)),
                Role::Area | Role::Hub => None,
            };
            let open = if space.opens_at != NaiveTime::MIN {
                f64::from(space.opens_at.num_seconds_from_midnight()) / 60.0
            } else {
                match (role, source) {
                    (Role::Zone, Some(src)) => sims[src].profile.open,
                    (Role::CarPark, Some(src)) => (sims[src].profile.open - 30.0).max(0.0),
                    (Role::Hub, _) => 390.0,
                    _ => 480.0,
                }
            };
            let capacity = space
                .instant_capacity
                .map(f64::from)
                .or(space.daily_capacity.map(|d| f64::from(d) / 4.0))
                .unwrap_or_else(|| match (role, source) {
                    (Role::Zone, Some(src)) => (sims[src].capacity * 0.3).max(50.0),
                    (Role::Area, _) => 2000.0,
                    (Role::Zone, None) | (Role::Hub, _) => 500.0,
                    (Role::CarPark, _) => 200.0,
                });
            let devices: Vec<(DeviceIdx, f64)> = registry
                .devices
                .iter()
                .filter(|d| d.space == idx)
                .enumerate()
                // The first device declared is the main gate: it sees the most traffic.
                .map(|(i, d)| (d.idx, 1.0 / (1.0 + 0.5 * i as f64)))
                .collect();
            sim_of_space[idx.get()] = Some(sims.len());
            sims.push(SpaceSim {
                space: idx,
                role,
                profile: Profile::new(role, source.map(|i| sims[i].role), open),
                capacity,
                daily_capacity: space.daily_capacity.map(f64::from),
                hard_cap: (role == Role::CarPark).then_some(capacity.round() as u64),
                source,
                share: 1.0,
                visitors_today: 0.0,
                entered_today: 0,
                occupancy: 0,
                devices,
            });
        }
        // An area's vehicles spread over its car parks in proportion to their size.
        for i in 0..sims.len() {
            if let (Role::CarPark, Some(src)) = (sims[i].role, sims[i].source) {
                let total: f64 = sims
                    .iter()
                    .filter(|s| s.role == Role::CarPark && s.source == Some(src))
                    .map(|s| s.capacity)
                    .sum();
                sims[i].share = sims[i].capacity / total;
            }
        }
        Self {
            tz: registry.tz,
            seed,
            intensity: 1.0,
            rng: StdRng::seed_from_u64(seed),
            sims,
            sim_of_space,
            n_devices: registry.devices.len(),
            day: None,
            calendar: Arc::new(Calendar::build(&Default::default(), None).unwrap_or_default()),
        }
    }

    /// Holidays and days off from `calendar` (a county's own, or a demo's simulated holiday).
    pub fn with_calendar(mut self, calendar: Arc<Calendar>) -> Self {
        self.calendar = calendar;
        self
    }

    /// Scales every space's demand (1 = the calendar above; 1.5 pushes holidays past capacity).
    /// Negative or non-finite values count as 0.
    pub fn with_intensity(mut self, intensity: f64) -> Self {
        self.intensity = if intensity.is_finite() {
            intensity.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// Simulated crowd in `space` now (`None` for a space the model does not drive).
    pub fn occupancy(&self, space: SpaceIdx) -> Option<u64> {
        self.sim_of_space
            .get(space.get())
            .copied()
            .flatten()
            .map(|i| self.sims[i].occupancy)
    }

    /// The day's demand of `space` (visitors the model sends today) and its arrivals so far.
    pub fn demand(&self, space: SpaceIdx) -> Option<(f64, u64)> {
        self.sim_of_space
            .get(space.get())
            .copied()
            .flatten()
            .map(|i| (self.sims[i].visitors_today, self.sims[i].entered_today))
    }

    /// Advances the model over `[start, start + tick)` and returns the flow through every device,
    /// indexed by [`DeviceIdx`]. Calls are expected in time order; the model does not look back.
    pub fn step(&mut self, start: DateTime<Tz>, tick: Duration) -> Vec<Flow> {
        let mut flows = vec![Flow::default(); self.n_devices];
        let total_ms = i64::try_from(tick.as_millis()).unwrap_or(i64::MAX);
        let mut done = 0;
        while done < total_ms {
            let dt = (total_ms - done).min(SUB_STEP_MS);
            self.sub_step(start + TimeDelta::milliseconds(done), dt, &mut flows);
            done += dt;
        }
        flows
    }

    fn sub_step(&mut self, at: DateTime<Tz>, dt_ms: i64, flows: &mut [Flow]) {
        let local = at.with_timezone(&self.tz);
        let date = local.date_naive();
        if self.day != Some(date) {
            self.roll_day(date);
        }
        let dt_min = dt_ms as f64 / 60_000.0;
        let mid = (f64::from(local.num_seconds_from_midnight())
            + f64::from(local.nanosecond()) / 1e9)
            / 60.0
            + dt_min / 2.0;
        let mid = mid.min(MINUTES_PER_DAY - 1e-6);
        let Self { sims, rng, .. } = self;
        for sim in sims.iter_mut() {
            let p = &sim.profile;
            let q = 1.0 - (-p.hazard(mid) * dt_min).exp();
            let left = binomial(rng, sim.occupancy, q);
            sim.occupancy -= left;
            let mut entered = poisson(rng, sim.visitors_today * p.density(mid) * dt_min);
            if let Some(cap) = sim.hard_cap {
                entered = entered.min(cap.saturating_sub(sim.occupancy));
            }
            sim.occupancy += entered;
            sim.entered_today += entered;
            split(rng, entered, &sim.devices, |d, n| {
                let f = &mut flows[d.get()];
                f.entered = f.entered.saturating_add(n);
            });
            split(rng, left, &sim.devices, |d, n| {
                let f = &mut flows[d.get()];
                f.left = f.left.saturating_add(n);
            });
        }
    }

    /// Sets every space's number of visitors for `date`, sources first.
    fn roll_day(&mut self, date: NaiveDate) {
        let factor = day_factor_in(&self.calendar, date);
        for i in 0..self.sims.len() {
            let s = &self.sims[i];
            let target_peak = WEEKDAY_PEAK_SHARE
                * factor
                * jitter(self.seed, date, s.space)
                * self.intensity
                * s.capacity;
            let own = if s.profile.peak_per_visitor > 0.0 {
                target_peak / s.profile.peak_per_visitor
            } else {
                0.0
            };
            let own = s.daily_capacity.map_or(own, |d| own.min(d));
            let visitors = match (s.role, s.source) {
                (Role::Zone, Some(src)) => own.min(ZONE_MAX_SHARE * self.sims[src].visitors_today),
                (Role::CarPark, Some(src)) => {
                    let v = self.sims[src].visitors_today * s.share / VISITORS_PER_VEHICLE;
                    s.daily_capacity.map_or(v, |d| v.min(d))
                }
                _ => own,
            };
            self.sims[i].visitors_today = visitors;
            self.sims[i].entered_today = 0;
        }
        self.day = Some(date);
    }
}

/// Deterministic per (seed, date, space) factor in `JITTER`, independent of how the day is stepped.
fn jitter(seed: u64, date: NaiveDate, space: SpaceIdx) -> f64 {
    let h = splitmix64(
        seed ^ splitmix64(date.num_days_from_ce() as u64) ^ splitmix64(0x5eed ^ space.0 as u64),
    );
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    JITTER.0 + (JITTER.1 - JITTER.0) * u
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Spreads `n` over `devices` by weight (multinomial, as sequential binomials).
fn split(
    rng: &mut StdRng,
    n: u64,
    devices: &[(DeviceIdx, f64)],
    mut add: impl FnMut(DeviceIdx, u32),
) {
    if n == 0 {
        return;
    }
    let mut rest = n;
    let mut rest_w: f64 = devices.iter().map(|(_, w)| w).sum();
    for (i, &(d, w)) in devices.iter().enumerate() {
        let x = if i + 1 == devices.len() {
            rest
        } else {
            binomial(rng, rest, w / rest_w)
        };
        add(d, u32::try_from(x).unwrap_or(u32::MAX));
        rest -= x;
        rest_w -= w;
        if rest == 0 {
            break;
        }
    }
}

fn standard_normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; 1 - u keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson(λ): exact (Knuth) for small λ, normal approximation above.
fn poisson(rng: &mut StdRng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0_f64);
        loop {
            p *= rng.random::<f64>();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
    (lambda + lambda.sqrt() * standard_normal(rng))
        .round()
        .max(0.0) as u64
}

/// Binomial(n, p), never above `n`: exact for small `n`, Poisson or normal approximation above.
fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 50 {
        return (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
    }
    let mean = n as f64 * p;
    let x = if mean < 30.0 {
        poisson(rng, mean)
    } else {
        let sd = (mean * (1.0 - p)).sqrt();
        (mean + sd * standard_normal(rng)).round().max(0.0) as u64
    };
    x.min(n)
}

/// Simulated time: `speed` simulated seconds per real second from `start` (60 = a day in 24 real
/// minutes). An infinite speed means unpaced: ticks follow each other as fast as they are published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    start: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    pub fn new(start: DateTime<Utc>, speed: f64) -> Result<Self, SimError> {
        if speed.is_nan() || speed <= 0.0 {
            return Err(SimError::InvalidOption(format!(
                "speed must be positive (got {speed})"
            )));
        }
        Ok(Self { start, speed })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn is_paced(&self) -> bool {
        self.speed.is_finite()
    }

    /// The simulated instant reached `real` after the start (the far future when unpaced).
    pub fn sim_at(&self, real: Duration) -> DateTime<Utc> {
        if !self.is_paced() {
            return DateTime::<Utc>::MAX_UTC;
        }
        let ms = (real.as_secs_f64() * self.speed * 1000.0).min(i64::MAX as f64 / 2.0) as i64;
        self.start
            .checked_add_signed(TimeDelta::milliseconds(ms))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// How long after the start, in real time, the simulated instant `at` is due (zero when
    /// unpaced or already past).
    pub fn real_offset(&self, at: DateTime<Utc>) -> Duration {
        if !self.is_paced() || at <= self.start {
            return Duration::ZERO;
        }
        let sim = (at - self.start).to_std().unwrap_or(Duration::MAX);
        Duration::try_from_secs_f64(sim.as_secs_f64() / self.speed).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testutil::registry;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn local(reg: &Registry, y: i32, m: u32, d: u32, h: u32) -> DateTime<Tz> {
        reg.tz.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// Runs `days` from local midnight; returns per-tick flows.
    fn run(
        reg: &Registry,
        seed: u64,
        from: DateTime<Tz>,
        tick: Duration,
        ticks: usize,
    ) -> Vec<Vec<Flow>> {
        let mut m = TrafficModel::new(reg, seed);
        let step = TimeDelta::from_std(tick).unwrap();
        (0..ticks)
            .map(|k| m.step(from + step * k as i32, tick))
            .collect()
    }

    /// What a receiver folding reports into each device's `targets` sees per tick.
    fn occupancy_series(reg: &Registry, flows: &[Vec<Flow>]) -> Vec<Vec<i64>> {
        let mut occ = vec![0i64; reg.spaces.len()];
        flows
            .iter()
            .map(|tick| {
                for d in &reg.devices {
                    let f = tick[d.idx.get()];
                    for t in reg.targets(d.idx) {
                        occ[t.get()] += i64::from(f.entered) - i64::from(f.left);
                    }
                }
                occ.clone()
            })
            .collect()
    }

    fn peak(series: &[Vec<i64>], space: SpaceIdx) -> (usize, i64) {
        series
            .iter()
            .enumerate()
            .map(|(i, o)| (i, o[space.get()]))
            .max_by_key(|&(_, v)| v)
            .unwrap()
    }

    #[test]
    fn calendar() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert!(is_holiday(d(10, 1)) && is_holiday(d(10, 7)) && is_holiday(d(5, 5)));
        assert!(!is_holiday(d(10, 8)) && !is_holiday(d(5, 6)));
        assert_eq!(day_factor(d(10, 3)), HOLIDAY_FACTOR); // a Saturday, still ×3
        assert_eq!(day_factor(d(10, 10)), WEEKEND_FACTOR);
        assert_eq!(day_factor(d(10, 13)), 1.0);
        // With the calendar: 2026's make-up working days are working days, the Spring Festival
        // is a holiday, and a year it does not cover falls back to the Golden Weeks.
        let cal = Calendar::build(&Default::default(), None).unwrap();
        assert_eq!(
            day_factor_in(&cal, d(10, 10)),
            1.0,
            "Saturday worked (调休)"
        );
        assert_eq!(day_factor_in(&cal, d(2, 16)), HOLIDAY_FACTOR);
        assert_eq!(day_factor_in(&cal, d(10, 17)), WEEKEND_FACTOR);
        let far = NaiveDate::from_ymd_opt(2031, 10, 3).unwrap();
        assert_eq!(day_factor_in(&cal, far), HOLIDAY_FACTOR);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let reg = registry();
        let from = local(&reg, 2026, 10, 13, 6);
        let a = run(&reg, 7, from, Duration::from_secs(60), 600);
        let b = run(&reg, 7, from, Duration::from_secs(60), 600);
        let c = run(&reg, 8, from, Duration::from_secs(60), 600);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn weekday_shape_peaks_near_midday_and_empties_by_closing() {
        let reg = registry();
        let area = reg.space_idx("canyon").unwrap();
        let cap = f64::from(reg.space(area).instant_capacity.unwrap());
        // Tuesday 2026-10-13, one-minute ticks from midnight.
        let flows = run(
            &reg,
            1,
            local(&reg, 2026, 10, 13, 0),
            Duration::from_secs(60),
            1440,
        );
        let occ = occupancy_series(&reg, &flows);
        let (at, top) = peak(&occ, area);
        assert!((11 * 60..14 * 60).contains(&at), "peak at minute {at}");
        let share = top as f64 / cap;
        assert!((0.25..=0.5).contains(&share), "weekday peak {share}");
        assert!(occ[8 * 60 - 1][area.get()] == 0, "nobody before opening");
        let late = occ[20 * 60 + 30][area.get()] as f64;
        assert!(late < 0.03 * top as f64, "{late} still inside at 20:30");
    }

    #[test]
    fn holidays_are_busier_than_weekdays() {
        let reg = registry();
        let area = reg.space_idx("canyon").unwrap();
        let cap = f64::from(reg.space(area).instant_capacity.unwrap());
        let day = |d| {
            let flows = run(
                &reg,
                3,
                local(&reg, 2026, 10, d, 0),
                Duration::from_secs(300),
                288,
            );
            let entered: u64 = flows
                .iter()
                .flat_map(|t| {
                    reg.devices
                        .iter()
                        .filter(|dev| dev.space == area)
                        .map(|dev| u64::from(t[dev.idx.get()].entered))
                })
                .sum();
            (peak(&occupancy_series(&reg, &flows), area).1, entered)
        };
        let (holiday_peak, holiday_in) = day(2);
        let (weekday_peak, weekday_in) = day(13);
        // Saturday 17 October (Saturday the 10th is a make-up working day in 2026).
        let (weekend_peak, _) = day(17);
        assert!(holiday_in > 2 * weekday_in);
        assert!(weekday_peak < weekend_peak && weekend_peak < holiday_peak);
        let share = holiday_peak as f64 / cap;
        assert!((0.8..=1.05).contains(&share), "holiday peak {share}");
    }

    #[test]
    fn car_parks_follow_arrivals_and_never_overfill() {
        let reg = registry();
        let park = reg.space_idx("canyon-p1").unwrap();
        let cap = i64::from(reg.space(park).instant_capacity.unwrap());
        let flows = run(
            &reg,
            5,
            local(&reg, 2026, 10, 1, 0),
            Duration::from_secs(60),
            1440,
        );
        let occ = occupancy_series(&reg, &flows);
        let at = |h: usize| occ[h * 60][park.get()];
        assert!(occ.iter().all(|o| o[park.get()] <= cap));
        assert_eq!(at(7), 0, "closed before 07:30");
        // A holiday fills it by late morning; it empties with the area in the evening.
        assert!(
            occ.iter().any(|o| o[park.get()] * 20 >= cap * 19),
            "never full"
        );
        assert!(at(11) * 4 >= cap * 3, "{} of {cap} at 11:00", at(11));
        assert!(at(21) * 20 < cap, "{} still parked at 21:00", at(21));
        let vehicles: u64 = flows
            .iter()
            .map(|t| u64::from(t[reg.device_idx("p1-vc").unwrap().get()].entered))
            .sum();
        let visitors: u64 = flows
            .iter()
            .map(|t| u64::from(t[reg.device_idx("canyon-g1").unwrap().get()].entered))
            .sum();
        assert!(
            vehicles < visitors,
            "fewer vehicles ({vehicles}) than people ({visitors})"
        );
    }

    #[test]
    fn hubs_queue_in_the_morning() {
        let reg = registry();
        let hub = reg.space_idx("hub").unwrap();
        let flows = run(
            &reg,
            9,
            local(&reg, 2026, 10, 13, 0),
            Duration::from_secs(60),
            1440,
        );
        let series = occupancy_series(&reg, &flows);
        let (at, top) = peak(&series, hub);
        assert!(top > 0);
        assert!(
            (7 * 60..10 * 60 + 30).contains(&at),
            "hub peak at minute {at}"
        );
        // Its car park is park-and-ride: filled by the morning wave, emptied in the evening.
        let park = reg.space_idx("hub-p").unwrap();
        let (at, top) = peak(&series, park);
        assert!(top > 0 && at < 13 * 60, "hub car park peak at minute {at}");
        assert!(series[20 * 60 + 30][park.get()] * 20 < top);
    }

    #[test]
    fn unmeasured_area_fills_through_its_zone() {
        let reg = registry();
        let lake = reg.space_idx("lake").unwrap();
        let flows = run(
            &reg,
            11,
            local(&reg, 2026, 5, 2, 0),
            Duration::from_secs(120),
            720,
        );
        let occ = occupancy_series(&reg, &flows);
        assert!(peak(&occ, lake).1 > 0);
    }

    #[test]
    fn clock_maps_real_to_simulated_time() {
        let start = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
        let c = Clock::new(start, 60.0).unwrap();
        assert_eq!(
            c.sim_at(Duration::from_secs(24 * 60)),
            start + TimeDelta::days(1)
        );
        assert_eq!(
            c.real_offset(start + TimeDelta::hours(1)),
            Duration::from_secs(60)
        );
        assert_eq!(c.real_offset(start - TimeDelta::hours(1)), Duration::ZERO);
        let fast = Clock::new(start, f64::INFINITY).unwrap();
        assert!(!fast.is_paced());
        assert_eq!(fast.real_offset(start + TimeDelta::days(9)), Duration::ZERO);
        assert!(Clock::new(start, 0.0).is_err() && Clock::new(start, f64::NAN).is_err());
    }

    #[test]
    fn samplers_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [0u64, 1, 10, 51, 1000, 1_000_000] {
            for p in [0.0, 0.001, 0.3, 0.999, 1.0] {
                assert!(binomial(&mut rng, n, p) <= n);
            }
        }
        let mean = (0..2000).map(|_| poisson(&mut rng, 4.0)).sum::<u64>() as f64 / 2000.0;
        assert!((3.7..4.3).contains(&mean), "{mean}");
        let big = (0..2000).map(|_| poisson(&mut rng, 500.0)).sum::<u64>() as f64 / 2000.0;
        assert!((490.0..510.0).contains(&big), "{big}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the seed, tick, start and demand, no space a receiver tracks goes negative and
        /// no car park overfills.
        #[test]
        fn no_space_ever_goes_negative(
            seed in any::<u64>(),
            tick_s in 5u64..1800,
            day in 0u32..365,
            hour in 0u32..24,
            intensity in 0.0f64..3.0,
        ) {
            let reg = registry();
            let from = reg.tz.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
                + TimeDelta::days(i64::from(day));
            let tick = Duration::from_secs(tick_s);
            let ticks = (36 * 3600 / tick_s) as usize;
            let mut m = TrafficModel::new(&reg, seed).with_intensity(intensity);
            let mut occ = vec![0i64; reg.spaces.len()];
            for k in 0..ticks {
                let flows = m.step(from + TimeDelta::seconds((k as u64 * tick_s) as i64), tick);
                for d in &reg.devices {
                    let f = flows[d.idx.get()];
                    for t in reg.targets(d.idx) {
                        occ[t.get()] += i64::from(f.entered) - i64::from(f.left);
                    }
                }
                for s in &reg.spaces {
                    prop_assert!(occ[s.idx.get()] >= 0, "{} at tick {k}", s.id);
                    if let Some(o) = m.occupancy(s.idx) {
                        if s.measured {
                            prop_assert_eq!(o as i64, occ[s.idx.get()]);
                        }
                        if s.kind == SpaceKind::CarPark {
                            prop_assert!(o <= u64::from(s.instant_capacity.unwrap()));
                        }
                    }
                }
            }
        }
    }
}

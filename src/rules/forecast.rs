//! The inflow forecast: a small ring buffer of (time, occupancy) samples per space, a robust slope
//! (Theil–Sen: the median of all pairwise slopes, so one burst at a gate or one miscount does not
//! swing it), the time until the orange and red thresholds at that slope from the current
//! occupancy, and the early-warning latch. How early the warnings come on a recorded series is
//! measured by [`super::replay_forecast`] (`replay.rs`).
//!
//! Timed-entry bookings sharpen it: the slope holds the booked visitors arriving now, so the
//! projection swaps that part for the bookings' own schedule — each slot's expected visitors
//! spread over its arrival window (start to end plus the no-show grace) — and a slot about to
//! open is foreseen rather than followed. Without bookings the projection is the straight line.
//!
//! The same robustness makes the slope lag a change of regime: after the inflow turns, it follows
//! once about half the window's sample pairs show the new trend (a few minutes with the default
//! 20-minute window). A warning raised on the old trend then clears by the calm + dwell rule.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::level::{Ladder, Level};
use super::serde_secs;

/// At most this many samples are kept (Theil–Sen is quadratic in them); they are spread over the
/// window by keeping consecutive samples at least window/60 apart.
const MAX_SAMPLES: usize = 64;
/// A time to threshold beyond this is no forecast at all.
const MAX_ETA_MIN: f64 = 24.0 * 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sample {
    pub t: DateTime<Utc>,
    pub occupancy: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Samples(VecDeque<Sample>);

impl Samples {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn push(&mut self, t: DateTime<Utc>, occupancy: u64, window: TimeDelta) {
        let q = &mut self.0;
        match q.back() {
            // The clock went back: the old slope says nothing about the new timeline.
            Some(last) if t < last.t => q.clear(),
            Some(last) if t == last.t => {
                q.pop_back();
            }
            _ => {}
        }
        let spacing = window / 60;
        if q.len() >= 2 && t - q[q.len() - 2].t < spacing {
            q.pop_back();
        }
        q.push_back(Sample { t, occupancy });
        while q.front().is_some_and(|s| t - s.t > window) || q.len() > MAX_SAMPLES {
            q.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn span(&self) -> TimeDelta {
        match (self.0.front(), self.0.back()) {
            (Some(a), Some(b)) => b.t - a.t,
            _ => TimeDelta::zero(),
        }
    }

    /// Theil–Sen slope in people per minute, from scratch (the reference for [`Fit::slope`]).
    #[cfg(test)]
    fn slope_per_min(&self, scratch: &mut Vec<f64>) -> Option<f64> {
        scratch.clear();
        let q = &self.0;
        for (i, a) in q.iter().enumerate() {
            scratch.extend(q.iter().skip(i + 1).filter_map(|b| pair_slope(a, b)));
        }
        median(scratch)
    }
}

/// People per minute from `a` to the later `b`; `None` under a millisecond apart.
fn pair_slope(a: &Sample, b: &Sample) -> Option<f64> {
    let dt_min = (b.t - a.t).num_milliseconds() as f64 / 60_000.0;
    (dt_min > 0.0).then(|| (b.occupancy as f64 - a.occupancy as f64) / dt_min)
}

/// One space's Theil–Sen fit kept between evaluations. Every evaluation replaces the newest
/// sample, while the others change only every window/60 (one appended, the oldest dropped): so
/// the pairwise slopes among all but the newest are kept sorted, and a fit adds only the newest
/// sample's n − 1 slopes and finds the median of the two sorted lists by bisection, instead of
/// n²/2 slopes and a selection for every space at every evaluation. Not saved: a restored engine
/// rebuilds it on its first fit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fit {
    /// The samples `settled` was computed from.
    settled_of: Vec<Sample>,
    settled: Vec<f64>,
    newest: Vec<f64>,
}

impl Fit {
    /// The Theil–Sen slope of `samples` in people per minute: the same value as the median of
    /// all pairwise slopes.
    pub fn slope(&mut self, samples: &Samples) -> Option<f64> {
        let q = &samples.0;
        let (newest, older) = q.back().map(|b| (b, q.len() - 1))?;
        if !self.settled_of.iter().eq(q.range(..older)) {
            self.settled_of.clear();
            self.settled_of.extend(q.range(..older));
            self.settled.clear();
            for (i, a) in self.settled_of.iter().enumerate() {
                let later = &self.settled_of[i + 1..];
                self.settled
                    .extend(later.iter().filter_map(|b| pair_slope(a, b)));
            }
            self.settled.sort_unstable_by(f64::total_cmp);
        }
        self.newest.clear();
        self.newest
            .extend(q.range(..older).filter_map(|a| pair_slope(a, newest)));
        self.newest.sort_unstable_by(f64::total_cmp);
        let (a, b) = (&self.settled[..], &self.newest[..]);
        let n = a.len() + b.len();
        if n == 0 {
            return None;
        }
        let mid = nth_of_two(a, b, n / 2);
        if n % 2 == 1 {
            return Some(mid);
        }
        Some((nth_of_two(a, b, n / 2 - 1) + mid) / 2.0)
    }
}

/// The `k`th smallest (from 0) of the union of the sorted `a` and `b`; `k < a.len() + b.len()`.
fn nth_of_two(a: &[f64], b: &[f64], k: usize) -> f64 {
    // Take the k + 1 smallest: i from `a`, the rest from `b`. The least i with
    // a[i] ≥ b[k − i] is the split (a[..i] and b[..k + 1 − i] are the smallest).
    let take = k + 1;
    let (mut lo, mut hi) = (take.saturating_sub(b.len()), take.min(a.len()));
    while lo < hi {
        let i = (lo + hi) / 2;
        if a[i].total_cmp(&b[take - i - 1]).is_lt() {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let (i, j) = (lo, take - lo);
    match (
        i.checked_sub(1).map(|x| a[x]),
        j.checked_sub(1).map(|y| b[y]),
    ) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) => x,
        (None, Some(y)) => y,
        (None, None) => unreachable!("k < a.len() + b.len()"),
    }
}

#[cfg(test)]
fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (lower, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        return Some(mid);
    }
    let below = lower.iter().copied().max_by(f64::total_cmp)?;
    Some((below + mid) / 2.0)
}

/// Booked visitors still expected in one arrival window (a slot's start to its end plus the
/// no-show grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BookedArrivals {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub people: u64,
}

impl BookedArrivals {
    /// People per minute over the part of the window from `now` on (0 once it has passed).
    fn rate_from(&self, now: DateTime<Utc>) -> f64 {
        let start = self.from.max(now);
        let minutes = (self.until - start).num_milliseconds() as f64 / 60_000.0;
        if minutes > 0.0 {
            self.people as f64 / minutes
        } else {
            0.0
        }
    }
}

/// Net inflow and the time it would take, at that rate, to reach orange and red.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Robust slope of occupancy over the window, people per minute (negative: emptying).
    pub slope_per_min: f64,
    /// The booked visitors' arrival rate now, people per minute (part of the slope).
    #[serde(skip_serializing_if = "is_zero")]
    pub booked_per_min: f64,
    /// Booked visitors expected within the next hour, by their slots.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub booked_next_hour: u64,
    pub samples: usize,
    #[serde(rename = "span_s", serialize_with = "serde_secs::plain")]
    pub span: TimeDelta,
    /// Time until the instantaneous load reaches orange; `None` when not rising (or more than a
    /// day away), zero when already there and still rising.
    #[serde(rename = "to_orange_s", serialize_with = "serde_secs::opt")]
    pub to_orange: Option<TimeDelta>,
    #[serde(rename = "to_red_s", serialize_with = "serde_secs::opt")]
    pub to_red: Option<TimeDelta>,
}

impl Forecast {
    /// Time to `target` (orange or red; `None` for the other levels).
    pub fn to(&self, target: Level) -> Option<TimeDelta> {
        match target {
            Level::Orange => self.to_orange,
            Level::Red => self.to_red,
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compute(
        samples: &Samples,
        occupancy: u64,
        effective: Option<u32>,
        ladder: &Ladder,
        min_span: TimeDelta,
        booked: &[BookedArrivals],
        now: DateTime<Utc>,
        fit: &mut Fit,
    ) -> Option<Self> {
        let span = samples.span();
        if samples.len() < 3 || span < min_span {
            return None;
        }
        let slope = fit.slope(samples)?;
        let path = Projection::new(slope, booked, now);
        let eta = |pct: f64| {
            effective.and_then(|c| path.eta(occupancy as f64, pct * f64::from(c) / 100.0))
        };
        Some(Self {
            slope_per_min: slope,
            booked_per_min: path.booked_now,
            booked_next_hour: booked_within(booked, now, TimeDelta::hours(1)),
            samples: samples.len(),
            span,
            to_orange: eta(ladder.orange_pct),
            to_red: eta(ladder.red_pct),
        })
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Booked visitors expected in `[now, now + within)`, each window spread evenly.
fn booked_within(booked: &[BookedArrivals], now: DateTime<Utc>, within: TimeDelta) -> u64 {
    let end = now + within;
    let total: f64 = booked
        .iter()
        .map(|b| {
            let overlap = (b.until.min(end) - b.from.max(now)).num_milliseconds() as f64;
            b.rate_from(now) * (overlap / 60_000.0).max(0.0)
        })
        .sum();
    total.round() as u64
}

/// Occupancy ahead, piecewise linear: the robust slope with the booked arrivals now taken out and
/// each window's own rate put in where it applies.
struct Projection {
    /// The slope less the booked arrivals now: walk-ins and exits, assumed to continue.
    base: f64,
    booked_now: f64,
    /// `(minutes from now, rate change)` at each window's start and end ahead, in time order.
    steps: Vec<(f64, f64)>,
}

impl Projection {
    fn new(slope: f64, booked: &[BookedArrivals], now: DateTime<Utc>) -> Self {
        let minutes = |t: DateTime<Utc>| (t - now).num_milliseconds() as f64 / 60_000.0;
        let mut booked_now = 0.0;
        let mut steps = Vec::new();
        for b in booked.iter().filter(|b| b.people > 0 && b.until > now) {
            let rate = b.rate_from(now);
            if b.from <= now {
                booked_now += rate;
            } else {
                steps.push((minutes(b.from), rate));
            }
            steps.push((minutes(b.until), -rate));
        }
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self {
            base: slope - booked_now,
            booked_now,
            steps,
        }
    }

    /// Time until the projection reaches `target` from `occupancy`; zero when already there and
    /// rising, `None` when it does not get there within a day.
    fn eta(&self, occupancy: f64, target: f64) -> Option<TimeDelta> {
        let mut at = 0.0;
        let mut level = occupancy;
        let mut rate = self.base + self.booked_now;
        if !rate.is_finite() {
            return None;
        }
        let mut steps = self.steps.iter().peekable();
        loop {
            let until = steps.peek().map_or(MAX_ETA_MIN, |s| s.0.min(MAX_ETA_MIN));
            if rate > 0.0 {
                let need = ((target - level) / rate).max(0.0);
                if at + need <= until {
                    let minutes = at + need;
                    return Some(TimeDelta::milliseconds((minutes * 60_000.0).round() as i64));
                }
            }
            if until >= MAX_ETA_MIN {
                return None;
            }
            level += rate * (until - at);
            at = until;
            while let Some(s) = steps.next_if(|s| s.0 <= at) {
                rate += s.1;
            }
        }
    }
}

/// The early-warning latch for one target level. Raised when the forecast reaches the target
/// within the horizon while the space is below it; cleared when the target is reached (the level
/// alert takes over) or once the forecast has been beyond horizon + margin, or not rising, for
/// the dwell time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Early {
    pub active: bool,
    pub calm_since: Option<DateTime<Utc>>,
}

pub(crate) struct EarlyParams {
    pub horizon: TimeDelta,
    pub horizon_margin: TimeDelta,
    pub dwell: TimeDelta,
}

impl Early {
    pub fn update(
        &mut self,
        level: Level,
        target: Level,
        eta: Option<TimeDelta>,
        now: DateTime<Utc>,
        p: &EarlyParams,
    ) {
        if level >= target {
            *self = Self::default();
            return;
        }
        if !self.active {
            if eta.is_some_and(|d| d <= p.horizon) {
                self.active = true;
                self.calm_since = None;
            }
            return;
        }
        if eta.is_some_and(|d| d <= p.horizon + p.horizon_margin) {
            self.calm_since = None;
            return;
        }
        let since = *self.calm_since.get_or_insert(now);
        if now - since >= p.dwell {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_777_600_000 + sec, 0).unwrap()
    }

    #[test]
    fn ring_buffer_keeps_the_window_and_spacing() {
        let mut s = Samples::default();
        let w = TimeDelta::minutes(20);
        for sec in 0..3600 {
            s.push(t(sec), sec as u64, w);
        }
        assert!(s.len() <= MAX_SAMPLES);
        assert!(s.span() <= w);
        assert!(s.span() >= w - TimeDelta::seconds(40));
        // Newest sample is always the latest value.
        assert_eq!(s.0.back().unwrap().occupancy, 3599);
        // Clock going back starts over.
        s.push(t(10), 5, w);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn theil_sen_ignores_an_outlier() {
        let mut s = Samples::default();
        let w = TimeDelta::minutes(20);
        for m in 0..11 {
            let occ = if m == 5 { 5_000 } else { 100 + 10 * m as u64 };
            s.push(t(m * 60), occ, w);
        }
        let slope = s.slope_per_min(&mut Vec::new()).unwrap();
        assert!((slope - 10.0).abs() < 1e-9, "{slope}");
    }

    proptest::proptest! {
        /// The kept fit is the from-scratch median of all pairwise slopes, bit for bit, as the
        /// samples slide (newest replaced, one appended every spacing, the oldest dropped).
        #[test]
        fn the_kept_fit_is_the_full_theil_sen(
            steps in proptest::collection::vec((1i64..90, 0u64..5_000), 1..300),
        ) {
            let w = TimeDelta::minutes(20);
            let (mut s, mut fit, mut at) = (Samples::default(), Fit::default(), 0);
            for (dt, occ) in steps {
                at += dt;
                s.push(t(at), occ, w);
                proptest::prop_assert_eq!(
                    fit.slope(&s).map(f64::to_bits),
                    s.slope_per_min(&mut Vec::new()).map(f64::to_bits)
                );
            }
        }
    }

    #[test]
    fn nth_of_two_sorted_lists() {
        let (a, b) = ([1.0, 3.0, 5.0, 7.0], [2.0, 2.0, 6.0]);
        let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
        all.sort_by(f64::total_cmp);
        for (k, want) in all.iter().enumerate() {
            assert_eq!(nth_of_two(&a, &b, k), *want, "k = {k}");
            assert_eq!(nth_of_two(&b, &a, k), *want, "k = {k}");
        }
        assert_eq!(nth_of_two(&[], &b, 2), 6.0);
        assert_eq!(nth_of_two(&a, &[], 0), 1.0);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    fn eta(occupancy: u64, target: f64, slope: f64) -> Option<TimeDelta> {
        Projection::new(slope, &[], t(0)).eta(occupancy as f64, target)
    }

    #[test]
    fn eta_guards() {
        assert_eq!(eta(500, 1000.0, 20.0), Some(TimeDelta::minutes(25)));
        assert_eq!(eta(1200, 1000.0, 20.0), Some(TimeDelta::zero()));
        assert_eq!(eta(500, 1000.0, 0.0), None);
        assert_eq!(eta(500, 1000.0, -3.0), None);
        assert_eq!(eta(500, 1000.0, f64::NAN), None);
        assert_eq!(eta(0, 1e12, 1e-9), None);
    }

    fn booked(from_min: i64, until_min: i64, people: u64) -> BookedArrivals {
        BookedArrivals {
            from: t(from_min * 60),
            until: t(until_min * 60),
            people,
        }
    }

    #[test]
    fn a_slot_about_to_open_is_foreseen() {
        // Flat now (+0/min), 1,000 booked for a slot opening in 10 min and arriving over 20 min
        // (50/min): 500 → 1,000 takes 10 min of waiting and 10 min of arrivals.
        let p = Projection::new(0.0, &[booked(10, 30, 1_000)], t(0));
        assert_eq!(p.eta(500.0, 1_000.0), Some(TimeDelta::minutes(20)));
        // Beyond the slot's 1,000 the flat trend never gets there.
        assert_eq!(p.eta(500.0, 1_600.0), None);
        // Without the bookings, a flat trend foresees nothing.
        assert_eq!(eta(500, 1_000.0, 0.0), None);
    }

    #[test]
    fn the_booked_arrivals_in_the_slope_are_not_counted_twice() {
        // The slope (+30/min) holds the current slot's booked arrivals: 600 over the 20 min left
        // (30/min). When that slot's window ends, nothing is left of the slope: walk-ins and
        // exits balance. So 100 → 700 (20 min) and no further.
        let p = Projection::new(30.0, &[booked(-40, 20, 600)], t(0));
        assert!((p.booked_now - 30.0).abs() < 1e-9);
        assert_eq!(p.eta(100.0, 700.0), Some(TimeDelta::minutes(20)));
        assert_eq!(p.eta(100.0, 701.0), None);
        // The straight line would have said 700 → 1,000 in 10 more minutes.
        assert_eq!(eta(700, 1_000.0, 30.0), Some(TimeDelta::minutes(10)));
        assert_eq!(
            booked_within(&[booked(-40, 20, 600)], t(0), TimeDelta::hours(1)),
            600
        );
        assert_eq!(
            booked_within(&[booked(30, 90, 600)], t(0), TimeDelta::hours(1)),
            300
        );
    }
}

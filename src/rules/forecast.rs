//! The inflow forecast: a small ring buffer of (time, occupancy) samples per space, a robust slope
//! (Theil–Sen: the median of all pairwise slopes, so one burst at a gate or one miscount does not
//! swing it), the time until the orange and red thresholds at that slope from the current
//! occupancy, and the early-warning latch. How early the warnings come on a recorded series is
//! measured by [`super::replay_forecast`] (`replay.rs`).
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

    /// Theil–Sen slope in people per minute; `scratch` is reused between calls.
    fn slope_per_min(&self, scratch: &mut Vec<f64>) -> Option<f64> {
        scratch.clear();
        let q = &self.0;
        for (i, a) in q.iter().enumerate() {
            for b in q.iter().skip(i + 1) {
                let dt_min = (b.t - a.t).num_milliseconds() as f64 / 60_000.0;
                if dt_min > 0.0 {
                    scratch.push((b.occupancy as f64 - a.occupancy as f64) / dt_min);
                }
            }
        }
        median(scratch)
    }
}

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

/// Net inflow and the time it would take, at that rate, to reach orange and red.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Robust slope of occupancy over the window, people per minute (negative: emptying).
    pub slope_per_min: f64,
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

    pub(crate) fn compute(
        samples: &Samples,
        occupancy: u64,
        effective: Option<u32>,
        ladder: &Ladder,
        min_span: TimeDelta,
        scratch: &mut Vec<f64>,
    ) -> Option<Self> {
        let span = samples.span();
        if samples.len() < 3 || span < min_span {
            return None;
        }
        let slope = samples.slope_per_min(scratch)?;
        let eta =
            |pct: f64| effective.and_then(|c| eta(occupancy, pct * f64::from(c) / 100.0, slope));
        Some(Self {
            slope_per_min: slope,
            samples: samples.len(),
            span,
            to_orange: eta(ladder.orange_pct),
            to_red: eta(ladder.red_pct),
        })
    }
}

fn eta(occupancy: u64, target: f64, slope_per_min: f64) -> Option<TimeDelta> {
    if !(slope_per_min.is_finite() && slope_per_min > 0.0) {
        return None;
    }
    let minutes = ((target - occupancy as f64) / slope_per_min).max(0.0);
    (minutes <= MAX_ETA_MIN).then(|| TimeDelta::milliseconds((minutes * 60_000.0).round() as i64))
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

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
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
}

//! Day-ahead and 7-day forecasts of a scenic area's (or the county's) day: the daily entries, the
//! hourly profile and the day's peak hour, each with central 80 % and 95 % prediction intervals.
//! Pure: the caller reads the history from the store and passes the calendar and what is known
//! in advance (closure, a weather factor, bookings). `docs/forecasting.md` explains the method and
//! `sim::forecast_eval` measures it on real data.
//!
//! The method in one paragraph ([`model`]): a day's hourly values are the area's current *level*
//! (its recent daily totals, each divided by its weekday's factor, weighted towards the latest
//! days and clipped against outliers) times the hourly *profile* of the target's weekday (the
//! last weeks' same weekday, each day divided by its own level). Public holidays and make-up
//! working days are left out of the weekday profiles: a holiday is forecast as a day off times
//! the effect learned from the same holiday key (and day of the period) in earlier years,
//! falling back to the average effect of the holidays seen so far; a make-up working day as an
//! average workday. The level follows the target's school-holiday regime, and when the target
//! enters or leaves a school holiday the change seen a year before carries over. The intervals
//! ([`interval`]) are split-conformal: the same model is run day-ahead (and 2 … 7 days ahead)
//! over the last 12 weeks of the history, its errors are scaled by a fitted variance function
//! (Poisson plus multiplicative), and their empirical quantiles give each band.

mod backtest;
mod interval;
mod model;
mod series;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::Day;

pub use backtest::rolling_day_ahead;
pub use interval::{Calibration, MIN_HISTORY_DAYS, Quantity, Record};
pub use model::{Point, predict};
pub use series::Series;

/// Hours in a local day (the forecast is hourly; a 23- or 25-hour DST day is the caller's to map).
pub const HOURS: usize = 24;

/// One local day's hourly values (entries in each local hour, or the mean occupancy in it);
/// `None` = no data for that hour.
#[derive(Debug, Clone, PartialEq)]
pub struct DayObs {
    pub date: NaiveDate,
    pub hours: [Option<f64>; HOURS],
}

impl DayObs {
    /// The day's total when every hour has data.
    pub fn total(&self) -> Option<f64> {
        self.hours.iter().copied().sum()
    }
}

/// A point forecast with its central 80 % and 95 % prediction intervals
/// (lo ≤ mean ≤ hi, all ≥ 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub mean: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

impl Band {
    pub const ZERO: Band = Band {
        mean: 0.0,
        lo80: 0.0,
        hi80: 0.0,
        lo95: 0.0,
        hi95: 0.0,
    };

    /// Every figure times `k` (≥ 0).
    pub fn scaled(self, k: f64) -> Band {
        Band {
            mean: self.mean * k,
            lo80: self.lo80 * k,
            hi80: self.hi80 * k,
            lo95: self.lo95 * k,
            hi95: self.hi95 * k,
        }
    }

    /// Whether `x` lies in the 80 % (`false`) or 95 % (`true`) interval, ends included.
    pub fn covers(&self, x: f64, wide: bool) -> bool {
        if wide {
            (self.lo95..=self.hi95).contains(&x)
        } else {
            (self.lo80..=self.hi80).contains(&x)
        }
    }
}

/// What is known in advance about a target day (from the API / ticketing): all optional.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The area is closed that day: everything is forecast 0. A history day marked closed is
    /// left out of the learning.
    pub closed: bool,
    /// Weather or other multiplier on the expected level (1.0 = none).
    pub factor: Option<f64>,
    /// Visitors holding a booking for that day (timed entry); a floor for the expected daily
    /// total after no-shows.
    pub booked: Option<f64>,
}

/// One forecast day.
#[derive(Debug, Clone, Serialize)]
pub struct DayForecast {
    pub date: NaiveDate,
    /// The day's total (entries, or the sum of the hourly means).
    pub total: Band,
    /// [`HOURS`] bands, local hour 0 first.
    pub hours: Vec<Band>,
    /// The day's highest hourly value.
    pub peak: Band,
}

/// The model's fixed settings. The defaults were chosen before the evaluation was run and are
/// not tuned on it (`docs/forecasting.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Same-weekday days in a weekday's hourly profile.
    pub profile_days: usize,
    /// Weight of each older same-weekday day relative to the next newer one.
    pub profile_decay: f64,
    /// Days the level is measured on.
    pub level_days: usize,
    /// Weight of each older day in the level relative to the next newer one.
    pub level_decay: f64,
    /// A day further than this factor from the recent days' median (either way) counts as this
    /// factor.
    pub level_clip: f64,
    /// Target days the intervals are calibrated on (each forecast from the history before it).
    pub calibration_days: usize,
    /// Below this many calibration days, the intervals come from a default variance.
    pub min_calibration_days: usize,
    /// Share of booked visitors who do not come.
    pub no_show: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profile_days: 8,
            profile_decay: 0.9,
            level_days: 14,
            level_decay: 0.8,
            level_clip: 1.5,
            calibration_days: 84,
            min_calibration_days: 14,
            no_show: 0.05,
        }
    }
}

/// Forecast `days` local days starting at `first` (first = the day after the last complete
/// history day for day-ahead) from `history` (ascending, gaps allowed), with the default
/// [`Settings`].
pub fn forecast(
    history: &[DayObs],
    calendar: &dyn Fn(NaiveDate) -> Day,
    first: NaiveDate,
    days: usize,
    known: &dyn Fn(NaiveDate) -> Known,
) -> Vec<DayForecast> {
    forecast_with(&Settings::default(), history, calendar, first, days, known)
}

/// [`forecast`] with explicit settings.
pub fn forecast_with(
    settings: &Settings,
    history: &[DayObs],
    calendar: &dyn Fn(NaiveDate) -> Day,
    first: NaiveDate,
    days: usize,
    known: &dyn Fn(NaiveDate) -> Known,
) -> Vec<DayForecast> {
    if days == 0 {
        return Vec::new();
    }
    let series = Series::new(history, calendar, first, days, known);
    let origin = series.index(first);
    let calibration = Calibration::backtest(settings, &series, origin, days);
    let points = model::predict(settings, &series, origin, days);
    points
        .iter()
        .enumerate()
        .map(|(j, p)| finish(settings, &calibration, j, p, &known(p.date)))
        .collect()
}

/// The bands of one point forecast `p` at horizon `j` (0 = day-ahead), with what is known.
pub fn finish(
    settings: &Settings,
    calibration: &Calibration,
    j: usize,
    p: &Point,
    known: &Known,
) -> DayForecast {
    if known.closed {
        return DayForecast {
            date: p.date,
            total: Band::ZERO,
            hours: vec![Band::ZERO; HOURS],
            peak: Band::ZERO,
        };
    }
    let factor = known
        .factor
        .filter(|f| f.is_finite())
        .unwrap_or(1.0)
        .max(0.0);
    let mut total = calibration.band(Quantity::Total, j, p.total).scaled(factor);
    let mut hours: Vec<Band> = p
        .hours
        .iter()
        .map(|&m| calibration.band(Quantity::Hour, j, m).scaled(factor))
        .collect();
    let mut peak = calibration.band(Quantity::Peak, j, p.peak).scaled(factor);
    if let Some(booked) = known.booked.filter(|b| b.is_finite() && *b > 0.0) {
        let floor = booked * (1.0 - settings.no_show);
        if total.mean < floor {
            let k = if total.mean > 0.0 {
                floor / total.mean
            } else {
                0.0
            };
            if k > 0.0 {
                total = total.scaled(k);
                hours.iter_mut().for_each(|b| *b = b.scaled(k));
                peak = peak.scaled(k);
            } else {
                // Nothing expected but bookings: the bookings alone, flat over the day.
                let flat = Band {
                    mean: floor,
                    lo80: floor,
                    hi80: floor,
                    lo95: floor,
                    hi95: floor,
                };
                total = flat;
                hours = vec![flat.scaled(1.0 / HOURS as f64); HOURS];
                peak = flat.scaled(1.0 / HOURS as f64);
            }
        }
        // However few walk in, the booked visitors come but for the no-shows (binomial).
        let sd = (booked * settings.no_show * (1.0 - settings.no_show)).sqrt();
        total.lo80 = total.lo80.max(floor - 1.2816 * sd).min(total.mean);
        total.lo95 = total.lo95.max(floor - 1.96 * sd).min(total.lo80);
    }
    DayForecast {
        date: p.date,
        total,
        hours,
        peak,
    }
}

#[cfg(test)]
mod tests;

//! The point forecast: level × weekday profile, holidays as days off times their learned effect.
//!
//! For a forecast made at day index `origin` (the first target; the history is the days before
//! it, and nothing at or after it is read):
//! - **Profiles.** For each weekday k, the last [`Settings::profile_days`] ordinary (not holiday,
//!   not make-up, not closed) k-days. Hour h of weekday k is Σ w·y[h] / Σ w·L(d): the days' values
//!   over their own local level L(d), weighted `profile_decay`^age. The weekday's factor S(k) is
//!   its profile's sum (mean 1 over the week). Two passes: the first with S from raw totals.
//! - **Levels.** L(d) of a past day: its ±3 days' totals over their weekday factors (Σ Y / Σ S,
//!   so a quiet day weighs little). The current level: the same over the last `level_days`,
//!   weighted `level_decay`^age, each day clipped to within `level_clip` of a first estimate.
//!   Measured on the days of the target's school-holiday regime when at least
//!   [`MIN_REGIME_DAYS`] of them are recent, else on the other regime's recent days times last
//!   year's change between the regimes (when the history reaches back that far).
//! - **A target day** is level × its weekday's profile; a make-up working day takes the mean
//!   workday profile; a holiday day is a day off (mean of Saturday and Sunday) times the holiday's
//!   effect R: the ratio of the same holiday's same day (by position in the period) to a day off
//!   at its time, in earlier years; a holiday never seen takes (ΣR + 1)/(n + 1) over all holiday
//!   days seen (a day off when none), its hourly shape the day-off one (blended half and half
//!   with the shape of last year's same holiday when there is one).

use chrono::NaiveDate;

use super::series::{Class, Holiday, Series};
use super::{HOURS, Settings};

/// Recent days of a school-holiday regime needed to measure the level on that regime alone.
pub const MIN_REGIME_DAYS: usize = 5;
/// The ± days around a past day its local level is measured on.
const LOCAL: usize = 3;
/// The ± days around a past holiday its level is measured on (a long holiday hides the nearer).
const HOLIDAY_LOCAL: usize = 14;
/// Extra days looked back for profile days past holidays and gaps.
const SLACK_DAYS: usize = 56;

/// A point forecast of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub date: NaiveDate,
    pub hours: [f64; HOURS],
    pub total: f64,
    pub peak: f64,
}

impl Point {
    fn new(date: NaiveDate, hours: [f64; HOURS]) -> Self {
        let hours = hours.map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 });
        Self {
            date,
            total: hours.iter().sum(),
            peak: hours.iter().copied().fold(0.0, f64::max),
            hours,
        }
    }
}

/// The fitted state at one origin.
struct Fit<'a> {
    s: &'a Series,
    origin: usize,
    /// Weekday factors, mean 1.
    factor: [f64; 7],
    /// Per weekday, per hour, in units of the level.
    profile: [[f64; HOURS]; 7],
}

/// Point forecasts of `days` days from `origin` on, reading only the history before `origin`.
pub fn predict(settings: &Settings, s: &Series, origin: usize, days: usize) -> Vec<Point> {
    let origin = origin.min(s.history_len());
    let targets = (origin..origin + days).filter(|&t| t < s.len());
    let Some(fit) = Fit::new(settings, s, origin) else {
        return targets
            .map(|t| Point::new(s.info(t).date, fallback(s, origin)))
            .collect();
    };
    targets
        .map(|t| {
            let info = s.info(t);
            let level = fit.level(settings, t);
            let hours = match info.class {
                Class::Weekday(k) => fit.profile[k as usize].map(|p| level * p),
                Class::MakeUp => {
                    let mut h = [0.0; HOURS];
                    for p in &fit.profile[..5] {
                        for (x, v) in h.iter_mut().zip(p) {
                            *x += level * v / 5.0;
                        }
                    }
                    h
                }
                Class::Holiday(hol) => fit.holiday(settings, hol, level),
            };
            Point::new(info.date, hours)
        })
        .collect()
}

/// With no ordinary day to learn from: each hour's mean over whatever history there is.
fn fallback(s: &Series, origin: usize) -> [f64; HOURS] {
    let mut sum = [0.0; HOURS];
    let mut n = [0.0; HOURS];
    for i in origin.saturating_sub(28)..origin {
        if let Some(h) = s.hours(i) {
            for ((a, c), v) in sum.iter_mut().zip(n.iter_mut()).zip(h) {
                if let Some(v) = v {
                    *a += v;
                    *c += 1.0;
                }
            }
        }
    }
    std::array::from_fn(|h| if n[h] > 0.0 { sum[h] / n[h] } else { 0.0 })
}

impl<'a> Fit<'a> {
    fn new(settings: &Settings, s: &'a Series, origin: usize) -> Option<Self> {
        // The profile days of each weekday, newest first.
        let lookback = origin.saturating_sub(settings.profile_days * 7 + SLACK_DAYS);
        let mut days: [Vec<usize>; 7] = Default::default();
        for i in (lookback..origin).rev() {
            if let (Class::Weekday(k), Some(_)) = (s.info(i).class, s.hours(i)) {
                let v = &mut days[k as usize];
                if v.len() < settings.profile_days {
                    v.push(i);
                }
            }
        }
        if days.iter().all(Vec::is_empty) {
            return None;
        }
        let mut fit = Fit {
            s,
            origin,
            factor: [1.0; 7],
            profile: [[0.0; HOURS]; 7],
        };
        // First pass: factors from the median raw totals (robust to one odd day).
        let mut raw = [None; 7];
        for (k, v) in days.iter().enumerate() {
            raw[k] = weighted_median(v.iter().filter_map(|&i| Some((s.total(i)?, 1.0))));
        }
        fit.factor = normalise(raw.map(|r| r.unwrap_or(f64::NAN)));
        for _ in 0..2 {
            fit.profiles(settings, &days);
            let sums = fit.profile.map(|p| p.iter().sum::<f64>());
            let known: [f64; 7] = std::array::from_fn(|k| {
                if days[k].is_empty() {
                    f64::NAN
                } else {
                    sums[k]
                }
            });
            let mean = finite_mean(&known);
            if mean.is_nan() || mean <= 0.0 {
                // Nothing but zeros: a level of 0 forecasts 0 whatever the factors.
                break;
            }
            fit.factor = normalise(known);
            for p in &mut fit.profile {
                p.iter_mut().for_each(|v| *v /= mean);
            }
        }
        Some(fit)
    }

    /// Weekday profiles from their days, each day over its local level; a weekday without days
    /// takes the mean of the others'.
    fn profiles(&mut self, settings: &Settings, days: &[Vec<usize>; 7]) {
        let mut have = [false; 7];
        for (k, v) in days.iter().enumerate() {
            let mut num = [0.0; HOURS];
            let mut den = [0.0; HOURS];
            for (age, &i) in v.iter().enumerate() {
                let (Some(h), Some(l)) = (self.s.hours(i), self.local_level(settings, i, LOCAL))
                else {
                    continue;
                };
                // A day far from what its level and weekday make of it counts as at the clip.
                let expected = l * self.factor[k];
                let clip = settings.level_clip.max(1.0);
                let shrink = match self.s.total(i) {
                    Some(y) if y > 0.0 && expected > 0.0 => {
                        y.clamp(expected / clip, expected * clip) / y
                    }
                    _ => 1.0,
                };
                let wt = settings.profile_decay.powi(age as i32);
                for ((a, b), y) in num.iter_mut().zip(den.iter_mut()).zip(h) {
                    if let Some(y) = y {
                        *a += wt * y * shrink;
                        *b += wt * l;
                    }
                }
            }
            have[k] = den.iter().any(|&d| d > 0.0);
            self.profile[k] =
                std::array::from_fn(|h| if den[h] > 0.0 { num[h] / den[h] } else { 0.0 });
        }
        let n = have.iter().filter(|&&h| h).count();
        if n == 0 {
            return;
        }
        let mean: [f64; HOURS] = std::array::from_fn(|h| {
            (0..7)
                .filter(|&k| have[k])
                .map(|k| self.profile[k][h])
                .sum::<f64>()
                / n as f64
        });
        for (p, _) in self.profile.iter_mut().zip(have).filter(|(_, h)| !h) {
            *p = mean;
        }
    }

    fn weight(&self, i: usize) -> Option<(f64, f64)> {
        match self.s.info(i).class {
            Class::Weekday(k) => Some((self.s.total(i)?, self.factor[k as usize])),
            _ => None,
        }
    }

    /// The level around past day `i`: its ordinary days within ±`r` (before the origin), each
    /// clipped as in [`Self::level_over`], Σ Y / Σ S.
    fn local_level(&self, settings: &Settings, i: usize, r: usize) -> Option<f64> {
        let range = i.saturating_sub(r)..(i + r + 1).min(self.origin);
        let days: Vec<(f64, f64, f64)> = range
            .filter_map(|e| {
                let (y, f) = self.weight(e)?;
                Some((1.0, y, f))
            })
            .collect();
        robust_level(&days, settings.level_clip)
    }

    /// A clipped, decayed level over `range` (newest days weigh most), on the days `keep` allows:
    /// each day is clipped to within `level_clip` of the days' weighted median (Y/S weighted by
    /// w·S), then Σ w·Y / Σ w·S.
    fn level_over(
        &self,
        settings: &Settings,
        range: std::ops::Range<usize>,
        keep: &dyn Fn(usize) -> bool,
    ) -> Option<(f64, usize)> {
        let days: Vec<(f64, f64, f64)> = range
            .rev()
            .enumerate()
            .filter(|&(_, i)| keep(i))
            .filter_map(|(age, i)| {
                let (y, f) = self.weight(i)?;
                Some((settings.level_decay.powi(age as i32), y, f))
            })
            .collect();
        Some((robust_level(&days, settings.level_clip)?, days.len()))
    }

    /// The level for target `t`: on its school-holiday regime's recent days if there are
    /// enough; else on the recent days of the other regime times last year's change between
    /// the two; else on all recent days (or, with none, the profile window's).
    fn level(&self, settings: &Settings, t: usize) -> f64 {
        let o = self.origin;
        let recent = o.saturating_sub(settings.level_days)..o;
        let school = self.s.info(t).school;
        let same = |i: usize| self.s.info(i).school == school;
        let other = |i: usize| self.s.info(i).school != school;
        match self.level_over(settings, recent.clone(), &same) {
            Some((l, n)) if n >= MIN_REGIME_DAYS => return l,
            _ => {}
        }
        if let (Some((l, _)), Some(change)) = (
            self.level_over(settings, recent.clone(), &other),
            self.regime_change(settings, t),
        ) {
            return l * change;
        }
        self.level_over(settings, recent, &|_| true)
            .or_else(|| {
                let wide = o.saturating_sub(settings.profile_days * 7 + SLACK_DAYS)..o;
                self.level_over(settings, wide, &|_| true)
            })
            .map_or(0.0, |(l, _)| l)
    }

    /// How the level moved into the target's school-holiday regime a year ago (364 days, same
    /// weekdays): last year's level on that regime's days within ±14 days of the target's date,
    /// over last year's level on the other regime's days in the window the current level is
    /// measured on. The regimes' days are told apart, as a holiday starts on another weekday
    /// each year.
    fn regime_change(&self, settings: &Settings, t: usize) -> Option<f64> {
        let school = self.s.info(t).school;
        let (o, t) = (self.origin.checked_sub(364)?, t.checked_sub(364)?);
        let then = |i: usize| self.s.info(i).school == school;
        let before = |i: usize| self.s.info(i).school != school;
        let around = t.saturating_sub(14)..(t + 15).min(self.origin);
        let (to, n_to) = self.level_over(settings, around, &then)?;
        let window = o.saturating_sub(settings.level_days)..o;
        let (from, n_from) = self.level_over(settings, window, &before)?;
        (n_to >= 3 && n_from >= 3 && from > 0.0).then(|| (to / from).clamp(0.2, 5.0))
    }

    /// A holiday day: a day off at `level` times the holiday's effect.
    fn holiday(&self, settings: &Settings, hol: Holiday, level: f64) -> [f64; HOURS] {
        let off: [f64; HOURS] =
            std::array::from_fn(|h| (self.profile[5][h] + self.profile[6][h]) / 2.0);
        let off_total: f64 = off.iter().sum();
        if off_total.is_nan() || off_total <= 0.0 {
            return [0.0; HOURS];
        }
        let off_factor = (self.factor[5] + self.factor[6]) / 2.0;
        // Every earlier holiday day: its effect, its shape, its period.
        let mut all_r = Vec::new();
        let mut matched: Vec<(NaiveDate, f64, [f64; HOURS])> = Vec::new();
        for &i in &self.s.holidays {
            if i >= self.origin {
                break;
            }
            let Class::Holiday(past) = self.s.info(i).class else {
                continue;
            };
            let (Some(y), Some(h), Some(l)) = (
                self.s.total(i),
                self.s.hours(i),
                self.local_level(settings, i, HOLIDAY_LOCAL),
            ) else {
                continue;
            };
            if l <= 0.0 || off_factor <= 0.0 || off_factor.is_nan() {
                continue;
            }
            let r = y / (l * off_factor);
            all_r.push(r);
            if past.key == hol.key
                && past.first < hol.first
                && past.index == position(hol.index, hol.length, past.length)
                && y > 0.0
            {
                let shape = h.map(|v| v.unwrap_or(0.0) / y);
                matched.push((past.first, r, shape));
            }
        }
        let off_shape = off.map(|v| v / off_total);
        let (r, shape) = if matched.is_empty() {
            let r = (all_r.iter().sum::<f64>() + 1.0) / (all_r.len() as f64 + 1.0);
            (r, off_shape)
        } else {
            // The three most recent periods, equally.
            matched.sort_by_key(|m| std::cmp::Reverse(m.0));
            matched.truncate(3);
            let n = matched.len() as f64;
            let r = matched.iter().map(|m| m.1).sum::<f64>() / n;
            let shape = std::array::from_fn(|h| {
                0.5 * off_shape[h] + 0.5 * matched.iter().map(|m| m.2[h]).sum::<f64>() / n
            });
            (r, shape)
        };
        shape.map(|v| level * off_factor * r * v)
    }
}

/// The day of a `past_len`-day period matching day `index` of a `len`-day one: first to first,
/// last to last, the days between in proportion.
pub fn position(index: u8, len: u8, past_len: u8) -> u8 {
    if past_len <= 1 || index == 0 {
        0
    } else if index + 1 >= len {
        past_len - 1
    } else {
        let x = f64::from(index) * f64::from(past_len - 1) / f64::from(len - 1);
        (x.round() as u8).clamp(1, past_len.saturating_sub(2).max(1))
    }
}

/// Σ w·Y / Σ w·S over (w, Y, S) days, each Y first clipped to within `clip` of S times the
/// days' weighted median Y/S (weights w·S).
fn robust_level(days: &[(f64, f64, f64)], clip: f64) -> Option<f64> {
    let clip = clip.max(1.0);
    let centre = weighted_median(days.iter().map(|&(wt, y, f)| (y / f, wt * f)))?;
    let (mut y, mut w) = (0.0, 0.0);
    for &(wt, t, f) in days {
        y += wt * t.clamp(f * centre / clip, f * centre * clip);
        w += wt * f;
    }
    (w > 0.0).then(|| y / w)
}

/// The weighted median of (value, weight) pairs; `None` without positive weight.
fn weighted_median(pairs: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let mut v: Vec<(f64, f64)> = pairs.filter(|p| p.1 > 0.0 && p.0.is_finite()).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = v.iter().map(|p| p.1).sum::<f64>() / 2.0;
    let mut acc = 0.0;
    for (x, w) in &v {
        acc += w;
        if acc >= half {
            return Some(*x);
        }
    }
    None
}

fn finite_mean(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Factors with mean 1; a missing one (NaN) is 1.
fn normalise(x: [f64; 7]) -> [f64; 7] {
    let mean = finite_mean(&x);
    if mean.is_nan() || mean <= 0.0 {
        return [1.0; 7];
    }
    x.map(|v| if v.is_finite() { v / mean } else { 1.0 })
}

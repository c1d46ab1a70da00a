//! Prediction intervals by split-conformal calibration on the area's own recent forecasts.
//!
//! The model is run as production runs it — at each of the last [`Settings::calibration_days`]
//! days, from the history before that day, 1 … `days` days ahead — and each forecast is set
//! beside what happened. Per quantity (hourly value, daily total, peak hour):
//! 1. a variance function σ²(ŷ) = c + a·ŷ + b·ŷ² (constant, Poisson-like and multiplicative
//!    parts, each ≥ 0) is fitted to the squared errors by weighted least squares (two
//!    reweighting passes, weights 1/σ⁴; the best of the non-negative subsets);
//! 2. each error is scaled, z = (y − ŷ)/σ(ŷ), and per horizon the conformal order statistics of
//!    z give the 2.5, 10, 50, 90 and 97.5 % points (rank ⌈(n+1)p⌉ for an upper end, ⌊(n+1)p⌋ for
//!    a lower one), so no distribution is assumed;
//! 3. a band is ŷ + q·σ(ŷ), cut at 0 and ordered.
//!
//! Hours the model forecast exactly 0 and that had exactly 0 (a closed night) say nothing about
//! the spread and are left out. With fewer than [`Settings::min_calibration_days`] days the
//! variance is Poisson plus 25 % and the points Gaussian.

use super::model::{Point, predict};
use super::series::Series;
use super::{Band, HOURS, Settings};

/// Days of history before a calibration forecast's origin.
pub const MIN_HISTORY_DAYS: usize = 14;

/// The 2.5, 10, 50, 90 and 97.5 % points of a standard normal: the default.
const GAUSSIAN: [f64; 5] = [-1.959_964, -1.281_552, 0.0, 1.281_552, 1.959_964];
const LEVELS: [f64; 5] = [0.025, 0.1, 0.5, 0.9, 0.975];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Hour,
    Total,
    Peak,
}

/// One day's forecast `horizon` days ahead (0 = day-ahead) beside what happened.
#[derive(Debug, Clone)]
pub struct Record {
    pub horizon: usize,
    pub point: Point,
    pub actual: [Option<f64>; HOURS],
}

/// Each quantity's variance function and, per horizon, its error quantiles.
#[derive(Debug, Clone)]
pub struct Calibration {
    scales: [Scale; 3],
}

#[derive(Debug, Clone)]
struct Scale {
    /// ŷ is taken over this unit in the fit (conditioning).
    unit: f64,
    /// c, a, b in units of `unit`.
    var: [f64; 3],
    floor: f64,
    quantiles: Vec<[f64; 5]>,
}

impl Scale {
    fn default_scale() -> Self {
        Scale {
            unit: 1.0,
            var: [0.0, 1.0, 1.0 / 16.0],
            floor: 0.0,
            quantiles: Vec::new(),
        }
    }

    fn sigma(&self, y: f64) -> f64 {
        let u = y.max(0.0) / self.unit;
        let [c, a, b] = self.var;
        (self.unit * self.unit * (c + a * u + b * u * u))
            .max(self.floor)
            .sqrt()
    }

    fn points(&self, horizon: usize) -> [f64; 5] {
        self.quantiles
            .get(horizon)
            .or(self.quantiles.last())
            .copied()
            .unwrap_or(GAUSSIAN)
    }

    /// Fits the scale to (horizon, ŷ, y) samples; `days[j]` = days seen at horizon j.
    fn fit(samples: &[(usize, f64, f64)], days: &[usize], min_days: usize) -> Self {
        if days.iter().sum::<usize>() < min_days || samples.len() < 8 {
            return Self::default_scale();
        }
        let unit = samples.iter().map(|s| s.1).sum::<f64>() / samples.len() as f64;
        let unit = if unit > 0.0 { unit } else { 1.0 };
        let xs: Vec<(f64, f64)> = samples
            .iter()
            .map(|&(_, p, y)| (p / unit, ((y - p) / unit).powi(2)))
            .collect();
        let mean_sq = xs.iter().map(|x| x.1).sum::<f64>() / xs.len() as f64;
        if mean_sq <= 0.0 {
            // A perfect record: zero width.
            return Scale {
                unit,
                var: [0.0; 3],
                floor: 0.0,
                quantiles: vec![[0.0; 5]; days.len()],
            };
        }
        let mut var = [mean_sq, 0.0, 0.0];
        for _ in 0..3 {
            let weights: Vec<f64> = xs
                .iter()
                .map(|&(u, _)| {
                    let v = (var[0] + var[1] * u + var[2] * u * u).max(1e-3 * mean_sq);
                    1.0 / (v * v)
                })
                .collect();
            var = nnls(&xs, &weights).unwrap_or(var);
        }
        let mut scale = Scale {
            unit,
            var,
            floor: 1e-3 * mean_sq * unit * unit,
            quantiles: Vec::new(),
        };
        let mut z: Vec<Vec<f64>> = vec![Vec::new(); days.len()];
        for &(j, p, y) in samples {
            z[j].push((y - p) / scale.sigma(p));
        }
        let mut last = GAUSSIAN;
        scale.quantiles = z
            .iter_mut()
            .zip(days)
            .map(|(z, &n)| {
                if n >= min_days && !z.is_empty() {
                    last = conformal(z);
                }
                last
            })
            .collect();
        scale
    }
}

impl Calibration {
    /// Runs the model over the `settings.calibration_days` days before `origin`, `days` days
    /// ahead, as production would have, and calibrates on its errors.
    pub fn backtest(settings: &Settings, s: &Series, origin: usize, days: usize) -> Self {
        let days = days.max(1);
        let origin = origin.min(s.history_len());
        let from = origin.saturating_sub(settings.calibration_days);
        let mut records = Vec::new();
        for o in from.saturating_sub(days - 1).max(MIN_HISTORY_DAYS)..origin {
            let n = days.min(origin - o);
            for (j, point) in predict(settings, s, o, n).into_iter().enumerate() {
                let d = o + j;
                if let (true, Some(actual)) = (d >= from, s.hours(d)) {
                    records.push(Record {
                        horizon: j,
                        point,
                        actual: *actual,
                    });
                }
            }
        }
        Self::from_records(settings, &records, days)
    }

    /// The calibration on `records` (forecasts 0 … `horizons` − 1 days ahead beside what
    /// happened).
    pub fn from_records(settings: &Settings, records: &[Record], horizons: usize) -> Self {
        let horizons = horizons.max(1);
        let mut samples: [Vec<(usize, f64, f64)>; 3] = Default::default();
        let mut days = vec![0; horizons];
        for r in records.iter().filter(|r| r.horizon < horizons) {
            let j = r.horizon;
            days[j] += 1;
            for (&p, y) in r.point.hours.iter().zip(r.actual) {
                match y {
                    Some(y) if !(p == 0.0 && y == 0.0) => samples[0].push((j, p, y)),
                    _ => {}
                }
            }
            if let Some(y) = r.actual.iter().copied().sum::<Option<f64>>() {
                samples[1].push((j, r.point.total, y));
                let peak = r.actual.iter().flatten().copied().fold(0.0, f64::max);
                samples[2].push((j, r.point.peak, peak));
            }
        }
        let min = settings.min_calibration_days;
        Calibration {
            scales: samples.map(|s| Scale::fit(&s, &days, min)),
        }
    }

    /// The band of a `quantity` forecast `y` made `horizon` days ahead. The peak's centre is
    /// corrected by its errors' median (the highest of noisy hours exceeds the highest of
    /// their means).
    pub fn band(&self, quantity: Quantity, horizon: usize, y: f64) -> Band {
        let y = if y.is_finite() { y.max(0.0) } else { 0.0 };
        let scale = &self.scales[quantity as usize];
        let sigma = scale.sigma(y);
        let q = scale.points(horizon);
        let at = |k: usize| (y + q[k] * sigma).max(0.0);
        let mean = if quantity == Quantity::Peak { at(2) } else { y };
        let lo80 = at(1).min(mean);
        let hi80 = at(3).max(mean);
        Band {
            mean,
            lo80,
            hi80,
            lo95: at(0).min(lo80),
            hi95: at(4).max(hi80),
        }
    }
}

/// The conformal points of `z` (sorted in place).
fn conformal(z: &mut [f64]) -> [f64; 5] {
    z.sort_by(f64::total_cmp);
    let n = z.len();
    LEVELS.map(|p| {
        let rank = if p > 0.5 {
            ((n + 1) as f64 * p).ceil() as usize
        } else if p < 0.5 {
            ((n + 1) as f64 * p).floor() as usize
        } else {
            n.div_ceil(2)
        };
        z[rank.clamp(1, n) - 1]
    })
}

/// Non-negative weighted least squares of v on (1, u, u²): the best fit among the subsets of
/// terms whose solution is non-negative (each solved from the full normal equations' moments).
fn nnls(xs: &[(f64, f64)], w: &[f64]) -> Option<[f64; 3]> {
    let mut full = [[0.0; 3]; 3];
    let mut rhs_full = [0.0; 3];
    let mut vv = 0.0;
    for (&(u, v), &wt) in xs.iter().zip(w) {
        let basis = [1.0, u, u * u];
        for r in 0..3 {
            rhs_full[r] += wt * basis[r] * v;
            for c in 0..3 {
                full[r][c] += wt * basis[r] * basis[c];
            }
        }
        vv += wt * v * v;
    }
    let mut best: Option<([f64; 3], f64)> = None;
    for mask in 1u8..8 {
        let terms: Vec<usize> = (0..3).filter(|k| mask & (1 << k) != 0).collect();
        let m = terms.len();
        let mut a = [[0.0; 3]; 3];
        let mut rhs = [0.0; 3];
        for (r, &tr) in terms.iter().enumerate() {
            rhs[r] = rhs_full[tr];
            for (c, &tc) in terms.iter().enumerate() {
                a[r][c] = full[tr][tc];
            }
        }
        let Some(sol) = solve(a, rhs, m) else {
            continue;
        };
        if sol[..m].iter().any(|&x| x < 0.0 || !x.is_finite()) {
            continue;
        }
        let mut coef = [0.0; 3];
        for (r, &t) in terms.iter().enumerate() {
            coef[t] = sol[r];
        }
        // Σ w (v − xβ)² = Σ w v² − 2 βᵀr + βᵀAβ.
        let mut sse = vv;
        for r in 0..3 {
            sse -= 2.0 * coef[r] * rhs_full[r];
            for c in 0..3 {
                sse += coef[r] * full[r][c] * coef[c];
            }
        }
        if best.is_none_or(|(_, b)| sse < b) {
            best = Some((coef, sse));
        }
    }
    best.map(|(c, _)| c)
}

/// Gaussian elimination with partial pivoting on the leading m×m block.
fn solve(mut a: [[f64; 3]; 3], mut b: [f64; 3], m: usize) -> Option<[f64; 3]> {
    let scale = (0..m).map(|i| a[i][i].abs()).fold(0.0, f64::max);
    if scale <= 0.0 {
        return None;
    }
    for col in 0..m {
        let piv = (col..m).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..m {
            let f = a[r][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[r][col..m].iter_mut().zip(&pivot_row[col..m]) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

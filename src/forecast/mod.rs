//! Placeholder of the contract while the model is written on its branch (replaced at merge).
use chrono::NaiveDate;
use serde::Serialize;

pub const HOURS: usize = 24;

pub struct DayObs {
    pub date: NaiveDate,
    pub hours: [Option<f64>; HOURS],
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Band {
    pub mean: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Known {
    pub closed: bool,
    pub factor: Option<f64>,
    pub booked: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayForecast {
    pub date: NaiveDate,
    pub total: Band,
    pub hours: Vec<Band>,
    pub peak: Band,
}

pub fn forecast(
    history: &[DayObs],
    _calendar: &dyn Fn(NaiveDate) -> crate::calendar::Day,
    first: NaiveDate,
    days: usize,
    known: &dyn Fn(NaiveDate) -> Known,
) -> Vec<DayForecast> {
    let b = |m: f64| Band {
        mean: m,
        lo80: m * 0.8,
        hi80: m * 1.2,
        lo95: m * 0.6,
        hi95: m * 1.4,
    };
    first
        .iter_days()
        .take(days)
        .map(|date| {
            let k = known(date);
            let hours: Vec<Band> = (0..HOURS)
                .map(|h| {
                    let v: Vec<f64> = history.iter().filter_map(|d| d.hours[h]).collect();
                    let m = if k.closed || v.is_empty() {
                        0.0
                    } else {
                        v.iter().sum::<f64>() / v.len() as f64
                    };
                    b(m * k.factor.unwrap_or(1.0))
                })
                .collect();
            let total = b(hours.iter().map(|h| h.mean).sum());
            let peak = b(hours.iter().map(|h| h.mean).fold(0.0, f64::max));
            DayForecast {
                date,
                total,
                hours,
                peak,
            }
        })
        .collect()
}

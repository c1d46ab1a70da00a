//! The forecast's evaluation on real data: rolling-origin, day-ahead, on the Dublin footfall
//! year (the 21 counters with at least 98 % of their hours) and the CalIt2 door (hourly entries:
//! the IN of two 30-minute slots). Pure and deterministic: the caller reads the files.
//! `examples/forecast_eval` prints the table; `tests/forecast_eval.rs` holds it to a bound.
//!
//! At every origin day T after the warm-up (35 days), the model forecasts day T from the days
//! before it, and its bands come from its own day-ahead forecasts of the
//! `calibration_days` days before T (each made from the days before that day) — exactly what
//! [`forecast::forecast`] computes at T (a unit test checks the two agree), but each day's
//! day-ahead forecast is made once and reused. Nothing is fitted on the evaluated days: the
//! model's settings are [`Settings::default`], fixed before the first run.
//!
//! - **MASE**: absolute error over the series' scale — the mean absolute error of the
//!   seasonal-naive forecast (same hour, same weekday a week before) over the warm-up — averaged
//!   per series, then over series. The model and seasonal naive are scored on the same hours:
//!   those with an actual value and a value a week before. The daily-total rows do the same with
//!   complete days.
//! - **Coverage**: the share of hours whose actual value lies in the band (ends included), over
//!   hours with an actual value, leaving out those the model forecast exactly 0 that had 0 (a
//!   closed night, a trivially covered band); how many were left out is reported.

use std::fmt;

use chrono::{NaiveDate, Timelike};
use serde::Serialize;

use super::SimError;
use super::replay::{parse_calit2, parse_dublin};
use crate::calendar::{Calendar, CalendarConfig, DateRange};
use crate::forecast::{self, DayObs, HOURS, Settings};

/// Days before the first origin.
pub const WARM_UP_DAYS: usize = 35;
/// A Dublin counter is complete with at least this share of its hours.
pub const COMPLETE_SHARE: f64 = 0.98;

/// Ireland's public holidays of 2023, in the holiday-file format of `config/holidays-cn.toml`.
/// Good Friday is not a public holiday in Ireland; 2 January is the substitute for New Year's
/// Day (a Sunday).
pub const IRISH_HOLIDAYS_2023: &str = r#"
[[years]]
year = 2023

[[holidays]]
key = "new_year"
name = "New Year's Day (substitute)"
from = 2023-01-02
to = 2023-01-02

[[holidays]]
key = "st_patrick"
name = "St Patrick's Day"
from = 2023-03-17
to = 2023-03-17

[[holidays]]
key = "easter_monday"
name = "Easter Monday"
from = 2023-04-10
to = 2023-04-10

[[holidays]]
key = "may_bank_holiday"
name = "May bank holiday"
from = 2023-05-01
to = 2023-05-01

[[holidays]]
key = "june_bank_holiday"
name = "June bank holiday"
from = 2023-06-05
to = 2023-06-05

[[holidays]]
key = "august_bank_holiday"
name = "August bank holiday"
from = 2023-08-07
to = 2023-08-07

[[holidays]]
key = "october_bank_holiday"
name = "October bank holiday"
from = 2023-10-30
to = 2023-10-30

[[holidays]]
key = "christmas"
name = "Christmas Day, St Stephen's Day"
from = 2023-12-25
to = 2023-12-26
"#;

/// The US federal holidays of 2005 that UC Irvine observes, in the same format (only Labor Day
/// falls in the CalIt2 weeks).
pub const UCI_HOLIDAYS_2005: &str = r#"
[[years]]
year = 2005

[[holidays]]
key = "independence_day"
name = "Independence Day"
from = 2005-07-04
to = 2005-07-04

[[holidays]]
key = "labor_day"
name = "Labor Day"
from = 2005-09-05
to = 2005-09-05

[[holidays]]
key = "veterans_day"
name = "Veterans Day"
from = 2005-11-11
to = 2005-11-11
"#;

/// The Irish calendar of 2023 (no school holidays: the counters are city streets).
pub fn dublin_calendar() -> Calendar {
    Calendar::build(&CalendarConfig::default(), Some(IRISH_HOLIDAYS_2023))
        .expect("the Irish holidays parse")
}

/// UC Irvine's 2005: Labor Day, and the summer break until the fall quarter's first day of
/// instruction (Thursday 22 September 2005).
pub fn calit2_calendar() -> Calendar {
    let cfg = CalendarConfig {
        holidays_file: Some("UCI 2005".into()),
        school_holidays: vec![DateRange {
            name: "summer break".into(),
            from: date(2005, 6, 18),
            to: date(2005, 9, 21),
        }],
        events: Vec::new(),
    };
    Calendar::build(&cfg, Some(UCI_HOLIDAYS_2005)).expect("the UCI holidays parse")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// Hourly entries of the CalIt2 door: each hour's two slots' IN (no data if either is empty).
pub fn calit2_days(text: &str) -> Result<Vec<DayObs>, SimError> {
    let mut days: Vec<DayObs> = Vec::new();
    let mut halves: Vec<(NaiveDate, usize, Option<u32>)> = Vec::new();
    for slot in parse_calit2(text)? {
        halves.push((slot.start.date(), slot.start.hour() as usize, slot.in_count));
    }
    for pair in halves.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (d, h, _) = pair[0];
        let value = if pair.len() == 2 {
            pair.iter().map(|p| p.2.map(f64::from)).sum::<Option<f64>>()
        } else {
            None
        };
        match days.last_mut() {
            Some(last) if last.date == d => last.hours[h] = value,
            _ => {
                let mut obs = DayObs {
                    date: d,
                    hours: [None; HOURS],
                };
                obs.hours[h] = value;
                days.push(obs);
            }
        }
    }
    Ok(days)
}

/// The complete Dublin counters' hourly totals (IN + OUT), with their names.
pub fn dublin_days(text: &str) -> Result<Vec<(String, Vec<DayObs>)>, SimError> {
    let file = parse_dublin(text)?;
    let n = file.times.len().max(1) as f64;
    Ok(file
        .counters
        .iter()
        .filter(|c| c.total.iter().flatten().count() as f64 >= COMPLETE_SHARE * n)
        .map(|c| {
            let mut days: Vec<DayObs> = Vec::new();
            for (t, v) in file.times.iter().zip(&c.total) {
                let (d, h) = (t.date(), t.hour() as usize);
                if days.last().is_none_or(|l| l.date != d) {
                    days.push(DayObs {
                        date: d,
                        hours: [None; HOURS],
                    });
                }
                if let Some(last) = days.last_mut() {
                    last.hours[h] = v.map(f64::from);
                }
            }
            (c.name.clone(), days)
        })
        .collect())
}

/// One row of the table: a dataset's hourly values or daily totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub dataset: String,
    /// `hourly` or `daily total`.
    pub quantity: String,
    pub series: usize,
    /// Origin days summed over the series.
    pub origins: usize,
    pub mase_model: f64,
    pub mase_naive: f64,
    /// `mase_model / mase_naive`: below 1 the model beats seasonal naive.
    pub ratio: f64,
    pub coverage80: f64,
    pub coverage95: f64,
    /// Values the coverage counts.
    pub counted: usize,
    /// Values left out of the coverage: forecast exactly 0 and actually 0.
    pub trivial: usize,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub warm_up_days: usize,
    pub calibration_days: usize,
    pub rows: Vec<Row>,
}

#[derive(Debug, Default)]
struct Tally {
    series: usize,
    origins: usize,
    model: f64,
    naive: f64,
    in80: usize,
    in95: usize,
    counted: usize,
    trivial: usize,
}

impl Tally {
    fn row(&self, dataset: &str, quantity: &str) -> Row {
        let n = self.series.max(1) as f64;
        let c = self.counted.max(1) as f64;
        Row {
            dataset: dataset.into(),
            quantity: quantity.into(),
            series: self.series,
            origins: self.origins,
            mase_model: self.model / n,
            mase_naive: self.naive / n,
            ratio: self.model / self.naive,
            coverage80: 100.0 * self.in80 as f64 / c,
            coverage95: 100.0 * self.in95 as f64 / c,
            counted: self.counted,
            trivial: self.trivial,
        }
    }
}

/// Both datasets (either may be absent).
pub fn evaluate(calit2: Option<&str>, dublin: Option<&str>) -> Result<Evaluation, SimError> {
    let settings = Settings::default();
    let mut rows = Vec::new();
    if let Some(text) = dublin {
        let series: Vec<Vec<DayObs>> = dublin_days(text)?.into_iter().map(|s| s.1).collect();
        rows.extend(evaluate_dataset(
            &settings,
            "Dublin (21 counters)",
            &series,
            &dublin_calendar(),
        ));
    }
    if let Some(text) = calit2 {
        rows.extend(evaluate_dataset(
            &settings,
            "CalIt2 door (in)",
            &[calit2_days(text)?],
            &calit2_calendar(),
        ));
    }
    Ok(Evaluation {
        warm_up_days: WARM_UP_DAYS,
        calibration_days: settings.calibration_days,
        rows,
    })
}

/// The hourly and daily-total rows of one dataset's series.
pub fn evaluate_dataset(
    settings: &Settings,
    name: &str,
    series: &[Vec<DayObs>],
    calendar: &Calendar,
) -> [Row; 2] {
    let mut hourly = Tally::default();
    let mut daily = Tally::default();
    for days in series {
        evaluate_series(settings, days, calendar, &mut hourly, &mut daily);
    }
    [hourly.row(name, "hourly"), daily.row(name, "daily total")]
}

fn evaluate_series(
    settings: &Settings,
    days: &[DayObs],
    calendar: &Calendar,
    hourly: &mut Tally,
    daily: &mut Tally,
) {
    let (s, fc) = forecast::rolling_day_ahead(settings, days, &|d| calendar.day(d, None));
    let n = s.history_len();
    if n <= WARM_UP_DAYS {
        return;
    }
    // The scales: seasonal naive's mean absolute error over the warm-up.
    let (mut hs, mut hn, mut ds, mut dn) = (0.0, 0usize, 0.0, 0usize);
    for t in 7..WARM_UP_DAYS {
        if let (Some(a), Some(b)) = (s.hours(t), s.hours(t - 7)) {
            for (x, y) in a.iter().zip(b) {
                if let (Some(x), Some(y)) = (x, y) {
                    hs += (x - y).abs();
                    hn += 1;
                }
            }
        }
        if let (Some(x), Some(y)) = (s.total(t), s.total(t - 7)) {
            ds += (x - y).abs();
            dn += 1;
        }
    }
    let (h_scale, d_scale) = (hs / hn.max(1) as f64, ds / dn.max(1) as f64);
    if h_scale <= 0.0 || d_scale <= 0.0 {
        return;
    }
    let mut h = Tally::default();
    let mut d = Tally::default();
    let (mut h_n, mut d_n) = (0usize, 0usize);
    for (t, f) in fc.iter().enumerate().take(n).skip(WARM_UP_DAYS) {
        let (Some(f), Some(actual), Some(week_ago)) = (f, s.hours(t), s.hours(t - 7)) else {
            continue;
        };
        h.origins += 1;
        d.origins += 1;
        for ((band, y), y7) in f.hours.iter().zip(actual).zip(week_ago) {
            let Some(y) = *y else { continue };
            if band.mean == 0.0 && y == 0.0 {
                h.trivial += 1;
            } else {
                h.counted += 1;
                h.in80 += usize::from(band.covers(y, false));
                h.in95 += usize::from(band.covers(y, true));
            }
            if let Some(y7) = y7 {
                h.model += (y - band.mean).abs() / h_scale;
                h.naive += (y - y7).abs() / h_scale;
                h_n += 1;
            }
        }
        if let (Some(y), Some(y7)) = (s.total(t), s.total(t - 7)) {
            d.counted += 1;
            d.in80 += usize::from(f.total.covers(y, false));
            d.in95 += usize::from(f.total.covers(y, true));
            d.model += (y - f.total.mean).abs() / d_scale;
            d.naive += (y - y7).abs() / d_scale;
            d_n += 1;
        }
    }
    for (tally, part, k) in [(hourly, h, h_n), (daily, d, d_n)] {
        if k == 0 {
            continue;
        }
        tally.series += 1;
        tally.origins += part.origins;
        tally.model += part.model / k as f64;
        tally.naive += part.naive / k as f64;
        tally.in80 += part.in80;
        tally.in95 += part.in95;
        tally.counted += part.counted;
        tally.trivial += part.trivial;
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Day-ahead forecast, rolling origin after a {}-day warm-up; intervals calibrated on the {} days before each origin",
            self.warm_up_days, self.calibration_days
        )?;
        writeln!(
            f,
            "{:<22} {:<12} {:>6} {:>7} {:>10} {:>10} {:>6} {:>7} {:>7} {:>9} {:>8}",
            "dataset",
            "quantity",
            "series",
            "origins",
            "MASE model",
            "MASE naive",
            "ratio",
            "cov80 %",
            "cov95 %",
            "counted",
            "trivial"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<22} {:<12} {:>6} {:>7} {:>10.3} {:>10.3} {:>6.3} {:>7.1} {:>7.1} {:>9} {:>8}",
                r.dataset,
                r.quantity,
                r.series,
                r.origins,
                r.mase_model,
                r.mase_naive,
                r.ratio,
                r.coverage80,
                r.coverage95,
                r.counted,
                r.trivial
            )?;
        }
        Ok(())
    }
}

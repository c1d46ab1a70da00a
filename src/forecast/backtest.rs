//! Rolling-origin day-ahead forecasts over a whole history, for evaluations: at every day T,
//! what [`super::forecast`] would have said for T from the days before it — the same point
//! forecast and the same calibration — with each day's day-ahead forecast made once and reused
//! by the calibrations of the days after it.

use chrono::NaiveDate;

use super::{
    Calibration, DayForecast, DayObs, Known, MIN_HISTORY_DAYS, Point, Record, Series, Settings,
    finish, predict,
};
use crate::calendar::Day;

/// The series of `days` and, for each of its days from [`MIN_HISTORY_DAYS`] on, its day-ahead
/// forecast (`None` before, or where the model has nothing).
pub fn rolling_day_ahead(
    settings: &Settings,
    days: &[DayObs],
    calendar: &dyn Fn(NaiveDate) -> Day,
) -> (Series, Vec<Option<DayForecast>>) {
    let end = days
        .last()
        .and_then(|d| d.date.succ_opt())
        .unwrap_or(NaiveDate::MIN);
    let s = Series::new(days, calendar, end, 0, &|_| Known::default());
    let n = s.history_len();
    let points: Vec<Option<Point>> = (0..n)
        .map(|t| {
            (t >= MIN_HISTORY_DAYS)
                .then(|| predict(settings, &s, t, 1).pop())
                .flatten()
        })
        .collect();
    let records: Vec<Option<Record>> = points
        .iter()
        .enumerate()
        .map(|(t, p)| {
            Some(Record {
                horizon: 0,
                point: p.clone()?,
                actual: *s.hours(t)?,
            })
        })
        .collect();
    let out = (0..n)
        .map(|t| {
            let p = points[t].as_ref()?;
            let from = t.saturating_sub(settings.calibration_days);
            let window: Vec<Record> = records[from..t].iter().flatten().cloned().collect();
            let cal = Calibration::from_records(settings, &window, 1);
            Some(finish(settings, &cal, 0, p, &Known::default()))
        })
        .collect();
    (s, out)
}

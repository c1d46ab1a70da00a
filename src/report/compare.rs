//! The report's comparisons: the forecast made before the day began against what happened, 同比
//! (the same local date a year before, and the same day of the same holiday a year before) and
//! 环比 (the day before, the same weekday a week before). Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::calendar::Calendar;
use crate::forecast::Band;

/// One earlier day's entries and the change from it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Versus {
    pub day: NaiveDate,
    pub entries: i64,
    /// (this day − that day) ÷ that day, percent; null when that day had none.
    pub change_pct: Option<f64>,
    /// The holiday compared with (same holiday last year only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holiday: Option<String>,
}

/// The day-ahead forecast of the day and how the day turned out against it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ForecastVsActual {
    pub made_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub entries: Band,
    /// (actual − forecast mean) ÷ forecast mean, percent.
    pub entries_error_pct: Option<f64>,
    pub within_80: bool,
    pub within_95: bool,
    #[schema(value_type = Object)]
    pub peak: Band,
}

/// Every comparison of one space's day; each absent when the data are not there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    pub forecast: Option<ForecastVsActual>,
    /// 环比: the day before.
    pub previous_day: Option<Versus>,
    /// 环比: the same weekday a week before.
    pub previous_week: Option<Versus>,
    /// 同比: the same local date a year before.
    pub same_date_last_year: Option<Versus>,
    /// 同比: the same day of the same holiday a year before (holidays only).
    pub same_holiday_last_year: Option<Versus>,
}

fn change(now: i64, then: i64) -> Option<f64> {
    (then > 0).then(|| ((now - then) as f64 / then as f64 * 1000.0).round() / 10.0)
}

/// The comparisons of `day` (with `entries`), from the space's daily entries by local day and
/// the forecast of the day made before it began (entries and peak bands, and when).
pub fn compare(
    day: NaiveDate,
    entries: i64,
    by_day: &BTreeMap<NaiveDate, i64>,
    calendar: &Calendar,
    forecast: Option<(Band, Band, DateTime<Utc>)>,
) -> Comparison {
    let versus = |d: Option<NaiveDate>, holiday: Option<String>| {
        let d = d?;
        let then = *by_day.get(&d)?;
        Some(Versus {
            day: d,
            entries: then,
            change_pct: change(entries, then),
            holiday,
        })
    };
    let holiday = calendar.day(day, None).holiday.map(|h| h.name.to_string());
    Comparison {
        forecast: forecast.map(|(e, peak, made_at)| {
            let a = entries as f64;
            ForecastVsActual {
                made_at,
                entries_error_pct: (e.mean > 0.0)
                    .then(|| ((a - e.mean) / e.mean * 1000.0).round() / 10.0),
                within_80: (e.lo80..=e.hi80).contains(&a),
                within_95: (e.lo95..=e.hi95).contains(&a),
                entries: e,
                peak,
            }
        }),
        previous_day: versus(day.pred_opt(), None),
        previous_week: versus(day.checked_sub_signed(TimeDelta::days(7)), None),
        same_date_last_year: versus(Some(Calendar::same_date_last_year(day)), None),
        same_holiday_last_year: versus(calendar.same_holiday_last_year(day), holiday),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn same_period_and_previous_period_comparisons() {
        let cal = Calendar::build(&Default::default(), None).unwrap();
        let by_day: BTreeMap<NaiveDate, i64> = [
            ("2026-10-02", 20_000),
            ("2026-09-26", 8_000),
            ("2025-10-03", 25_000),
        ]
        .into_iter()
        .map(|(s, n)| (d(s), n))
        .collect();
        let band = Band {
            mean: 24_000.0,
            lo80: 21_000.0,
            hi80: 27_000.0,
            lo95: 19_000.0,
            hi95: 29_000.0,
        };
        let made = "2026-10-02T16:30:00Z".parse().unwrap();
        let c = compare(
            d("2026-10-03"),
            22_000,
            &by_day,
            &cal,
            Some((band, band, made)),
        );
        assert_eq!(
            c.previous_day.as_ref().map(|v| v.change_pct),
            Some(Some(10.0))
        );
        assert_eq!(
            c.previous_week.as_ref().map(|v| (v.day, v.change_pct)),
            Some((d("2026-09-26"), Some(175.0)))
        );
        assert_eq!(
            c.same_date_last_year.as_ref().map(|v| v.change_pct),
            Some(Some(-12.0))
        );
        // The third day of National Day 2026 against the third day of 2025's.
        let h = c.same_holiday_last_year.unwrap();
        assert_eq!(
            (h.day, h.holiday.as_deref()),
            (d("2025-10-03"), Some("国庆节"))
        );
        let f = c.forecast.unwrap();
        assert_eq!(f.entries_error_pct, Some(-8.3));
        assert!(f.within_80 && f.within_95);
    }

    #[test]
    fn missing_days_are_absent_not_zero() {
        let cal = Calendar::build(&Default::default(), None).unwrap();
        let c = compare(d("2026-03-10"), 500, &BTreeMap::new(), &cal, None);
        assert_eq!(c, Comparison::default());
        let zero: BTreeMap<_, _> = [(d("2026-03-09"), 0)].into_iter().collect();
        let c = compare(d("2026-03-10"), 500, &zero, &cal, None);
        assert_eq!(c.previous_day.unwrap().change_pct, None);
    }
}

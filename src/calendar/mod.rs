//! The county's calendar of local days: public holidays with their make-up working days (调休),
//! school holidays and local events, and from them the kind of each day. The forecast learns
//! from it and the reports compare a day with the same holiday a year before. Pure: the holiday
//! file is read by the caller.

mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use config::HolidayFile;
pub use config::{CalendarConfig, DateRange, EMBEDDED_HOLIDAYS, EventConfig};

use crate::ids::SpaceId;
use crate::registry::Problem;

/// What a local day is for the people who might visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// Monday to Friday, not a holiday.
    Workday,
    /// Saturday or Sunday, not a holiday and not worked.
    Weekend,
    /// A day off of a public holiday period.
    Holiday,
    /// A weekend day worked instead of a holiday day (调休上班).
    MakeUpWorkday,
}

impl DayKind {
    /// As serialised: `workday`, `weekend`, `holiday`, `make_up_workday`.
    pub fn as_str(self) -> &'static str {
        match self {
            DayKind::Workday => "workday",
            DayKind::Weekend => "weekend",
            DayKind::Holiday => "holiday",
            DayKind::MakeUpWorkday => "make_up_workday",
        }
    }

    pub fn is_day_off(self) -> bool {
        matches!(self, DayKind::Weekend | DayKind::Holiday)
    }
}

/// Which day of which holiday period a date is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolidayDay {
    /// Stable across years (`national_day`), so a holiday can be compared with its last year.
    pub key: Arc<str>,
    pub name: Arc<str>,
    /// 0 for the period's first day.
    pub index: u8,
    /// Days off in the period.
    pub length: u8,
    pub first: NaiveDate,
}

/// One local day as the calendar sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub kind: DayKind,
    pub holiday: Option<HolidayDay>,
    /// The name of the school holiday the day is in.
    pub school_holiday: Option<Arc<str>>,
    /// Events on that day (for the area asked about, or county-wide).
    pub events: Vec<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in [calendar]:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct CalendarError(pub Vec<Problem>);

#[derive(Debug, Clone)]
struct Event {
    name: Arc<str>,
    from: NaiveDate,
    to: NaiveDate,
    spaces: Vec<SpaceId>,
}

/// The calendar built from a holiday file and `[calendar]`.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: BTreeMap<NaiveDate, HolidayDay>,
    workdays: BTreeSet<NaiveDate>,
    /// Years the holiday file covers, and whether each is provisional.
    years: BTreeMap<i32, bool>,
    school: Vec<(Arc<str>, NaiveDate, NaiveDate)>,
    events: Vec<Event>,
}

impl Calendar {
    /// The embedded holidays and `cfg`'s ranges, or the holiday file `cfg` names (its text
    /// given by the caller, who read it).
    pub fn build(cfg: &CalendarConfig, holiday_text: Option<&str>) -> Result<Self, CalendarError> {
        let mut problems = Vec::new();
        let text = holiday_text.unwrap_or(EMBEDDED_HOLIDAYS);
        let source = cfg
            .holidays_file
            .as_deref()
            .unwrap_or("the embedded holidays");
        let mut cal = match toml::from_str::<HolidayFile>(text) {
            Ok(file) => Self::from_file(file, source, &mut problems),
            Err(e) => {
                problems.push(problem(source, e.message()));
                Self::default()
            }
        };
        for (i, r) in cfg.school_holidays.iter().enumerate() {
            let loc = format!("calendar.school_holidays[{i}] ({})", r.name);
            if r.from > r.to {
                problems.push(problem(&loc, "`from` is after `to`"));
            }
            cal.school.push((r.name.as_str().into(), r.from, r.to));
        }
        for (i, e) in cfg.events.iter().enumerate() {
            let loc = format!("calendar.events[{i}] ({})", e.name);
            if e.from > e.to {
                problems.push(problem(&loc, "`from` is after `to`"));
            }
            cal.events.push(Event {
                name: e.name.as_str().into(),
                from: e.from,
                to: e.to,
                spaces: e.spaces.clone(),
            });
        }
        if problems.is_empty() {
            Ok(cal)
        } else {
            Err(CalendarError(problems))
        }
    }

    fn from_file(file: HolidayFile, source: &str, problems: &mut Vec<Problem>) -> Self {
        let mut cal = Self::default();
        for y in &file.years {
            if cal.years.insert(y.year, y.provisional).is_some() {
                problems.push(problem(source, &format!("year {} listed twice", y.year)));
            }
        }
        for (i, h) in file.holidays.iter().enumerate() {
            let loc = format!("{source}: holidays[{i}] ({} {})", h.name, h.from);
            let length = (h.to - h.from).num_days() + 1;
            if !(1..=31).contains(&length) {
                problems.push(problem(
                    &loc,
                    "a period runs from `from` to `to`, 1 to 31 days",
                ));
                continue;
            }
            if !cal.years.contains_key(&h.from.year()) {
                problems.push(problem(&loc, "its year is not listed in [[years]]"));
            }
            let key: Arc<str> = h.key.as_str().into();
            let name: Arc<str> = h.name.as_str().into();
            for (index, date) in h.from.iter_days().take(length as usize).enumerate() {
                let day = HolidayDay {
                    key: key.clone(),
                    name: name.clone(),
                    index: index as u8,
                    length: length as u8,
                    first: h.from,
                };
                if cal.holidays.insert(date, day).is_some() {
                    problems.push(problem(&loc, &format!("{date} is in two holiday periods")));
                }
            }
            for &w in &h.workdays {
                if !matches!(w.weekday(), Weekday::Sat | Weekday::Sun) {
                    problems.push(problem(
                        &loc,
                        &format!(
                            "make-up working day {w} is a {}, not a weekend day",
                            w.weekday()
                        ),
                    ));
                }
                cal.workdays.insert(w);
            }
        }
        if let Some(d) = cal.workdays.iter().find(|d| cal.holidays.contains_key(d)) {
            problems.push(problem(
                source,
                &format!("{d} is both a holiday and a working day"),
            ));
        }
        cal
    }

    /// The day `date` at `space` (its events, and the county-wide ones).
    pub fn day(&self, date: NaiveDate, space: Option<&SpaceId>) -> Day {
        let holiday = self.holidays.get(&date).cloned();
        let kind = if holiday.is_some() {
            DayKind::Holiday
        } else if self.workdays.contains(&date) {
            DayKind::MakeUpWorkday
        } else if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            DayKind::Weekend
        } else {
            DayKind::Workday
        };
        let school_holiday = self
            .school
            .iter()
            .find(|(_, from, to)| (*from..=*to).contains(&date))
            .map(|(name, _, _)| name.clone());
        let events = self
            .events
            .iter()
            .filter(|e| (e.from..=e.to).contains(&date))
            .filter(|e| e.spaces.is_empty() || space.is_some_and(|s| e.spaces.contains(s)))
            .map(|e| e.name.clone())
            .collect();
        Day {
            date,
            kind,
            holiday,
            school_holiday,
            events,
        }
    }

    pub fn kind(&self, date: NaiveDate) -> DayKind {
        self.day(date, None).kind
    }

    /// Whether the holiday file covers `year` (a year it does not cover has only weekends), and
    /// whether that year's entry is provisional.
    pub fn coverage(&self, year: i32) -> Option<bool> {
        self.years.get(&year).copied()
    }

    /// The same day of the same holiday in the previous year, for 同比 (the third day of last
    /// year's National Day for this year's third day). A day past the end of last year's period
    /// (a longer period this year) has none.
    pub fn same_holiday_last_year(&self, date: NaiveDate) -> Option<NaiveDate> {
        let h = self.holidays.get(&date)?;
        let year = h.first.year() - 1;
        self.holidays
            .iter()
            .find(|(d, o)| d.year() == year && o.key == h.key && o.index == h.index)
            .map(|(d, _)| *d)
    }

    /// The same local date a year before (29 February maps to the 28th).
    pub fn same_date_last_year(date: NaiveDate) -> NaiveDate {
        date.with_year(date.year() - 1)
            .or_else(|| NaiveDate::from_ymd_opt(date.year() - 1, 2, 28))
            .unwrap_or(date)
    }
}

/// The instant of local `time` on `day` in `tz` (the earliest when a clock change repeats it).
pub fn local_instant(tz: Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&day.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A local day's bounds in UTC: `[midnight, next midnight)` in `tz`. `None` out of range.
pub fn local_day(tz: Tz, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = |d| local_instant(tz, d, NaiveTime::MIN);
    Some((start(day)?, start(day.succ_opt()?)?))
}

fn problem(location: &str, message: &str) -> Problem {
    Problem {
        location: location.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn shipped() -> Calendar {
        Calendar::build(&CalendarConfig::default(), None).unwrap()
    }

    #[test]
    fn make_up_working_days_are_working_days_on_a_weekend() {
        let cal = shipped();
        // 2026: Spring Festival 15–23 February, worked Saturday 14 and Saturday 28 February.
        assert_eq!(cal.kind(d("2026-02-14")), DayKind::MakeUpWorkday);
        assert_eq!(cal.kind(d("2026-02-28")), DayKind::MakeUpWorkday);
        assert!(!cal.kind(d("2026-02-28")).is_day_off());
        assert_eq!(cal.kind(d("2026-02-15")), DayKind::Holiday);
        assert_eq!(cal.kind(d("2026-02-23")), DayKind::Holiday, "a Monday off");
        assert_eq!(cal.kind(d("2026-02-24")), DayKind::Workday);
        assert_eq!(
            cal.kind(d("2026-02-21")),
            DayKind::Holiday,
            "a Saturday inside the period"
        );
        // An ordinary weekend and weekday.
        assert_eq!(cal.kind(d("2026-03-07")), DayKind::Weekend);
        assert_eq!(cal.kind(d("2026-03-09")), DayKind::Workday);
        // 2025: National Day and Mid-Autumn together, 1–8 October; worked 28 Sep and 11 Oct.
        assert_eq!(cal.kind(d("2025-09-28")), DayKind::MakeUpWorkday);
        assert_eq!(cal.kind(d("2025-10-08")), DayKind::Holiday);
        assert_eq!(cal.kind(d("2025-10-11")), DayKind::MakeUpWorkday);
    }

    #[test]
    fn a_holiday_day_knows_its_period() {
        let cal = shipped();
        let day = cal.day(d("2026-10-03"), None);
        let h = day.holiday.unwrap();
        assert_eq!(&*h.key, "national_day");
        assert_eq!((h.index, h.length, h.first), (2, 7, d("2026-10-01")));
    }

    #[test]
    fn same_holiday_last_year_is_the_same_day_of_the_period() {
        let cal = shipped();
        // The 3rd day of the 2026 National Day is the 3rd of the 2025 one (same date here).
        assert_eq!(
            cal.same_holiday_last_year(d("2026-10-03")),
            Some(d("2025-10-03"))
        );
        // Spring Festival moves with the lunar year: 2026's first day ↔ 2025's first day.
        assert_eq!(
            cal.same_holiday_last_year(d("2026-02-15")),
            Some(d("2025-01-28"))
        );
        // 2026's ninth day has no ninth day in 2025 (eight days then).
        assert_eq!(cal.same_holiday_last_year(d("2026-02-23")), None);
        // Mid-Autumn 2026 stood alone; in 2025 it was inside National Day: no match by key.
        assert_eq!(cal.same_holiday_last_year(d("2026-09-25")), None);
        assert_eq!(cal.same_holiday_last_year(d("2026-03-09")), None);
        assert_eq!(
            Calendar::same_date_last_year(d("2028-02-29")),
            d("2027-02-28")
        );
    }

    #[test]
    fn shipped_years_are_covered_and_2027_is_provisional() {
        let cal = shipped();
        assert_eq!(cal.coverage(2025), Some(false));
        assert_eq!(cal.coverage(2026), Some(false));
        assert_eq!(cal.coverage(2027), Some(true));
        assert_eq!(cal.coverage(2028), None);
    }

    #[test]
    fn school_holidays_and_events_are_ranges_and_events_can_be_local() {
        let cfg: CalendarConfig = toml::from_str(
            r#"
            [[school_holidays]]
            name = "暑假"
            from = 2026-07-04
            to = "2026-08-31"
            [[events]]
            name = "杜鹃花节"
            from = 2026-04-18
            to = 2026-05-03
            spaces = ["canyon"]
            [[events]]
            name = "county fair"
            from = 2026-04-20
            to = 2026-04-20
            "#,
        )
        .unwrap();
        let cal = Calendar::build(&cfg, None).unwrap();
        assert_eq!(
            cal.day(d("2026-08-31"), None).school_holiday.as_deref(),
            Some("暑假")
        );
        assert_eq!(cal.day(d("2026-09-01"), None).school_holiday, None);
        let canyon = SpaceId::new("canyon");
        let village = SpaceId::new("village");
        let names = |s: &SpaceId| -> Vec<String> {
            cal.day(d("2026-04-20"), Some(s))
                .events
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        assert_eq!(names(&canyon), ["杜鹃花节", "county fair"]);
        assert_eq!(names(&village), ["county fair"]);
    }

    #[test]
    fn a_bad_holiday_file_is_refused_with_located_problems() {
        let text = r#"
            [[years]]
            year = 2026
            [[holidays]]
            key = "a"
            name = "A"
            from = 2026-10-01
            to = 2026-10-07
            workdays = [2026-10-09]
            [[holidays]]
            key = "b"
            name = "B"
            from = 2026-10-07
            to = 2026-10-08
            [[holidays]]
            key = "c"
            name = "C"
            from = 2027-01-02
            to = 2027-01-01
        "#;
        let err = Calendar::build(&CalendarConfig::default(), Some(text)).unwrap_err();
        let all = err.to_string();
        assert!(all.contains("2026-10-09 is a Fri"), "{all}");
        assert!(
            all.contains("2026-10-07 is in two holiday periods"),
            "{all}"
        );
        assert!(all.contains("holidays[2] (C 2027-01-02)"), "{all}");
        let bad_range: CalendarConfig =
            toml::from_str("[[events]]\nname='x'\nfrom=2026-05-02\nto=2026-05-01").unwrap();
        assert!(Calendar::build(&bad_range, None).is_err());
        assert!(
            toml::from_str::<CalendarConfig>("[[events]]\nname='x'\nfrom='May'\nto=2026-05-01")
                .is_err()
        );
    }
}

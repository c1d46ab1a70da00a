//! The history laid out day by day (gaps as empty days) with what the calendar says of each day,
//! the target days included: what the model and the calibration read.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, TimeDelta};

use super::{DayObs, HOURS, Known};
use crate::calendar::{Day, DayKind};

/// What a day is for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An ordinary day (workday or weekend): its weekday, 0 = Monday.
    Weekday(u8),
    /// A weekend day worked instead of a holiday day.
    MakeUp,
    /// A day off of a public holiday period.
    Holiday(Holiday),
}

/// A holiday day: its key (interned in [`Series::keys`]), its place in the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub key: usize,
    pub index: u8,
    pub length: u8,
    pub first: NaiveDate,
}

/// The calendar's and the caller's facts about one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub date: NaiveDate,
    pub class: Class,
    /// In a school holiday.
    pub school: bool,
    /// Known to be closed (a history day so marked teaches nothing).
    pub closed: bool,
}

/// The history before `first`, one entry per day from the first history day, and the calendar
/// of those days and of the target days.
#[derive(Debug, Clone)]
pub struct Series {
    pub start: NaiveDate,
    /// Days with history: `hours.len()` ≤ index of `first`.
    hours: Vec<[Option<f64>; HOURS]>,
    totals: Vec<Option<f64>>,
    info: Vec<Info>,
    /// Indices of the holiday days in the history, ascending.
    pub holidays: Vec<usize>,
    pub keys: Vec<Arc<str>>,
}

impl Series {
    /// `history` before `first` (later days are ignored), and the calendar up to `days` days
    /// from `first`. `known` is asked about the history days too (closed days).
    pub fn new(
        history: &[DayObs],
        calendar: &dyn Fn(NaiveDate) -> Day,
        first: NaiveDate,
        days: usize,
        known: &dyn Fn(NaiveDate) -> Known,
    ) -> Self {
        let start = history.first().map_or(first, |d| d.date.min(first));
        let n_hist = usize::try_from((first - start).num_days()).unwrap_or(0);
        let mut hours = vec![[None; HOURS]; n_hist];
        for d in history.iter().filter(|d| d.date >= start && d.date < first) {
            let i = (d.date - start).num_days() as usize;
            for (slot, v) in hours[i].iter_mut().zip(d.hours) {
                *slot = v.filter(|x| x.is_finite()).map(|x| x.max(0.0));
            }
        }
        let totals = hours
            .iter()
            .map(|h| h.iter().copied().sum::<Option<f64>>())
            .collect();
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut holidays = Vec::new();
        let info = (0..n_hist + days)
            .map(|i| {
                let date = start + TimeDelta::days(i as i64);
                let day = calendar(date);
                let class = match (day.kind, &day.holiday) {
                    (DayKind::Holiday, Some(h)) => {
                        let key = match keys.iter().position(|k| *k == h.key) {
                            Some(k) => k,
                            None => {
                                keys.push(h.key.clone());
                                keys.len() - 1
                            }
                        };
                        Class::Holiday(Holiday {
                            key,
                            index: h.index,
                            length: h.length.max(1),
                            first: h.first,
                        })
                    }
                    (DayKind::MakeUpWorkday, _) => Class::MakeUp,
                    _ => Class::Weekday(date.weekday().num_days_from_monday() as u8),
                };
                if i < n_hist && matches!(class, Class::Holiday(_)) {
                    holidays.push(i);
                }
                Info {
                    date,
                    class,
                    school: day.school_holiday.is_some(),
                    closed: i < n_hist && known(date).closed,
                }
            })
            .collect();
        Self {
            start,
            hours,
            totals,
            info,
            holidays,
            keys,
        }
    }

    /// The index of `date` (dates before the start clamp to 0).
    pub fn index(&self, date: NaiveDate) -> usize {
        usize::try_from((date - self.start).num_days()).unwrap_or(0)
    }

    /// Days of history.
    pub fn history_len(&self) -> usize {
        self.hours.len()
    }

    /// Days the calendar covers (history and targets).
    pub fn len(&self) -> usize {
        self.info.len()
    }

    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    pub fn info(&self, i: usize) -> Info {
        self.info[i]
    }

    /// Day `i`'s hourly values, if it is history and not closed.
    pub fn hours(&self, i: usize) -> Option<&[Option<f64>; HOURS]> {
        self.hours.get(i).filter(|_| !self.info[i].closed)
    }

    /// Day `i`'s total, if it is history, complete and not closed.
    pub fn total(&self, i: usize) -> Option<f64> {
        self.totals
            .get(i)
            .copied()
            .flatten()
            .filter(|_| !self.info[i].closed)
    }
}

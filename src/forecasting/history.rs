//! From the stored hourly series to the forecast's days, and from its forecasts to the rows
//! stored. Pure.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Timelike};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::calendar::Day;
use crate::forecast::{DayForecast, DayObs, HOURS};
use crate::store::SeriesPoint;
use crate::store::forecasts::NewDay;

/// A space's history by local day: entries in each hour, and the highest occupancy seen in it.
pub struct History {
    pub entries: Vec<DayObs>,
    pub occupancy: Vec<DayObs>,
}

/// The days of `points` (hourly, UTC buckets) in `tz`. A day with any data is a day of history:
/// an hour without a row had no entries (the counters report every minute they count anyone)
/// and the occupancy the hour before it (0 before the day's first row). An hour's occupancy is
/// its highest stamped one, or the day's net count where no stamp was kept. Days without a row are
/// left out rather than taken as empty: a counter outage is not a day without visitors.
pub fn by_local_day(points: &[SeriesPoint], tz: Tz) -> History {
    // Per day: entries and highest occupancy by hour, and the running net count (points come in
    // time order).
    type Slot = ([Option<f64>; HOURS], [Option<f64>; HOURS], i64);
    let mut days: BTreeMap<NaiveDate, Slot> = BTreeMap::new();
    for p in points {
        let local = p.bucket.with_timezone(&tz);
        let hour = local.hour() as usize;
        let slot = days
            .entry(local.date_naive())
            .or_insert(([None; HOURS], [None; HOURS], 0));
        slot.0[hour] = Some(slot.0[hour].unwrap_or(0.0) + p.entries as f64);
        slot.2 += p.entries - p.exits + p.correction;
        // Minutes filled from a backlog carry no occupancy stamp: the day's net count stands in.
        let o = p.peak.or(p.occupancy).unwrap_or(slot.2).max(0) as f64;
        slot.1[hour] = Some(slot.1[hour].map_or(o, |v: f64| v.max(o)));
    }
    let mut history = History {
        entries: Vec::with_capacity(days.len()),
        occupancy: Vec::with_capacity(days.len()),
    };
    for (date, (entries, occupancy, _)) in days {
        let mut e = [None; HOURS];
        let mut o = [None; HOURS];
        let mut last = 0.0;
        for h in 0..HOURS {
            e[h] = Some(entries[h].unwrap_or(0.0));
            last = occupancy[h].unwrap_or(last);
            o[h] = Some(last);
        }
        history.entries.push(DayObs { date, hours: e });
        history.occupancy.push(DayObs { date, hours: o });
    }
    history
}

/// The row of one space's day: entries from the entries forecast, the occupancy profile and peak
/// from the occupancy one.
pub fn row(space: &str, day: &Day, entries: &DayForecast, occupancy: &DayForecast) -> NewDay {
    let hourly: Vec<Value> = entries
        .hours
        .iter()
        .zip(&occupancy.hours)
        .map(|(e, o)| json!({ "entries": e, "occupancy": o }))
        .collect();
    NewDay {
        space: space.to_string(),
        day: day.date,
        day_kind: day.kind.as_str(),
        holiday: day.holiday.as_ref().map(|h| h.name.to_string()),
        entries: serde_json::to_value(entries.total).unwrap_or_default(),
        peak: serde_json::to_value(occupancy.peak).unwrap_or_default(),
        hourly: Value::Array(hourly),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn point(h: u32, entries: i64, peak: Option<i64>) -> SeriesPoint {
        SeriesPoint {
            // 2026-10-01 local hour h in Shanghai is UTC h-8 (the day before for h < 8).
            bucket: Utc.with_ymd_and_hms(2026, 9, 30, 16, 0, 0).unwrap()
                + chrono::TimeDelta::hours(i64::from(h)),
            entries,
            exits: 0,
            occupancy: peak,
            peak,
            correction: 0,
        }
    }

    #[test]
    fn hours_are_local_and_gaps_are_zero_entries_and_held_occupancy() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let points = [point(8, 100, Some(90)), point(10, 50, Some(120))];
        let h = by_local_day(&points, tz);
        assert_eq!(h.entries.len(), 1);
        let d = &h.entries[0];
        assert_eq!(d.date, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        assert_eq!(
            (d.hours[7], d.hours[8], d.hours[9], d.hours[10]),
            (Some(0.0), Some(100.0), Some(0.0), Some(50.0))
        );
        let o = &h.occupancy[0];
        assert_eq!(
            (o.hours[7], o.hours[8], o.hours[9], o.hours[10], o.hours[23]),
            (Some(0.0), Some(90.0), Some(90.0), Some(120.0), Some(120.0))
        );
    }

    #[test]
    fn a_day_without_rows_is_not_history() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let mut late = point(9, 5, None);
        late.bucket += chrono::TimeDelta::days(2);
        let h = by_local_day(&[point(9, 5, None), late], tz);
        let dates: Vec<_> = h.entries.iter().map(|d| d.date.to_string()).collect();
        assert_eq!(dates, ["2026-10-01", "2026-10-03"]);
    }
}

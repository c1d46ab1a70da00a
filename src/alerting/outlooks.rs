//! The stored day-ahead forecasts the evening-before warning (`forecast.{level}`) reads: re-read
//! once a minute (a run is made nightly or on request, not per evaluation), and handed to a
//! space's rule input while its warning is due — from `[forecast] warn_lead_h` before the area
//! opens on the forecast day until that day ends.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::calendar::{local_day, local_instant};
use crate::forecast::Band;
use crate::forecasting::{ForecastPlan, forecast_spaces};
use crate::ids::SpaceIdx;
use crate::registry::Registry;
use crate::rules::Ladder;
use crate::rules::outlook::{DayOutlook, assess};
use crate::store::{StoreError, forecasts};

const REFRESH: TimeDelta = TimeDelta::seconds(60);
const CHECK: TimeDelta = TimeDelta::seconds(2);

#[derive(Deserialize)]
struct Hour {
    occupancy: Band,
}

/// The latest forecasts of today and tomorrow, by space.
pub struct Outlooks {
    plan: ForecastPlan,
    by_space: HashMap<SpaceIdx, Vec<DayOutlook>>,
    read_at: Option<DateTime<Utc>>,
    checked_at: Option<DateTime<Utc>>,
    last_run: Option<i64>,
}

impl Outlooks {
    pub fn new(plan: ForecastPlan) -> Self {
        Self {
            plan,
            by_space: HashMap::new(),
            read_at: None,
            checked_at: None,
            last_run: None,
        }
    }

    /// Re-reads the stored forecasts if the last read is a minute old or a new run was stored;
    /// true when it re-read them (any space's outlook may have changed).
    pub async fn refresh(
        &mut self,
        client: &tokio_postgres::Client,
        registry: &Registry,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if !self.plan.enabled || self.checked_at.is_some_and(|t| now - t < CHECK) {
            return Ok(false);
        }
        // A new run is read within CHECK; the day's turn within REFRESH.
        self.checked_at = Some(now);
        let last = forecasts::last_run(client).await?;
        if last == self.last_run && self.read_at.is_some_and(|t| now - t < REFRESH) {
            return Ok(false);
        }
        self.last_run = last;
        let today = now.with_timezone(&registry.tz).date_naive();
        let ids: Vec<&str> = forecast_spaces(registry).map(|s| s.id.as_str()).collect();
        let rows = forecasts::latest(client, &ids, today, today + TimeDelta::days(1), now).await?;
        self.by_space.clear();
        for r in rows {
            let Some(s) = registry.space_idx(&r.space) else {
                continue;
            };
            let (Ok(hours), Ok(entries)) = (
                serde_json::from_value::<Vec<Hour>>(r.hourly),
                serde_json::from_value::<Band>(r.entries),
            ) else {
                tracing::warn!(space = %r.space, day = %r.day, "stored forecast unreadable: no outlook");
                continue;
            };
            self.by_space.entry(s).or_default().push(DayOutlook {
                day: r.day,
                tomorrow: r.day > today,
                occupancy: hours.iter().map(|h| h.occupancy.mean).collect(),
                occupancy_hi80: hours.iter().map(|h| h.occupancy.hi80).collect(),
                entries: entries.mean,
                warn_from: self.plan.warn_from,
            });
        }
        self.read_at = Some(now);
        Ok(true)
    }

    /// The outlook in force for `s` at `now`: the nearest day whose warning is due and whose
    /// forecast reaches a level worth it on `ladder` (today closed, tomorrow expected at orange:
    /// tomorrow's).
    pub fn current(
        &self,
        registry: &Registry,
        s: SpaceIdx,
        ladder: &Ladder,
        now: DateTime<Utc>,
    ) -> Option<DayOutlook> {
        let space = registry.space(s);
        let (tz, lead) = (registry.tz, self.plan.warn_lead_h);
        let today = now.with_timezone(&tz).date_naive();
        let mut due_days: Vec<&DayOutlook> = self
            .by_space
            .get(&s)?
            .iter()
            .filter(|o| due(tz, space.opens_at, o.day, lead, now))
            .collect();
        due_days.sort_by_key(|o| o.day);
        due_days
            .into_iter()
            .find(|o| {
                assess(
                    o,
                    ladder,
                    space.instant_capacity,
                    space.daily_capacity,
                    o.warn_from,
                )
                .is_some()
            })
            .map(|o| DayOutlook {
                tomorrow: o.day > today,
                ..o.clone()
            })
    }
}

/// Whether the warning of `day` is due at `now`: from `lead_h` hours before the area opens that
/// day until the day ends.
pub fn due(
    tz: Tz,
    opens_at: chrono::NaiveTime,
    day: NaiveDate,
    lead_h: u32,
    now: DateTime<Utc>,
) -> bool {
    let (Some(opens), Some((_, end))) = (local_instant(tz, day, opens_at), local_day(tz, day))
    else {
        return false;
    };
    now >= opens - TimeDelta::hours(i64::from(lead_h)) && now < end
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, TimeZone};

    #[test]
    fn due_from_the_lead_before_opening_until_the_day_ends() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        let at = |d: u32, h: u32, m: u32| {
            tz.with_ymd_and_hms(2026, 9, d, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        // 14 h before 08:00 on 1 October is 18:00 on 30 September.
        assert!(!due(tz, eight, day, 14, at(30, 17, 59)));
        assert!(due(tz, eight, day, 14, at(30, 18, 0)));
        assert!(due(tz, eight, day, 14, at(30, 23, 59)));
        let oct = |h: u32, m: u32| {
            tz.with_ymd_and_hms(2026, 10, 1, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(due(tz, eight, day, 14, oct(23, 59)));
        assert!(!due(
            tz,
            eight,
            day,
            14,
            tz.with_ymd_and_hms(2026, 10, 2, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        ));
        let _ = oct(0, 0);
    }
}

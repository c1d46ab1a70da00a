//! Reads one day's figures from the store and assembles the report (the pure part is
//! [`super::assemble`]).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use deadpool_postgres::Pool;

use super::compare::compare;
use super::{AreaSeries, DailyReport, DayFigures, assemble, local_day, parse_level};
use crate::calendar::Calendar;
use crate::forecast::Band;
use crate::ids::SpaceIdx;
use crate::registry::Registry;
use crate::registry::SpaceKind;
use crate::rules::Level;
use crate::store::{self, Step, StoreError, alerts, forecasts, recounts, reports};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("day {0} is out of range")]
    DayOutOfRange(NaiveDate),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Minutes in a day, with room for a 25-hour day.
const DAY_MINUTES: i64 = 1500;

/// The report of local `day` for every scenic area with county totals, or for `only` one space.
/// Figures for today run until `now`.
pub async fn build(
    pool: &Pool,
    registry: &Registry,
    calendar: &Calendar,
    day: NaiveDate,
    only: Option<SpaceIdx>,
    now: DateTime<Utc>,
) -> Result<DailyReport, ReportError> {
    let (from, to) = local_day(registry.tz, day).ok_or(ReportError::DayOutOfRange(day))?;
    let until = to.min(now).max(from);
    let spaces: Vec<SpaceIdx> = match only {
        Some(s) => vec![s],
        None => registry
            .spaces
            .iter()
            .filter(|s| s.kind == SpaceKind::ScenicArea)
            .map(|s| s.idx)
            .collect(),
    };
    let client = pool.get().await.map_err(StoreError::from)?;
    let mut areas = Vec::with_capacity(spaces.len());
    for s in spaces {
        let sp = registry.space(s);
        let id = sp.id.as_str();
        let points = store::series(pool, id, from, to, Step::Minute, DAY_MINUTES).await?;
        let initial = alerts::level_before(&client, id, from)
            .await?
            .as_deref()
            .and_then(parse_level)
            .unwrap_or(Level::Normal);
        let changes = alerts::level_history(&client, id, from, until, 100_000, 0)
            .await?
            .into_iter()
            .filter(|c| c.kind == "instant_level")
            .filter_map(|c| Some((c.at, parse_level(c.level.as_deref()?)?)))
            .collect();
        areas.push(AreaSeries {
            space: sp,
            points,
            initial,
            changes,
        });
    }
    let county = match (only, registry.spaces.iter().find(|s| s.parent.is_none())) {
        (None, Some(root)) => Some((
            root,
            store::series(pool, root.id.as_str(), from, to, Step::Minute, DAY_MINUTES).await?,
        )),
        _ => None,
    };
    let figures = DayFigures {
        notices: reports::day_notices(&client, from, to).await?,
        deliveries: reports::day_deliveries(&client, from, to).await?,
        advice_before: reports::advice_before(&client, from).await?,
        advice: reports::day_advice(&client, from, to).await?,
        revisions: recounts::day_revisions(&**client, day).await?,
    };
    let mut report = assemble(registry, day, (from, to), until, areas, county, &figures);
    compare_all(pool, registry, calendar, &mut report).await?;
    Ok(report)
}

/// Days of daily entries read for the comparisons: a year and a week back.
const COMPARE_DAYS: i64 = 372;

/// Fills each area's and the county's comparisons: their daily entries of the past year and the
/// forecast of the day made before it began.
async fn compare_all(
    pool: &Pool,
    registry: &Registry,
    calendar: &Calendar,
    report: &mut DailyReport,
) -> Result<(), ReportError> {
    let day = report.day;
    let first = day - TimeDelta::days(COMPARE_DAYS);
    let since = local_day(registry.tz, first)
        .ok_or(ReportError::DayOutOfRange(first))?
        .0;
    let mut ids: Vec<String> = report.areas.iter().map(|a| a.space.clone()).collect();
    ids.extend(report.county.as_ref().map(|c| c.space.clone()));
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let stored = {
        let client = pool.get().await.map_err(StoreError::from)?;
        forecasts::latest(&**client, &refs, day, day, report.from).await?
    };
    let forecast_of = |space: &str| {
        let f = stored.iter().find(|f| f.space == space)?;
        let entries = serde_json::from_value::<Band>(f.entries.clone()).ok()?;
        let peak = serde_json::from_value::<Band>(f.peak.clone()).ok()?;
        Some((entries, peak, f.made_at))
    };
    let by_day = |points: Vec<crate::store::SeriesPoint>| -> BTreeMap<NaiveDate, i64> {
        points
            .into_iter()
            .map(|p| (p.bucket.with_timezone(&registry.tz).date_naive(), p.entries))
            .collect()
    };
    let limit = COMPARE_DAYS + 2;
    for a in &mut report.areas {
        let points = store::series(pool, &a.space, since, report.from, Step::Day, limit).await?;
        a.comparison = compare(
            day,
            a.entries,
            &by_day(points),
            calendar,
            forecast_of(&a.space),
        );
    }
    if let Some(c) = report.county.as_mut() {
        let points = store::series(pool, &c.space, since, report.from, Step::Day, limit).await?;
        c.comparison = compare(
            day,
            c.entries,
            &by_day(points),
            calendar,
            forecast_of(&c.space),
        );
    }
    Ok(())
}

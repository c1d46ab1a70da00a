//! Reads one day's figures from the store and assembles the report (the pure part is
//! [`super::assemble`]).

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;

use super::{AreaSeries, DailyReport, DayFigures, assemble, local_day, parse_level};
use crate::ids::SpaceIdx;
use crate::registry::Registry;
use crate::registry::SpaceKind;
use crate::rules::Level;
use crate::store::{self, Step, StoreError, alerts, recounts, reports};

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
    Ok(assemble(
        registry,
        day,
        (from, to),
        until,
        areas,
        county,
        &figures,
    ))
}

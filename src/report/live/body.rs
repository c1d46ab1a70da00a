//! The live feed's payload (JSON Schema: `docs/schemas/live-feed.schema.json`): every scenic
//! area's figures as the live view holds them at the moment of capture — the committed counts
//! (`live`), the capacity rules' last evaluation and the ticket-sales signal — the same figures
//! `GET /api/v1/spaces` and the public board show. Pure: the caller passes the view and the time.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::core::business_day;
use crate::ids::SpaceIdx;
use crate::live::{SpaceNow, TicketsNow};
use crate::registry::{Registry, SpaceKind};
use crate::rules::{LevelStatus, Reading, Status};

/// The payload's version; a change that removes or renames a field is a new version.
pub const VERSION: &str = "1";
pub const CONTENT_TYPE: &str = "application/json";

/// One push: a period's figures or an immediate one.
#[derive(Debug, Clone, Serialize)]
pub struct LiveBody {
    pub version: &'static str,
    /// `period` (every `interval_s`) or `event` (a change to red, a closure).
    pub trigger: &'static str,
    /// The same on every attempt (also `webhook-id` and `Idempotency-Key`): de-duplicate on it.
    pub delivery_id: String,
    pub county: Option<Named>,
    /// The period's boundary (UTC) and the same in the county's time.
    pub period_start: DateTime<Utc>,
    pub period_start_local: String,
    pub interval_s: u32,
    /// When the figures were read from the live view.
    pub generated_at: DateTime<Utc>,
    /// Immediate pushes: what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventInfo>,
    /// Every scenic area (an immediate push: the area concerned), registry order.
    pub areas: Vec<AreaFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
}

/// What an immediate push announces.
#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    /// `red` (a load reached red) or `closed` (a hazard closed the area).
    pub kind: &'static str,
    pub area: String,
    /// The alert's kind: `instant_level`, `daily_level`, `hazard.flash_flood`, ….
    pub alert_kind: String,
    /// The alert transition (`GET /api/v1/alerts/{id}` shows its alert's history).
    pub transition_id: i64,
    pub at: DateTime<Utc>,
}

/// One scenic area's figures.
#[derive(Debug, Clone, Serialize)]
pub struct AreaFigures {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    /// The local business day the counts are of (days roll at the area's opening time, in the
    /// county's time zone, China Standard Time by default).
    pub day: NaiveDate,
    /// People inside now.
    pub occupancy: u64,
    pub entries_today: u64,
    pub exits_today: u64,
    /// The effective capacities (approved × any policy cap), when known.
    pub instant_capacity: Option<u32>,
    pub daily_capacity: Option<u32>,
    /// Percent of the effective capacity; null unless rated.
    pub instant_load_pct: Option<f64>,
    pub daily_load_pct: Option<f64>,
    /// The higher of the two levels (`normal`, `blue`, `yellow`, `orange`, `red`); null while
    /// stale or unrated.
    pub level: Option<&'static str>,
    pub instant_level: Option<&'static str>,
    pub daily_level: Option<&'static str>,
    /// A hazard closes the area.
    pub closed: bool,
    /// Areas selling timed entry only: ticket sales now and places left today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<Admission>,
    pub quality: Quality,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admission {
    /// `open`, `paused` or `closed`.
    pub sales: &'static str,
    pub remaining_today: u64,
}

/// How far the figures can be trusted.
#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    /// None of the area's counters is fresh: the figures are the last known, the level unknown.
    pub stale: bool,
    /// The newest count report in the figures.
    pub last_report: Option<DateTime<Utc>>,
    /// The capacity rules' last evaluation (null before the first).
    pub evaluated_at: Option<DateTime<Utc>>,
    /// Exits today without matching entries (counter drift).
    pub drift_today: u64,
    /// Head-count corrections today (occupancy = entries − exits + drift + corrections).
    pub corrected_today: i64,
    /// Open data-quality alerts of the area: `stale`, `silent_devices`, `drift`,
    /// `missing_reports`, `seq_jump`, `clock_skew`.
    pub alerts: Vec<String>,
}

/// The live view at one moment, as the feed reads it.
pub struct View<'a> {
    pub registry: &'a Registry,
    pub spaces: &'a [SpaceNow],
    pub statuses: &'a [Option<Arc<Status>>],
    /// Each space's ticket sales (timed-entry areas only).
    pub tickets: &'a dyn Fn(SpaceIdx) -> Option<TicketsNow>,
}

fn level_of(l: &LevelStatus) -> Option<&'static str> {
    (l.reading == Reading::Rated)
        .then_some(l.level)
        .flatten()
        .map(|l| l.as_str())
}

/// One area's figures at `now`.
pub fn area(view: &View<'_>, s: SpaceIdx, now: DateTime<Utc>) -> AreaFigures {
    let reg = view.registry;
    let sp = reg.space(s);
    let day = business_day(reg.tz, sp.opens_at, now);
    let counts = view
        .spaces
        .get(s.get())
        .copied()
        .unwrap_or_default()
        .on_day(day);
    let status = view.statuses.get(s.get()).cloned().flatten();
    let status = status.as_deref();
    AreaFigures {
        id: sp.id.to_string(),
        name_zh: sp.name_zh.clone(),
        name_en: sp.name_en.clone(),
        day: counts.day.unwrap_or(day),
        occupancy: counts.occupancy,
        entries_today: counts.entries_today,
        exits_today: counts.exits_today,
        instant_capacity: status
            .and_then(|st| st.instant.effective_capacity)
            .or(sp.instant_capacity),
        daily_capacity: status
            .and_then(|st| st.daily.effective_capacity)
            .or(sp.daily_capacity),
        instant_load_pct: status.and_then(|st| st.instant.load_pct),
        daily_load_pct: status.and_then(|st| st.daily.load_pct),
        level: status.and_then(Status::level).map(|l| l.as_str()),
        instant_level: status.and_then(|st| level_of(&st.instant)),
        daily_level: status.and_then(|st| level_of(&st.daily)),
        closed: status.is_some_and(|st| st.closed),
        admission: (view.tickets)(s).map(|t| Admission {
            sales: t.sales.as_str(),
            remaining_today: t.remaining_today,
        }),
        quality: Quality {
            stale: status.is_some_and(|st| st.stale),
            last_report: counts.last_report,
            evaluated_at: status.map(|st| st.at),
            drift_today: counts.drift_today,
            corrected_today: counts.corrected_today,
            alerts: status
                .map(|st| {
                    st.alerts
                        .iter()
                        .filter(|a| a.kind.is_data_quality())
                        .map(|a| a.kind.key())
                        .collect()
                })
                .unwrap_or_default(),
        },
    }
}

/// Every scenic area, registry order.
pub fn scenic_areas(reg: &Registry) -> impl Iterator<Item = SpaceIdx> + '_ {
    reg.spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::ScenicArea)
        .map(|s| s.idx)
}

/// What a push is about.
pub enum Trigger {
    Period,
    Event(EventInfo),
}

/// The body of a push: every area's figures for a period, the area concerned for an event.
pub fn body(
    view: &View<'_>,
    trigger: Trigger,
    delivery_id: String,
    period_start: DateTime<Utc>,
    interval_s: u32,
    now: DateTime<Utc>,
) -> LiveBody {
    let reg = view.registry;
    let (trigger, event, areas) = match trigger {
        Trigger::Period => (
            "period",
            None,
            scenic_areas(reg).map(|s| area(view, s, now)).collect(),
        ),
        Trigger::Event(e) => {
            let areas = reg
                .space_idx(&e.area)
                .map(|s| vec![area(view, s, now)])
                .unwrap_or_default();
            ("event", Some(e), areas)
        }
    };
    LiveBody {
        version: VERSION,
        trigger,
        delivery_id,
        county: reg
            .spaces
            .iter()
            .find(|s| s.kind == SpaceKind::County)
            .map(|c| Named {
                id: c.id.to_string(),
                name_zh: c.name_zh.clone(),
                name_en: c.name_en.clone(),
            }),
        period_start,
        period_start_local: local(period_start, reg.tz),
        interval_s,
        generated_at: now,
        event,
        areas,
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The bytes sent (and recorded before the first attempt).
pub fn render(body: &LiveBody) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Level, Severity};
    use chrono::TimeDelta;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn level(level: Level, pct: f64, cap: u32) -> LevelStatus {
        LevelStatus {
            reading: Reading::Rated,
            level: Some(level),
            last_level: level,
            load_pct: Some(pct),
            count: 0,
            approved_capacity: Some(cap),
            effective_capacity: Some(cap),
            cap: None,
            ladder: "lbt034".into(),
            action_zh: String::new(),
            action_en: String::new(),
        }
    }

    /// A body from the test registry: canyon red and timed entry, lake without a status.
    fn sample(now: DateTime<Utc>, counted_on: NaiveDate) -> serde_json::Value {
        let reg = crate::sim::testutil::registry();
        let canyon = reg.space_idx("canyon").unwrap();
        let mut spaces = vec![SpaceNow::default(); reg.spaces.len()];
        spaces[canyon.get()] = SpaceNow {
            day: Some(counted_on),
            occupancy: 1010,
            entries_today: 1500,
            exits_today: 490,
            last_report: Some(now - TimeDelta::seconds(20)),
            ..SpaceNow::default()
        };
        let mut statuses = vec![None; reg.spaces.len()];
        statuses[canyon.get()] = Some(Arc::new(Status {
            space: reg.space(canyon).id.clone(),
            at: now,
            instant: level(Level::Red, 101.0, 1000),
            daily: level(Level::Normal, 37.5, 4000),
            forecast: None,
            stale: false,
            closed: false,
            alerts: vec![crate::rules::OpenAlert {
                kind: crate::rules::AlertKind::Drift,
                severity: Severity::Warning,
                level: None,
                since: now,
                updated: now,
                devices: Vec::new(),
            }],
        }));
        let tickets = move |s: SpaceIdx| {
            (s == canyon).then_some(TicketsNow {
                sales: crate::admission::Sales::Paused,
                remaining_today: 12,
            })
        };
        let view = View {
            registry: &reg,
            spaces: &spaces,
            statuses: &statuses,
            tickets: &tickets,
        };
        let start = super::super::period::floor(now, TimeDelta::seconds(300));
        let b = body(
            &view,
            Trigger::Period,
            super::super::period::delivery_id(start),
            start,
            300,
            now,
        );
        serde_json::from_slice(&render(&b)).unwrap()
    }

    #[test]
    fn a_period_carries_every_area_as_the_live_view_holds_it() {
        let now = t("2026-10-02T12:07:31+08:00");
        let v = sample(now, NaiveDate::from_ymd_opt(2026, 10, 2).unwrap());
        assert_eq!(v["version"], "1");
        assert_eq!(v["trigger"], "period");
        assert_eq!(v["delivery_id"], "live-2026-10-02T04:05:00Z");
        assert_eq!(v["period_start"], "2026-10-02T04:05:00Z");
        assert_eq!(v["period_start_local"], "2026-10-02T12:05:00+08:00");
        assert!(v.get("event").is_none());
        let areas = v["areas"].as_array().unwrap();
        let ids: Vec<_> = areas.iter().map(|a| a["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["canyon", "lake"], "the scenic areas only");
        let canyon = &areas[ids.iter().position(|i| *i == "canyon").unwrap()];
        assert_eq!(
            (
                &canyon["occupancy"],
                &canyon["entries_today"],
                &canyon["level"],
                &canyon["instant_level"],
                &canyon["daily_level"]
            ),
            (
                &1010.into(),
                &1500.into(),
                &"red".into(),
                &"red".into(),
                &"normal".into()
            )
        );
        assert_eq!(canyon["day"], "2026-10-02");
        assert_eq!(canyon["admission"]["sales"], "paused");
        assert_eq!(canyon["quality"]["alerts"], serde_json::json!(["drift"]));
        let lake = &areas[1];
        assert!(lake.get("admission").is_none());
        assert_eq!(lake["level"], serde_json::Value::Null);
        assert_eq!(lake["quality"]["evaluated_at"], serde_json::Value::Null);
    }

    #[test]
    fn yesterdays_counts_are_not_todays() {
        // 08:10 local, the canyon opened at 08:00 and its counts last moved yesterday.
        let now = t("2026-10-03T08:10:00+08:00");
        let v = sample(now, NaiveDate::from_ymd_opt(2026, 10, 2).unwrap());
        let canyon = v["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "canyon")
            .unwrap()
            .clone();
        assert_eq!(canyon["day"], "2026-10-03");
        assert_eq!(
            (
                canyon["entries_today"].as_u64(),
                canyon["occupancy"].as_u64()
            ),
            (Some(0), Some(0))
        );
        assert!(
            canyon["quality"]["last_report"].is_string(),
            "the last report stays"
        );
    }
}

//! The daily county report: per scenic area one local day's entries and exits, the peak and its
//! local time, minutes at each instantaneous level, notices sent (alert notices, Tourism Law art.
//! 45 announcements, what the outbox delivered), shuttles advised against followed and diversions
//! advised, head-count corrections by hand and late revisions of the day; and county totals. JSON or CSV, served at `/api/v1/reports/daily` and pushed upstream
//! every day ([`push`]); and the live feed upstream, every few minutes ([`live`]).
//!
//! Days are local to the county's time zone (midnight to midnight); storage is UTC.
//!
//! - here: the report's types and the pure parts (minutes at levels, tallies);
//! - [`csv`]: the report as CSV;
//! - [`build`]: the thin async shell that reads the day's figures from the store;
//! - [`compare`]: forecast vs actual, 同比 and 环比 (pure);
//! - [`integrity`]: head-count corrections and revised days (pure);
//! - [`schedule`]: which days' pushes are due (pure);
//! - [`push`]: the push's configuration and the worker that delivers it;
//! - [`deliver`]: what both pushes upstream share (endpoint check, one recorded attempt);
//! - [`live`]: the live feed to the provincial platform, `[live_feed]` and its worker.

pub mod build;
pub mod compare;
pub mod csv;
pub mod deliver;
pub mod integrity;
pub mod live;
pub mod push;
pub mod schedule;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use crate::dispatch::HubAdvice;
use crate::ids::SpaceIdx;
use crate::registry::SpaceKind;
use crate::registry::{Registry, Space};
use crate::rules::Level;
use crate::store::SeriesPoint;
use crate::store::recounts::DayRevision;
use crate::store::reports::{DayAdvice, DeliveryCounts, NoticeCounts};

pub use build::{ReportError, build};
pub use csv::{csv_field, to_csv};

pub use crate::calendar::local_day;

/// Minutes spent at each level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct LevelMinutes {
    pub normal: f64,
    pub blue: f64,
    pub yellow: f64,
    pub orange: f64,
    pub red: f64,
}

impl LevelMinutes {
    fn add(&mut self, level: Level, minutes: f64) {
        let slot = match level {
            Level::Normal => &mut self.normal,
            Level::Blue => &mut self.blue,
            Level::Yellow => &mut self.yellow,
            Level::Orange => &mut self.orange,
            Level::Red => &mut self.red,
        };
        *slot += minutes;
    }

    fn plus(&self, o: &LevelMinutes) -> LevelMinutes {
        LevelMinutes {
            normal: self.normal + o.normal,
            blue: self.blue + o.blue,
            yellow: self.yellow + o.yellow,
            orange: self.orange + o.orange,
            red: self.red + o.red,
        }
        .rounded()
    }

    fn rounded(mut self) -> Self {
        for m in [
            &mut self.normal,
            &mut self.blue,
            &mut self.yellow,
            &mut self.orange,
            &mut self.red,
        ] {
            *m = (*m * 10.0).round() / 10.0;
        }
        self
    }
}

pub fn parse_level(s: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == s)
}

/// Minutes at each level over `[from, to)`, starting at `initial` and changing at each
/// `(at, level)` (in time order; changes outside the window only move the start level).
pub fn minutes_at_levels(
    initial: Level,
    changes: &[(DateTime<Utc>, Level)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> LevelMinutes {
    let mut out = LevelMinutes::default();
    let mut level = initial;
    let mut since = from;
    for &(at, next) in changes {
        if at >= to {
            break;
        }
        if at > since {
            out.add(level, (at - since).num_milliseconds() as f64 / 60_000.0);
            since = at;
        }
        level = next;
    }
    if to > since {
        out.add(level, (to - since).num_milliseconds() as f64 / 60_000.0);
    }
    out.rounded()
}

/// Notices of a day about an area (its zones and car parks included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Notices {
    /// Alert notices raised: every alert transition except acknowledgements.
    pub alerts: i64,
    /// Tourism Law art. 45 announcements: a capacity level or its forecast at orange or above,
    /// opening or escalating.
    pub art45: i64,
    /// Of those, the ones at least one receiver confirmed (delivered).
    pub art45_confirmed: i64,
    /// Webhook deliveries of the day's notices (escalations included) the outbox delivered…
    pub delivered: i64,
    /// …gave up on (dead letters)…
    pub dead: i64,
    /// …and is still trying.
    pub pending: i64,
}

impl Notices {
    fn add(&mut self, o: &Notices) {
        self.alerts += o.alerts;
        self.art45 += o.art45;
        self.art45_confirmed += o.art45_confirmed;
        self.delivered += o.delivered;
        self.dead += o.dead;
        self.pending += o.pending;
    }
}

/// Dispatch advice of a day concerning an area. Advice is recorded when it changes; each record
/// is one instruction to a distribution centre, which its dispatcher marks followed or
/// overridden.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct DispatchDay {
    /// Shuttles (vehicles) the recorded advice asked to send to the area…
    pub shuttles_advised: i64,
    /// …of them in advice the dispatcher marked followed…
    pub shuttles_followed: i64,
    /// …or overridden (the rest is undecided).
    pub shuttles_overridden: i64,
    /// Diversions away from the area (to somewhere with room) that the advice started.
    pub diversions_advised: i64,
    /// Visitors waiting at the centres for the area when those diversions started.
    pub visitors_to_divert: i64,
    /// Diversions started elsewhere that named this area as the first alternative (county: the
    /// diversions started).
    pub diversions_received: i64,
}

impl DispatchDay {
    fn add(&mut self, o: &DispatchDay) {
        self.shuttles_advised += o.shuttles_advised;
        self.shuttles_followed += o.shuttles_followed;
        self.shuttles_overridden += o.shuttles_overridden;
        self.diversions_advised += o.diversions_advised;
        self.visitors_to_divert += o.visitors_to_divert;
        self.diversions_received += o.diversions_received;
    }
}

/// How many advice records the centres got, and what their dispatchers did with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AdviceRecords {
    pub records: i64,
    pub followed: i64,
    pub overridden: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AreaDay {
    pub space: String,
    pub name_zh: String,
    pub name_en: String,
    pub instant_capacity: Option<u32>,
    pub daily_capacity: Option<u32>,
    pub entries: i64,
    pub exits: i64,
    /// Highest occupancy in a minute of the day.
    pub peak: Option<i64>,
    /// The minute it was reached (its start), UTC.
    pub peak_at: Option<DateTime<Utc>>,
    /// The same in the county's time zone (RFC 3339 with its offset).
    pub peak_at_local: Option<String>,
    /// Minutes at each instantaneous level, from the start of the day until its end (or now).
    pub minutes_at_level: LevelMinutes,
    pub notices: Notices,
    pub dispatch: DispatchDay,
    /// Head-count corrections by hand over the day (the sum of the series' `correction`): kept
    /// apart from entries and exits, never folded into them.
    pub corrections: i64,
    /// When late reports last changed the day's figures after it ended (null: never).
    pub revised_at: Option<DateTime<Utc>>,
    /// How many late reports did (0: none).
    pub revised_reports: i64,
    /// Forecast vs actual, 同比 and 环比.
    pub comparison: compare::Comparison,
}

/// The county's totals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountyDay {
    /// The county's own space (the registry's root).
    pub space: String,
    pub name_zh: String,
    pub name_en: String,
    /// Sums over the scenic areas.
    pub entries: i64,
    pub exits: i64,
    /// The county's own highest occupancy in a minute (all areas at once), and when.
    pub peak: Option<i64>,
    pub peak_at: Option<DateTime<Utc>>,
    pub peak_at_local: Option<String>,
    /// Area-minutes at each level: the areas' minutes added up.
    pub area_minutes_at_level: LevelMinutes,
    /// Every notice of the day, those about distribution centres and the county included.
    pub notices: Notices,
    pub dispatch: DispatchDay,
    pub advice: AdviceRecords,
    /// The areas' head-count corrections added up.
    pub corrections: i64,
    /// When late reports last changed the county's figures of the day after it ended (null:
    /// never), and how many.
    pub revised_at: Option<DateTime<Utc>>,
    pub revised_reports: i64,
    /// The county's forecast vs actual, 同比 and 环比.
    pub comparison: compare::Comparison,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyReport {
    pub day: NaiveDate,
    pub time_zone: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub areas: Vec<AreaDay>,
    /// County totals (absent when the report is for one area).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub county: Option<CountyDay>,
}

/// One area's series and level history for the day.
pub struct AreaSeries<'a> {
    pub space: &'a Space,
    pub points: Vec<SeriesPoint>,
    /// The level when the day began.
    pub initial: Level,
    /// Instantaneous level changes during the day, in order.
    pub changes: Vec<(DateTime<Utc>, Level)>,
}

/// The day's other figures, per space as the store has them.
#[derive(Debug, Default)]
pub struct DayFigures {
    pub notices: Vec<NoticeCounts>,
    pub deliveries: Vec<DeliveryCounts>,
    /// Each hub's advice in force when the day began.
    pub advice_before: Vec<DayAdvice>,
    /// The day's advice, oldest first.
    pub advice: Vec<DayAdvice>,
    /// The spaces whose figures of the day late reports changed after it ended.
    pub revisions: Vec<DayRevision>,
}

/// The scenic area a space belongs to (itself, or the nearest scenic-area ancestor).
pub fn area_of(registry: &Registry, space: &str) -> Option<SpaceIdx> {
    let mut cur = registry.space_idx(space);
    while let Some(s) = cur {
        let sp = registry.space(s);
        if sp.kind == SpaceKind::ScenicArea {
            return Some(s);
        }
        cur = sp.parent;
    }
    None
}

/// The highest minute peak and its minute (the earliest on ties).
fn peak(points: &[SeriesPoint]) -> Option<(i64, DateTime<Utc>)> {
    points
        .iter()
        .filter_map(|p| p.peak.map(|v| (v, p.bucket)))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
}

fn local(tz: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Notices per area and for the whole county.
pub fn tally_notices(
    registry: &Registry,
    notices: &[NoticeCounts],
    deliveries: &[DeliveryCounts],
) -> (BTreeMap<SpaceIdx, Notices>, Notices) {
    let mut per: BTreeMap<SpaceIdx, Notices> = BTreeMap::new();
    let mut county = Notices::default();
    let mut add = |space: &str, n: Notices| {
        if let Some(a) = area_of(registry, space) {
            per.entry(a).or_default().add(&n);
        }
        county.add(&n);
    };
    for n in notices {
        add(
            &n.space,
            Notices {
                alerts: n.alerts,
                art45: n.art45,
                art45_confirmed: n.art45_confirmed,
                ..Notices::default()
            },
        );
    }
    for d in deliveries {
        add(
            &d.space,
            Notices {
                delivered: d.delivered,
                dead: d.dead,
                pending: d.pending,
                ..Notices::default()
            },
        );
    }
    (per, county)
}

/// The areas a hub's advice diverts visitors away from with somewhere to go, each with its
/// diversion.
fn diverted(a: &HubAdvice) -> BTreeMap<&str, &crate::dispatch::Diversion> {
    a.diversions
        .iter()
        .filter(|d| !d.to.is_empty())
        .map(|d| (d.from_area.as_str(), d))
        .collect()
}

/// Dispatch figures per area (by area id), the county's, and the advice records' decisions, from
/// the day's advice (oldest first) and each hub's advice in force when the day began. Shuttles
/// count per record (each is an instruction). A diversion counts once, when a hub's advice starts
/// sending the area's visitors elsewhere (one with no alternative — wait at the hub — is a hold,
/// not a diversion).
pub fn tally_dispatch(
    before: &[DayAdvice],
    advice: &[DayAdvice],
) -> (BTreeMap<String, DispatchDay>, DispatchDay, AdviceRecords) {
    let parse = |r: &DayAdvice| serde_json::from_value::<HubAdvice>(r.advice.clone()).ok();
    let mut in_force: BTreeMap<String, Vec<String>> = before
        .iter()
        .filter_map(|r| {
            let a = parse(r)?;
            Some((
                r.hub.clone(),
                diverted(&a).keys().map(|k| (*k).to_owned()).collect(),
            ))
        })
        .collect();
    let mut per: BTreeMap<String, DispatchDay> = BTreeMap::new();
    let mut county = DispatchDay::default();
    let mut records = AdviceRecords::default();
    for rec in advice {
        let Some(a) = parse(rec) else {
            continue;
        };
        records.records += 1;
        let followed = rec.decision.as_deref() == Some("followed");
        let overridden = rec.decision.as_deref() == Some("overridden");
        records.followed += i64::from(followed);
        records.overridden += i64::from(overridden);
        for s in &a.shuttles {
            let n = i64::from(s.send_now);
            let d = DispatchDay {
                shuttles_advised: n,
                shuttles_followed: if followed { n } else { 0 },
                shuttles_overridden: if overridden { n } else { 0 },
                ..DispatchDay::default()
            };
            per.entry(s.area.to_string()).or_default().add(&d);
            county.add(&d);
        }
        let now = diverted(&a);
        let was = in_force.entry(rec.hub.clone()).or_default();
        for (from, d) in &now {
            if was.iter().any(|w| w == from) {
                continue;
            }
            let day = DispatchDay {
                diversions_advised: 1,
                visitors_to_divert: i64::from(d.visitors),
                ..DispatchDay::default()
            };
            per.entry((*from).to_owned()).or_default().add(&day);
            county.add(&day);
            // In the county's total: the diversions started.
            if let Some(first) = d.to.first() {
                per.entry(first.area.to_string())
                    .or_default()
                    .diversions_received += 1;
                county.diversions_received += 1;
            }
        }
        *was = now.keys().map(|k| (*k).to_owned()).collect();
    }
    (per, county, records)
}

/// The report from the day's figures. `until` is the end of the day, or now for today.
pub fn assemble(
    registry: &Registry,
    day: NaiveDate,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    until: DateTime<Utc>,
    areas: Vec<AreaSeries<'_>>,
    county: Option<(&Space, Vec<SeriesPoint>)>,
    figures: &DayFigures,
) -> DailyReport {
    let tz = registry.tz;
    let (notices, county_notices) = tally_notices(registry, &figures.notices, &figures.deliveries);
    let (dispatch, county_dispatch, records) =
        tally_dispatch(&figures.advice_before, &figures.advice);
    let areas: Vec<AreaDay> = areas
        .into_iter()
        .map(|a| {
            let sp = a.space;
            let peak = peak(&a.points);
            let revised = integrity::revision_of(registry, &figures.revisions, sp.idx);
            AreaDay {
                space: sp.id.to_string(),
                name_zh: sp.name_zh.clone(),
                name_en: sp.name_en.clone(),
                instant_capacity: sp.instant_capacity,
                daily_capacity: sp.daily_capacity,
                entries: a.points.iter().map(|p| p.entries).sum(),
                exits: a.points.iter().map(|p| p.exits).sum(),
                peak: peak.map(|p| p.0),
                peak_at: peak.map(|p| p.1),
                peak_at_local: peak.map(|p| local(tz, p.1)),
                minutes_at_level: minutes_at_levels(a.initial, &a.changes, from, until),
                notices: notices.get(&sp.idx).cloned().unwrap_or_default(),
                dispatch: dispatch.get(sp.id.as_str()).cloned().unwrap_or_default(),
                corrections: integrity::corrections(&a.points),
                revised_at: revised.map(|r| r.0),
                revised_reports: revised.map_or(0, |r| r.1),
                comparison: compare::Comparison::default(),
            }
        })
        .collect();
    let county = county.map(|(root, points)| {
        let peak = peak(&points);
        let revised = integrity::revision_of(registry, &figures.revisions, root.idx);
        CountyDay {
            space: root.id.to_string(),
            name_zh: root.name_zh.clone(),
            name_en: root.name_en.clone(),
            entries: areas.iter().map(|a| a.entries).sum(),
            exits: areas.iter().map(|a| a.exits).sum(),
            peak: peak.map(|p| p.0),
            peak_at: peak.map(|p| p.1),
            peak_at_local: peak.map(|p| local(tz, p.1)),
            area_minutes_at_level: areas
                .iter()
                .fold(LevelMinutes::default(), |m, a| m.plus(&a.minutes_at_level)),
            notices: county_notices,
            dispatch: county_dispatch,
            advice: records,
            corrections: areas.iter().map(|a| a.corrections).sum(),
            revised_at: revised.map(|r| r.0),
            revised_reports: revised.map_or(0, |r| r.1),
            comparison: compare::Comparison::default(),
        }
    });
    DailyReport {
        day,
        time_zone: tz.name().to_owned(),
        from,
        to,
        areas,
        county,
    }
}

#[cfg(test)]
mod tests;

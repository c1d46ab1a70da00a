//! The daily report, `GET /api/v1/reports/daily`: per scenic area, one local day's entries and
//! exits, the peak and when it was reached (from the minute series), and the minutes spent at each
//! instantaneous level (from the recorded level transitions). JSON or CSV.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::spaces::{Format, csv_response};
use super::{ApiError, AppState, ErrorBody, wants_csv};
use crate::config::SpaceKind;
use crate::rules::Level;
use crate::store::{self, Step, StoreError, alerts as db};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// Local day (county time zone), `YYYY-MM-DD`; default today.
    day: Option<NaiveDate>,
    /// One area only; default every scenic area.
    space: Option<String>,
    /// `csv` for a CSV file (also `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

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

fn parse_level(s: &str) -> Option<Level> {
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

#[derive(Debug, Serialize, ToSchema)]
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
    /// The minute it was reached (its start).
    pub peak_at: Option<DateTime<Utc>>,
    /// Minutes at each instantaneous level, from the start of the day until its end (or now).
    pub minutes_at_level: LevelMinutes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyReport {
    pub day: NaiveDate,
    pub time_zone: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub areas: Vec<AreaDay>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn to_csv(r: &DailyReport) -> String {
    let mut out = String::from(
        "day,space,name_zh,name_en,instant_capacity,daily_capacity,entries,exits,peak,peak_at,\
         minutes_normal,minutes_blue,minutes_yellow,minutes_orange,minutes_red\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    for a in &r.areas {
        let m = &a.minutes_at_level;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.day,
            csv_field(&a.space),
            csv_field(&a.name_zh),
            csv_field(&a.name_en),
            opt(a.instant_capacity.map(|c| c.to_string())),
            opt(a.daily_capacity.map(|c| c.to_string())),
            a.entries,
            a.exits,
            opt(a.peak.map(|p| p.to_string())),
            opt(a
                .peak_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
            m.normal,
            m.blue,
            m.yellow,
            m.orange,
            m.red
        );
    }
    out
}

/// One local day per scenic area: entries, exits, peak and its time, minutes at each level.
#[utoipa::path(get, path = "/api/v1/reports/daily", tag = "reports", params(DailyQuery),
    responses((status = 200, description = "The day's report (JSON, or CSV with one row per area)",
            content((DailyReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad day or format", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn daily(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<DailyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let reg = &st.registry;
    let tz = reg.tz;
    let day = match q.day {
        Some(d) => super::day_param(d)?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let (from, to) = super::alerts::local_day(tz, day)?;
    let spaces: Vec<_> = match &q.space {
        Some(id) => vec![super::spaces::find_space(&st, id)?],
        None => reg
            .spaces
            .iter()
            .filter(|s| s.kind == SpaceKind::ScenicArea)
            .map(|s| s.idx)
            .collect(),
    };
    let until = to.min(Utc::now()).max(from);
    let client = st.pool.get().await.map_err(StoreError::from)?;
    let mut areas = Vec::with_capacity(spaces.len());
    for s in spaces {
        let sp = reg.space(s);
        let id = sp.id.as_str();
        let points = store::series(&st.pool, id, from, to, Step::Minute, 1500).await?;
        let peak = points
            .iter()
            .filter_map(|p| p.peak.map(|v| (v, p.bucket)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let initial = db::level_before(&client, id, from)
            .await?
            .as_deref()
            .and_then(parse_level)
            .unwrap_or(Level::Normal);
        let changes: Vec<_> = db::level_history(&client, id, from, until, 100_000, 0)
            .await?
            .into_iter()
            .filter(|c| c.kind == "instant_level")
            .filter_map(|c| Some((c.at, parse_level(c.level.as_deref()?)?)))
            .collect();
        areas.push(AreaDay {
            space: id.to_owned(),
            name_zh: sp.name_zh.clone(),
            name_en: sp.name_en.clone(),
            instant_capacity: sp.instant_capacity,
            daily_capacity: sp.daily_capacity,
            entries: points.iter().map(|p| p.entries).sum(),
            exits: points.iter().map(|p| p.exits).sum(),
            peak: peak.map(|p| p.0),
            peak_at: peak.map(|p| p.1),
            minutes_at_level: minutes_at_levels(initial, &changes, from, until),
        });
    }
    let report = DailyReport {
        day,
        time_zone: tz.name().to_owned(),
        from,
        to,
        areas,
    };
    if wants_csv(q.format, &headers) {
        return Ok(csv_response(&format!("daily-{day}.csv"), to_csv(&report)));
    }
    Ok(Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn minutes_add_up_to_the_window_and_follow_the_changes() {
        let from = DateTime::<Utc>::from_timestamp(1_777_600_000, 0).unwrap();
        let m = |n: i64| from + TimeDelta::minutes(n);
        let to = m(600);
        let changes = [
            (m(-30), Level::Yellow), // before the window: ignored but for the start level
            (m(60), Level::Blue),
            (m(90), Level::Yellow),
            (m(120), Level::Red),
            (m(150), Level::Orange),
            (m(180), Level::Normal),
            (m(700), Level::Red), // after the window
        ];
        let got = minutes_at_levels(Level::Blue, &changes, from, to);
        assert_eq!(
            got,
            LevelMinutes {
                normal: 420.0,
                blue: 30.0,
                yellow: 90.0,
                orange: 30.0,
                red: 30.0
            }
        );
        let total = got.normal + got.blue + got.yellow + got.orange + got.red;
        assert_eq!(total, 600.0);
        let quiet = minutes_at_levels(Level::Normal, &[], from, to);
        assert_eq!(quiet.normal, 600.0);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("天山大峡谷"), "天山大峡谷");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}

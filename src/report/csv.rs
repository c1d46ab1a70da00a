//! The daily report as CSV: one row per area, then the county's.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{DailyReport, DispatchDay, LevelMinutes, Notices};

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The first fifteen columns are the report's original ones; later ones were added after them so
/// that readers addressing columns by position keep working.
const CSV_HEADER: &str = "day,space,name_zh,name_en,instant_capacity,daily_capacity,entries,exits,peak,peak_at,\
     minutes_normal,minutes_blue,minutes_yellow,minutes_orange,minutes_red,peak_at_local,\
     notices_alerts,notices_art45,notices_art45_confirmed,deliveries_delivered,deliveries_dead,\
     deliveries_pending,shuttles_advised,shuttles_followed,shuttles_overridden,diversions_advised,\
     visitors_to_divert,diversions_received,corrections,revised_at,revised_reports\n";

/// One row per area, then (for a county report) the county's row: its sums, its own peak, and
/// area-minutes in the minutes columns.
pub fn to_csv(r: &DailyReport) -> String {
    let mut out = String::from(CSV_HEADER);
    let opt = |v: Option<String>| v.unwrap_or_default();
    let utc = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    fn row(
        out: &mut String,
        head: [String; 10],
        m: &LevelMinutes,
        local: String,
        n: &Notices,
        d: &DispatchDay,
        integrity: [String; 3],
    ) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            head[0],
            head[1],
            head[2],
            head[3],
            head[4],
            head[5],
            head[6],
            head[7],
            head[8],
            head[9],
            m.normal,
            m.blue,
            m.yellow,
            m.orange,
            m.red,
            local,
            n.alerts,
            n.art45,
            n.art45_confirmed,
            n.delivered,
            n.dead,
            n.pending,
            d.shuttles_advised,
            d.shuttles_followed,
            d.shuttles_overridden,
            d.diversions_advised,
            d.visitors_to_divert,
            d.diversions_received,
            integrity[0],
            integrity[1],
            integrity[2]
        );
    }
    for a in &r.areas {
        row(
            &mut out,
            [
                r.day.to_string(),
                csv_field(&a.space),
                csv_field(&a.name_zh),
                csv_field(&a.name_en),
                opt(a.instant_capacity.map(|c| c.to_string())),
                opt(a.daily_capacity.map(|c| c.to_string())),
                a.entries.to_string(),
                a.exits.to_string(),
                opt(a.peak.map(|p| p.to_string())),
                opt(utc(a.peak_at)),
            ],
            &a.minutes_at_level,
            opt(a.peak_at_local.clone()),
            &a.notices,
            &a.dispatch,
            [
                a.corrections.to_string(),
                opt(utc(a.revised_at)),
                a.revised_reports.to_string(),
            ],
        );
    }
    if let Some(c) = &r.county {
        row(
            &mut out,
            [
                r.day.to_string(),
                csv_field(&c.space),
                csv_field(&c.name_zh),
                csv_field(&c.name_en),
                String::new(),
                String::new(),
                c.entries.to_string(),
                c.exits.to_string(),
                opt(c.peak.map(|p| p.to_string())),
                opt(utc(c.peak_at)),
            ],
            &c.area_minutes_at_level,
            opt(c.peak_at_local.clone()),
            &c.notices,
            &c.dispatch,
            [
                c.corrections.to_string(),
                opt(utc(c.revised_at)),
                c.revised_reports.to_string(),
            ],
        );
    }
    out
}

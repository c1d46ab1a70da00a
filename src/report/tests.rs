use chrono::TimeDelta;
use serde_json::json;

use super::*;
use crate::config::Config;

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

fn registry() -> Registry {
    let cfg = Config::from_toml(
        r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"
[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "峡谷"
name_en = "Canyon, the"
instant_capacity = 100
[[spaces]]
id = "canyon-pines"
kind = "zone"
parent = "canyon"
name_zh = "松林"
name_en = "Pines"
[[spaces]]
id = "village"
kind = "scenic_area"
parent = "county"
name_zh = "村"
name_en = "Village"
instant_capacity = 50
[[spaces]]
id = "hub"
kind = "hub"
parent = "county"
name_zh = "集散中心"
name_en = "Hub"
"#,
    )
    .unwrap();
    cfg.registry().unwrap()
}

#[test]
fn notices_go_to_their_area_and_all_to_the_county() {
    let reg = registry();
    let n = |space: &str, alerts, art45, confirmed| NoticeCounts {
        space: space.into(),
        alerts,
        art45,
        art45_confirmed: confirmed,
    };
    let d = |space: &str, delivered, dead, pending| DeliveryCounts {
        space: space.into(),
        delivered,
        dead,
        pending,
    };
    let (per, county) = tally_notices(
        &reg,
        &[
            n("canyon", 4, 2, 1),
            n("canyon-pines", 1, 0, 0),
            n("hub", 3, 0, 0),
        ],
        &[d("canyon", 5, 1, 0), d("hub", 2, 0, 1), d("gone", 1, 0, 0)],
    );
    let canyon = reg.space_idx("canyon").unwrap();
    assert_eq!(
        per[&canyon],
        Notices {
            alerts: 5,
            art45: 2,
            art45_confirmed: 1,
            delivered: 5,
            dead: 1,
            pending: 0
        }
    );
    assert_eq!(
        per.len(),
        1,
        "the hub and an unknown space belong to no area"
    );
    assert_eq!(
        county,
        Notices {
            alerts: 8,
            art45: 2,
            art45_confirmed: 1,
            delivered: 8,
            dead: 1,
            pending: 1
        }
    );
    assert_eq!(area_of(&reg, "canyon-pines"), Some(canyon));
    assert_eq!(area_of(&reg, "county"), None);
}

fn advice(shuttles: &[(&str, u32)], diversions: &[(&str, u32, &[&str])]) -> serde_json::Value {
    let reason = json!({ "code": "dispatch", "zh": "", "en": "" });
    let explanation = json!({ "occupancy": null, "capacity": null, "spare": null, "on_road": 0,
        "forecast_min": null, "forecast_inflow": 0, "queue": 0, "level": null, "travel_min": 20 });
    json!({
        "hub": "hub", "at": "2026-10-02T02:00:00Z", "queue": 100, "vehicles_available": 10,
        "shuttles": shuttles.iter().map(|(area, n)| json!({
            "route": format!("hub-{area}"), "area": area, "send_now": n, "seats": n * 45,
            "passengers": n * 40, "vehicles": [], "travel_min": 20, "reason": reason,
            "explanation": explanation })).collect::<Vec<_>>(),
        "held": [], "paused": [],
        "diversions": diversions.iter().map(|(from, visitors, to)| json!({
            "from_area": from, "visitors": visitors,
            "to": to.iter().map(|a| json!({ "area": a, "route": format!("hub-{a}"), "spare": 10,
                "travel_min": 15, "score": 1.0, "reason": reason, "explanation": explanation }))
                .collect::<Vec<_>>(),
            "reason": reason, "explanation": explanation })).collect::<Vec<_>>(),
        "hold": null
    })
}

fn rec(hub: &str, advice: serde_json::Value, decision: Option<&str>) -> DayAdvice {
    DayAdvice {
        hub: hub.into(),
        advice,
        decision: decision.map(str::to_owned),
    }
}

#[test]
fn shuttles_count_per_instruction_and_diversions_when_they_start() {
    // In force when the day began: the other hub already diverts the village's visitors.
    let before = [rec(
        "east",
        advice(&[], &[("village", 20, &["canyon"])]),
        None,
    )];
    let records = [
        // Nowhere to go: a hold, not a diversion.
        rec(
            "hub",
            advice(&[("canyon", 3)], &[("canyon", 10, &[])]),
            Some("followed"),
        ),
        // Now the canyon's visitors go to the village: started.
        rec(
            "hub",
            advice(
                &[("canyon", 1), ("village", 2)],
                &[("canyon", 80, &["village"])],
            ),
            Some("overridden"),
        ),
        // Still running: not started again.
        rec(
            "hub",
            advice(&[("village", 4)], &[("canyon", 120, &["village"])]),
            None,
        ),
        // The east hub's diversion goes on; a new one of its own starts.
        rec(
            "east",
            advice(
                &[],
                &[("village", 25, &["canyon"]), ("canyon", 30, &["village"])],
            ),
            Some("followed"),
        ),
        // Ended, then started again: counted again.
        rec("hub", advice(&[], &[]), None),
        rec("hub", advice(&[], &[("canyon", 5, &["village"])]), None),
        rec("hub", json!({ "not": "advice" }), Some("followed")),
    ];
    let (per, county, counts) = tally_dispatch(&before, &records);
    assert_eq!(
        per["canyon"],
        DispatchDay {
            shuttles_advised: 4,
            shuttles_followed: 3,
            shuttles_overridden: 1,
            diversions_advised: 3,
            visitors_to_divert: 115,
            diversions_received: 0
        }
    );
    assert_eq!(
        per["village"],
        DispatchDay {
            shuttles_advised: 6,
            shuttles_followed: 0,
            shuttles_overridden: 2,
            diversions_advised: 0,
            visitors_to_divert: 0,
            diversions_received: 3
        }
    );
    assert_eq!(
        county,
        DispatchDay {
            shuttles_advised: 10,
            shuttles_followed: 3,
            shuttles_overridden: 3,
            diversions_advised: 3,
            visitors_to_divert: 115,
            diversions_received: 3
        }
    );
    assert_eq!(
        counts,
        AdviceRecords {
            records: 6,
            followed: 2,
            overridden: 1
        }
    );
}

#[test]
fn the_report_assembles_areas_county_and_csv() {
    let reg = registry();
    let (from, to) = local_day(reg.tz, "2026-10-02".parse().unwrap()).unwrap();
    assert_eq!(from.to_rfc3339(), "2026-10-01T16:00:00+00:00");
    let p = |min: i64, entries: i64, peak: i64| SeriesPoint {
        bucket: from + TimeDelta::minutes(min),
        entries,
        exits: 1,
        occupancy: Some(peak),
        peak: Some(peak),
        correction: 0,
    };
    // A closing sweep found 7 fewer inside than counted, a gate count 2 more.
    let corrected = |min: i64, correction: i64| SeriesPoint {
        correction,
        ..p(min, 0, 10)
    };
    let canyon = reg.space(reg.space_idx("canyon").unwrap());
    let village = reg.space(reg.space_idx("village").unwrap());
    let root = reg.space(reg.space_idx("county").unwrap());
    let areas = vec![
        AreaSeries {
            space: canyon,
            // Peak 90 first at 10:00 local (02:00 UTC), again later: the first one counts.
            points: vec![p(540, 50, 40), p(600, 60, 90), p(700, 5, 90)],
            initial: Level::Normal,
            changes: vec![(from + TimeDelta::minutes(600), Level::Orange)],
        },
        AreaSeries {
            space: village,
            points: vec![corrected(1000, -7), corrected(1100, 2)],
            initial: Level::Normal,
            changes: vec![],
        },
    ];
    let revised_at = to + TimeDelta::hours(5);
    let figures = DayFigures {
        notices: vec![NoticeCounts {
            space: "canyon-pines".into(),
            alerts: 2,
            art45: 1,
            art45_confirmed: 1,
        }],
        deliveries: vec![],
        advice_before: vec![],
        advice: vec![rec("hub", advice(&[("canyon", 3)], &[]), Some("followed"))],
        // Late reports revised the canyon's day (and so the county's); the village's is as it was.
        revisions: vec![
            DayRevision {
                space: "canyon".into(),
                revised_at,
                reports: 12,
            },
            DayRevision {
                space: "county".into(),
                revised_at,
                reports: 12,
            },
        ],
    };
    let r = assemble(
        &reg,
        "2026-10-02".parse().unwrap(),
        (from, to),
        to,
        areas,
        Some((root, vec![p(600, 0, 120)])),
        &figures,
    );
    let c = &r.areas[0];
    assert_eq!((c.entries, c.exits, c.peak), (115, 3, Some(90)));
    assert_eq!(
        c.peak_at_local.as_deref(),
        Some("2026-10-02T10:00:00+08:00")
    );
    assert_eq!(c.minutes_at_level.orange, 840.0);
    assert_eq!(c.minutes_at_level.normal, 600.0);
    assert_eq!(c.notices.art45, 1);
    assert_eq!(c.dispatch.shuttles_followed, 3);
    assert_eq!(
        (c.corrections, c.revised_at, c.revised_reports),
        (0, Some(revised_at), 12)
    );
    let v = &r.areas[1];
    assert_eq!(
        (v.entries, v.peak, v.peak_at_local.as_deref()),
        (0, Some(10), Some("2026-10-02T16:40:00+08:00"))
    );
    // The corrections are their own figure: entries and exits do not include them.
    assert_eq!((v.exits, v.corrections), (2, -5));
    assert_eq!((v.revised_at, v.revised_reports), (None, 0));
    let county = r.county.as_ref().unwrap();
    assert_eq!((county.entries, county.peak), (115, Some(120)));
    assert_eq!(county.area_minutes_at_level.normal, 600.0 + 1440.0);
    assert_eq!(county.advice.records, 1);
    assert_eq!(county.corrections, -5);
    assert_eq!(
        (county.revised_at, county.revised_reports),
        (Some(revised_at), 12)
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["areas"][1]["corrections"], -5);
    assert_eq!(json["areas"][1]["revised_at"], serde_json::Value::Null);
    assert_eq!(json["county"]["corrections"], -5);

    let csv = to_csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header.len(), 31);
    assert_eq!(
        &header[28..],
        &["corrections", "revised_at", "revised_reports"]
    );
    let row = |line: &str| -> Vec<String> {
        // The name with a comma is quoted: split outside quotes.
        let mut out = vec![String::new()];
        let mut quoted = false;
        for ch in line.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(String::new()),
                c => out.last_mut().unwrap().push(c),
            }
        }
        out
    };
    let canyon_row = row(lines[1]);
    assert_eq!(canyon_row.len(), 31);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(canyon_row[col("name_en")], "Canyon, the");
    assert_eq!(canyon_row[col("peak_at")], "2026-10-02T02:00:00Z");
    assert_eq!(
        canyon_row[col("peak_at_local")],
        "2026-10-02T10:00:00+08:00"
    );
    assert_eq!(canyon_row[col("minutes_orange")], "840");
    assert_eq!(canyon_row[col("notices_art45_confirmed")], "1");
    assert_eq!(canyon_row[col("shuttles_advised")], "3");
    let county_row = row(lines[3]);
    assert_eq!(county_row[col("space")], "county");
    assert_eq!(county_row[col("entries")], "115");
    assert_eq!(county_row[col("peak")], "120");
    assert_eq!(canyon_row[col("corrections")], "0");
    assert_eq!(canyon_row[col("revised_at")], "2026-10-02T21:00:00Z");
    assert_eq!(canyon_row[col("revised_reports")], "12");
    let village_row = row(lines[2]);
    assert_eq!(village_row[col("corrections")], "-5");
    assert_eq!(village_row[col("revised_at")], "");
    assert_eq!(village_row[col("revised_reports")], "0");
    assert_eq!(county_row[col("corrections")], "-5");
    assert_eq!(county_row[col("revised_reports")], "12");
}

#[test]
fn revisions_of_a_space_or_of_its_parts() {
    let reg = registry();
    let at = |h: i64| DateTime::<Utc>::from_timestamp(1_777_600_000 + h * 3600, 0).unwrap();
    let rev = |space: &str, h: i64, reports: i64| DayRevision {
        space: space.into(),
        revised_at: at(h),
        reports,
    };
    let idx = |id: &str| reg.space_idx(id).unwrap();
    // Only zones revised: the area shows what they add up to, the latest time.
    let zones = [rev("canyon-pines", 1, 3), rev("gone", 2, 4)];
    assert_eq!(
        integrity::revision_of(&reg, &zones, idx("canyon")),
        Some((at(1), 3))
    );
    assert_eq!(integrity::revision_of(&reg, &zones, idx("village")), None);
    // The county's root takes every revision, spaces no longer registered included.
    assert_eq!(
        integrity::revision_of(&reg, &zones, idx("county")),
        Some((at(2), 7))
    );
    // A space's own revision wins over its parts' (no double counting).
    let own = [rev("canyon-pines", 1, 3), rev("canyon", 3, 3)];
    assert_eq!(
        integrity::revision_of(&reg, &own, idx("canyon")),
        Some((at(3), 3))
    );
    assert_eq!(integrity::revision_of(&reg, &[], idx("county")), None);
}

#[test]
fn corrections_add_up_over_the_minutes() {
    let from = DateTime::<Utc>::from_timestamp(1_777_600_000, 0).unwrap();
    let p = |min: i64, correction: i64| SeriesPoint {
        bucket: from + TimeDelta::minutes(min),
        entries: 3,
        exits: 1,
        occupancy: None,
        peak: None,
        correction,
    };
    assert_eq!(integrity::corrections(&[]), 0);
    assert_eq!(integrity::corrections(&[p(0, 0), p(1, -40), p(2, 15)]), -25);
}

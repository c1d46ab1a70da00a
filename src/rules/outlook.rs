//! The evening-before warning (`forecast.{level}`): the level a day's forecast reaches on the
//! space's ladder — its hourly occupancy against the approved instantaneous maximum, its
//! entries against the daily maximum — and the hours it is expected there. The expected value
//! (the forecast's mean) is what is assessed: a warning a bureau acts on says what is expected,
//! and the 80 % band is shown beside it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::level::{Ladder, Level};

/// A day's forecast as the rules read it (from the stored run; hour 0 is local midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayOutlook {
    pub day: NaiveDate,
    /// Whether `day` is tomorrow for the people reading the warning (else today).
    pub tomorrow: bool,
    /// Expected highest occupancy in each local hour.
    pub occupancy: Vec<f64>,
    /// Upper end of the 80 % interval of each hour's occupancy.
    pub occupancy_hi80: Vec<f64>,
    /// Expected entries over the day.
    pub entries: f64,
    /// The lowest level worth a warning (`[forecast] warn_from`).
    pub warn_from: Level,
}

/// What the assessment found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assessment {
    pub level: Level,
    /// First and last local hour (inclusive) at `level` by occupancy; `None` when only the
    /// day's entries reach it.
    pub hours: Option<(u8, u8)>,
    /// Expected peak occupancy and its share of the instantaneous maximum (percent).
    pub peak: f64,
    pub peak_pct: Option<f64>,
    /// Expected entries as a share of the daily maximum (percent).
    pub daily_pct: Option<f64>,
}

/// The level `o` reaches on `ladder`, if at least `from`.
pub fn assess(
    o: &DayOutlook,
    ladder: &Ladder,
    instant_capacity: Option<u32>,
    daily_capacity: Option<u32>,
    from: Level,
) -> Option<Assessment> {
    let pct = |v: f64, cap: Option<u32>| cap.filter(|c| *c > 0).map(|c| v / f64::from(c) * 100.0);
    let hourly: Vec<Level> = o
        .occupancy
        .iter()
        .map(|&v| pct(v, instant_capacity).map_or(Level::Normal, |p| ladder.level_for(p)))
        .collect();
    let by_hour = hourly.iter().copied().max().unwrap_or(Level::Normal);
    let daily_pct = pct(o.entries, daily_capacity);
    let by_day = daily_pct.map_or(Level::Normal, |p| ladder.level_for(p));
    let level = by_hour.max(by_day);
    if level < from || level == Level::Normal {
        return None;
    }
    let at_level = |l: &&Level| **l >= level;
    let first = hourly.iter().position(|l| at_level(&l));
    let last = hourly.iter().rposition(|l| at_level(&l));
    let peak = o.occupancy.iter().copied().fold(0.0, f64::max);
    Some(Assessment {
        level,
        hours: first.zip(last).map(|(a, b)| (a as u8, b as u8)),
        peak,
        peak_pct: pct(peak, instant_capacity),
        daily_pct,
    })
}

/// The expected peak's share of the instantaneous maximum of `input`'s outlook (percent).
pub(crate) fn peak_pct(input: &super::SpaceInput, ladder: &Ladder) -> Option<f64> {
    let o = input.outlook.as_ref()?;
    let (instant, daily) = (input.instant_capacity, input.daily_capacity);
    assess(o, ladder, instant, daily, o.warn_from)?.peak_pct
}

/// The warning's words: `明日11:00–14:00预计达到橙色…` / `tomorrow 11:00–14:00 expected at orange …`.
pub(crate) fn describe(
    (zh, en): (&str, &str),
    outlook: Option<&DayOutlook>,
    ladder: &Ladder,
    (instant, daily): (Option<u32>, Option<u32>),
    target: Level,
    change: super::Change,
) -> (String, String) {
    let found = outlook.and_then(|o| Some((o, assess(o, ladder, instant, daily, o.warn_from)?)));
    let Some((o, a)) = found.filter(|_| change != super::Change::Resolve) else {
        return (
            format!("{zh}{}预测预警解除", target.name_zh()),
            format!("{en}: the forecast {} warning is cleared", target.as_str()),
        );
    };
    let (when_zh, when_en) = if o.tomorrow {
        ("明日", "tomorrow")
    } else {
        ("今日", "today")
    };
    let (span_zh, span_en) = match a.hours {
        Some((first, last)) => {
            let span = format!("{first:02}:00–{:02}:00", last + 1);
            (span.clone(), format!(" {span}"))
        }
        None => (String::new(), String::new()),
    };
    let mut figures_zh = Vec::new();
    let mut figures_en = Vec::new();
    if let Some(p) = a.peak_pct {
        figures_zh.push(format!(
            "预计峰值约{:.0}人，为瞬时最大承载量的{p:.0}%",
            a.peak
        ));
        figures_en.push(format!(
            "peak about {:.0}, {p:.0}% of the instantaneous maximum",
            a.peak
        ));
    }
    if let Some(p) = a.daily_pct {
        figures_zh.push(format!(
            "预计入园约{:.0}人次，为日最大承载量的{p:.0}%",
            o.entries
        ));
        figures_en.push(format!(
            "about {:.0} entries, {p:.0}% of the daily maximum",
            o.entries
        ));
    }
    let action = ladder.action(target);
    (
        format!(
            "{zh}：{when_zh}{span_zh}预计达到{}（{}）。请提前准备：{}",
            target.name_zh(),
            figures_zh.join("；"),
            action.zh
        ),
        format!(
            "{en}: {when_en}{span_en} expected at {} ({}). Prepare: {}",
            target.as_str(),
            figures_en.join("; "),
            action.en
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Preset;

    fn outlook(peak_at_noon: f64, entries: f64) -> DayOutlook {
        let occupancy: Vec<f64> = (0..24)
            .map(|h: i32| (peak_at_noon - 900.0 * f64::from((h - 12).abs())).max(0.0))
            .collect();
        DayOutlook {
            day: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            tomorrow: true,
            occupancy_hi80: occupancy.iter().map(|v| v * 1.2).collect(),
            occupancy,
            entries,
            warn_from: Level::Yellow,
        }
    }

    #[test]
    fn the_hours_at_the_level_reached_are_named() {
        let ladder = Ladder::preset(Preset::Lbt034);
        // 8,000 instantaneous: 7,300 at noon is 91 %, 6,400 at 11 and 13 is 80 %.
        let a = assess(
            &outlook(7300.0, 20_000.0),
            &ladder,
            Some(8000),
            Some(30000),
            Level::Yellow,
        )
        .unwrap();
        let orange_from = ladder.threshold(Level::Orange).unwrap();
        assert_eq!(a.level, ladder.level_for(91.25));
        assert!(a.level >= Level::Yellow);
        let (first, last) = a.hours.unwrap();
        assert!(first <= 12 && last >= 12, "{a:?}");
        assert!((a.peak_pct.unwrap() - 91.25).abs() < 1e-9);
        assert!(orange_from > 0.0);
    }

    #[test]
    fn below_the_first_warned_level_there_is_no_warning() {
        let ladder = Ladder::preset(Preset::Lbt034);
        assert!(
            assess(
                &outlook(3000.0, 10_000.0),
                &ladder,
                Some(8000),
                Some(30000),
                Level::Yellow
            )
            .is_none()
        );
        // Orange expected but only red is warned about.
        let o = outlook(7300.0, 20_000.0);
        let a = assess(&o, &ladder, Some(8000), Some(30000), Level::Yellow).unwrap();
        assert!(
            assess(&o, &ladder, Some(8000), Some(30000), Level::Red).is_none()
                || a.level == Level::Red
        );
        // Not rated: nothing to warn about.
        assert!(assess(&o, &ladder, None, None, Level::Yellow).is_none());
    }

    #[test]
    fn the_daily_maximum_alone_can_raise_it_without_an_hour_window() {
        let ladder = Ladder::preset(Preset::Lbt034);
        let a = assess(
            &outlook(2000.0, 29_000.0),
            &ladder,
            Some(8000),
            Some(30000),
            Level::Yellow,
        )
        .unwrap();
        assert_eq!(a.level, ladder.level_for(29_000.0 / 300.0));
        assert_eq!(a.hours, None);
        assert!((a.daily_pct.unwrap() - 96.666).abs() < 0.01);
    }

    #[test]
    fn the_warning_names_tomorrow_the_hours_and_the_figures() {
        let ladder = Ladder::preset(Preset::Lbt034);
        let o = outlook(7300.0, 20_000.0);
        let a = assess(&o, &ladder, Some(8000), Some(30000), Level::Yellow).unwrap();
        let (zh, en) = describe(
            ("峡谷", "Canyon"),
            Some(&o),
            &ladder,
            (Some(8000), Some(30000)),
            a.level,
            crate::rules::Change::Open,
        );
        let (first, last) = a.hours.unwrap();
        let span = format!("{first:02}:00–{:02}:00", last + 1);
        assert!(zh.starts_with(&format!("峡谷：明日{span}预计达到")), "{zh}");
        assert!(
            en.contains(&format!("tomorrow {span} expected at {}", a.level.as_str())),
            "{en}"
        );
        assert!(
            en.contains("peak about 7300, 91% of the instantaneous maximum"),
            "{en}"
        );
        let (zh, _) = describe(
            ("峡谷", "Canyon"),
            Some(&o),
            &ladder,
            (Some(8000), None),
            a.level,
            crate::rules::Change::Resolve,
        );
        assert!(zh.contains("预测预警解除"), "{zh}");
    }
}

//! `[calendar]`: where the public holidays come from, and the county's own date ranges (school
//! holidays, festivals, a ski season) that change how many visitors come.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::SpaceId;

/// The public holidays shipped with the binary (2025–2027).
pub const EMBEDDED_HOLIDAYS: &str = include_str!("../../config/holidays-cn.toml");

/// `[calendar]` in the configuration file.
///
/// ```toml
/// [calendar]
/// # holidays_file = "/etc/visitorflow/holidays-cn.toml"   # replaces the embedded 2025–2027
///
/// [[calendar.school_holidays]]
/// name = "暑假"
/// from = 2026-07-04
/// to = 2026-08-31
///
/// [[calendar.events]]
/// name = "杜鹃花节"
/// from = 2026-04-18
/// to = 2026-05-03
/// spaces = ["canyon"]      # empty or absent: every area
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// A holiday file in the format of `config/holidays-cn.toml`, read at start-up instead of
    /// the embedded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holidays_file: Option<String>,
    #[serde(default)]
    pub school_holidays: Vec<DateRange>,
    #[serde(default)]
    pub events: Vec<EventConfig>,
}

/// A named range of local days, both ends included.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    pub name: String,
    #[serde(deserialize_with = "local_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "local_date")]
    pub to: NaiveDate,
}

/// A local event: a range of days, at some areas or all of them.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    pub name: String,
    #[serde(deserialize_with = "local_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "local_date")]
    pub to: NaiveDate,
    #[serde(default)]
    pub spaces: Vec<SpaceId>,
}

/// The holiday file: the years it covers and each holiday period with its make-up working days.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HolidayFile {
    #[serde(default)]
    pub years: Vec<YearEntry>,
    #[serde(default)]
    pub holidays: Vec<HolidayEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct YearEntry {
    pub year: i32,
    /// Derived from the rules rather than taken from the published notice.
    #[serde(default)]
    pub provisional: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HolidayEntry {
    pub key: String,
    pub name: String,
    #[serde(deserialize_with = "local_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "local_date")]
    pub to: NaiveDate,
    #[serde(default, deserialize_with = "local_dates")]
    pub workdays: Vec<NaiveDate>,
}

/// A date written as a TOML local date (`2026-10-01`) or as a string (`"2026-10-01"`, which is
/// how environment overrides and a serialised config carry it).
#[derive(Deserialize)]
#[serde(untagged)]
enum DateRepr {
    Toml(toml::value::Datetime),
    Text(String),
}

impl DateRepr {
    fn date(self) -> Result<NaiveDate, String> {
        match self {
            DateRepr::Toml(dt) => match (dt.date, dt.time) {
                (Some(d), None) => {
                    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                        .ok_or_else(|| format!("{dt} is not a date"))
                }
                _ => Err(format!("{dt}: expected a local date such as 2026-10-01")),
            },
            DateRepr::Text(s) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map_err(|_| format!("{s:?}: expected a local date such as 2026-10-01")),
        }
    }
}

fn local_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    DateRepr::deserialize(d)?
        .date()
        .map_err(serde::de::Error::custom)
}

fn local_dates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
    Vec::<DateRepr>::deserialize(d)?
        .into_iter()
        .map(|r| r.date().map_err(serde::de::Error::custom))
        .collect()
}

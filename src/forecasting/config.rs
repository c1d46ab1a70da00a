//! `[forecast]`: when the day-ahead forecasts are made, how far ahead, from how much history, and
//! when the evening-before warning (`forecast.{level}`) is raised.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::registry::Problem;

/// `[forecast]` in the configuration file.
///
/// ```toml
/// [forecast]
/// run_at = "00:30"        # local time of the nightly run (today and the next `days` days)
/// days = 7
/// history_days = 400      # enough to have seen last year's holidays
/// warn_lead_h = 14        # forecast.{level} opens this long before the area opens that day
/// warn_from = "yellow"    # the lowest level worth a warning the evening before
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_run_at")]
    pub run_at: String,
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    #[serde(default = "default_warn_lead_h")]
    pub warn_lead_h: u32,
    #[serde(default = "default_warn_from")]
    pub warn_from: String,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            run_at: default_run_at(),
            days: default_days(),
            history_days: default_history_days(),
            warn_lead_h: default_warn_lead_h(),
            warn_from: default_warn_from(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_run_at() -> String {
    "00:30".into()
}
fn default_days() -> u32 {
    7
}
fn default_history_days() -> u32 {
    400
}
fn default_warn_lead_h() -> u32 {
    14
}
fn default_warn_from() -> String {
    "yellow".into()
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in [forecast]:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ForecastConfigError(pub Vec<Problem>);

/// `[forecast]` checked: the values the worker and the rules use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPlan {
    pub enabled: bool,
    pub run_at: NaiveTime,
    pub days: u32,
    pub history_days: u32,
    pub warn_lead_h: u32,
    pub warn_from: crate::rules::Level,
}

impl ForecastConfig {
    pub fn plan(&self) -> Result<ForecastPlan, ForecastConfigError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem {
                location: format!("forecast.{key}"),
                message,
            })
        };
        let run_at = NaiveTime::parse_from_str(&self.run_at, "%H:%M").unwrap_or_else(|_| {
            bad(
                "run_at",
                format!("{:?} is not a local time HH:MM", self.run_at),
            );
            NaiveTime::MIN
        });
        if !(1..=14).contains(&self.days) {
            bad("days", format!("{} is not within 1..=14", self.days));
        }
        if !(28..=1100).contains(&self.history_days) {
            bad(
                "history_days",
                format!("{} is not within 28..=1100", self.history_days),
            );
        }
        if self.warn_lead_h > 48 {
            bad(
                "warn_lead_h",
                format!("{} is more than 48", self.warn_lead_h),
            );
        }
        let warn_from = match crate::rules::Level::ALL
            .into_iter()
            .find(|l| l.as_str() == self.warn_from)
        {
            Some(l) if l > crate::rules::Level::Normal => l,
            _ => {
                bad(
                    "warn_from",
                    format!("{:?}: expected yellow, orange or red", self.warn_from),
                );
                crate::rules::Level::Yellow
            }
        };
        if !problems.is_empty() {
            return Err(ForecastConfigError(problems));
        }
        Ok(ForecastPlan {
            enabled: self.enabled,
            run_at,
            days: self.days,
            history_days: self.history_days,
            warn_lead_h: self.warn_lead_h,
            warn_from,
        })
    }
}

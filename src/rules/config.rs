//! The engine's configuration (`[rules]`): the county ladder, per-space ladder overrides, and the
//! timing and data-quality bounds. Every key has a default; unknown keys are refused.

use std::collections::BTreeMap;
use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::level::{Ladder, LadderConfig};
use crate::ids::SpaceId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// County-wide ladder; keys left out keep the defaults (60 / 80 / 90 / 100 %).
    pub ladder: LadderConfig,
    /// Per-space overrides on top of the county ladder, by space id.
    pub spaces: BTreeMap<SpaceId, SpaceRules>,
    /// Hysteresis: a level is left only below its threshold minus this many percentage points.
    pub margin_pct: f64,
    /// …and only after the load has stayed there this long (also the early-warning clear time).
    pub dwell_s: u32,
    /// Early warning when orange or red is forecast within this time.
    pub horizon_s: u32,
    /// An early warning clears only when the forecast is beyond horizon + this (or not rising).
    pub horizon_margin_s: u32,
    /// Occupancy history the inflow slope is fitted over.
    pub forecast_window_s: u32,
    /// No forecast until the samples span at least this long.
    pub forecast_min_span_s: u32,
    /// A device is silent when nothing arrived for this many of its periods.
    pub silent_after_periods: f64,
    /// Reporting period assumed for a device whose period is unknown.
    pub default_period_s: u32,
    /// Drift (exits without entries today) is raised above the larger of this count…
    pub drift_min: u64,
    /// …and this percentage of today's entries.
    pub drift_pct: f64,
    /// A device clock further off than this raises a condition (cleared below 80% of it).
    pub clock_skew_max_s: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            ladder: LadderConfig::default(),
            spaces: BTreeMap::new(),
            margin_pct: 5.0,
            dwell_s: 120,
            horizon_s: 30 * 60,
            horizon_margin_s: 5 * 60,
            forecast_window_s: 20 * 60,
            forecast_min_span_s: 5 * 60,
            silent_after_periods: 3.0,
            default_period_s: 5 * 60,
            drift_min: 50,
            drift_pct: 2.0,
            clock_skew_max_s: 120,
        }
    }
}

/// Overrides for one space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpaceRules {
    pub ladder: LadderConfig,
}

/// Every problem found in a rules configuration, each with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RulesError(pub Vec<String>);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the rules configuration:", self.0.len())?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// The configuration resolved for evaluation: durations as `TimeDelta`.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub margin_pct: f64,
    pub dwell: TimeDelta,
    pub horizon: TimeDelta,
    pub horizon_margin: TimeDelta,
    pub window: TimeDelta,
    pub min_span: TimeDelta,
    pub silent_after_periods: f64,
    pub default_period: TimeDelta,
    pub drift_min: u64,
    pub drift_pct: f64,
    pub clock_skew_max: TimeDelta,
}

fn secs(s: u32) -> TimeDelta {
    TimeDelta::seconds(i64::from(s))
}

impl RulesConfig {
    pub fn dwell(&self) -> TimeDelta {
        secs(self.dwell_s)
    }

    pub fn horizon(&self) -> TimeDelta {
        secs(self.horizon_s)
    }

    /// The county ladder (the defaults with `ladder` applied).
    pub fn county_ladder(&self) -> Ladder {
        self.ladder.apply(&Ladder::default())
    }

    /// Checks the bounds; `problems` receives one line per mistake.
    pub(crate) fn params(&self, problems: &mut Vec<String>) -> Params {
        let mut bad = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        let m = self.margin_pct;
        bad(
            m.is_finite() && (0.0..100.0).contains(&m),
            format!("rules.margin_pct = {m} must be within [0, 100)"),
        );
        bad(
            self.forecast_window_s >= 60,
            format!(
                "rules.forecast_window_s = {} must be at least 60",
                self.forecast_window_s
            ),
        );
        bad(
            self.forecast_min_span_s <= self.forecast_window_s,
            format!(
                "rules.forecast_min_span_s = {} exceeds forecast_window_s = {}",
                self.forecast_min_span_s, self.forecast_window_s
            ),
        );
        let n = self.silent_after_periods;
        bad(
            n.is_finite() && n >= 1.0,
            format!("rules.silent_after_periods = {n} must be at least 1"),
        );
        bad(
            self.default_period_s > 0,
            "rules.default_period_s must be positive".into(),
        );
        let d = self.drift_pct;
        bad(
            d.is_finite() && d >= 0.0,
            format!("rules.drift_pct = {d} must be a non-negative percentage"),
        );
        Params {
            margin_pct: m,
            dwell: self.dwell(),
            horizon: self.horizon(),
            horizon_margin: secs(self.horizon_margin_s),
            window: secs(self.forecast_window_s),
            min_span: secs(self.forecast_min_span_s),
            silent_after_periods: n,
            default_period: secs(self.default_period_s),
            drift_min: self.drift_min,
            drift_pct: d,
            clock_skew_max: secs(self.clock_skew_max_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Level;

    #[test]
    fn toml_with_defaults_and_overrides() {
        let cfg: RulesConfig = toml::from_str(
            r#"
            dwell_s = 60
            [ladder]
            blue_pct = 50
            [ladder.actions.red]
            zh = "停止售票，入口截流"
            en = "Stop sales, hold at the gate"
            [spaces.badaling.ladder]
            yellow_pct = 60
            orange_pct = 80
            "#,
        )
        .unwrap();
        assert_eq!(cfg.dwell(), TimeDelta::minutes(1));
        assert_eq!(cfg.horizon(), TimeDelta::minutes(30));
        let county = cfg.county_ladder();
        assert_eq!((county.blue_pct, county.yellow_pct), (50.0, 80.0));
        assert_eq!(county.action(Level::Red).en, "Stop sales, hold at the gate");
        let b = cfg.spaces[&SpaceId::new("badaling")].ladder.apply(&county);
        assert_eq!(
            (b.blue_pct, b.yellow_pct, b.orange_pct, b.red_pct),
            (50.0, 60.0, 80.0, 100.0)
        );
        assert!(toml::from_str::<RulesConfig>("dwel_s = 3").is_err());
        assert!(toml::from_str::<RulesConfig>("[ladder]\ngreen_pct = 3").is_err());
    }

    #[test]
    fn bounds_are_checked() {
        let cfg = RulesConfig {
            margin_pct: -1.0,
            forecast_window_s: 30,
            silent_after_periods: f64::NAN,
            ..Default::default()
        };
        let mut p = Vec::new();
        cfg.params(&mut p);
        assert_eq!(p.len(), 4, "{p:?}");
    }
}

//! The forecast's evaluation: an occupancy series replayed through a one-space engine, every
//! crossing into orange or red, and whether an early warning stood before it (`visitorflow
//! forecast-eval`, the benchmark tables and the issue notes use it).

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::alert::{AlertKind, Change};
use super::level::Level;
use super::{DeviceHealth, Engine, RulesConfig, RulesError, SpaceDef, SpaceInput, serde_secs};
use crate::ids::{DeviceId, SpaceId, SpaceIdx};

/// One early warning raised during a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WarningEvent {
    pub at: DateTime<Utc>,
    pub target: Level,
    /// The forecast time to the target when the warning was raised.
    #[serde(rename = "predicted_s", serialize_with = "serde_secs::opt")]
    pub predicted: Option<TimeDelta>,
    /// When the target was then reached, if it was while the warning stood.
    pub reached_at: Option<DateTime<Utc>>,
    /// When the warning cleared without the target being reached (a false alarm).
    pub cleared_at: Option<DateTime<Utc>>,
}

/// One entry into orange or red during a replay (a jump into red crosses both).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crossing {
    pub at: DateTime<Utc>,
    pub level: Level,
    /// When the early warning that stood at the crossing was raised.
    pub warned_at: Option<DateTime<Utc>>,
    #[serde(rename = "lead_s", serialize_with = "serde_secs::opt")]
    pub lead: Option<TimeDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForecastReport {
    pub warnings: Vec<WarningEvent>,
    pub crossings: Vec<Crossing>,
}

/// The figures of a replay, for a benchmark table or an issue note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastSummary {
    pub crossings: usize,
    /// Crossings an early warning stood before.
    pub warned: usize,
    #[serde(rename = "median_lead_s", serialize_with = "serde_secs::opt")]
    pub median_lead: Option<TimeDelta>,
    pub warnings: usize,
    /// Warnings that cleared without their target being reached.
    pub false_alarms: usize,
}

impl ForecastReport {
    pub fn summary(&self) -> ForecastSummary {
        let mut leads: Vec<TimeDelta> = self.crossings.iter().filter_map(|c| c.lead).collect();
        leads.sort();
        let median_lead = match leads.len() {
            0 => None,
            n if n % 2 == 1 => Some(leads[n / 2]),
            n => Some((leads[n / 2 - 1] + leads[n / 2]) / 2),
        };
        ForecastSummary {
            crossings: self.crossings.len(),
            warned: leads.len(),
            median_lead,
            warnings: self.warnings.len(),
            false_alarms: self
                .warnings
                .iter()
                .filter(|w| w.cleared_at.is_some())
                .count(),
        }
    }
}

impl fmt::Display for ForecastSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} crossings of orange/red, {} warned in advance",
            self.crossings, self.warned
        )?;
        if let Some(l) = self.median_lead {
            write!(f, " (median lead {:.1} min)", l.num_seconds() as f64 / 60.0)?;
        }
        write!(
            f,
            "; {} early warnings, {} cleared without the level being reached",
            self.warnings, self.false_alarms
        )
    }
}

/// Replays an occupancy series through a one-space engine (devices always fresh, no daily
/// capacity, `cfg.spaces` ignored) and reports every crossing into orange or red and whether an
/// early warning stood before it. Samples should be in time order; each is one evaluation.
pub fn replay_forecast(
    samples: &[(DateTime<Utc>, u64)],
    capacity: u32,
    cfg: &RulesConfig,
) -> Result<ForecastReport, RulesError> {
    let mut cfg = cfg.clone();
    cfg.spaces.clear();
    let mut engine = Engine::new(cfg, [SpaceDef::new(SpaceId::new("replay"))])?;
    let device = DeviceId::new("replay");
    let space = SpaceIdx(0);
    let targets = [Level::Orange, Level::Red];
    let mut report = ForecastReport::default();
    // Index into `report.warnings` of the warning standing for each target.
    let mut standing: [Option<usize>; 2] = [None, None];
    for &(at, occupancy) in samples {
        let input = SpaceInput {
            occupancy,
            instant_capacity: Some(capacity),
            devices: vec![DeviceHealth::heard(device.clone(), at)],
            ..Default::default()
        };
        let ev = engine.evaluate(space, at, &input);
        // Crossings first: the warning a crossing resolves still counts as standing before it.
        for tr in &ev.transitions {
            let (AlertKind::InstantLevel, Some(from), Some(to)) = (&tr.kind, tr.from, tr.to) else {
                continue;
            };
            for (i, &target) in targets.iter().enumerate() {
                if from < target && to >= target {
                    let warned_at = standing[i].map(|w| {
                        report.warnings[w].reached_at = Some(at);
                        report.warnings[w].at
                    });
                    report.crossings.push(Crossing {
                        at,
                        level: target,
                        warned_at,
                        lead: warned_at.map(|w| at - w),
                    });
                }
            }
        }
        for tr in &ev.transitions {
            let AlertKind::EarlyWarning { target } = tr.kind else {
                continue;
            };
            let Some(i) = targets.iter().position(|&t| t == target) else {
                continue;
            };
            match tr.change {
                Change::Open => {
                    report.warnings.push(WarningEvent {
                        at,
                        target,
                        predicted: ev.status.forecast.as_ref().and_then(|f| f.to(target)),
                        reached_at: None,
                        cleared_at: None,
                    });
                    standing[i] = Some(report.warnings.len() - 1);
                }
                Change::Resolve => {
                    if let Some(w) = standing[i].take()
                        && report.warnings[w].reached_at.is_none()
                    {
                        report.warnings[w].cleared_at = Some(at);
                    }
                }
                Change::Escalate | Change::DeEscalate => {}
            }
        }
    }
    Ok(report)
}

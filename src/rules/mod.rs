//! The capacity rule engine: from one space's counts, capacities, device health, policy caps and
//! hazards to its warning levels, forecast and alerts. Pure: no I/O, no clock (the caller passes
//! `now`), no tokio. The ingester evaluates each touched space after a commit and every space on a
//! tick (dwell timers only advance when evaluated); the database and webhooks consume the
//! [`Transition`]s; a restart goes through [`Engine::snapshot`] / [`Engine::restore`].
//!
//! The module owns:
//! - **levels** ([`Level`], [`Ladder`]): the instantaneous load (occupancy ÷ effective
//!   instantaneous capacity) and the daily load (today's entries ÷ effective daily capacity), each
//!   placed on a ladder (default 60 / 80 / 90 / 100 %: blue, yellow (LB/T 034 traffic and entrance
//!   control), orange (art. 45 notice and report), red (stop sales)), configurable county-wide and
//!   per space;
//! - **effective capacity**: the approved capacity lowered by the tightest active [`PolicyCap`];
//!   both figures are reported;
//! - **hysteresis**: a level is entered as soon as the load reaches it. A jump (50% → 95%) enters
//!   the highest level reached directly, as *one* transition normal → orange: the higher level's
//!   action includes the lower ones', and three notifications in the same second would only bury
//!   it. A level is left only after the load has stayed below its threshold minus `margin_pct`
//!   for `dwell_s`, one level at a time, each step with its own dwell;
//! - **forecast** ([`Forecast`]): a Theil–Sen slope over the last `forecast_window_s` of
//!   occupancy samples gives the time to orange and red; an early warning stands while either is
//!   forecast within `horizon_s`, and clears only after the forecast has been beyond horizon +
//!   `horizon_margin_s` (or not rising) for `dwell_s`, or when the level is reached;
//! - **data quality**: silent counters (one `silent_devices` alert per space listing them), drift,
//!   unrepaired missing reports, clock skew. A device's alerts belong to the space it is
//!   registered in, never to the ancestors its counts also reach: a fresh county of 100,000
//!   counters that never reported opens one alert per space that has counters, not one per device
//!   per ancestor. A space none of whose counting devices (its own and its parts') is fresh is
//!   *stale*: its level reads [`Reading::Stale`] with no level and no load, never a reassuring
//!   `normal`; its level alerts and early warnings are frozen as they were (a red stays red) until
//!   data returns, and the dwell restarts from fresh evidence;
//! - **hazards**: each active [`Hazard`] raises its own alert and closes the space for dispatch;
//! - **alerts**: one per (space, [`AlertKind`]), opened, escalated, de-escalated and resolved by
//!   comparing what the rules want with what is open, so a restored engine neither re-sends nor
//!   forgets.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use visitorflow::ids::{DeviceId, SpaceId, SpaceIdx};
//! use visitorflow::rules::{DeviceHealth, Engine, Level, RulesConfig, SpaceDef, SpaceInput};
//!
//! let mut engine =
//!     Engine::new(RulesConfig::default(), [SpaceDef::new(SpaceId::new("canyon"))]).unwrap();
//! let now = DateTime::<Utc>::from_timestamp(1_777_600_000, 0).unwrap();
//! let input = SpaceInput {
//!     occupancy: 850,
//!     instant_capacity: Some(1000),
//!     devices: vec![DeviceHealth::heard(DeviceId::new("gate-1"), now)],
//!     ..Default::default()
//! };
//! let ev = engine.evaluate(SpaceIdx(0), now, &input);
//! assert_eq!(ev.status.instant.level, Some(Level::Yellow));
//! assert_eq!(ev.transitions.len(), 1);
//! ```

mod alert;
mod config;
mod forecast;
mod input;
mod lost;
mod level;
pub mod outlook;
mod replay;
mod restore;
mod words;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use alert::{AlertKind, Change, OpenAlert, Transition};
pub use config::{RulesConfig, RulesError, SpaceRules};
pub use forecast::{BookedArrivals, Forecast};
pub use input::{
    CapLimit, CapScope, DeviceHealth, Hazard, PartDevices, PolicyCap, SpaceInput, effective_daily,
};
pub use level::{
    Action, ActionsConfig, Ladder, LadderConfig, Level, LevelActions, Preset, Severity,
};
pub use replay::{Crossing, ForecastReport, ForecastSummary, WarningEvent, replay_forecast};

use alert::{Ctx, Want};
use config::Params;
use forecast::{Early, EarlyParams, Fit, Samples};
use input::{Capacity, Measure};
use level::Held;

use crate::ids::{DeviceId, SpaceId, SpaceIdx};
use crate::registry::{Registry, Space};

/// Version of [`EngineState`]'s layout; [`Engine::restore`] refuses any other.
pub const STATE_VERSION: u32 = 1;

/// A space as the engine names it in messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpaceDef {
    pub id: SpaceId,
    pub name_zh: String,
    pub name_en: String,
}

impl SpaceDef {
    /// A space named by its id in both languages.
    pub fn new(id: SpaceId) -> Self {
        Self {
            name_zh: id.to_string(),
            name_en: id.to_string(),
            id,
        }
    }
}

impl From<&Space> for SpaceDef {
    fn from(s: &Space) -> Self {
        Self {
            id: s.id.clone(),
            name_zh: s.name_zh.clone(),
            name_en: s.name_en.clone(),
        }
    }
}

/// Whether a level could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    Rated,
    /// Every counter is silent: the level is unknown.
    Stale,
    /// No approved capacity (absent or 0): there is no level.
    NoCapacity,
}

/// One load (instantaneous or daily) of one space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelStatus {
    pub reading: Reading,
    /// The level; `None` unless `reading` is `rated`.
    pub level: Option<Level>,
    /// The level held by the engine: the last known one while stale.
    pub last_level: Level,
    /// Percent of the effective capacity; `None` unless rated.
    pub load_pct: Option<f64>,
    /// Occupancy (instantaneous), or entries today plus booked visitors still to come (daily).
    pub count: u64,
    pub approved_capacity: Option<u32>,
    pub effective_capacity: Option<u32>,
    /// The policy cap that set the effective capacity, if any.
    pub cap: Option<PolicyCap>,
    /// The ladder the level is read on (`lbt034`, `lbt068`, `local`).
    pub ladder: String,
    pub action_zh: String,
    pub action_en: String,
}

/// One space after one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub space: SpaceId,
    pub at: DateTime<Utc>,
    pub instant: LevelStatus,
    pub daily: LevelStatus,
    /// `None` while stale or until the samples span `forecast_min_span_s`.
    pub forecast: Option<Forecast>,
    pub stale: bool,
    /// An active hazard: send no visitors here.
    pub closed: bool,
    /// Every open alert of the space (levels, warnings, data quality, hazards).
    pub alerts: Vec<OpenAlert>,
}

impl Status {
    /// The area's level as the public sees it: the higher of the rated instantaneous and daily
    /// levels (a full day stops entry as surely as a full area); `None` while stale or unrated.
    pub fn level(&self) -> Option<Level> {
        if self.stale {
            return None;
        }
        [&self.instant, &self.daily]
            .into_iter()
            .filter(|l| l.reading == Reading::Rated)
            .filter_map(|l| l.level)
            .max()
    }

    /// The highest severity among the open alerts (`info` when none).
    pub fn severity(&self) -> Severity {
        self.alerts
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub status: Status,
    /// Alerts that opened, changed or resolved in this evaluation.
    pub transitions: Vec<Transition>,
}

/// Everything the engine remembers about one space between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SpaceState {
    day: Option<NaiveDate>,
    instant: Held,
    daily: Held,
    samples: Samples,
    early_orange: Early,
    early_red: Early,
    #[serde(serialize_with = "open_without_devices")]
    open: Vec<OpenAlert>,
}

/// Saves open alerts without their device lists: those follow the input, the next evaluation
/// refills them, and a fresh county's would put 100,000 ids in every save.
fn open_without_devices<S: serde::Serializer>(open: &[OpenAlert], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(open.iter().map(|o| OpenAlert {
        kind: o.kind.clone(),
        severity: o.severity,
        level: o.level,
        since: o.since,
        updated: o.updated,
        devices: Vec::new(),
    }))
}

/// The engine's memory, for persisting across restarts. Keyed by space id, so a registry that
/// gained, lost or reordered spaces restores correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub version: u32,
    pub spaces: Vec<SpaceSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSnapshot {
    pub space: SpaceId,
    state: SpaceState,
}

impl EngineState {
    /// What was saved: an older whole-engine document (if any) with the per-space states saved
    /// since laid over it (those of another state version are left out). None if nothing was.
    pub fn saved(whole: Option<EngineState>, spaces: Vec<(u32, SpaceSnapshot)>) -> Option<Self> {
        let whole = whole.filter(|w| w.version == STATE_VERSION || spaces.is_empty());
        let current: Vec<SpaceSnapshot> = spaces
            .into_iter()
            .filter(|(v, _)| *v == STATE_VERSION)
            .map(|(_, s)| s)
            .collect();
        if whole.is_none() && current.is_empty() {
            return None;
        }
        let mut out = whole.unwrap_or(EngineState {
            version: STATE_VERSION,
            spaces: Vec::new(),
        });
        let at: HashMap<SpaceId, usize> = out
            .spaces
            .iter()
            .enumerate()
            .map(|(i, s)| (s.space.clone(), i))
            .collect();
        for snap in current {
            match at.get(&snap.space) {
                Some(&i) => out.spaces[i] = snap,
                None => out.spaces.push(snap),
            }
        }
        Some(out)
    }
}

impl SpaceSnapshot {
    pub fn open_alerts(&self) -> &[OpenAlert] {
        &self.state.open
    }
}

#[derive(Debug, Clone)]
struct Slot {
    def: SpaceDef,
    ladder: Ladder,
    state: SpaceState,
    /// The inflow fit kept between evaluations (derived from `state.samples`).
    fit: Fit,
}

/// Per-space rule state for the whole county; see the module docs.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: RulesConfig,
    params: Params,
    slots: Vec<Slot>,
    index: HashMap<SpaceId, SpaceIdx>,
}

const STALE_ACTION: (&str, &str) = (
    "计数设备无数据，承载等级未知：请现场核实人数",
    "Counters silent, level unknown: check numbers on site",
);
const UNRATED_ACTION: (&str, &str) = ("未核定承载量", "No approved capacity");

impl Engine {
    /// An engine for `spaces`, in `SpaceIdx` order. Fails on an invalid configuration, duplicate
    /// space ids, or overrides for spaces not in `spaces`.
    pub fn new(
        cfg: RulesConfig,
        spaces: impl IntoIterator<Item = SpaceDef>,
    ) -> Result<Self, RulesError> {
        let mut problems = Vec::new();
        let params = cfg.params(&mut problems);
        let county = cfg.county_ladder();
        problems.extend(
            county
                .problems()
                .into_iter()
                .map(|p| format!("rules.ladder: {p}")),
        );
        let mut slots = Vec::new();
        let mut index = HashMap::new();
        for def in spaces {
            let idx = SpaceIdx(slots.len() as u32);
            if index.insert(def.id.clone(), idx).is_some() {
                problems.push(format!("space {:?} given twice", def.id.as_str()));
                continue;
            }
            let ladder = match cfg.spaces.get(&def.id) {
                Some(r) => {
                    let l = r.ladder.apply(&county);
                    problems.extend(
                        l.problems()
                            .into_iter()
                            .map(|p| format!("rules.spaces.{}.ladder: {p}", def.id)),
                    );
                    l
                }
                None => county.clone(),
            };
            slots.push(Slot {
                def,
                ladder,
                state: SpaceState::default(),
                fit: Fit::default(),
            });
        }
        for id in cfg.spaces.keys() {
            if !index.contains_key(id) {
                problems.push(format!("rules.spaces.{id}: no such space"));
            }
        }
        if !problems.is_empty() {
            return Err(RulesError(problems));
        }
        Ok(Self {
            cfg,
            params,
            slots,
            index,
        })
    }

    /// An engine for every space of the registry, indexed like it.
    pub fn for_registry(cfg: RulesConfig, registry: &Registry) -> Result<Self, RulesError> {
        Self::new(cfg, registry.spaces.iter().map(SpaceDef::from))
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn space_idx(&self, id: &str) -> Option<SpaceIdx> {
        self.index.get(id).copied()
    }

    /// The ladder a space is rated on (county ladder plus its override).
    pub fn ladder(&self, space: SpaceIdx) -> &Ladder {
        &self.slots[space.get()].ladder
    }

    pub fn open_alerts(&self, space: SpaceIdx) -> &[OpenAlert] {
        &self.slots[space.get()].state.open
    }

    /// Whether `device` counts as silent at `now` under this engine's configuration: for tallying
    /// a space's [`PartDevices`].
    pub fn is_silent(&self, device: &DeviceHealth, now: DateTime<Utc>) -> bool {
        is_silent(device, now, &self.params)
    }

    /// [`Engine::is_silent`] of a counter of no known period last heard at `last_received`
    /// (`None`: never), without building its [`DeviceHealth`].
    pub fn is_silent_since(
        &self,
        last_received: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        silent_after(last_received, None, now, &self.params)
    }

    /// Evaluates one space at `now`. Call it after each commit that touched the space and on a
    /// regular tick (every 10–30 s), since dwell timers and silence only advance when evaluated.
    /// Never panics on any input; panics only if `space` is not an index this engine was built
    /// with.
    pub fn evaluate(
        &mut self,
        space: SpaceIdx,
        now: DateTime<Utc>,
        input: &SpaceInput,
    ) -> Evaluation {
        let Self {
            params: p, slots, ..
        } = self;
        let Slot {
            def,
            ladder,
            state: st,
            fit,
        } = &mut slots[space.get()];

        if let Some(day) = input.day {
            // A new business day: yesterday's daily level and inflow no longer describe today.
            if st.day.is_some_and(|d| d != day) {
                st.daily = Held::default();
                st.samples.clear();
            }
            st.day = Some(day);
        }

        let silent: Vec<&DeviceHealth> = input
            .devices
            .iter()
            .filter(|d| is_silent(d, now, p))
            .collect();
        let fresh =
            input.devices.len() - silent.len() + input.parts.fresh.min(input.parts.total) as usize;
        // No device at all is no data at all.
        let stale = fresh == 0;
        let skew_open = st.open.iter().any(|o| o.kind == AlertKind::ClockSkew);
        // Cleared below 80% of the bound, so a clock drifting at the bound does not flap.
        let skew_bound = if skew_open {
            p.clock_skew_max * 4 / 5
        } else {
            p.clock_skew_max
        };
        let skewed: Vec<(DeviceId, TimeDelta)> = input
            .devices
            .iter()
            .filter_map(|d| d.clock_skew.map(|s| (d, s)))
            .filter(|(_, s)| s.abs() > skew_bound)
            .map(|(d, s)| (d.device.clone(), s))
            .collect();

        let inst_cap = Capacity::of(input.instant_capacity, &input.caps, Measure::Instant, now);
        let daily_cap = Capacity::of(input.daily_capacity, &input.caps, Measure::Daily, now);
        let inst_load = inst_cap.load_pct(input.occupancy);
        // Booked visitors still to come count as arrivals (LB/T 034 daily maximum is sold, not walked).
        let expected: u64 = input.booked.iter().map(|b| b.people).sum();
        let daily_count = input.entries_today.saturating_add(expected);
        let daily_load = daily_cap.load_pct(daily_count);
        for (held, load) in [(&mut st.instant, inst_load), (&mut st.daily, daily_load)] {
            match load {
                None => *held = Held::default(),
                Some(_) if stale => held.hold(),
                Some(l) => held.update(l, now, ladder, p.margin_pct, p.dwell),
            }
        }

        let forecast = if stale {
            None
        } else {
            st.samples.push(now, input.occupancy, p.window);
            Forecast::compute(
                &st.samples,
                input.occupancy,
                inst_cap.effective,
                ladder,
                p.min_span,
                &input.booked,
                now,
                fit,
            )
        };
        let early_params = EarlyParams {
            horizon: p.horizon,
            horizon_margin: p.horizon_margin,
            dwell: p.dwell,
        };
        let level = st.instant.level;
        for (early, target) in [
            (&mut st.early_orange, Level::Orange),
            (&mut st.early_red, Level::Red),
        ] {
            if inst_cap.effective.is_none() {
                *early = Early::default();
            } else if stale {
                early.calm_since = None;
            } else {
                let eta = forecast.as_ref().and_then(|f| f.to(target));
                early.update(level, target, eta, now, &early_params);
            }
        }

        let mut want = Vec::new();
        for (kind, held) in [
            (AlertKind::InstantLevel, &st.instant),
            (AlertKind::DailyLevel, &st.daily),
        ] {
            if held.level > Level::Normal {
                want.push(Want {
                    kind,
                    severity: held.level.severity(),
                    level: Some(held.level),
                    devices: Vec::new(),
                });
            }
        }
        for (early, target, severity) in [
            (&st.early_orange, Level::Orange, Severity::Warning),
            (&st.early_red, Level::Red, Severity::Major),
        ] {
            if early.active {
                want.push(Want {
                    kind: AlertKind::EarlyWarning { target },
                    severity,
                    level: None,
                    devices: Vec::new(),
                });
            }
        }
        if let Some(a) = input.outlook.as_ref().and_then(|o| {
            outlook::assess(
                o,
                ladder,
                input.instant_capacity,
                input.daily_capacity,
                o.warn_from,
            )
        }) {
            want.push(Want {
                kind: AlertKind::Outlook { target: a.level },
                severity: a.level.severity(),
                level: None,
                devices: Vec::new(),
            });
        }
        if !silent.is_empty() {
            want.push(Want {
                kind: AlertKind::SilentDevices,
                severity: Severity::Warning,
                level: None,
                devices: silent.iter().map(|d| d.device.clone()).collect(),
            });
        }
        let mut condition = |kind, severity| {
            want.push(Want {
                kind,
                severity,
                level: None,
                devices: Vec::new(),
            })
        };
        if stale && (inst_cap.effective.is_some() || daily_cap.effective.is_some()) {
            condition(AlertKind::Stale, Severity::Major);
        }
        let drift_bound =
            (p.drift_min as f64).max(input.entries_today as f64 * p.drift_pct / 100.0);
        if input.drift_today as f64 > drift_bound {
            condition(AlertKind::Drift, Severity::Info);
        }
        if input.devices.iter().any(|d| d.missing_reports > 0) {
            condition(AlertKind::MissingReports, Severity::Warning);
        }
        if input.devices.iter().any(|d| recent_jump(d, now)) {
            condition(AlertKind::SeqJump, Severity::Warning);
        }
        if !skewed.is_empty() {
            condition(AlertKind::ClockSkew, Severity::Info);
        }
        let mut closed = false;
        for h in input.hazards.iter().filter(|h| h.is_active(now)) {
            closed = true;
            condition(
                AlertKind::Hazard {
                    hazard: h.kind.clone(),
                },
                h.severity,
            );
        }
        let lost: Vec<DeviceId> = input
            .devices
            .iter()
            .filter(|d| d.lost.is_some_and(|l| now - l.at < LOSS_HOLD))
            .map(|d| d.device.clone())
            .collect();
        if !lost.is_empty() {
            want.push(Want {
                kind: AlertKind::ReportsLost,
                severity: Severity::Major,
                level: None,
                devices: lost,
            });
        }

        let instant = level_status(
            &inst_cap,
            inst_load,
            input.occupancy,
            &st.instant,
            stale,
            ladder,
        );
        let daily = level_status(
            &daily_cap,
            daily_load,
            daily_count,
            &st.daily,
            stale,
            ladder,
        );
        let ctx = Ctx {
            def,
            now,
            input,
            silent: &silent,
            instant: &instant,
            daily: &daily,
            forecast: forecast.as_ref(),
            ladder,
            params: p,
            skewed: &skewed,
        };
        let transitions = alert::reconcile(&mut st.open, want, &ctx);
        Evaluation {
            status: Status {
                space: def.id.clone(),
                at: now,
                instant,
                daily,
                forecast,
                stale,
                closed,
                alerts: st.open.clone(),
            },
            transitions,
        }
    }

    /// The memory of these spaces, for saving with their alert changes.
    pub fn snapshot_of(&self, spaces: &[SpaceIdx]) -> Vec<SpaceSnapshot> {
        spaces
            .iter()
            .filter_map(|s| self.slots.get(s.get()))
            .map(|s| SpaceSnapshot {
                space: s.def.id.clone(),
                state: s.state.clone(),
            })
            .collect()
    }

    /// The engine's memory: levels, dwell timers, samples, early-warning latches, open alerts.
    pub fn snapshot(&self) -> EngineState {
        EngineState {
            version: STATE_VERSION,
            spaces: self
                .slots
                .iter()
                .map(|s| SpaceSnapshot {
                    space: s.def.id.clone(),
                    state: s.state.clone(),
                })
                .collect(),
        }
    }

    /// An engine for `spaces` carrying on from `state`: the next evaluation continues the dwell
    /// timers and sends only what changed. Spaces new to `state` start afresh; the open alerts of
    /// spaces no longer configured are returned as resolves (at `now`), so none is left dangling,
    /// and so are legacy per-device silence alerts ([`AlertKind::Silent`]), which the next
    /// evaluation replaces by one `silent_devices` alert per space.
    pub fn restore(
        cfg: RulesConfig,
        spaces: impl IntoIterator<Item = SpaceDef>,
        state: EngineState,
        now: DateTime<Utc>,
    ) -> Result<(Self, Vec<Transition>), RulesError> {
        if state.version != STATE_VERSION {
            return Err(RulesError(vec![format!(
                "saved rule state has version {}, this build reads {STATE_VERSION}",
                state.version
            )]));
        }
        let mut engine = Self::new(cfg, spaces)?;
        let mut resolves = Vec::new();
        for mut snap in state.spaces {
            match engine.index.get(&snap.space) {
                Some(&i) => {
                    resolves.extend(restore::retire_legacy(
                        &snap.space,
                        &mut snap.state.open,
                        now,
                    ));
                    engine.slots[i.get()].state = snap.state;
                }
                None => {
                    resolves.extend(restore::resolve_removed(&snap.space, &snap.state.open, now))
                }
            }
        }
        Ok((engine, resolves))
    }
}

/// How long a seq anomaly keeps its data-quality alert open.
pub const SEQ_JUMP_HOLD: TimeDelta = TimeDelta::hours(24);

/// Whether `d`'s seq jumped implausibly within [`SEQ_JUMP_HOLD`] of `now`.
/// How long reports lost in a failover keep their alert open (the loss itself is recorded in
/// `report_losses` for good).
pub const LOSS_HOLD: TimeDelta = TimeDelta::hours(24);

pub fn recent_jump(d: &DeviceHealth, now: DateTime<Utc>) -> bool {
    d.last_seq_jump
        .is_some_and(|(at, _)| now - at < SEQ_JUMP_HOLD)
}

/// Silent: nothing received for `silent_after_periods` periods (or ever).
fn is_silent(d: &DeviceHealth, now: DateTime<Utc>, p: &Params) -> bool {
    silent_after(d.last_received, d.period, now, p)
}

fn silent_after(
    last_received: Option<DateTime<Utc>>,
    period: Option<TimeDelta>,
    now: DateTime<Utc>,
    p: &Params,
) -> bool {
    let Some(last) = last_received else {
        return true;
    };
    let period = period
        .filter(|x| *x > TimeDelta::zero())
        .unwrap_or(p.default_period);
    let quiet_s = (now - last).num_milliseconds() as f64 / 1000.0;
    quiet_s > p.silent_after_periods * period.num_milliseconds() as f64 / 1000.0
}

fn level_status(
    cap: &Capacity,
    load: Option<f64>,
    count: u64,
    held: &Held,
    stale: bool,
    ladder: &Ladder,
) -> LevelStatus {
    let (reading, level, load_pct, (zh, en)) = match (cap.effective, stale) {
        (None, _) => (Reading::NoCapacity, None, None, UNRATED_ACTION),
        (Some(_), true) => (Reading::Stale, None, None, STALE_ACTION),
        (Some(_), false) => {
            let a = ladder.action(held.level);
            (
                Reading::Rated,
                Some(held.level),
                load,
                (a.zh.as_str(), a.en.as_str()),
            )
        }
    };
    LevelStatus {
        reading,
        level,
        last_level: held.level,
        load_pct,
        count,
        approved_capacity: cap.approved,
        effective_capacity: cap.effective,
        cap: cap.cap.clone(),
        ladder: ladder.name.clone(),
        action_zh: zh.into(),
        action_en: en.into(),
    }
}

/// `TimeDelta` as whole seconds in serialized output.
mod serde_secs {
    use chrono::TimeDelta;
    use serde::Serializer;

    pub fn plain<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn opt<S: Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
}

//! Alerts: their stable identity ([`AlertKind`], one per space), the open set kept in the engine's
//! state, the [`Transition`]s produced by comparing what should be open with what is, and the
//! bilingual texts those transitions carry.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::config::Params;
use super::forecast::Forecast;
use super::input::{CapLimit, DeviceHealth, SpaceInput};
use super::level::{Ladder, Level, Severity};
use super::words::{LISTED, listed};
use super::{LevelStatus, SpaceDef};
use crate::ids::{DeviceId, SpaceId};

/// What an alert is about. Together with the space it is the alert's identity: at most one alert
/// per (space, kind) is open, and a change of level or severity updates it rather than opening
/// another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertKind {
    /// The instantaneous load's level (open while above normal).
    InstantLevel,
    /// The daily load's level.
    DailyLevel,
    /// Orange or red forecast within the horizon.
    EarlyWarning { target: Level },
    /// The day-ahead forecast reaches `target` (the evening-before warning, `forecast.{level}`).
    Outlook { target: Level },
    /// Every counter of the space is silent: its level is unknown.
    Stale,
    /// Some of the space's own counters unheard for too long (one alert listing them all).
    SilentDevices,
    /// Exits without entries today above the bound.
    Drift,
    /// Reports known missing and not repaired.
    MissingReports,
    /// A counter's seq jumped implausibly far ahead within the last day (counted once; the
    /// counter may have a firmware or memory fault).
    SeqJump,
    /// A device clock is off beyond the bound.
    ClockSkew,
    /// Acknowledged reports missing after a database failover (`core::loss`): never resent.
    ReportsLost,
    /// An external hazard; the space is closed for dispatch while it stands.
    Hazard { hazard: String },
    /// Ticket sales paused or closed (`crate::admission`): raised by alerting, never by the
    /// engine, and sent the alerts' way (signed, retried, logged for art. 45).
    Admission,
    /// Timed-entry slots sold beyond their quota (`crate::admission`), raised like `Admission`.
    Oversold,
    /// Legacy: one alert per silent device, in every space it counted in, as saved by earlier
    /// versions (a fresh county of 100,000 counters opened 300,000 of them). Never raised; a
    /// restored one is resolved at once (see `retire_legacy`).
    Silent { device: DeviceId },
}

impl AlertKind {
    /// A stable string key: `instant_level`, `early_warning.red`, `silent_devices`, ….
    pub fn key(&self) -> String {
        match self {
            AlertKind::InstantLevel => "instant_level".into(),
            AlertKind::DailyLevel => "daily_level".into(),
            AlertKind::EarlyWarning { target } => format!("early_warning.{}", target.as_str()),
            AlertKind::Outlook { target } => format!("forecast.{}", target.as_str()),
            AlertKind::Stale => "stale".into(),
            AlertKind::SilentDevices => "silent_devices".into(),
            AlertKind::Drift => "drift".into(),
            AlertKind::MissingReports => "missing_reports".into(),
            AlertKind::SeqJump => "seq_jump".into(),
            AlertKind::ClockSkew => "clock_skew".into(),
            AlertKind::ReportsLost => "reports_lost".into(),
            AlertKind::Hazard { hazard } => format!("hazard.{hazard}"),
            AlertKind::Admission => "admission".into(),
            AlertKind::Oversold => "oversold".into(),
            // As earlier versions stored it, so the open row in the database is the one resolved.
            AlertKind::Silent { device } => format!("silent.{device}"),
        }
    }

    /// Whether the alert follows a level (`from`/`to` are set on its transitions).
    pub fn is_level(&self) -> bool {
        matches!(self, AlertKind::InstantLevel | AlertKind::DailyLevel)
    }

    /// Whether the alert is about the counts' quality (silence, drift, missing reports, seq
    /// anomalies, clocks) rather than about the crowd.
    pub fn is_data_quality(&self) -> bool {
        matches!(
            self,
            AlertKind::Stale
                | AlertKind::SilentDevices
                | AlertKind::Drift
                | AlertKind::MissingReports
                | AlertKind::SeqJump
                | AlertKind::ClockSkew
        )
    }
}

/// What a transition does to its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Open,
    Escalate,
    DeEscalate,
    Resolve,
}

/// An alert that is open now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub kind: AlertKind,
    pub severity: Severity,
    /// The level, for level alerts.
    pub level: Option<Level>,
    pub since: DateTime<Utc>,
    /// Last escalation or de-escalation (`since` when none).
    pub updated: DateTime<Utc>,
    /// The devices the alert is about, all of them, as of the last evaluation (`silent_devices`:
    /// the silent counters, in input order). A change of this list alone is no transition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceId>,
}

/// One change of one alert, ready to send. For a resolve, `severity` is the severity the alert
/// last had, so the all-clear reaches whoever got the alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub space: SpaceId,
    pub kind: AlertKind,
    pub change: Change,
    /// Level alerts only: the level before and after (`normal` on open and resolve).
    pub from: Option<Level>,
    pub to: Option<Level>,
    pub severity: Severity,
    pub at: DateTime<Utc>,
    /// When the alert opened.
    pub since: DateTime<Utc>,
    /// The load the alert is about (instantaneous for forecasts), percent.
    pub load_pct: Option<f64>,
    pub forecast: Option<Forecast>,
    /// The devices the alert is about as it opens or changes (all of them; empty on resolve).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceId>,
    pub message_zh: String,
    pub message_en: String,
}

impl Transition {
    /// `space/kind-key`: one id per alert across its transitions (a dedupe or fingerprint key).
    pub fn alert_id(&self) -> String {
        format!("{}/{}", self.space, self.kind.key())
    }
}

/// An alert as the rules want it now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Want {
    pub kind: AlertKind,
    pub severity: Severity,
    pub level: Option<Level>,
    pub devices: Vec<DeviceId>,
}

/// Everything the texts may quote.
pub(crate) struct Ctx<'a> {
    pub def: &'a SpaceDef,
    pub now: DateTime<Utc>,
    pub input: &'a SpaceInput,
    /// The space's own counters that are silent, in input order.
    pub silent: &'a [&'a DeviceHealth],
    pub instant: &'a LevelStatus,
    pub daily: &'a LevelStatus,
    pub forecast: Option<&'a Forecast>,
    pub ladder: &'a Ladder,
    pub params: &'a Params,
    /// Devices whose clock is out of bounds, with their skew.
    pub skewed: &'a [(DeviceId, TimeDelta)],
}

/// Brings `open` in line with `want`, returning one transition per alert that changed.
pub(crate) fn reconcile(
    open: &mut Vec<OpenAlert>,
    mut want: Vec<Want>,
    ctx: &Ctx,
) -> Vec<Transition> {
    let now = ctx.now;
    // One alert per kind (two hazards of one kind, a device listed twice): the most severe wins.
    want.sort_by(|a, b| a.kind.cmp(&b.kind).then(b.severity.cmp(&a.severity)));
    want.dedup_by(|later, earlier| later.kind == earlier.kind);
    let mut out = Vec::new();
    let mut kept = Vec::with_capacity(want.len());
    for w in want {
        let prev = open
            .iter()
            .position(|o| o.kind == w.kind)
            .map(|i| open.swap_remove(i));
        let (change, since, from) = match prev {
            None => (Change::Open, now, w.level.map(|_| Level::Normal)),
            Some(p) if p.severity == w.severity && p.level == w.level => {
                // Still open as it was: only its device list follows the evaluation.
                kept.push(OpenAlert {
                    devices: w.devices,
                    ..p
                });
                continue;
            }
            Some(p) => {
                let up = match (p.level, w.level) {
                    (Some(a), Some(b)) => b > a,
                    _ => w.severity > p.severity,
                };
                let c = if up {
                    Change::Escalate
                } else {
                    Change::DeEscalate
                };
                (c, p.since, p.level)
            }
        };
        out.push(transition(
            ctx, &w.kind, change, from, w.level, w.severity, since, &w.devices,
        ));
        kept.push(OpenAlert {
            kind: w.kind,
            severity: w.severity,
            level: w.level,
            since,
            updated: now,
            devices: w.devices,
        });
    }
    // Whatever is still in `open` is no longer wanted.
    for gone in open.drain(..) {
        let to = gone.level.map(|_| Level::Normal);
        out.push(transition(
            ctx,
            &gone.kind,
            Change::Resolve,
            gone.level,
            to,
            gone.severity,
            gone.since,
            &[],
        ));
    }
    kept.sort_by(|a, b| a.kind.cmp(&b.kind));
    *open = kept;
    out
}

#[allow(clippy::too_many_arguments)]
fn transition(
    ctx: &Ctx,
    kind: &AlertKind,
    change: Change,
    from: Option<Level>,
    to: Option<Level>,
    severity: Severity,
    since: DateTime<Utc>,
    devices: &[DeviceId],
) -> Transition {
    let (load_pct, forecast) = match kind {
        AlertKind::InstantLevel => (ctx.instant.load_pct, None),
        AlertKind::DailyLevel => (ctx.daily.load_pct, None),
        AlertKind::EarlyWarning { .. } => (ctx.instant.load_pct, ctx.forecast.cloned()),
        AlertKind::Outlook { .. } => (super::outlook::peak_pct(ctx.input, ctx.ladder), None),
        _ => (None, None),
    };
    let (message_zh, message_en) = describe(ctx, kind, change, from, to);
    Transition {
        space: ctx.def.id.clone(),
        kind: kind.clone(),
        change,
        from,
        to,
        severity,
        at: ctx.now,
        since,
        load_pct,
        forecast,
        devices: devices.to_vec(),
        message_zh,
        message_en,
    }
}

fn pct(load: Option<f64>) -> String {
    load.map_or_else(|| "—".into(), |l| format!("{l:.0}%"))
}

/// Whole minutes, rounded; "<1" under half a minute.
fn minutes(d: TimeDelta) -> String {
    let m = (d.num_seconds() as f64 / 60.0).round();
    if m < 1.0 {
        "<1".into()
    } else {
        format!("{m:.0}")
    }
}

fn limit_text(l: CapLimit) -> (String, String) {
    match l {
        CapLimit::Percent(p) => (format!("{p}%"), format!("{p}%")),
        CapLimit::Absolute(n) => (format!("{n}人"), format!("{n} people")),
    }
}

fn describe(
    ctx: &Ctx,
    kind: &AlertKind,
    change: Change,
    from: Option<Level>,
    to: Option<Level>,
) -> (String, String) {
    let (zh, en) = (&ctx.def.name_zh, &ctx.def.name_en);
    match kind {
        // Worded by `admission`, which raises it; the engine never describes it.
        AlertKind::Admission => (
            format!("{zh}售票状态变化"),
            format!("{en}: ticket sales changed"),
        ),
        AlertKind::Oversold => (format!("{zh}时段超售"), format!("{en}: slots over-sold")),
        AlertKind::InstantLevel | AlertKind::DailyLevel => {
            let daily = *kind == AlertKind::DailyLevel;
            let s = if daily { ctx.daily } else { ctx.instant };
            let (m_zh, m_en) = if daily {
                ("日承载率", "daily load")
            } else {
                ("瞬时承载率", "instantaneous load")
            };
            let load = pct(s.load_pct);
            let (from, to) = (from.unwrap_or_default(), to.unwrap_or_default());
            let mut figures_zh = match (daily, s.effective_capacity) {
                (_, None) => "未核定承载量".to_string(),
                (false, Some(c)) => format!("在园{}人/有效容量{c}人", s.count),
                (true, Some(c)) => format!("今日入园{}人次/有效日容量{c}人次", s.count),
            };
            let mut figures_en = match (daily, s.effective_capacity) {
                (_, None) => "no approved capacity".to_string(),
                (false, Some(c)) => format!("{} in, effective capacity {c}", s.count),
                (true, Some(c)) => {
                    format!("{} entries today, effective daily capacity {c}", s.count)
                }
            };
            if let (Some(cap), Some(approved)) = (&s.cap, s.approved_capacity) {
                let (l_zh, l_en) = limit_text(cap.limit);
                let _ = write!(
                    figures_zh,
                    "，政策限流{l_zh}（{}），核定{approved}人",
                    cap.reason
                );
                let _ = write!(
                    figures_en,
                    "; policy cap {l_en} ({}), approved {approved}",
                    cap.reason
                );
            }
            if change == Change::Resolve {
                return (
                    format!(
                        "{zh}{m_zh}{load}（{figures_zh}）：{}解除，恢复正常",
                        from.name_zh()
                    ),
                    format!(
                        "{en}: {m_en} {load} ({figures_en}): {} cleared, back to normal",
                        from.as_str()
                    ),
                );
            }
            let action = ctx.ladder.action(to);
            (
                format!(
                    "{zh}{m_zh}{load}（{figures_zh}）：{}→{}。{}",
                    from.name_zh(),
                    to.name_zh(),
                    action.zh
                ),
                format!(
                    "{en}: {m_en} {load} ({figures_en}): {} → {}. {}",
                    from.as_str(),
                    to.as_str(),
                    action.en
                ),
            )
        }
        AlertKind::Outlook { target } => super::outlook::describe(
            (zh, en),
            ctx.input.outlook.as_ref(),
            ctx.ladder,
            (ctx.input.instant_capacity, ctx.input.daily_capacity),
            *target,
            change,
        ),
        AlertKind::EarlyWarning { target } => {
            let t = *target;
            if change == Change::Resolve {
                let h = minutes(ctx.params.horizon);
                return if ctx.instant.last_level >= t {
                    (
                        format!("{zh}已达到{}，预警由等级告警接替", t.name_zh()),
                        format!("{en}: {} reached; the level alert takes over", t.as_str()),
                    )
                } else {
                    (
                        format!("{zh}{}预警解除：预测{h}分钟内不会达到", t.name_zh()),
                        format!(
                            "{en}: {} early warning cleared, no longer forecast within {h} min",
                            t.as_str()
                        ),
                    )
                };
            }
            let thr = ctx.ladder.threshold(t).unwrap_or(100.0);
            let people = ctx
                .instant
                .effective_capacity
                .map_or(0.0, |c| (thr * f64::from(c) / 100.0).ceil());
            let eta = ctx
                .forecast
                .and_then(|f| f.to(t))
                .map_or_else(|| "?".into(), minutes);
            let slope = ctx.forecast.map_or(0.0, |f| f.slope_per_min);
            let load = pct(ctx.instant.load_pct);
            let action = ctx.ladder.action(t);
            (
                format!(
                    "{zh}预计{eta}分钟后达到{}（{thr}%，约{people}人）：当前{load}，净流入{slope:+.1}人/分钟。请提前准备：{}",
                    t.name_zh(),
                    action.zh
                ),
                format!(
                    "{en}: forecast to reach {} ({thr}%, about {people} people) in {eta} min; now {load}, net inflow {slope:+.1}/min. Prepare: {}",
                    t.as_str(),
                    action.en
                ),
            )
        }
        AlertKind::Stale => {
            if change == Change::Resolve {
                (
                    format!("{zh}计数恢复，承载等级重新可判"),
                    format!("{en}: counting resumed, the level is known again"),
                )
            } else {
                (
                    format!("{zh}全部计数设备无数据，承载等级未知，请现场核实人数"),
                    format!(
                        "{en}: every counter is silent; the level is unknown, check numbers on site"
                    ),
                )
            }
        }
        AlertKind::SilentDevices => {
            if change == Change::Resolve {
                return (
                    format!("{zh}计数设备全部恢复上报"),
                    format!("{en}: every counter is reporting again"),
                );
            }
            let (n, total) = (ctx.silent.len(), ctx.input.devices.len());
            let (mut items_zh, mut items_en) = (Vec::new(), Vec::new());
            for d in ctx.silent.iter().take(LISTED) {
                let period = d
                    .period
                    .filter(|p| *p > TimeDelta::zero())
                    .unwrap_or(ctx.params.default_period);
                let id = &d.device;
                match d.last_received {
                    None => {
                        items_zh.push(format!("{id}（从未上报）"));
                        items_en.push(format!("{id} (never reported)"));
                    }
                    Some(last) => {
                        let (m, p) = (minutes(ctx.now - last), minutes(period));
                        items_zh.push(format!("{id}（{m}分钟无数据，上报周期{p}分钟）"));
                        items_en.push(format!("{id} (silent for {m} min, period {p} min)"));
                    }
                }
            }
            let list_zh = listed(&items_zh, n, "、", |k| format!("等，另有{k}台"));
            let list_en = listed(&items_en, n, ", ", |k| format!(", +{k} more"));
            (
                format!("{zh}{total}台计数设备中{n}台无数据：{list_zh}"),
                format!("{en}: {n} of {total} counters silent: {list_en}"),
            )
        }
        AlertKind::Silent { device } => (
            format!("{zh}设备{device}恢复上报或已并入计数设备无数据告警"),
            format!("{en}: device {device} reporting again or part of the silent_devices alert"),
        ),
        AlertKind::Drift => {
            if change == Change::Resolve {
                return (
                    format!("{zh}计数漂移恢复正常范围"),
                    format!("{en}: counter drift back within bounds"),
                );
            }
            let (d, e) = (ctx.input.drift_today, ctx.input.entries_today);
            (
                format!("{zh}今日{d}人次离开无对应进入（入园{e}人次），计数器可能漏计，请检查设备"),
                format!(
                    "{en}: {d} exits today had no matching entry ({e} entries); a counter may be missing people"
                ),
            )
        }
        AlertKind::MissingReports => {
            if change == Change::Resolve {
                return (
                    format!("{zh}缺失报告已补齐"),
                    format!("{en}: missing reports repaired"),
                );
            }
            let missing = || ctx.input.devices.iter().filter(|d| d.missing_reports > 0);
            let shown: Vec<String> = missing()
                .take(LISTED)
                .map(|d| format!("{} {}", d.device, d.missing_reports))
                .collect();
            let total = missing().count();
            let n: u64 = ctx.input.devices.iter().map(|d| d.missing_reports).sum();
            let list_zh = listed(&shown, total, ", ", |k| format!("等，另有{k}台"));
            let list_en = listed(&shown, total, ", ", |k| format!(", +{k} more"));
            (
                format!("{zh}有{n}份报告缺失未补（{list_zh}），人数可能不准"),
                format!(
                    "{en}: {n} reports missing and not repaired ({list_en}); counts may be off"
                ),
            )
        }
        AlertKind::SeqJump => {
            if change == Change::Resolve {
                return (
                    format!("{zh}计数器序号恢复正常"),
                    format!("{en}: no seq anomalies in the last 24 h"),
                );
            }
            let jumped = || {
                ctx.input
                    .devices
                    .iter()
                    .filter(|d| super::recent_jump(d, ctx.now))
            };
            let shown: Vec<String> = jumped()
                .take(LISTED)
                .filter_map(|d| {
                    let (at, seq) = d.last_seq_jump?;
                    Some(format!(
                        "{} → {seq} ({})",
                        d.device,
                        at.format("%Y-%m-%d %H:%M UTC")
                    ))
                })
                .collect();
            let total = jumped().count();
            let list_zh = listed(&shown, total, ", ", |k| format!("等，另有{k}台"));
            let list_en = listed(&shown, total, ", ", |k| format!(", +{k} more"));
            (
                format!("{zh}计数器序号异常跳变（{list_zh}），该报告只计一次，请检查设备固件"),
                format!(
                    "{en}: counter seq jumped implausibly far ahead ({list_en}); the report was counted once and the counter goes on; check its firmware"
                ),
            )
        }
        AlertKind::ReportsLost => super::lost::describe((zh, en), &ctx.input.devices, change),
        AlertKind::ClockSkew => {
            if change == Change::Resolve {
                return (
                    format!("{zh}设备时钟恢复正常"),
                    format!("{en}: device clocks back within bounds"),
                );
            }
            let b = ctx.params.clock_skew_max.num_seconds();
            let shown: Vec<String> = ctx
                .skewed
                .iter()
                .take(LISTED)
                .map(|(d, s)| format!("{d} {:+} s", s.num_seconds()))
                .collect();
            let total = ctx.skewed.len();
            let list_zh = listed(&shown, total, ", ", |k| format!("等，另有{k}台"));
            let list_en = listed(&shown, total, ", ", |k| format!(", +{k} more"));
            (
                format!("{zh}设备时钟偏差超过{b}秒：{list_zh}"),
                format!("{en}: device clock off by more than {b} s: {list_en}"),
            )
        }
        AlertKind::Hazard { hazard } => {
            if change == Change::Resolve {
                return (
                    format!("{zh}{hazard}警报解除，恢复调度"),
                    format!("{en}: {hazard} hazard over, open for dispatch again"),
                );
            }
            let h = ctx
                .input
                .hazards
                .iter()
                .filter(|h| h.kind == *hazard && h.is_active(ctx.now))
                .max_by_key(|h| h.severity);
            let (m_zh, m_en) =
                h.map_or(("", ""), |h| (h.message_zh.as_str(), h.message_en.as_str()));
            (
                format!("{zh}{m_zh}（{hazard}），暂停向该区域调度游客"),
                format!("{en}: {m_en} ({hazard}); closed for dispatch"),
            )
        }
    }
}

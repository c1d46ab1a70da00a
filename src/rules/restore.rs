//! Alerts a restore closes: those of spaces no longer configured, and the legacy per-device
//! silence alerts earlier versions saved.

use chrono::{DateTime, Utc};

use super::alert::{AlertKind, Change, OpenAlert, Transition};
use super::level::Level;
use crate::ids::SpaceId;

/// Transitions closing every alert of a space that is no longer configured.
pub(crate) fn resolve_removed(
    space: &SpaceId,
    open: &[OpenAlert],
    now: DateTime<Utc>,
) -> Vec<Transition> {
    open.iter()
        .map(|o| Transition {
            space: space.clone(),
            kind: o.kind.clone(),
            change: Change::Resolve,
            from: o.level,
            to: o.level.map(|_| Level::Normal),
            severity: o.severity,
            at: now,
            since: o.since,
            load_pct: None,
            forecast: None,
            devices: Vec::new(),
            message_zh: format!("{space}已从配置中删除，告警关闭"),
            message_en: format!("{space} is no longer configured; alert closed"),
        })
        .collect()
}

/// Takes the legacy per-device silence alerts out of a restored space's open set, returning
/// their resolves: the space's `silent_devices` alert, opened by the next evaluation, replaces
/// them.
pub(crate) fn retire_legacy(
    space: &SpaceId,
    open: &mut Vec<OpenAlert>,
    now: DateTime<Utc>,
) -> Vec<Transition> {
    let mut out = Vec::new();
    open.retain(|o| {
        let AlertKind::Silent { device } = &o.kind else {
            return true;
        };
        out.push(Transition {
            space: space.clone(),
            kind: o.kind.clone(),
            change: Change::Resolve,
            from: None,
            to: None,
            severity: o.severity,
            at: now,
            since: o.since,
            load_pct: None,
            forecast: None,
            devices: Vec::new(),
            message_zh: format!("{space}设备{device}的单独静默告警关闭，改由本区域的计数设备无数据告警汇总"),
            message_en: format!(
                "{space}: the per-device silence alert of {device} is closed; the space's silent_devices alert lists its silent counters"
            ),
        });
        false
    });
    out
}

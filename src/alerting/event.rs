//! Pure translation of a rule-engine transition into what is stored (alert and transition rows)
//! and what is sent (the self-contained [`AlertEvent`] each subscription receives).

use chrono::{DateTime, Utc};

use crate::registry::Space;
use crate::rules::{AlertKind, Change, Level, Status, Transition};
use crate::store::alerts::TransitionWrite;
use crate::webhook::model::{AlertEvent, AlertState, DEVICES_MAX};

pub fn change_str(c: Change) -> &'static str {
    match c {
        Change::Open => "open",
        Change::Escalate => "escalate",
        Change::DeEscalate => "de_escalate",
        Change::Resolve => "resolve",
    }
}

/// The level an alert is about: the level reached for level alerts, the target for warnings.
fn level_of(t: &Transition) -> Option<Level> {
    match &t.kind {
        AlertKind::InstantLevel | AlertKind::DailyLevel => t.to,
        AlertKind::EarlyWarning { target } | AlertKind::Outlook { target } => Some(*target),
        _ => None,
    }
}

/// The event as sent, minus the per-delivery id; stored with the transition so an escalation or
/// a replay sends exactly what was announced.
pub fn event(
    t: &Transition,
    space: &Space,
    status: Option<&Status>,
    external_url: Option<&str>,
) -> AlertEvent {
    let daily = matches!(t.kind, AlertKind::DailyLevel);
    let level_status = status.map(|s| if daily { &s.daily } else { &s.instant });
    let state = if t.change == Change::Resolve {
        AlertState::Resolved
    } else {
        AlertState::Firing
    };
    AlertEvent {
        delivery_id: String::new(),
        alert_id: t.alert_id(),
        space_id: space.id.to_string(),
        space_name_zh: space.name_zh.clone(),
        space_name_en: space.name_en.clone(),
        kind: t.kind.key(),
        severity: t.severity,
        state,
        level: level_of(t).map(|l| l.as_str().to_owned()),
        load: t.load_pct.map(|p| p / 100.0),
        occupancy: level_status.map(|l| l.count),
        capacity_approved: level_status.and_then(|l| l.approved_capacity),
        capacity_effective: level_status.and_then(|l| l.effective_capacity),
        forecast_minutes_to_red: t
            .forecast
            .as_ref()
            .and_then(|f| f.to_red)
            .map(|d| d.num_seconds() as f64 / 60.0),
        devices: t
            .devices
            .iter()
            .take(DEVICES_MAX)
            .map(|d| d.to_string())
            .collect(),
        devices_total: (!t.devices.is_empty()).then_some(t.devices.len() as u32),
        action_zh: level_status
            .map(|l| l.action_zh.clone())
            .unwrap_or_default(),
        action_en: level_status
            .map(|l| l.action_en.clone())
            .unwrap_or_default(),
        message_zh: t.message_zh.clone(),
        message_en: t.message_en.clone(),
        starts_at: t.since,
        ends_at: (t.change == Change::Resolve).then_some(t.at),
        at: t.at,
        generator_url: external_url
            .map(|u| format!("{}/api/v1/spaces/{}", u.trim_end_matches('/'), space.id)),
        admission: None,
        ladder: level_status.map(|l| l.ladder.clone()),
    }
}

pub fn write(t: &Transition, ev: &AlertEvent) -> TransitionWrite {
    TransitionWrite {
        space_id: t.space.to_string(),
        kind: t.kind.key(),
        change: change_str(t.change),
        severity: t.severity.as_str(),
        level: level_of(t).map(Level::as_str),
        at: t.at,
        since: t.since,
        load_pct: t.load_pct,
        message_zh: t.message_zh.clone(),
        message_en: t.message_en.clone(),
        details: serde_json::to_value(ev).unwrap_or_default(),
    }
}

/// The delivery id of a transition for one subscription: stable across retries and restarts.
pub fn delivery_id(transition_id: i64, subscription: &str) -> String {
    format!("vf-{transition_id}-{subscription}")
}

/// The reminder for an alert nobody acknowledged in time.
pub fn escalation(
    mut ev: AlertEvent,
    alert_id: i64,
    subscription: &str,
    at: DateTime<Utc>,
) -> AlertEvent {
    ev.delivery_id = format!("vf-escalation-{alert_id}-{subscription}");
    ev.message_zh = format!("【升级】无人确认：{}", ev.message_zh);
    ev.message_en = format!("[Escalation] not acknowledged: {}", ev.message_en);
    ev.at = at;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceId, SpaceId};
    use crate::rules::Severity;

    #[test]
    fn silent_devices_event_carries_a_capped_list_and_the_count() {
        let reg = crate::sim::testutil::registry();
        let space = reg.space(reg.space_idx("canyon").unwrap());
        let at = DateTime::from_timestamp(1_777_600_000, 0).unwrap();
        let tr = Transition {
            space: SpaceId::new("canyon"),
            kind: AlertKind::SilentDevices,
            change: Change::Open,
            from: None,
            to: None,
            severity: Severity::Warning,
            at,
            since: at,
            load_pct: None,
            forecast: None,
            devices: (0..120).map(|i| DeviceId::new(format!("g{i}"))).collect(),
            message_zh: String::new(),
            message_en: String::new(),
        };
        let ev = event(&tr, space, None, None);
        assert_eq!(ev.kind, "silent_devices");
        assert_eq!(ev.devices.len(), DEVICES_MAX);
        assert_eq!(
            (ev.devices[0].as_str(), ev.devices_total),
            ("g0", Some(120))
        );
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["devices_total"], 120);
        // Other kinds carry neither field.
        let level = Transition {
            kind: AlertKind::InstantLevel,
            devices: Vec::new(),
            ..tr
        };
        let json = serde_json::to_value(event(&level, space, None, None)).unwrap();
        assert!(json.get("devices").is_none() && json.get("devices_total").is_none());
    }
}

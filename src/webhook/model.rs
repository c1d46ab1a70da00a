//! The alert event handed to delivery: one state transition of one alert, self-contained (names,
//! figures, advice in both languages) so that formats never reach back into the registry or the
//! rule engine. The rule engine builds it; the outbox stores it (it is serde) and replays it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How urgent an alert is: the rule engine's severity, ordered so subscriptions can ask for
/// "`warning` and above".
use crate::rules::Severity;

/// Where the alert stands after this transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    /// Still firing, but someone at the bureau has taken it on.
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }
}

/// How many device ids an event carries at most: a payload stays small whatever the registry.
pub const DEVICES_MAX: usize = 50;

/// One transition of one alert, as delivered to every subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Identifies this transition; the same on every retry, so receivers can de-duplicate
    /// (sent as `webhook-id` and `Idempotency-Key`). E.g. a UUID v7 or `{alert_id}-{transition_no}`.
    pub delivery_id: String,
    /// Identifies the alert across its transitions, e.g. `tianshan-canyon/instant_level`.
    pub alert_id: String,
    pub space_id: String,
    pub space_name_zh: String,
    pub space_name_en: String,
    /// What is being watched: `instant_level`, `daily_level`, `early_warning.red`,
    /// `silent_devices`, …
    pub kind: String,
    pub severity: Severity,
    pub state: AlertState,
    /// Capacity level: `normal`, `blue`, `yellow`, `orange`, `red` (a string so that a county's
    /// own ladder needs no change here).
    #[serde(default)]
    pub level: Option<String>,
    /// Occupancy as a fraction of the effective capacity (0.92 = 92%).
    #[serde(default)]
    pub load: Option<f64>,
    /// People (vehicles in a car park) present, or entered today for daily kinds.
    #[serde(default)]
    pub occupancy: Option<u64>,
    /// LB/T 034 approved maximum capacity.
    #[serde(default)]
    pub capacity_approved: Option<u32>,
    /// The capacity in force now: the approved figure, or a lower policy cap (e.g. 75%).
    #[serde(default)]
    pub capacity_effective: Option<u32>,
    #[serde(default)]
    pub forecast_minutes_to_red: Option<f64>,
    /// The devices the alert is about (`silent_devices`: the silent counters), at most
    /// [`DEVICES_MAX`] of them; `devices_total` counts them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_total: Option<u32>,
    /// What the area should do now (the flow-control plan's step for this level).
    #[serde(default)]
    pub action_zh: String,
    #[serde(default)]
    pub action_en: String,
    #[serde(default)]
    pub message_zh: String,
    #[serde(default)]
    pub message_en: String,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// When this transition happened.
    pub at: DateTime<Utc>,
    /// Link to the alert in visitorflow's UI or API.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// `admission` alerts: the ticket-sales signal a ticketing system obeys (`open`, `paused`,
    /// `closed`), why, and the online places left today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<crate::admission::Signal>,
    /// The ladder the level is read on: `lbt034`, `lbt068` or `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The orange alert used by the golden tests: 天山大峡谷 at 92%, red expected in 25 minutes.
    pub(crate) fn orange() -> AlertEvent {
        AlertEvent {
            delivery_id: "tianshan-canyon/instant_level-3".into(),
            alert_id: "tianshan-canyon/instant_level".into(),
            space_id: "tianshan-canyon".into(),
            space_name_zh: "天山大峡谷".into(),
            space_name_en: "Tianshan Grand Canyon".into(),
            kind: "instant_level".into(),
            severity: Severity::Major,
            state: AlertState::Firing,
            level: Some("orange".into()),
            load: Some(0.92),
            occupancy: Some(4600),
            capacity_approved: Some(6000),
            capacity_effective: Some(5000),
            forecast_minutes_to_red: Some(25.0),
            devices: Vec::new(),
            devices_total: None,
            action_zh: "入口限流，启用分流停车场".into(),
            action_en: "Meter the entrances; open the overflow car park".into(),
            message_zh: "瞬时游客量达到有效承载量的92%".into(),
            message_en: "Visitors present reached 92% of effective capacity".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 5, 1, 2, 10, 0).unwrap(),
            ends_at: None,
            at: Utc.with_ymd_and_hms(2026, 5, 1, 2, 15, 0).unwrap(),
            generator_url: Some(
                "https://vf.example.org/alerts/tianshan-canyon/instant_level".into(),
            ),
            admission: None,
            ladder: None,
        }
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Info < Severity::Warning);
        assert!(Severity::Warning < Severity::Major);
        assert!(Severity::Major < Severity::Critical);
    }

    #[test]
    fn serde_round_trip_and_names() {
        let e = orange();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["severity"], "major");
        assert_eq!(v["state"], "firing");
        assert_eq!(v["starts_at"], "2026-05-01T02:10:00Z");
        let back: AlertEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn optional_fields_may_be_omitted() {
        let e: AlertEvent = serde_json::from_value(serde_json::json!({
            "delivery_id": "d1", "alert_id": "a", "space_id": "s", "space_name_zh": "甲",
            "space_name_en": "A", "kind": "silent_devices", "severity": "warning",
            "state": "resolved", "starts_at": "2026-05-01T00:00:00Z",
            "at": "2026-05-01T01:00:00Z"
        }))
        .unwrap();
        assert_eq!(e.level, None);
        assert_eq!(e.action_zh, "");
    }
}

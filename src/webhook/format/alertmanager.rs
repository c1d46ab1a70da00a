//! Prometheus Alertmanager's webhook payload, version 4, with Alertmanager's own group key and
//! label-set fingerprint, so that tools built for Alertmanager take these as their own.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::text::{Lang, title};
use super::{Language, RenderOptions, rfc3339};
use crate::webhook::model::{AlertEvent, AlertState};

/// Alertmanager's `endsAt` for an alert still firing (Go's zero `time.Time`).
pub const ALERTMANAGER_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(super) fn alertmanager(e: &AlertEvent, opts: &RenderOptions) -> Value {
    let mut labels = BTreeMap::new();
    labels.insert("alertname", e.kind.clone());
    labels.insert("space", e.space_id.clone());
    labels.insert("severity", e.severity.as_str().to_owned());
    labels.insert("kind", e.kind.clone());
    if let Some(level) = &e.level {
        labels.insert("level", level.clone());
    }
    let (summary, description, action) = match opts.language {
        Language::Zh => (
            title(e, Lang::Zh).text(),
            e.message_zh.clone(),
            e.action_zh.clone(),
        ),
        Language::En => (
            title(e, Lang::En).text(),
            e.message_en.clone(),
            e.action_en.clone(),
        ),
        Language::Both => (
            format!(
                "{} / {}",
                title(e, Lang::Zh).text(),
                title(e, Lang::En).text()
            ),
            join_nonempty(&e.message_zh, &e.message_en),
            join_nonempty(&e.action_zh, &e.action_en),
        ),
    };
    let annotations = json!({ "summary": summary, "description": description, "action": action });
    // Alertmanager knows no acknowledgement: an acknowledged alert is still firing.
    let status = match e.state {
        AlertState::Resolved => "resolved",
        AlertState::Firing | AlertState::Acknowledged => "firing",
    };
    let ends_at = match e.state {
        AlertState::Resolved => rfc3339(e.ends_at.unwrap_or(e.at)),
        _ => ALERTMANAGER_ZERO_TIME.to_owned(),
    };
    let group_labels: BTreeMap<&str, String> =
        [("alertname", e.kind.clone()), ("space", e.space_id.clone())].into();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{}", go_label_set(&group_labels)),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": opts.receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": opts.external_url.clone().unwrap_or_default(),
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(e.starts_at),
            "endsAt": ends_at,
            "generatorURL": e.generator_url.clone().unwrap_or_default(),
            "fingerprint": fingerprint(&labels),
        }],
    })
}

/// Alertmanager's fingerprint of a label set (prometheus/common `LabelSet.Fingerprint`): FNV-1a
/// 64 over the names in order, each name and value followed by a 0xff byte, as 16 hex digits. The
/// same labels give the same fingerprint here as in Alertmanager itself.
pub fn fingerprint(labels: &BTreeMap<&str, String>) -> String {
    let mut h = Fnv1a64::new();
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[0xff]);
        h.write(value.as_bytes());
        h.write(&[0xff]);
    }
    format!("{:016x}", h.0)
}

pub(super) struct Fnv1a64(pub(super) u64);

impl Fnv1a64 {
    pub(super) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub(super) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `{name="value", …}` as Go's Alertmanager prints a label set in a group key.
fn go_label_set(labels: &BTreeMap<&str, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", Value::from(v.as_str())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn join_nonempty(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (false, false) => format!("{a}\n{b}"),
        (false, true) => a.to_owned(),
        _ => b.to_owned(),
    }
}

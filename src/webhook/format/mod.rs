//! Message formats: one [`AlertEvent`] rendered as the body a receiver expects. Pure: no clock, no
//! I/O; every text shown to a person is built here, in Chinese, English or both.
//!
//! Chinese is the default: the readers are the county bureau and the areas' duty officers. Times
//! are shown in China Standard Time (UTC+8, no daylight saving), whatever the server's zone.
//!
//! - here: [`Format`], [`Language`] and [`render`], which picks the format's module.
//! - one module per receiver kind: `json` (the bureau's schema), `alertmanager`, `dingtalk`,
//!   `wecom`.
//! - `text`: what a person reads (titles, lines, words, times), shared by the formats.
//!
//! A new format is a variant of [`Format`], a module here and its arm in [`render`]; its
//! signing, if any, goes in `deliver` (`post`) and `sign`.

mod alertmanager;
mod dingtalk;
mod json;
mod text;
mod ticketing;
mod wecom;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::model::AlertEvent;

pub use alertmanager::{ALERTMANAGER_ZERO_TIME, fingerprint};
pub use wecom::WECOM_MAX_CONTENT_BYTES;

/// What a subscriber's endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// visitorflow's own schema, version 1 (see [`render`]).
    #[default]
    Json,
    /// Prometheus Alertmanager's webhook payload, version 4: anything that takes Alertmanager
    /// notifications (incident tools, chat bridges) takes these.
    Alertmanager,
    /// DingTalk custom robot, markdown message.
    #[serde(rename = "dingtalk", alias = "ding_talk")]
    DingTalk,
    /// WeCom (企业微信) group robot, markdown message.
    #[serde(rename = "wecom", alias = "we_com")]
    WeCom,
    /// The ticket-sales signal for ticketing systems (`docs/schemas/ticketing-admission.schema.json`).
    Ticketing,
}

/// Language of the human-readable text. The Json format always carries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Zh,
    En,
    /// Chinese first, then English.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    pub language: Language,
    /// visitorflow's public base URL (Alertmanager's `externalURL`; included in Json).
    pub external_url: Option<String>,
    /// Alertmanager's `receiver`: the subscription's id.
    pub receiver: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            language: Language::Zh,
            external_url: None,
            receiver: "visitorflow".into(),
        }
    }
}

/// A request body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Renders `event` for a `format` endpoint.
///
/// The `Json` format (version "1") is one object; absent values are `null`, never missing:
///
/// ```json
/// {
///   "version": "1",
///   "delivery_id": "tianshan-canyon/instant_level-3",
///   "alert_id": "tianshan-canyon/instant_level",
///   "state": "firing",                  // firing | acknowledged | resolved
///   "severity": "major",                // info | warning | major | critical
///   "kind": "instant_level",
///   "level": "orange",                  // normal | blue | yellow | orange | red | null
///   "space": { "id": "tianshan-canyon", "name_zh": "天山大峡谷", "name_en": "Tianshan Grand Canyon" },
///   "load": 0.92,                       // fraction of the effective capacity
///   "occupancy": 4600,
///   "capacity": { "approved": 6000, "effective": 5000 },
///   "forecast_minutes_to_red": 25.0,
///   "devices": [],                      // silent_devices: the silent counters (at most 50)
///   "devices_total": null,              // how many there are in all
///   "title": { "zh": "【橙色预警】天山大峡谷 瞬时承载 92%", "en": "[ORANGE ALERT] …" },
///   "action": { "zh": "…", "en": "…" },
///   "message": { "zh": "…", "en": "…" },
///   "starts_at": "2026-05-01T02:10:00Z",  // RFC 3339, UTC
///   "ends_at": null,
///   "at": "2026-05-01T02:15:00Z",         // this transition
///   "generator_url": "https://…",
///   "external_url": "https://…"
/// }
/// ```
///
/// A later version may add fields; a receiver should ignore those it does not know.
pub fn render(format: Format, event: &AlertEvent, opts: &RenderOptions) -> Rendered {
    let value = match format {
        Format::Json => json::json_v1(event, opts),
        Format::Alertmanager => alertmanager::alertmanager(event, opts),
        Format::DingTalk => dingtalk::dingtalk(event, opts.language),
        Format::WeCom => wecom::wecom(event, opts.language),
        Format::Ticketing => ticketing::ticketing_v1(event),
    };
    Rendered {
        body: serde_json::to_vec(&value).expect("a serde_json::Value always serializes"),
        content_type: "application/json",
    }
}
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests;

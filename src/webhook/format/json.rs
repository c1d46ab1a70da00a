//! visitorflow's own schema, version 1 (documented at [`super::render`]): both languages, absent
//! values `null`.

use serde_json::{Value, json};

use super::RenderOptions;
use super::rfc3339;
use super::text::{Lang, title};
use crate::webhook::model::AlertEvent;

pub(super) fn json_v1(e: &AlertEvent, opts: &RenderOptions) -> Value {
    let mut v = json!({
        "version": "1",
        "delivery_id": e.delivery_id,
        "alert_id": e.alert_id,
        "state": e.state.as_str(),
        "severity": e.severity.as_str(),
        "kind": e.kind,
        "level": e.level,
        "space": { "id": e.space_id, "name_zh": e.space_name_zh, "name_en": e.space_name_en },
        "load": e.load.filter(|l| l.is_finite()),
        "occupancy": e.occupancy,
        "capacity": { "approved": e.capacity_approved, "effective": e.capacity_effective },
        "forecast_minutes_to_red": e.forecast_minutes_to_red.filter(|m| m.is_finite()),
        "devices": e.devices,
        "devices_total": e.devices_total,
        "title": { "zh": title(e, Lang::Zh).text(), "en": title(e, Lang::En).text() },
        "action": { "zh": e.action_zh, "en": e.action_en },
        "message": { "zh": e.message_zh, "en": e.message_en },
        "starts_at": rfc3339(e.starts_at),
        "ends_at": e.ends_at.map(rfc3339),
        "at": rfc3339(e.at),
        "generator_url": e.generator_url,
        "external_url": opts.external_url,
    });
    // `admission` alerts only: the ticket-sales signal (`state`, `reasons`, `remaining_today`).
    if let (Some(a), Some(obj)) = (&e.admission, v.as_object_mut()) {
        obj.insert("admission".into(), json!(a));
    }
    if let (Some(l), Some(obj)) = (&e.ladder, v.as_object_mut()) {
        obj.insert("ladder".into(), json!(l));
    }
    v
}

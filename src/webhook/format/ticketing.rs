//! The `ticketing` format: the ticket-sales signal as a ticketing system acts on it, nothing
//! else (schema: `docs/schemas/ticketing-admission.schema.json`). Subscribe it with
//! `kinds = ["admission", "oversold"]`; any other kind arrives as a `notice` with its message.

use serde_json::{Value, json};

use super::rfc3339;
use crate::webhook::model::AlertEvent;

pub(super) fn ticketing_v1(e: &AlertEvent) -> Value {
    let (event, sales) = match (e.kind.as_str(), &e.admission) {
        ("admission", Some(a)) => ("admission", Some(a)),
        ("oversold", Some(a)) => ("oversold", Some(a)),
        _ => ("notice", None),
    };
    json!({
        "version": "1",
        "event": event,
        "delivery_id": e.delivery_id,
        "alert_id": e.alert_id,
        "area": { "id": e.space_id, "name_zh": e.space_name_zh, "name_en": e.space_name_en },
        // What every online channel does now: open | paused | closed.
        "sales": sales.map(|a| a.state.as_str()),
        "reasons": sales.map(|a| a.reasons.clone()).unwrap_or_default(),
        "remaining_today": sales.and_then(|a| a.remaining_today),
        "oversold_slots": sales.map(|a| a.oversold.clone()).unwrap_or_default(),
        "since": rfc3339(e.starts_at),
        "at": rfc3339(e.at),
        "message": { "zh": e.message_zh, "en": e.message_en },
    })
}

//! What a ticketing system sends, pure: one message (`{"bookings": [...], "slots": [...]}`, the
//! same over HTTP and MQTT), checked item by item against the area's plan. Bookings are single
//! versions of single bookings (`bookings.rs`); slot totals are for systems that count rather
//! than list — per day, slot and channel, the newest `as_of` wins.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::AreaPlan;
use super::bookings::{Booking, BookingEvent, SlotCounts};
use super::slots::SlotSpec;

/// Items per message, at most (bookings and slot totals together).
pub const MAX_ITEMS: usize = 10_000;

/// One intake message.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TicketMessage {
    /// Booking versions in the order the ticketing system made them. An empty message is a
    /// heartbeat that keeps the area's booking data fresh.
    #[serde(default)]
    pub bookings: Vec<BookingEvent>,
    /// Slot totals, for a channel that reports counts rather than bookings.
    #[serde(default)]
    pub slots: Vec<SlotTotalsEvent>,
    /// The channel the slot totals describe (an OTA, the box office); default the sender (the
    /// token's id over HTTP, `mqtt` over MQTT). Each channel's totals stand beside the others'.
    #[serde(default)]
    pub channel: Option<String>,
}

/// One channel's totals of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlotTotalsEvent {
    pub day: NaiveDate,
    /// The slot's start, `"08:00"`.
    pub slot: String,
    /// Sold and neither checked in nor cancelled.
    pub booked: u64,
    #[serde(default)]
    pub checked_in: u64,
    #[serde(default)]
    pub cancelled: u64,
    /// When the ticketing system counted: a total older than the stored one is ignored.
    pub as_of: DateTime<FixedOffset>,
}

/// Slot totals as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTotals {
    pub day: NaiveDate,
    pub slot: NaiveTime,
    pub counts: SlotCounts,
    pub as_of: DateTime<Utc>,
}

/// One refused item: which list, its position there, its id, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// `bookings` or `slots`.
    pub list: &'static str,
    pub index: usize,
    pub id: String,
    pub reason: String,
}

/// A message's valid items, ready for the store, the channel its slot totals belong to, and the
/// refused items.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub bookings: Vec<Booking>,
    pub slots: Vec<SlotTotals>,
    pub channel: String,
    pub refused: Vec<Refused>,
}

/// Largest total a slot may report: more visitors than any area admits in a day.
const MAX_SLOT_TOTAL: u64 = 10_000_000;

impl TicketMessage {
    pub fn items(&self) -> usize {
        self.bookings.len() + self.slots.len()
    }

    /// Checks every item against the area's plan; `today` is the area's business day, `now`
    /// bounds `as_of` (a total from the future is a clock error, not a count), `sender` is the
    /// default channel. `Err` refuses the whole message (too many items, a bad channel).
    pub fn check(
        &self,
        plan: &AreaPlan,
        today: NaiveDate,
        now: DateTime<Utc>,
        sender: &str,
    ) -> Result<Checked, String> {
        if self.items() > MAX_ITEMS {
            return Err(format!(
                "{} items in one message; at most {MAX_ITEMS}",
                self.items()
            ));
        }
        let mut out = Checked {
            channel: self.channel_or(sender)?.to_owned(),
            ..Checked::default()
        };
        for (index, e) in self.bookings.iter().enumerate() {
            match e.validate(plan, today) {
                Ok(b) => out.bookings.push(b),
                Err(reason) => out.refused.push(Refused {
                    list: "bookings",
                    index,
                    id: e.id.clone(),
                    reason,
                }),
            }
        }
        for (index, e) in self.slots.iter().enumerate() {
            match e.validate(plan, today, now) {
                Ok(t) => out.slots.push(t),
                Err(reason) => out.refused.push(Refused {
                    list: "slots",
                    index,
                    id: format!("{} {}", e.day, e.slot),
                    reason,
                }),
            }
        }
        Ok(out)
    }

    /// The channel the totals are stored under: the message's own, else `sender`.
    pub fn channel_or<'a>(&'a self, sender: &'a str) -> Result<&'a str, String> {
        match self.channel.as_deref().map(str::trim) {
            None => Ok(sender),
            Some(c) if c.is_empty() || c.len() > 64 || c.chars().any(char::is_control) => Err(
                format!("channel {:?}: 1–64 printable characters", self.channel),
            ),
            Some(c) => Ok(c),
        }
    }
}

impl SlotTotalsEvent {
    pub fn validate(
        &self,
        plan: &AreaPlan,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<SlotTotals, String> {
        let Some(slot) = plan.slot_by_key(&self.slot) else {
            let known: Vec<String> = plan.slots.iter().map(SlotSpec::key).collect();
            return Err(format!(
                "no slot {:?} (slots start at {})",
                self.slot,
                known.join(", ")
            ));
        };
        super::bookings::check_day(self.day, today)?;
        let total = self
            .booked
            .saturating_add(self.checked_in)
            .saturating_add(self.cancelled);
        if total > MAX_SLOT_TOTAL {
            return Err(format!(
                "{total} people in one slot (at most {MAX_SLOT_TOTAL})"
            ));
        }
        // PostgreSQL keeps microseconds: compare retries as they will be stored.
        let as_of = self.as_of.to_utc().trunc_subsecs(6);
        if as_of > now + chrono::TimeDelta::minutes(5) {
            return Err(format!("as_of {} is in the future", self.as_of));
        }
        Ok(SlotTotals {
            day: self.day,
            slot: slot.start,
            counts: SlotCounts {
                booked: self.booked,
                checked_in: self.checked_in,
                cancelled: self.cancelled,
            },
            as_of,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::BookingStatus;
    use crate::ids::SpaceIdx;

    fn plan() -> AreaPlan {
        AreaPlan {
            space: SpaceIdx(0),
            slots: vec![SlotSpec::try_from("08:00-10:00".to_owned()).unwrap()],
            weights: vec![1.0],
            walk_in_share: 0.1,
            slot_limit: None,
            confirm_resume: false,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-10-02T09:00:00+08:00")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn one_message_carries_bookings_and_slot_totals_and_refuses_item_by_item() {
        let msg: TicketMessage = serde_json::from_str(
            r#"{"bookings":[
                  {"id":"B1","version":1,"day":"2026-10-02","slot":"08:00","people":3,"status":"booked"},
                  {"id":"B2","version":1,"day":"2026-10-02","slot":"07:00","status":"booked"}],
                "slots":[
                  {"day":"2026-10-02","slot":"08:00","booked":40,"checked_in":12,"as_of":"2026-10-02T08:59:00+08:00"},
                  {"day":"2026-10-02","slot":"08:00","booked":1,"as_of":"2026-10-02T12:00:00+08:00"}],
                "channel":"ota"}"#,
        )
        .unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 10, 2).unwrap();
        let c = msg.check(&plan(), today, now(), "mqtt").unwrap();
        assert_eq!(c.channel, "ota");
        assert_eq!(c.bookings.len(), 1);
        assert_eq!(c.bookings[0].status, BookingStatus::Booked);
        assert_eq!(c.slots.len(), 1);
        assert_eq!(
            (c.slots[0].counts.booked, c.slots[0].counts.checked_in),
            (40, 12)
        );
        let why: Vec<_> = c
            .refused
            .iter()
            .map(|r| (r.list, r.index, r.reason.as_str()))
            .collect();
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].0 == "bookings" && why[0].1 == 1 && why[0].2.contains("no slot"));
        assert!(why[1].0 == "slots" && why[1].1 == 1 && why[1].2.contains("future"));
        assert_eq!(TicketMessage::default().channel_or("mqtt"), Ok("mqtt"));
        let bad = TicketMessage {
            channel: Some(" ".into()),
            ..TicketMessage::default()
        };
        assert!(
            bad.check(&plan(), today, now(), "mqtt")
                .unwrap_err()
                .contains("channel")
        );
        // Unknown fields are a contract error, not silently dropped data.
        assert!(serde_json::from_str::<TicketMessage>(r#"{"booking":[]}"#).is_err());
    }
}

//! Bookings, pure: what a ticketing system reports (one version of one booking), how a new
//! version merges with the stored one (idempotent by booking id and version), and the per-slot
//! tally — booked, checked in, cancelled, no-shows, expected arrivals, remaining, over-sold.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::AreaPlan;
use super::slots::SlotSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Booked,
    Cancelled,
    CheckedIn,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::CheckedIn => "checked_in",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "booked" => Some(BookingStatus::Booked),
            "cancelled" => Some(BookingStatus::Cancelled),
            "checked_in" => Some(BookingStatus::CheckedIn),
            _ => None,
        }
    }
}

/// One version of one booking, as a ticketing system sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BookingEvent {
    /// The ticketing system's booking id (1–128 printable characters).
    pub id: String,
    /// Increases with every change of the booking (≥ 1): a retry repeats it, a reordered older
    /// change carries a lower one.
    pub version: i64,
    /// The local day of the visit.
    pub day: NaiveDate,
    /// The slot's start, `"08:00"`: one of the area's slots.
    pub slot: String,
    /// Visitors on the booking (1–1000).
    #[serde(default = "one")]
    pub people: u32,
    pub status: BookingStatus,
}

fn one() -> u32 {
    1
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: String,
    pub version: i64,
    pub day: NaiveDate,
    pub slot: NaiveTime,
    pub people: u32,
    pub status: BookingStatus,
}

/// Bookings more than this far ahead are refused (a typo in the year, not a booking).
const MAX_DAYS_AHEAD: i64 = 366;

impl BookingEvent {
    /// Checks the event against the area's plan; `today` is the area's local business day.
    pub fn validate(&self, plan: &AreaPlan, today: NaiveDate) -> Result<Booking, String> {
        let id = self.id.trim();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(format!(
                "booking id {:?}: 1–128 printable characters",
                self.id
            ));
        }
        if self.version < 1 {
            return Err(format!("booking {id}: version {} (≥ 1)", self.version));
        }
        if !(1..=1000).contains(&self.people) {
            return Err(format!("booking {id}: people {} (1–1000)", self.people));
        }
        let Some(slot) = plan.slot_by_key(&self.slot) else {
            let known: Vec<String> = plan.slots.iter().map(SlotSpec::key).collect();
            return Err(format!(
                "booking {id}: no slot {:?} (slots start at {})",
                self.slot,
                known.join(", ")
            ));
        };
        check_day(self.day, today).map_err(|e| format!("booking {id}: {e}"))?;
        Ok(Booking {
            id: id.to_owned(),
            version: self.version,
            day: self.day,
            slot: slot.start,
            people: self.people,
            status: self.status,
        })
    }
}

/// A visit day must lie between yesterday (late check-ins after midnight) and a year ahead.
pub(super) fn check_day(day: NaiveDate, today: NaiveDate) -> Result<(), String> {
    let ahead = (day - today).num_days();
    if (-1..=MAX_DAYS_AHEAD).contains(&ahead) {
        Ok(())
    } else {
        Err(format!(
            "day {day} is not between yesterday and a year ahead"
        ))
    }
}

/// Where an incoming version stands against the stored one: the one ordering decision of the
/// intake (booking versions, slot totals' `as_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    New,
    Newer,
    /// The same again (a retry).
    Same,
    /// Older than what is stored (arrived out of order).
    Older,
}

pub fn order<T: Ord>(stored: Option<T>, incoming: T) -> Order {
    match stored.map(|s| incoming.cmp(&s)) {
        None => Order::New,
        Some(std::cmp::Ordering::Greater) => Order::Newer,
        Some(std::cmp::Ordering::Equal) => Order::Same,
        Some(std::cmp::Ordering::Less) => Order::Older,
    }
}

/// What a new version does to the stored booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    Insert(Booking),
    Update(Booking),
    /// The same version again (a retry): nothing changes.
    Duplicate,
    /// An older version arriving late: nothing changes.
    Stale,
}

/// Merges `incoming` into `stored`. A check-in is a fact at the gate: a later cancellation (a
/// refund after entry) or rebooking does not take the visitor back out.
pub fn merge(stored: Option<&Booking>, incoming: Booking) -> Merge {
    match order(stored.map(|s| s.version), incoming.version) {
        Order::New => Merge::Insert(incoming),
        Order::Older => Merge::Stale,
        Order::Same => Merge::Duplicate,
        Order::Newer => {
            let mut b = incoming;
            if stored.is_some_and(|s| s.status == BookingStatus::CheckedIn) {
                b.status = BookingStatus::CheckedIn;
            }
            Merge::Update(b)
        }
    }
}

/// People per status in one slot (what the store sums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlotCounts {
    pub booked: u64,
    pub checked_in: u64,
    pub cancelled: u64,
}

/// One slot of a day as the control room and ticketing see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotState {
    pub slot: SlotSpec,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Online places of the slot (after the walk-in share and any policy cap).
    pub quota: u32,
    /// Sold and not cancelled: still booked, checked in, or no-show.
    pub sold: u64,
    pub checked_in: u64,
    pub cancelled: u64,
    /// Booked, not checked in, and the slot plus the grace period is over.
    pub no_shows: u64,
    /// Booked, not checked in, and may still come.
    pub expected: u64,
    pub remaining: u64,
    /// Sold beyond the quota (a ticketing race or a quota lowered by a cap): shown and alarmed.
    pub oversold: u64,
}

/// The day's slots of one area from its per-slot counts.
pub fn tally(
    plan: &AreaPlan,
    quotas: &[u32],
    counts: &[(NaiveTime, SlotCounts)],
    tz: Tz,
    day: NaiveDate,
    grace: TimeDelta,
    now: DateTime<Utc>,
) -> Vec<SlotState> {
    plan.slots
        .iter()
        .zip(quotas)
        .map(|(slot, &quota)| {
            let c = counts.iter().filter(|(t, _)| *t == slot.start).fold(
                SlotCounts::default(),
                |a, (_, c)| SlotCounts {
                    booked: a.booked + c.booked,
                    checked_in: a.checked_in + c.checked_in,
                    cancelled: a.cancelled + c.cancelled,
                },
            );
            let (starts_at, ends_at) = (slot.start_on(tz, day), slot.end_on(tz, day));
            let over = now >= ends_at + grace;
            let sold = c.booked + c.checked_in;
            SlotState {
                slot: *slot,
                starts_at,
                ends_at,
                quota,
                sold,
                checked_in: c.checked_in,
                cancelled: c.cancelled,
                no_shows: if over { c.booked } else { 0 },
                expected: if over { 0 } else { c.booked },
                remaining: u64::from(quota).saturating_sub(sold),
                oversold: sold.saturating_sub(u64::from(quota)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AreaPlan;
    use crate::ids::SpaceIdx;

    fn plan() -> AreaPlan {
        AreaPlan {
            space: SpaceIdx(0),
            slots: vec![
                SlotSpec::try_from("08:00-10:00".to_owned()).unwrap(),
                SlotSpec::try_from("10:00-12:00".to_owned()).unwrap(),
            ],
            weights: vec![120.0, 120.0],
            walk_in_share: 0.1,
            slot_limit: None,
            confirm_resume: false,
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 10, 2).unwrap()
    }

    fn ev(id: &str, version: i64, status: BookingStatus) -> Booking {
        BookingEvent {
            id: id.into(),
            version,
            day: day(),
            slot: "08:00".into(),
            people: 2,
            status,
        }
        .validate(&plan(), day())
        .unwrap()
    }

    #[test]
    fn versions_make_retries_and_reorderings_harmless() {
        let b1 = ev("B1", 1, BookingStatus::Booked);
        assert_eq!(merge(None, b1.clone()), Merge::Insert(b1.clone()));
        assert_eq!(merge(Some(&b1), b1.clone()), Merge::Duplicate);
        let c2 = ev("B1", 2, BookingStatus::Cancelled);
        assert_eq!(
            merge(Some(&c2), b1.clone()),
            Merge::Stale,
            "a late older version"
        );
        assert_eq!(merge(Some(&b1), c2.clone()), Merge::Update(c2));
    }

    #[test]
    fn a_cancellation_after_check_in_keeps_the_visitor_counted() {
        let inside = ev("B2", 2, BookingStatus::CheckedIn);
        let refund = ev("B2", 3, BookingStatus::Cancelled);
        let Merge::Update(b) = merge(Some(&inside), refund) else {
            panic!("a newer version updates");
        };
        assert_eq!((b.status, b.version), (BookingStatus::CheckedIn, 3));
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let base = BookingEvent {
            id: "B".into(),
            version: 1,
            day: day(),
            slot: "08:00".into(),
            people: 1,
            status: BookingStatus::Booked,
        };
        let bad = |f: &dyn Fn(&mut BookingEvent)| {
            let mut e = base.clone();
            f(&mut e);
            e.validate(&plan(), day()).unwrap_err()
        };
        assert!(bad(&|e| e.slot = "09:00".into()).contains("no slot \"09:00\""));
        assert!(bad(&|e| e.version = 0).contains("version"));
        assert!(bad(&|e| e.people = 0).contains("people"));
        assert!(bad(&|e| e.id = " ".into()).contains("booking id"));
        assert!(bad(&|e| e.day = day() + TimeDelta::days(400)).contains("year ahead"));
        assert!(base.validate(&plan(), day()).is_ok());
    }

    #[test]
    fn a_slot_counts_no_shows_after_its_grace_and_shows_oversale() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let t = |h: u32, m: u32| {
            day()
                .and_hms_opt(h, m, 0)
                .unwrap()
                .and_local_timezone(tz)
                .unwrap()
                .to_utc()
        };
        let at = |h: u32| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        let counts = [
            (
                at(8),
                SlotCounts {
                    booked: 30,
                    checked_in: 60,
                    cancelled: 5,
                },
            ),
            (
                at(10),
                SlotCounts {
                    booked: 120,
                    checked_in: 0,
                    cancelled: 0,
                },
            ),
        ];
        let grace = TimeDelta::minutes(30);
        let s = tally(&plan(), &[100, 100], &counts, tz, day(), grace, t(10, 15));
        // 08:00–10:00 ended 15 min ago: its 30 booked may still come.
        assert_eq!(
            (s[0].sold, s[0].expected, s[0].no_shows, s[0].remaining),
            (90, 30, 0, 10)
        );
        assert_eq!((s[1].sold, s[1].remaining, s[1].oversold), (120, 0, 20));
        let s = tally(&plan(), &[100, 100], &counts, tz, day(), grace, t(10, 30));
        assert_eq!((s[0].expected, s[0].no_shows), (0, 30));
        assert_eq!(s[0].starts_at, t(8, 0));
    }
}

//! Admission: timed-entry reservations (分时预约) and what they mean for the crowd, without I/O.
//! This module owns the reservation plan of each area ([`Reservations`], from `[admission]`), the
//! slot quotas (`slots.rs`), what ticketing sends (`intake.rs`: one message of bookings and slot
//! totals, checked item by item) and bookings — validation, idempotent merge by id and version,
//! the per-slot tally and the day's expected arrivals (`bookings.rs`). The store keeps the bookings;
//! the API takes them in; alerting adds the expected arrivals to the daily load.

mod bookings;
mod config;
mod intake;
mod slots;
mod state;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

pub use bookings::{
    Booking, BookingEvent, BookingStatus, Merge, Order, SlotCounts, SlotState, merge, order, tally,
};
pub use config::{AdmissionConfig, AreaReservations};
pub use intake::{Checked, MAX_ITEMS, Refused, SlotTotals, SlotTotalsEvent, TicketMessage};
pub use slots::{SlotSpec, check_slots, online_places, quotas};
pub use state::{OversoldTracker, Sales, Signal, Tracker, decide, held, remaining_today};

use crate::ids::SpaceIdx;
use crate::registry::Registry;

#[derive(Debug, thiserror::Error)]
#[error("[admission] {0}")]
pub struct AdmissionError(pub String);

/// One area's validated reservation plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaPlan {
    pub space: SpaceIdx,
    pub slots: Vec<SlotSpec>,
    /// One per slot.
    pub weights: Vec<f64>,
    pub walk_in_share: f64,
    pub slot_limit: Option<u32>,
    /// Sales resume only after an operator confirms.
    pub confirm_resume: bool,
}

impl AreaPlan {
    /// The slot starting at `key` (`"08:00"`).
    pub fn slot_by_key(&self, key: &str) -> Option<&SlotSpec> {
        self.slots.iter().find(|s| s.key() == key.trim())
    }

    /// Each slot's online quota for an effective daily capacity.
    pub fn quotas(&self, effective_daily: u32) -> Vec<u32> {
        quotas(
            online_places(effective_daily, self.walk_in_share),
            &self.weights,
            self.slot_limit,
        )
    }
}

/// Every area's plan, indexed by space, and the county-wide settings.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    plans: Vec<Option<AreaPlan>>,
    /// Space id → index into `plans`, for callers on another registry (a partition's).
    by_id: std::collections::HashMap<String, usize>,
    pub no_show_grace: TimeDelta,
    pub stale_after: TimeDelta,
}

impl Reservations {
    /// Checks `[admission]` against the registry: known spaces with a daily capacity (quotas
    /// derive from it), ordered slots, shares in range. Every problem is listed.
    pub fn build(cfg: &AdmissionConfig, reg: &Registry) -> Result<Self, AdmissionError> {
        let mut problems = Vec::new();
        let share_ok = |s: f64| (0.0..1.0).contains(&s);
        if !share_ok(cfg.walk_in_share) {
            problems.push(format!(
                "walk_in_share = {}: 0 ≤ share < 1",
                cfg.walk_in_share
            ));
        }
        let mut plans = vec![None; reg.spaces.len()];
        let mut by_id = std::collections::HashMap::new();
        for (id, area) in &cfg.spaces {
            let Some(s) = reg.space_idx(id.as_str()) else {
                problems.push(format!("spaces.{id}: no such space"));
                continue;
            };
            if reg.space(s).daily_capacity.unwrap_or(0) == 0 {
                problems.push(format!(
                    "spaces.{id}: no daily_capacity, so no quota can be derived"
                ));
            }
            if let Err(e) = check_slots(&area.slots) {
                problems.push(format!("spaces.{id}: {e}"));
            }
            let walk_in_share = area.walk_in_share.unwrap_or(cfg.walk_in_share);
            if !share_ok(walk_in_share) {
                problems.push(format!(
                    "spaces.{id}: walk_in_share = {walk_in_share}: 0 ≤ share < 1"
                ));
            }
            let weights = match &area.weights {
                Some(w)
                    if w.len() != area.slots.len()
                        || w.iter().any(|v| !v.is_finite() || *v <= 0.0) =>
                {
                    problems.push(format!(
                        "spaces.{id}: weights: one positive weight per slot ({} slots)",
                        area.slots.len()
                    ));
                    continue;
                }
                Some(w) => w.clone(),
                None => area.slots.iter().map(|s| s.minutes() as f64).collect(),
            };
            by_id.insert(id.to_string(), s.get());
            plans[s.get()] = Some(AreaPlan {
                space: s,
                slots: area.slots.clone(),
                weights,
                walk_in_share,
                slot_limit: area.slot_limit,
                confirm_resume: area
                    .resume_needs_confirmation
                    .unwrap_or(cfg.resume_needs_confirmation),
            });
        }
        if !problems.is_empty() {
            return Err(AdmissionError(problems.join("; ")));
        }
        Ok(Self {
            plans,
            by_id,
            no_show_grace: TimeDelta::minutes(i64::from(cfg.no_show_grace_min)),
            stale_after: TimeDelta::seconds(cfg.stale_after_s.min(i64::MAX as u64) as i64),
        })
    }

    pub fn plan(&self, space: SpaceIdx) -> Option<&AreaPlan> {
        self.plans.get(space.get()).and_then(Option::as_ref)
    }

    /// The plan of the space with this id (its `space` is an index into the registry the plans
    /// were built on).
    pub fn plan_by_id(&self, id: &str) -> Option<&AreaPlan> {
        self.by_id.get(id).and_then(|&i| self.plans[i].as_ref())
    }

    pub fn plans(&self) -> impl Iterator<Item = &AreaPlan> {
        self.plans.iter().flatten()
    }

    /// Whether any area's resumption needs an operator.
    pub fn any_confirmation(&self) -> bool {
        self.plans().any(|p| p.confirm_resume)
    }

    pub fn is_empty(&self) -> bool {
        self.plans.iter().all(Option::is_none)
    }

    /// Whether booking data last received at `last` is too old to trust at `now`.
    pub fn is_stale(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        last.is_none_or(|l| now - l > self.stale_after)
    }
}

/// Visitors booked for `day` who have not arrived and may still come: the sum of the slots'
/// `expected`.
pub fn expected_arrivals(slots: &[SlotState]) -> u64 {
    slots.iter().map(|s| s.expected).sum()
}

/// The expected visitors of each slot by arrival window (its start to its end plus the no-show
/// grace), for the rules' inflow forecast.
pub fn booked_arrivals(slots: &[SlotState], grace: TimeDelta) -> Vec<crate::rules::BookedArrivals> {
    slots
        .iter()
        .filter(|s| s.expected > 0)
        .map(|s| crate::rules::BookedArrivals {
            from: s.starts_at,
            until: s.ends_at + grace,
            people: s.expected,
        })
        .collect()
}

/// The local day bookings are checked against.
pub fn today(reg: &Registry, space: SpaceIdx, now: DateTime<Utc>) -> NaiveDate {
    crate::core::business_day(reg.tz, reg.space(space).opens_at, now)
}

/// The area's current day for its slots: the later of the day its counts are in (`counted`,
/// from the live figures) and the wall clock's business day — the clock's before the first
/// report of a morning, the counts' when they run ahead of the clock (a simulated day).
pub fn current_day(
    reg: &Registry,
    space: SpaceIdx,
    counted: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> NaiveDate {
    let clock = today(reg, space, now);
    counted.map_or(clock, |d| d.max(clock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const AREA: &str = include_str!("../../tests/data/one-area.toml");

    fn build(admission: &str) -> Result<Reservations, AdmissionError> {
        let toml = AREA.replace(
            "kind = \"scenic_area\"",
            "kind = \"scenic_area\"\ndaily_capacity = 10000",
        );
        let cfg = Config::from_toml(&format!("{toml}\n{admission}")).unwrap();
        Reservations::build(&cfg.admission, &cfg.registry().unwrap())
    }

    #[test]
    fn plans_are_checked_against_the_registry() {
        let r =
            build("[admission.spaces.area]\nslots = [\"08:00-12:00\", \"12:00-14:00\"]\n").unwrap();
        let p = r.plans().next().unwrap();
        assert_eq!(p.quotas(10_000), vec![6_000, 3_000]);
        assert_eq!(r.no_show_grace, TimeDelta::minutes(30));
        let e = build(
            "[admission]\nwalk_in_share = 1.5\n[admission.spaces.nowhere]\nslots = [\"08:00-09:00\"]\n\
             [admission.spaces.county]\nslots = [\"09:00-10:00\", \"08:00-09:30\"]\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "walk_in_share = 1.5",
            "spaces.nowhere: no such space",
            "spaces.county: no daily_capacity",
            "overlaps",
        ] {
            assert!(e.contains(want), "{e}");
        }
        assert!(Config::from_toml("[admission.spaces.area]\nslots = [\"8-9\"]\n").is_err());
    }

    #[test]
    fn the_booking_day_rolls_at_the_areas_opening_in_local_time() {
        let toml = AREA.replace(
            "kind = \"scenic_area\"",
            "kind = \"scenic_area\"\ndaily_capacity = 10000\nopens_at = \"06:00\"",
        );
        let cfg =
            Config::from_toml(&format!("[county]\ntime_zone = \"Asia/Shanghai\"\n{toml}")).unwrap();
        let reg = cfg.registry().unwrap();
        let area = reg.space_idx("area").unwrap();
        let local = |d: u32, h: u32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 10, d)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
                .and_local_timezone(reg.tz)
                .unwrap()
                .to_utc()
        };
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        // 05:59 on the 3rd (21:59 UTC on the 2nd) still belongs to the 2nd's business day; 06:00
        // starts the 3rd's, whatever the UTC date says.
        assert_eq!(today(&reg, area, local(3, 5, 59)), day(2));
        assert_eq!(today(&reg, area, local(3, 6, 0)), day(3));
        assert_eq!(today(&reg, area, local(3, 7, 30)), day(3));
        // Before the first report of the 3rd the counts are still on the 2nd: the clock's day.
        assert_eq!(
            current_day(&reg, area, Some(day(2)), local(3, 6, 5)),
            day(3)
        );
        // Counts running ahead of the clock (a simulated day): theirs.
        assert_eq!(
            current_day(&reg, area, Some(day(4)), local(3, 6, 5)),
            day(4)
        );
    }
}

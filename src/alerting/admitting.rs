//! The admission side of the rules loop: each timed-entry area's bookings read once per
//! evaluation (expected arrivals into the daily load, the day's slots), and the ticket-sales
//! signal ([`admission::decide`]) turned into `admission` alert transitions by the
//! [`Tracker`], restored from the open alerts so a restart neither re-sends nor forgets.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, DurationRound, NaiveDate, NaiveTime, TimeDelta, Utc};

use super::AlertingError;
use crate::admission::{self, OversoldTracker, Reservations, Signal, SlotState, Tracker};
use crate::ids::SpaceIdx;
use crate::live::TicketsNow;
use crate::registry::Registry;
use crate::rules::{SpaceInput, Status, Transition};
use crate::store;

/// What one evaluation read: each timed-entry area's slots of its current day, and its latest
/// confirmation that sales may resume.
#[derive(Debug, Default)]
pub(super) struct DaySlots {
    slots: HashMap<SpaceIdx, Vec<SlotState>>,
    confirmed: HashMap<SpaceIdx, DateTime<Utc>>,
    /// Areas whose sales an operator holds.
    held: HashMap<SpaceIdx, DateTime<Utc>>,
}

/// What one evaluation read of the bookings: each area's current day and slot counts, and the
/// slots tallied from them as the evaluation's parts are built.
#[derive(Debug, Default)]
pub(super) struct Booked {
    areas: HashMap<SpaceIdx, (NaiveDate, Vec<(NaiveTime, admission::SlotCounts)>)>,
    pub slots: DaySlots,
}

/// The transitions of the areas whose signal changed (with the status decided on), and the
/// signals to send with them.
pub(super) type Changes = (
    Vec<(Transition, Option<Arc<Status>>)>,
    HashMap<SpaceIdx, Signal>,
);

pub(super) struct Admitting {
    reservations: Arc<Reservations>,
    tracker: Tracker,
    oversold: OversoldTracker,
    /// Each area's sales as last decided, for the board.
    now: HashMap<SpaceIdx, TicketsNow>,
}

impl Admitting {
    /// Restores which areas were paused or closed from the open `admission` alerts.
    pub async fn start(
        reservations: Arc<Reservations>,
        client: &tokio_postgres::Client,
        reg: &Registry,
    ) -> Result<Self, AlertingError> {
        let open = if reservations.is_empty() {
            Vec::new()
        } else {
            store::alerts::open_admission(client).await?
        };
        let restored: Vec<(SpaceIdx, String, Signal, DateTime<Utc>)> = open
            .into_iter()
            .filter_map(|o| {
                let s = reg.space_idx(&o.space_id)?;
                let signal = o.signal()?;
                Some((s, o.kind, signal, o.started_at))
            })
            .collect();
        let of_kind = |k: &'static str| {
            restored
                .iter()
                .filter(move |(_, kind, _, _)| kind == k)
                .map(|(s, _, sig, at)| (*s, sig.clone(), *at))
        };
        let tracker = Tracker::restore(of_kind("admission"));
        let oversold =
            OversoldTracker::restore(of_kind("oversold").map(|(s, sig, at)| (s, sig.oversold, at)));
        Ok(Self {
            reservations,
            tracker,
            oversold,
            now: HashMap::new(),
        })
    }

    /// The timed-entry areas: every evaluation covers them, since it reads their bookings.
    pub fn areas(&self) -> impl Iterator<Item = SpaceIdx> + '_ {
        self.reservations.plans().map(|p| p.space)
    }

    /// Reads the areas' bookings of their current day (`counted`: the business day an area's
    /// counts are in, if any) and the areas' confirmations and holds. [`Booked::apply`] then
    /// adds them to the inputs of each part of an evaluation.
    pub async fn read_bookings(
        &self,
        client: &tokio_postgres::Client,
        reg: &Registry,
        counted: impl Fn(SpaceIdx) -> Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<Booked, AlertingError> {
        let mut out = Booked::default();
        if self.reservations.is_empty() {
            return Ok(out);
        }
        if self.reservations.any_confirmation() {
            out.slots.confirmed = store::bookings::last_confirmations(client)
                .await?
                .into_iter()
                .filter_map(|(id, at)| Some((reg.space_idx(&id)?, at)))
                .collect();
        }
        out.slots.held = store::bookings::active_holds(client)
            .await?
            .into_iter()
            .filter_map(|(id, at)| Some((reg.space_idx(&id)?, at)))
            .collect();
        let areas: Vec<(SpaceIdx, NaiveDate)> = self
            .reservations
            .plans()
            .map(|p| {
                (
                    p.space,
                    admission::current_day(reg, p.space, counted(p.space), now),
                )
            })
            .collect();
        let keys: Vec<(&str, NaiveDate)> = areas
            .iter()
            .map(|(s, day)| (reg.space(*s).id.as_str(), *day))
            .collect();
        let rows = store::bookings::slot_counts(client, &keys).await?;
        out.areas = areas
            .iter()
            .zip(&keys)
            .map(|(&(s, day), (id, _))| {
                let counts = rows
                    .iter()
                    .filter(|r| r.space_id == *id && r.day == day)
                    .map(store::bookings::SlotRow::counts)
                    .collect();
                (s, (day, counts))
            })
            .collect();
        Ok(out)
    }

    /// Adds each area among `which` (sorted; `inputs` are theirs) its booked visitors who may
    /// still come to its daily load (stale booking data keeps its last figures, never "no
    /// bookings"), and keeps the day's slots.
    pub fn apply(
        &self,
        reg: &Registry,
        booked: &mut Booked,
        which: &[SpaceIdx],
        inputs: &mut [SpaceInput],
        now: DateTime<Utc>,
    ) {
        for plan in self.reservations.plans() {
            let Ok(i) = which.binary_search(&plan.space) else {
                continue;
            };
            let Some((day, counts)) = booked.areas.get(&plan.space) else {
                continue;
            };
            let input = &mut inputs[i];
            let effective = crate::rules::effective_daily(input.daily_capacity, &input.caps, now);
            let quotas = plan.quotas(effective.unwrap_or(0));
            let grace = self.reservations.no_show_grace;
            let slots = admission::tally(plan, &quotas, counts, reg.tz, *day, grace, now);
            input.booked = admission::booked_arrivals(&slots, grace);
            booked.slots.slots.insert(plan.space, slots);
        }
    }

    /// Each space's ticket sales as last decided (`None` where no timed entry is sold).
    pub fn tickets(&self, spaces: usize) -> Vec<Option<TicketsNow>> {
        (0..spaces)
            .map(|i| self.now.get(&SpaceIdx(i as u32)).copied())
            .collect()
    }

    /// The areas whose ticket-sales signal changed, as transitions (with the status they were
    /// decided on) and the signals to send with them.
    pub fn changes(
        &mut self,
        reg: &Registry,
        statuses: &[Option<Arc<Status>>],
        slots: &DaySlots,
        now: DateTime<Utc>,
    ) -> Changes {
        // As PostgreSQL keeps it, so a `since` restored after a restart is the one first sent.
        let now = now
            .duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(now);
        let mut transitions = Vec::new();
        let mut signals = HashMap::new();
        for plan in self.reservations.plans() {
            let Some(Some(status)) = statuses.get(plan.space.get()) else {
                continue;
            };
            let day = slots.slots.get(&plan.space);
            // What can still be sold: slots that have not ended.
            let to_come: Vec<&SlotState> = day
                .map(|d| d.iter().filter(|s| s.ends_at > now).collect())
                .unwrap_or_default();
            let remaining = day.map(|d| admission::remaining_today(d, now));
            let sold_out = !to_come.is_empty() && remaining == Some(0);
            let over: Vec<(String, u64)> = to_come
                .iter()
                .filter(|s| s.oversold > 0)
                .map(|s| (s.slot.to_string(), s.oversold))
                .collect();
            let mut signal = admission::decide(status, sold_out, remaining);
            signal.oversold = over.iter().map(|(n, _)| n.clone()).collect();
            if slots.held.contains_key(&plan.space) {
                signal = admission::held(signal);
            } else if plan.confirm_resume {
                let confirmed = slots.confirmed.get(&plan.space).copied();
                signal = self
                    .tracker
                    .hold_until_confirmed(plan.space, signal, confirmed);
            }
            self.now.insert(
                plan.space,
                TicketsNow {
                    sales: signal.state,
                    remaining_today: remaining.unwrap_or(0),
                },
            );
            let id = &reg.space(plan.space).id;
            let sales = self.tracker.step(plan.space, id, signal.clone(), now);
            let oversale = self.oversold.step(plan.space, id, &over, now);
            for t in sales.into_iter().chain(oversale) {
                transitions.push((t, Some(Arc::clone(status))));
                signals.insert(plan.space, signal.clone());
            }
        }
        (transitions, signals)
    }
}

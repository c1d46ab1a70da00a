//! The simulated ticketing system, pure: for every area selling timed entry (`[admission]`), it
//! sells the day's slots up to their quotas, cancels some bookings, checks booked visitors in as
//! the traffic model brings them to the gates, and leaves the rest as no-shows — as ticketing
//! messages (`{prefix}/{space}/tickets`) for [`super::simulate`] to publish. Walk-ins are the
//! arrivals it does not check in.
//!
//! The shape of a day: 80% of an area's visitors book; 70% of each slot's sales are made before
//! the day starts (at the first tick), the rest evenly until the slot ends; 4% of bookings are
//! cancelled before their slot, 6% never come. Booked arrivals at the gates are checked in
//! against the slots open then (start to end plus the no-show grace).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::traffic::TrafficModel;
use crate::admission::{AreaPlan, BookingEvent, BookingStatus, Reservations, TicketMessage};
use crate::ids::SpaceIdx;
use crate::registry::Registry;

/// Share of an area's visitors who book.
pub const BOOKED_SHARE: f64 = 0.8;
const ADVANCE_SHARE: f64 = 0.7;
const CANCEL_RATE: f64 = 0.04;
const NO_SHOW_RATE: f64 = 0.06;
/// Bookings per message: well under the ingester's payload limit.
const CHUNK: usize = 1_000;
/// With nothing to say, a message this often keeps the booking data fresh.
const HEARTBEAT: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, Clone)]
struct SimBooking {
    id: String,
    version: i64,
    slot: usize,
    people: u32,
    status: BookingStatus,
    no_show: bool,
    cancel_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct AreaSales {
    space: SpaceIdx,
    plan: AreaPlan,
    quotas: Vec<u32>,
    day: Option<NaiveDate>,
    /// People each slot will sell today, and has sold.
    target: Vec<u64>,
    sold: Vec<u64>,
    bookings: Vec<SimBooking>,
    entered_seen: u64,
    last_message: Option<DateTime<Utc>>,
}

/// Every timed-entry area's ticket office.
#[derive(Debug, Clone)]
pub struct TicketSim {
    tz: Tz,
    grace: TimeDelta,
    rng: StdRng,
    areas: Vec<AreaSales>,
}

/// What the ticket offices did over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketStats {
    pub booked: u64,
    pub cancelled: u64,
    pub checked_in: u64,
    pub messages: u64,
}

impl TicketSim {
    /// Ticket offices for `reservations`' areas at their approved daily capacity.
    pub fn new(reservations: &Reservations, registry: &Registry, seed: u64) -> Self {
        let areas = reservations
            .plans()
            .map(|plan| AreaSales {
                space: plan.space,
                quotas: plan.quotas(registry.space(plan.space).daily_capacity.unwrap_or(0)),
                plan: plan.clone(),
                day: None,
                target: Vec::new(),
                sold: Vec::new(),
                bookings: Vec::new(),
                entered_seen: 0,
                last_message: None,
            })
            .collect();
        Self {
            tz: registry.tz,
            grace: reservations.no_show_grace,
            // Its own stream ("tickets"), so adding it leaves the traffic of a seed unchanged.
            rng: StdRng::seed_from_u64(seed ^ 0x0074_6963_6b65_7473),
            areas,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// One tick `[start, end)`, after `model` has stepped over it: each area's messages.
    pub fn step(
        &mut self,
        model: &TrafficModel,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        stats: &mut TicketStats,
    ) -> Vec<(SpaceIdx, TicketMessage)> {
        let day = start.with_timezone(&self.tz).date_naive();
        let mut out = Vec::new();
        for a in &mut self.areas {
            let Some((demand, entered)) = model.demand(a.space) else {
                continue;
            };
            let mut events = Vec::new();
            if a.day != Some(day) {
                a.open_day(day, demand, &mut self.rng, end, self.tz, &mut events);
            }
            a.sell(&mut self.rng, start, end, self.tz, &mut events);
            a.cancel(end, &mut events);
            let arrived = entered.saturating_sub(a.entered_seen);
            a.entered_seen = entered;
            a.check_in(arrived, end, self.tz, self.grace, &mut events);
            for e in &events {
                match e.status {
                    BookingStatus::Booked => stats.booked += u64::from(e.people),
                    BookingStatus::Cancelled => stats.cancelled += u64::from(e.people),
                    BookingStatus::CheckedIn => stats.checked_in += u64::from(e.people),
                }
            }
            let quiet = events.is_empty();
            if quiet && a.last_message.is_some_and(|t| end - t < HEARTBEAT) {
                continue;
            }
            a.last_message = Some(end);
            if quiet {
                out.push((a.space, TicketMessage::default()));
            }
            for chunk in events.chunks(CHUNK) {
                out.push((
                    a.space,
                    TicketMessage {
                        bookings: chunk.to_vec(),
                        ..TicketMessage::default()
                    },
                ));
            }
        }
        stats.messages += out.len() as u64;
        out
    }
}

impl AreaSales {
    fn open_day(
        &mut self,
        day: NaiveDate,
        demand: f64,
        rng: &mut StdRng,
        end: DateTime<Utc>,
        tz: Tz,
        events: &mut Vec<BookingEvent>,
    ) {
        self.day = Some(day);
        self.bookings.clear();
        self.entered_seen = 0;
        let total: f64 = self.plan.weights.iter().sum();
        self.target = self
            .plan
            .weights
            .iter()
            .zip(&self.quotas)
            .map(|(w, &q)| ((demand * BOOKED_SHARE * w / total).round() as u64).min(u64::from(q)))
            .collect();
        self.sold = vec![0; self.target.len()];
        for k in 0..self.target.len() {
            let advance = (self.target[k] as f64 * ADVANCE_SHARE).round() as u64;
            self.sell_slot(k, advance, rng, end, tz, events);
        }
    }

    /// The rest of each slot's sales, evenly until it ends.
    fn sell(
        &mut self,
        rng: &mut StdRng,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: Tz,
        events: &mut Vec<BookingEvent>,
    ) {
        let Some(day) = self.day else { return };
        for k in 0..self.target.len() {
            let closes = self.plan.slots[k].end_on(tz, day);
            let left = self.target[k].saturating_sub(self.sold[k]);
            if left == 0 || closes <= start {
                continue;
            }
            let share = (end - start).num_seconds() as f64 / (closes - start).num_seconds() as f64;
            let n = (left as f64 * share.min(1.0) + rng.random::<f64>()).floor() as u64;
            self.sell_slot(k, n.min(left), rng, end, tz, events);
        }
    }

    fn sell_slot(
        &mut self,
        k: usize,
        people: u64,
        rng: &mut StdRng,
        end: DateTime<Utc>,
        tz: Tz,
        events: &mut Vec<BookingEvent>,
    ) {
        let Some(day) = self.day else { return };
        let opens = self.plan.slots[k].start_on(tz, day);
        let mut left = people;
        while left > 0 {
            let n = rng.random_range(1..=4u64).min(left);
            left -= n;
            self.sold[k] += n;
            let cancel_at = (rng.random::<f64>() < CANCEL_RATE && opens > end).then(|| {
                let span = (opens - end).num_seconds().max(1);
                end + TimeDelta::seconds(rng.random_range(0..span))
            });
            let b = SimBooking {
                id: format!(
                    "sim-{}-{}-{}",
                    day.format("%Y%m%d"),
                    self.space.get(),
                    self.bookings.len()
                ),
                version: 1,
                slot: k,
                people: n as u32,
                status: BookingStatus::Booked,
                no_show: rng.random::<f64>() < NO_SHOW_RATE,
                cancel_at,
            };
            events.push(self.event(&b, day));
            self.bookings.push(b);
        }
    }

    fn cancel(&mut self, end: DateTime<Utc>, events: &mut Vec<BookingEvent>) {
        let Some(day) = self.day else { return };
        for i in 0..self.bookings.len() {
            let b = &mut self.bookings[i];
            if b.status == BookingStatus::Booked && b.cancel_at.is_some_and(|t| t <= end) {
                b.status = BookingStatus::Cancelled;
                b.version += 1;
                let b = self.bookings[i].clone();
                events.push(self.event(&b, day));
            }
        }
    }

    /// Checks in booked visitors among `arrived`, in the slots open at `end`.
    fn check_in(
        &mut self,
        arrived: u64,
        end: DateTime<Utc>,
        tz: Tz,
        grace: TimeDelta,
        events: &mut Vec<BookingEvent>,
    ) {
        let Some(day) = self.day else { return };
        let mut budget = (arrived as f64 * BOOKED_SHARE).round() as u64;
        let open: Vec<bool> = self
            .plan
            .slots
            .iter()
            .map(|s| s.start_on(tz, day) <= end && end < s.end_on(tz, day) + grace)
            .collect();
        for i in 0..self.bookings.len() {
            if budget == 0 {
                break;
            }
            let b = &mut self.bookings[i];
            if b.status != BookingStatus::Booked || b.no_show || !open[b.slot] {
                continue;
            }
            if u64::from(b.people) > budget {
                continue;
            }
            budget -= u64::from(b.people);
            b.status = BookingStatus::CheckedIn;
            b.version += 1;
            let b = self.bookings[i].clone();
            events.push(self.event(&b, day));
        }
    }

    fn event(&self, b: &SimBooking, day: NaiveDate) -> BookingEvent {
        BookingEvent {
            id: b.id.clone(),
            version: b.version,
            day,
            slot: self.plan.slots[b.slot].key(),
            people: b.people,
            status: b.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const COUNTY: &str = include_str!("../../config/county.toml");

    #[test]
    fn a_day_sells_cancels_checks_in_and_leaves_no_shows() {
        let cfg = Config::from_toml(COUNTY).unwrap();
        let reg = cfg.registry().unwrap();
        let res = Reservations::build(&cfg.admission, &reg).unwrap();
        assert!(!res.is_empty(), "the shipped county sells timed entry");
        let mut model = TrafficModel::new(&reg, 7);
        let mut tickets = TicketSim::new(&res, &reg, 7);
        let tick = std::time::Duration::from_secs(60);
        let day = NaiveDate::from_ymd_opt(2026, 10, 2).unwrap();
        let mut t = day
            .and_hms_opt(6, 0, 0)
            .unwrap()
            .and_local_timezone(reg.tz)
            .unwrap()
            .to_utc();
        let mut stats = TicketStats::default();
        let mut versions = std::collections::HashMap::<String, i64>::new();
        let area = res.plans().next().unwrap();
        let plan = area.clone();
        for _ in 0..(16 * 60) {
            model.step(t.with_timezone(&reg.tz), tick);
            let end = t + TimeDelta::seconds(60);
            for (space, msg) in tickets.step(&model, t, end, &mut stats) {
                assert!(msg.bookings.len() <= CHUNK);
                let checked = msg
                    .check(res.plan(space).unwrap(), day, end, "sim")
                    .unwrap();
                assert!(checked.refused.is_empty(), "{:?}", checked.refused);
                for b in &msg.bookings {
                    let v = versions.entry(b.id.clone()).or_insert(0);
                    assert!(b.version > *v, "versions increase");
                    *v = b.version;
                }
            }
            t = end;
        }
        assert!(
            stats.booked > 0 && stats.cancelled > 0 && stats.checked_in > 0,
            "{stats:?}"
        );
        // Cancelled and no-show visitors are never checked in: fewer check-ins than sales.
        assert!(
            stats.checked_in + stats.cancelled < stats.booked,
            "{stats:?}"
        );
        // No slot is sold past its quota.
        let sales = &tickets
            .areas
            .iter()
            .find(|a| a.space == plan.space)
            .unwrap();
        for (sold, quota) in sales.sold.iter().zip(&sales.quotas) {
            assert!(*sold <= u64::from(*quota));
        }
    }
}

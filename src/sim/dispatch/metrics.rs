//! What one policy's day comes to ([`Metrics`], tallied from the finished day), both policies side
//! by side ([`Comparison`]) and the table printed from them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use super::scenario::{MINUTES, Policy};
use super::step::Sim;
use crate::ids::SpaceId;

/// One policy's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub policy: Policy,
    /// Visitors who set out (hub walk-ins and self-drive).
    pub visitors: u32,
    /// Visitors admitted to an area.
    pub served: u32,
    /// Area-minutes at red (occupancy ≥ 100% of instantaneous capacity), summed over areas.
    pub red_minutes: u32,
    pub red_minutes_by_area: BTreeMap<SpaceId, u32>,
    /// Refused at a full gate or a full car park (or told not to drive up).
    pub turned_away: u32,
    pub turned_away_at_gates: u32,
    pub turned_away_at_car_parks: u32,
    /// Left a hub queue after running out of patience.
    pub gave_up: u32,
    /// Still queueing or on a shuttle at 22:00: `visitors = served + turned_away + gave_up +
    /// still_waiting`.
    pub still_waiting: u32,
    /// Minutes waited at a hub, over everyone who queued (boarded, gave up or still waiting).
    pub wait_avg_min: f64,
    pub wait_p95_min: u32,
    /// Accepted a diversion to another area.
    pub diverted: u32,
    /// Drivers intercepted to a hub's park-and-ride.
    pub park_and_ride: u32,
    /// Vehicle departures.
    pub shuttle_departures: u32,
    /// Highest occupancy ÷ capacity of each area with hub or self-drive demand.
    pub peak_utilisation: BTreeMap<SpaceId, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub seed: u64,
    pub date: NaiveDate,
    pub no_advice: Metrics,
    pub advice_followed: Metrics,
}

impl Sim<'_> {
    pub(super) fn finish(mut self) -> Metrics {
        let end = MINUTES - 1;
        let mut still_waiting = 0;
        for h in 0..self.queues.len() {
            for r in 0..self.queues[h].len() {
                for p in std::mem::take(&mut self.queues[h][r]) {
                    self.waits[end - p.arrived] += u64::from(p.people);
                    still_waiting += p.people;
                }
            }
        }
        still_waiting += self.transit[MINUTES..]
            .iter()
            .flatten()
            .flat_map(|t| t.parties.iter())
            .map(|p| p.people)
            .sum::<u32>();
        let total: u64 = self.waits.iter().sum();
        let weighted: u64 = self
            .waits
            .iter()
            .enumerate()
            .map(|(w, n)| w as u64 * n)
            .sum();
        let mut seen = 0;
        let mut p95 = 0;
        for (w, n) in self.waits.iter().enumerate() {
            seen += n;
            if total > 0 && seen * 100 >= total * 95 {
                p95 = w as u32;
                break;
            }
        }
        let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
        Metrics {
            policy: self.policy,
            visitors: self.visitors,
            served: self.served,
            red_minutes: self.areas.iter().map(|a| a.red).sum(),
            red_minutes_by_area: self
                .areas
                .iter()
                .filter(|a| a.red > 0)
                .map(|a| (a.id.clone(), a.red))
                .collect(),
            turned_away: self.turned_gate + self.turned_park,
            turned_away_at_gates: self.turned_gate,
            turned_away_at_car_parks: self.turned_park,
            gave_up: self.gave_up,
            still_waiting,
            wait_avg_min: if total > 0 {
                round(weighted as f64 / total as f64, 1)
            } else {
                0.0
            },
            wait_p95_min: p95,
            diverted: self.diverted,
            park_and_ride: self.park_and_ride,
            shuttle_departures: self.departures,
            peak_utilisation: self
                .areas
                .iter()
                .filter(|a| a.demanded)
                .map(|a| (a.id.clone(), round(f64::from(a.peak) / f64::from(a.cap), 3)))
                .collect(),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (&self.no_advice, &self.advice_followed);
        writeln!(
            f,
            "Golden-Week day {} (seed {}), Urumqi County registry + example dispatch model",
            self.date, self.seed
        )?;
        writeln!(
            f,
            "{:<48} {:>12} {:>16}",
            "", "no advice", "advice followed"
        )?;
        let rows: [(&str, String, String); 13] = [
            (
                "visitors setting out",
                a.visitors.to_string(),
                b.visitors.to_string(),
            ),
            (
                "served (admitted to an area)",
                a.served.to_string(),
                b.served.to_string(),
            ),
            (
                "area-minutes at red (≥100%)",
                a.red_minutes.to_string(),
                b.red_minutes.to_string(),
            ),
            (
                "turned away",
                a.turned_away.to_string(),
                b.turned_away.to_string(),
            ),
            (
                "  at a full gate",
                a.turned_away_at_gates.to_string(),
                b.turned_away_at_gates.to_string(),
            ),
            (
                "  at a full car park",
                a.turned_away_at_car_parks.to_string(),
                b.turned_away_at_car_parks.to_string(),
            ),
            (
                "gave up waiting at a hub",
                a.gave_up.to_string(),
                b.gave_up.to_string(),
            ),
            (
                "diverted to another area",
                a.diverted.to_string(),
                b.diverted.to_string(),
            ),
            (
                "drivers sent to park-and-ride",
                a.park_and_ride.to_string(),
                b.park_and_ride.to_string(),
            ),
            (
                "hub wait, average (min)",
                format!("{:.1}", a.wait_avg_min),
                format!("{:.1}", b.wait_avg_min),
            ),
            (
                "hub wait, p95 (min)",
                a.wait_p95_min.to_string(),
                b.wait_p95_min.to_string(),
            ),
            (
                "shuttle departures (vehicles)",
                a.shuttle_departures.to_string(),
                b.shuttle_departures.to_string(),
            ),
            (
                "peak utilisation, Tianshan Grand Canyon",
                format!(
                    "{:.0}%",
                    100.0
                        * a.peak_utilisation
                            .get("tianshan-canyon")
                            .copied()
                            .unwrap_or(0.0)
                ),
                format!(
                    "{:.0}%",
                    100.0
                        * b.peak_utilisation
                            .get("tianshan-canyon")
                            .copied()
                            .unwrap_or(0.0)
                ),
            ),
        ];
        for (label, x, y) in rows {
            // Pad by characters, not bytes (labels may hold non-ASCII).
            let pad = 48usize.saturating_sub(label.chars().count());
            writeln!(f, "{label}{:pad$} {x:>12} {y:>16}", "")?;
        }
        Ok(())
    }
}

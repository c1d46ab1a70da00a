//! What each route needs and gets: the visitors waiting for it (the hub's queue by destination, or
//! split by the routes' shares), the vehicles chosen for them within the spare and the fleet at
//! home, and why the rest are held, with the wording of that reason.

use crate::dispatch::advice::{Reason, ReasonCode, VehicleUse};
use crate::dispatch::inputs::HubInput;
use crate::dispatch::model::{FleetConfig, Hub};

/// Why visitors for an open route are left waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Filling,
    NoSpare,
    NoVehicles,
}

/// Vehicles chosen for one route.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pick {
    pub vehicles: Vec<VehicleUse>,
    pub seats: u32,
    pub passengers: u32,
    pub held: Option<Held>,
}

impl Pick {
    pub fn count(&self) -> u32 {
        self.vehicles.iter().map(|v| v.count).sum()
    }
}

/// Chooses vehicles for `demand` people, never more seats in all than `seat_budget` and never a
/// vehicle not in `avail` (decremented; same order as `fleet`, largest seats first). Repeatedly:
/// if one vehicle can take everyone left and would be `min_fill` full (or the queue is `overdue`),
/// the smallest such vehicle goes and the queue is empty; otherwise the largest vehicle that the
/// queue fills goes full; otherwise the rest wait for the vehicle to fill (`Filling`).
pub(crate) fn pick_vehicles(
    demand: u32,
    seat_budget: Option<u32>,
    fleet: &[FleetConfig],
    avail: &mut [u32],
    min_fill: f64,
    overdue: bool,
) -> Pick {
    let mut pick = Pick::default();
    loop {
        let remaining = demand - pick.passengers;
        if remaining == 0 {
            break;
        }
        let left = seat_budget.map(|b| b.saturating_sub(pick.seats));
        let fits: Vec<usize> = (0..fleet.len())
            .filter(|&k| avail[k] > 0 && left.is_none_or(|l| fleet[k].seats <= l))
            .collect();
        if fits.is_empty() {
            pick.held = Some(if avail.iter().any(|&n| n > 0) {
                Held::NoSpare
            } else {
                Held::NoVehicles
            });
            break;
        }
        let seats = |k: usize| fleet[k].seats;
        // Smallest vehicle that takes everyone left and would be full enough.
        let one_for_all = fits.iter().rev().copied().find(|&k| {
            seats(k) >= remaining
                && (overdue || f64::from(remaining) >= min_fill * f64::from(seats(k)))
        });
        let (k, passengers) = match (
            one_for_all,
            fits.iter().copied().find(|&k| seats(k) <= remaining),
        ) {
            (Some(k), _) => (k, remaining),
            (None, Some(k)) => (k, seats(k)),
            (None, None) => {
                pick.held = Some(Held::Filling);
                break;
            }
        };
        avail[k] -= 1;
        pick.seats += seats(k);
        pick.passengers += passengers;
        match pick.vehicles.iter_mut().find(|v| v.seats == seats(k)) {
            Some(v) => v.count += 1,
            None => pick.vehicles.push(VehicleUse {
                seats: seats(k),
                count: 1,
            }),
        }
    }
    pick
}

/// Splits a count by weights (largest remainder; ties to the earlier entry).
pub(crate) fn split(total: u32, weights: &[f64]) -> Vec<u32> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| f64::from(total) * w / sum).collect();
    let mut out: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = total.saturating_sub(out.iter().sum::<u32>());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for k in order {
        if left == 0 {
            break;
        }
        out[k] += 1;
        left -= 1;
    }
    out
}

/// Visitors waiting per route of `hub`, and whether each route's first passenger is overdue.
pub(super) fn demand(hub: &Hub, input: Option<&HubInput>, max_hold_min: u32) -> Vec<(u32, bool)> {
    let Some(i) = input else {
        return vec![(0, false); hub.routes.len()];
    };
    let overdue = |w: Option<u32>| w.is_some_and(|w| w >= max_hold_min);
    if i.by_area.is_empty() {
        let shares: Vec<f64> = hub.routes.iter().map(|r| r.share).collect();
        split(i.queue, &shares)
            .into_iter()
            .map(|n| (n, overdue(i.oldest_wait_min)))
            .collect()
    } else {
        hub.routes
            .iter()
            .map(|r| {
                let q = i.by_area.get(&r.area).copied().unwrap_or_default();
                (q.people, overdue(q.oldest_wait_min.or(i.oldest_wait_min)))
            })
            .collect()
    }
}

pub(super) fn held_reason(cause: Held, zh: &str, en: &str, left: u32, smallest: u32) -> Reason {
    let (code, rz, re) = match cause {
        Held::Filling => (
            ReasonCode::Filling,
            format!("前往{zh}的{left}名游客等待满座发车"),
            format!("{left} visitors for {en} wait for the shuttle to fill"),
        ),
        Held::NoSpare => (
            ReasonCode::NoSpare,
            format!("{zh}本趟到达时余量不足一车（{smallest}座），{left}名游客暂缓发车"),
            format!(
                "{en} has no room for another shuttle ({smallest} seats) on arrival: {left} visitors held"
            ),
        ),
        Held::NoVehicles => (
            ReasonCode::NoVehicles,
            format!("接驳车均在途，前往{zh}的{left}名游客等待车辆返回"),
            format!("every shuttle is out: {left} visitors for {en} wait for one to return"),
        ),
    };
    Reason {
        code,
        zh: rz,
        en: re,
    }
}

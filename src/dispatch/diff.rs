//! What changed between two rounds of advice, so delivery (webhooks, DingTalk) speaks only when a
//! dispatcher has something new to do. Compared: pauses (per hub, route and mode, with their reason
//! code), diversions (started, ended, or a different set or first choice of alternatives — a mere
//! reshuffle of the second and third choices is not news), the hub-wide hold, and the number of
//! shuttles to send on a route when it moves by more than a tolerance (default one vehicle: a
//! minute-to-minute wobble of ±1 bus as loads fill is what a live screen is for). Held routes and
//! the figures in explanations change every minute and are never news on their own. Time-based
//! hysteresis (a level must drop for N minutes before a route resumes) belongs to the rule engine
//! that sets the levels.

use std::collections::BTreeMap;

use serde::Serialize;

use super::advice::{Diversion, HubAdvice, Mode, PausedRoute, Reason};
use crate::ids::SpaceId;

/// `diff` ignores shuttle changes of up to this many vehicles.
pub const DEFAULT_VEHICLE_TOLERANCE: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdviceChange {
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Paused {
        hub: SpaceId,
        route: String,
        area: SpaceId,
        mode: Mode,
        reason: Reason,
    },
    /// Still paused, for another reason (e.g. orange became closed).
    PauseReasonChanged {
        hub: SpaceId,
        route: String,
        area: SpaceId,
        mode: Mode,
        reason: Reason,
    },
    Resumed {
        hub: SpaceId,
        route: String,
        area: SpaceId,
        mode: Mode,
    },
    DiversionStarted {
        hub: SpaceId,
        from_area: SpaceId,
        to: Vec<SpaceId>,
        reason: Reason,
    },
    DiversionChanged {
        hub: SpaceId,
        from_area: SpaceId,
        to: Vec<SpaceId>,
        reason: Reason,
    },
    DiversionEnded {
        hub: SpaceId,
        from_area: SpaceId,
    },
    Shuttles {
        hub: SpaceId,
        route: String,
        area: SpaceId,
        from: u32,
        to: u32,
    },
    HoldStarted {
        hub: SpaceId,
        reason: Reason,
    },
    HoldEnded {
        hub: SpaceId,
    },
}

/// [`diff_with_tolerance`] with [`DEFAULT_VEHICLE_TOLERANCE`].
pub fn diff(prev: &[HubAdvice], next: &[HubAdvice]) -> Option<AdviceChange> {
    diff_with_tolerance(prev, next, DEFAULT_VEHICLE_TOLERANCE)
}

/// The changes from `prev` to `next` worth telling; `None` when there are none. A hub missing from
/// one side counts as a hub with no advice.
pub fn diff_with_tolerance(
    prev: &[HubAdvice],
    next: &[HubAdvice],
    tolerance: u32,
) -> Option<AdviceChange> {
    let by_hub = |a: &[HubAdvice]| -> BTreeMap<SpaceId, usize> {
        a.iter()
            .enumerate()
            .map(|(i, h)| (h.hub.clone(), i))
            .collect()
    };
    let (pi, ni) = (by_hub(prev), by_hub(next));
    let mut hubs: Vec<&SpaceId> = pi.keys().chain(ni.keys()).collect();
    hubs.sort();
    hubs.dedup();
    let mut changes = Vec::new();
    for hub in hubs {
        let p = pi.get(hub).map(|&i| &prev[i]);
        let n = ni.get(hub).map(|&i| &next[i]);
        hub_changes(hub, p, n, tolerance, &mut changes);
    }
    (!changes.is_empty()).then_some(AdviceChange { changes })
}

fn hub_changes(
    hub: &SpaceId,
    prev: Option<&HubAdvice>,
    next: Option<&HubAdvice>,
    tolerance: u32,
    out: &mut Vec<Change>,
) {
    // Pauses, keyed by (route, mode).
    fn pauses(a: Option<&HubAdvice>) -> BTreeMap<(String, Mode), &PausedRoute> {
        a.map(|a| {
            a.paused
                .iter()
                .map(|p| ((p.route.clone(), p.mode), p))
                .collect()
        })
        .unwrap_or_default()
    }
    let (pp, np) = (pauses(prev), pauses(next));
    for (key, n) in &np {
        match pp.get(key) {
            None => out.push(Change::Paused {
                hub: hub.clone(),
                route: n.route.clone(),
                area: n.area.clone(),
                mode: n.mode,
                reason: n.reason.clone(),
            }),
            Some(p) if p.reason.code != n.reason.code => out.push(Change::PauseReasonChanged {
                hub: hub.clone(),
                route: n.route.clone(),
                area: n.area.clone(),
                mode: n.mode,
                reason: n.reason.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, p) in &pp {
        if !np.contains_key(key) {
            out.push(Change::Resumed {
                hub: hub.clone(),
                route: p.route.clone(),
                area: p.area.clone(),
                mode: p.mode,
            });
        }
    }

    // Diversions, keyed by source area: the first choice and the set of alternatives matter.
    fn diversions(a: Option<&HubAdvice>) -> BTreeMap<SpaceId, &Diversion> {
        a.map(|a| {
            a.diversions
                .iter()
                .map(|d| (d.from_area.clone(), d))
                .collect()
        })
        .unwrap_or_default()
    }
    let (pd, nd) = (diversions(prev), diversions(next));
    let shape = |d: &Diversion| {
        let mut set: Vec<SpaceId> = d.to.iter().map(|t| t.area.clone()).collect();
        let first = set.first().cloned();
        set.sort();
        (first, set)
    };
    for (from, n) in &nd {
        let to: Vec<SpaceId> = n.to.iter().map(|t| t.area.clone()).collect();
        match pd.get(from) {
            None => out.push(Change::DiversionStarted {
                hub: hub.clone(),
                from_area: from.clone(),
                to,
                reason: n.reason.clone(),
            }),
            Some(p) if shape(p) != shape(n) => out.push(Change::DiversionChanged {
                hub: hub.clone(),
                from_area: from.clone(),
                to,
                reason: n.reason.clone(),
            }),
            Some(_) => {}
        }
    }
    for from in pd.keys() {
        if !nd.contains_key(from) {
            out.push(Change::DiversionEnded {
                hub: hub.clone(),
                from_area: from.clone(),
            });
        }
    }

    // Shuttles per route, absent = 0.
    let sends = |a: Option<&HubAdvice>| {
        a.map(|a| {
            a.shuttles
                .iter()
                .map(|s| (s.route.clone(), (s.area.clone(), s.send_now)))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default()
    };
    let (ps, ns) = (sends(prev), sends(next));
    let mut routes: Vec<&String> = ps.keys().chain(ns.keys()).collect();
    routes.sort();
    routes.dedup();
    for route in routes {
        let (p, n) = (ps.get(route), ns.get(route));
        let (from, to) = (p.map_or(0, |x| x.1), n.map_or(0, |x| x.1));
        if from.abs_diff(to) > tolerance
            && let Some((area, _)) = n.or(p)
        {
            out.push(Change::Shuttles {
                hub: hub.clone(),
                route: route.clone(),
                area: area.clone(),
                from,
                to,
            });
        }
    }

    match (
        prev.and_then(|a| a.hold.as_ref()),
        next.and_then(|a| a.hold.as_ref()),
    ) {
        (None, Some(r)) => out.push(Change::HoldStarted {
            hub: hub.clone(),
            reason: r.clone(),
        }),
        (Some(_), None) => out.push(Change::HoldEnded { hub: hub.clone() }),
        _ => {}
    }
}

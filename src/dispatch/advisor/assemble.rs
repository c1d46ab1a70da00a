//! One hub's advice from the route decisions of [`super::advise`]: the shuttles to send, the routes
//! held or paused (shuttle and self-drive traffic), the diversions to offer and the hub-wide hold,
//! each with its reason and figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::area::{AreaView, Pause, all_full, car_parks, pause_reason};
use super::shuttles::{Held, Pick, held_reason};
use crate::dispatch::advice::{
    CarParkFigure, Diversion, Explanation, HeldRoute, HubAdvice, Mode, PausedRoute, Reason,
    ReasonCode, ShuttleAdvice,
};
use crate::dispatch::inputs::Inputs;
use crate::dispatch::model::{DispatchModel, Hub, PolicyConfig};

/// How [`super::advise`] decided one route.
pub(super) enum Outcome {
    Paused(Pause),
    /// Considered for dispatch: what it got and the seats nearer routes had taken before it.
    Open {
        pick: Pick,
        committed: u32,
    },
}

/// Everything one hub's advice is assembled from: the round's views and decisions, for this hub.
pub(super) struct HubCtx<'a> {
    pub(super) p: &'a PolicyConfig,
    pub(super) model: &'a DispatchModel,
    pub(super) inputs: &'a Inputs,
    pub(super) views: &'a BTreeMap<&'a str, AreaView<'a>>,
    /// Seats given to each area in this round, over every hub.
    pub(super) committed: &'a BTreeMap<&'a str, u32>,
    pub(super) hub: &'a Hub,
    pub(super) demand: &'a [(u32, bool)],
    pub(super) outcomes: &'a [Option<Outcome>],
    pub(super) route_parks: &'a [Vec<CarParkFigure>],
    pub(super) vehicles_available: u32,
}

impl HubCtx<'_> {
    pub(super) fn assemble(&self, now: DateTime<Utc>) -> HubAdvice {
        let mut shuttles = Vec::new();
        let mut held = Vec::new();
        let mut paused = Vec::new();
        // Routes whose visitors need somewhere else: (route index, visitors, explanation, pause).
        let mut divert: Vec<(usize, u32, Explanation, Option<Pause>)> = Vec::new();
        let mut blocked_by_room = 0;
        let mut waiting_otherwise = false;
        for (r, route) in self.hub.routes.iter().enumerate() {
            let v = &self.views[route.area.as_str()];
            let (want, _) = self.demand[r];
            let (zh, en) = v.names;
            match self.outcomes[r].as_ref().expect("every route decided") {
                Outcome::Paused(why) => {
                    let mut e = v.explain(self.p, route.travel_min, 0, want);
                    e.car_parks = self.route_parks[r].clone();
                    paused.push(PausedRoute {
                        route: route.id.clone(),
                        area: route.area.clone(),
                        mode: Mode::Shuttle,
                        reason: pause_reason(*why, zh, en, self.p, route.travel_min),
                        explanation: e.clone(),
                    });
                    if want > 0 {
                        blocked_by_room += 1;
                    }
                    divert.push((r, want, e, Some(*why)));
                }
                Outcome::Open { pick, committed } => {
                    let e = v.explain(self.p, route.travel_min, *committed, want);
                    if pick.passengers > 0 {
                        let unbounded = e.spare.is_none();
                        let n = pick.count();
                        let (pz, pe) = (pick.passengers, pick.seats);
                        let reason = if unbounded {
                            Reason {
                                code: ReasonCode::DispatchUnbounded,
                                zh: format!(
                                    "发车{n}辆（共{pe}座）前往{zh}，载客{pz}人；该景区未配置承载量，发车未受限，请录入核定承载量"
                                ),
                                en: format!(
                                    "send {n} shuttle(s) ({pe} seats) to {en} with {pz} visitors; no capacity is configured for it, so dispatch is not bounded: enter the approved capacity"
                                ),
                            }
                        } else {
                            let s = e.spare.unwrap_or(0);
                            Reason {
                                code: ReasonCode::Dispatch,
                                zh: format!(
                                    "发车{n}辆（共{pe}座）前往{zh}，载客{pz}人；本趟到达时余量{s}人，占用{pe}座"
                                ),
                                en: format!(
                                    "send {n} shuttle(s) ({pe} seats) to {en} with {pz} visitors; {s} spare for this trip, {pe} of it taken now"
                                ),
                            }
                        };
                        shuttles.push(ShuttleAdvice {
                            route: route.id.clone(),
                            area: route.area.clone(),
                            send_now: n,
                            seats: pick.seats,
                            passengers: pick.passengers,
                            vehicles: pick.vehicles.clone(),
                            travel_min: route.travel_min,
                            reason,
                            explanation: e.clone(),
                        });
                    }
                    let left = want - pick.passengers;
                    if let Some(cause) = pick.held.filter(|_| left > 0) {
                        let smallest = self.hub.fleet.last().map_or(0, |f| f.seats);
                        let reason = held_reason(cause, zh, en, left, smallest);
                        if cause == Held::NoSpare {
                            blocked_by_room += 1;
                            divert.push((r, left, e.clone(), None));
                        } else {
                            waiting_otherwise = true;
                        }
                        held.push(HeldRoute {
                            route: route.id.clone(),
                            area: route.area.clone(),
                            waiting: left,
                            reason,
                            explanation: e,
                        });
                    }
                }
            }
            // Self-drive: every car park serving the area full.
            let area = &self.model.areas[&route.area];
            let figs = car_parks(&area.car_parks, self.inputs, self.p.car_park_full_at);
            if all_full(&figs) {
                let shuttle_open = matches!(self.outcomes[r], Some(Outcome::Open { .. }));
                let mut e = v.explain(self.p, route.travel_min, 0, want);
                e.car_parks = figs;
                let (rz, re) = if shuttle_open {
                    (
                        format!("{zh}自驾停车场已满：自驾游客请在本集散中心停车，换乘接驳车前往"),
                        format!(
                            "the car parks serving {en} are full: drivers should park at this hub and take the shuttle"
                        ),
                    )
                } else {
                    (
                        format!("{zh}自驾停车场已满且接驳暂停：自驾游客请按分流建议前往其他景区"),
                        format!(
                            "the car parks serving {en} are full and its shuttles are paused: drivers should follow the diversion"
                        ),
                    )
                };
                paused.push(PausedRoute {
                    route: route.id.clone(),
                    area: route.area.clone(),
                    mode: Mode::SelfDrive,
                    reason: Reason {
                        code: ReasonCode::SelfDriveFull,
                        zh: rz,
                        en: re,
                    },
                    explanation: e,
                });
            }
        }

        let diversions: Vec<Diversion> = divert
            .into_iter()
            .map(|(r, visitors, explanation, why)| self.diversion(r, visitors, explanation, why))
            .collect();
        let total: u32 = self.demand.iter().map(|d| d.0).sum();
        let hold = (total > 0
            && shuttles.is_empty()
            && !waiting_otherwise
            && blocked_by_room > 0
            && diversions.iter().all(|d| d.to.is_empty()))
        .then(|| Reason {
            code: ReasonCode::HoldAll,
            zh: format!(
                "所有目的地均已满或暂停，且无可分流的景区：请{total}名游客在{}等候，并发布等候公告",
                self.hub.name_zh
            ),
            en: format!(
                "every destination is full or paused and no alternative has room: hold all {total} visitors at {} and announce the wait",
                self.hub.name_en
            ),
        });
        HubAdvice {
            hub: self.hub.id.clone(),
            at: now,
            queue: self.inputs.hubs.get(&self.hub.id).map_or(0, |i| i.queue),
            vehicles_available: self.vehicles_available,
            shuttles,
            held,
            paused,
            diversions,
            hold,
        }
    }
}

//! Each area as the advisor sees it in one call: its live figures, the visitors already on the
//! road to it, the forecast net inflow and so the spare for a trip of a given length; the figures
//! of the car parks serving it; and why a route to it pauses, with the wording of that reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::dispatch::advice::{CarParkFigure, Explanation, Reason, ReasonCode};
use crate::dispatch::inputs::{AreaInput, Inputs};
use crate::dispatch::model::{DispatchModel, Level, PolicyConfig, Route};
use crate::ids::SpaceId;

/// One area's view for this call.
pub(super) struct AreaView<'a> {
    pub(super) input: Option<&'a AreaInput>,
    on_road: u32,
    /// Forecast net inflow, people per minute, never negative.
    rate: f64,
    pub(super) names: (&'a str, &'a str),
}

impl AreaView<'_> {
    fn inflow(&self, travel_min: u32) -> u32 {
        (self.rate * f64::from(travel_min)).ceil() as u32
    }

    /// Spare for a trip of `travel_min`, with `committed` seats already given this round.
    pub(super) fn spare(&self, travel_min: u32, target: f64, committed: u32) -> Option<i64> {
        let a = self.input?;
        let cap = a.capacity?;
        let room = (f64::from(cap) * target).floor() as i64;
        Some(
            room - i64::from(a.occupancy)
                - i64::from(self.on_road)
                - i64::from(committed)
                - i64::from(self.inflow(travel_min)),
        )
    }

    pub(super) fn explain(
        &self,
        p: &PolicyConfig,
        travel_min: u32,
        committed: u32,
        queue: u32,
    ) -> Explanation {
        Explanation {
            occupancy: self.input.map(|a| a.occupancy),
            capacity: self.input.and_then(|a| a.capacity),
            spare: self.spare(travel_min, p.target_utilisation, committed),
            on_road: self.on_road + committed,
            forecast_min: self.input.and_then(|a| a.minutes_to_red),
            forecast_inflow: self.inflow(travel_min),
            queue,
            level: self.input.map(|a| a.level),
            travel_min,
            car_parks: Vec::new(),
        }
    }
}

pub(super) fn view<'a>(
    model: &'a DispatchModel,
    inputs: &'a Inputs,
    now: DateTime<Utc>,
) -> BTreeMap<&'a str, AreaView<'a>> {
    model
        .areas
        .values()
        .map(|area| {
            let input = inputs.areas.get(&area.id);
            let rate = input.map_or(0.0, |a| {
                let r = a.net_inflow_per_min.or_else(|| {
                    let (cap, m) = (a.capacity?, a.minutes_to_red?);
                    (m > 0.0).then(|| f64::from(cap.saturating_sub(a.occupancy)) / m)
                });
                r.filter(|r| r.is_finite()).unwrap_or(0.0).max(0.0)
            });
            let v = AreaView {
                input,
                on_road: inputs.on_road.passengers_to(area.id.as_str(), now),
                rate,
                names: (area.name_zh.as_str(), area.name_en.as_str()),
            };
            (area.id.as_str(), v)
        })
        .collect()
}

pub(super) fn car_parks(ids: &[SpaceId], inputs: &Inputs, full_at: f64) -> Vec<CarParkFigure> {
    ids.iter()
        .map(|id| {
            let c = inputs.car_parks.get(id);
            let capacity = c.and_then(|c| c.capacity);
            let occupancy = c.map(|c| c.occupancy);
            let full = c.is_some_and(|c| {
                c.closed
                    || capacity
                        .is_some_and(|cap| f64::from(c.occupancy) >= f64::from(cap) * full_at)
            });
            CarParkFigure {
                car_park: id.clone(),
                occupancy,
                capacity,
                full,
            }
        })
        .collect()
}

pub(super) fn all_full(figs: &[CarParkFigure]) -> bool {
    !figs.is_empty() && figs.iter().all(|f| f.full)
}

/// Why a route sends nothing at all, in order of precedence.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pause {
    NoData,
    Closed,
    Level(Level),
    RedOnArrival(f64),
    CarParksFull,
}

pub(super) fn pause_of(
    p: &PolicyConfig,
    route: &Route,
    v: &AreaView<'_>,
    parks: &[CarParkFigure],
) -> Option<Pause> {
    let Some(a) = v.input else {
        return Some(Pause::NoData);
    };
    if a.closed {
        return Some(Pause::Closed);
    }
    if a.level >= p.pause_at {
        return Some(Pause::Level(a.level));
    }
    if let Some(m) = a.minutes_to_red
        && m <= f64::from(route.travel_min)
    {
        return Some(Pause::RedOnArrival(m));
    }
    if all_full(parks) {
        return Some(Pause::CarParksFull);
    }
    None
}

pub(super) fn pause_reason(
    why: Pause,
    zh: &str,
    en: &str,
    p: &PolicyConfig,
    travel: u32,
) -> Reason {
    let (code, rz, re) = match why {
        Pause::NoData => (
            ReasonCode::NoData,
            format!("{zh}暂无实时客流数据，暂停发车"),
            format!("no live figures for {en}: shuttles paused"),
        ),
        Pause::Closed => (
            ReasonCode::Closed,
            format!("{zh}因险情关闭，暂停发车"),
            format!("{en} is closed by a hazard: shuttles paused"),
        ),
        Pause::Level(l) => (
            ReasonCode::Level,
            format!(
                "{zh}已达{}预警（暂停阈值为{}），暂停发车",
                l.name_zh(),
                p.pause_at.name_zh()
            ),
            format!(
                "{en} is at {} (routes pause at {}): shuttles paused",
                l.as_str(),
                p.pause_at.as_str()
            ),
        ),
        Pause::RedOnArrival(m) => (
            ReasonCode::RedOnArrival,
            format!("预计{m:.0}分钟后{zh}达到红色预警，早于接驳车程{travel}分钟，暂停发车"),
            format!(
                "{en} is forecast at red in {m:.0} min, before a {travel}-min shuttle arrives: shuttles paused"
            ),
        ),
        Pause::CarParksFull => (
            ReasonCode::CarParksFull,
            format!("{zh}接驳车所需停车场已满，暂停发车"),
            format!("the car parks the shuttle to {en} needs are full: shuttles paused"),
        ),
    };
    Reason {
        code,
        zh: rz,
        en: re,
    }
}

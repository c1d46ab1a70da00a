//! The dispatch shell: feeds the pure advisor ([`crate::dispatch`]) with the live figures and the
//! rule engine's view (levels, forecasts, hazard closures) every minute and whenever a level
//! changes, keeps the advice only when it changed, and turns a change into a record and a webhook
//! event for each distribution centre.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use crate::dispatch::{
    AdviceChange, AreaInput, CarParkInput, DispatchModel, HubAdvice, HubInput, Inputs, advise, diff,
};
use crate::ids::SpaceId;
use crate::live::SpaceNow;
use crate::registry::Registry;
use crate::registry::SpaceKind;
use crate::rules::{Level, Severity, Status};
use crate::webhook::model::{AlertEvent, AlertState};

/// How often advice is recomputed without a level change.
const EVERY: TimeDelta = TimeDelta::seconds(60);
/// Followed advice older than this has no shuttle left on the road.
pub const ON_ROAD_HORIZON: TimeDelta = TimeDelta::hours(6);

pub struct Dispatcher {
    pub model: DispatchModel,
    last: BTreeMap<SpaceId, HubAdvice>,
    last_run: Option<DateTime<Utc>>,
}

impl Dispatcher {
    /// `last`: each hub's newest stored advice, so a restart does not announce it again.
    pub fn new(model: DispatchModel, last: impl IntoIterator<Item = HubAdvice>) -> Self {
        let last = last.into_iter().map(|a| (a.hub.clone(), a)).collect();
        Self {
            model,
            last,
            last_run: None,
        }
    }

    pub fn due(&self, now: DateTime<Utc>, levels_changed: bool) -> bool {
        !self.model.hubs.is_empty()
            && (levels_changed || self.last_run.is_none_or(|t| now - t >= EVERY))
    }

    /// Runs the advisor; returns the hubs whose advice changed (all of them on the first run).
    pub fn run(
        &mut self,
        now: DateTime<Utc>,
        inputs: &Inputs,
    ) -> Vec<(HubAdvice, Option<AdviceChange>)> {
        self.last_run = Some(now);
        let mut changed = Vec::new();
        for advice in advise(now, &self.model, inputs) {
            let change = match self.last.get(&advice.hub) {
                None => Some(None),
                Some(prev) => {
                    diff(std::slice::from_ref(prev), std::slice::from_ref(&advice)).map(Some)
                }
            };
            if let Some(change) = change {
                self.last.insert(advice.hub.clone(), advice.clone());
                changed.push((advice, change));
            }
        }
        changed
    }
}

/// The advisor's inputs from the live view and the rule statuses. Shuttles on the road come from
/// the advice dispatchers marked as followed.
pub fn inputs(
    registry: &Registry,
    model: &DispatchModel,
    spaces: &[SpaceNow],
    statuses: &[Option<Arc<Status>>],
    followed: &[(HubAdvice, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Inputs {
    let mut i = Inputs::default();
    for s in &registry.spaces {
        let now_s = &spaces[s.idx.get()];
        let status = statuses.get(s.idx.get()).cloned().flatten();
        let closed = status.as_ref().is_some_and(|st| st.closed);
        let occupancy = u32::try_from(now_s.occupancy).unwrap_or(u32::MAX);
        match s.kind {
            SpaceKind::ScenicArea if now_s.day.is_some() => {
                let st = status.as_ref();
                let capacity = st
                    .and_then(|st| st.instant.effective_capacity)
                    .or(s.instant_capacity);
                let level = st.and_then(|st| st.instant.level).unwrap_or(Level::Normal);
                let minutes_to_red = st
                    .and_then(|st| st.forecast.as_ref())
                    .and_then(|f| f.to_red)
                    .map(|d| d.num_seconds() as f64 / 60.0);
                i.areas.insert(
                    s.id.clone(),
                    AreaInput {
                        occupancy,
                        capacity,
                        level,
                        minutes_to_red,
                        net_inflow_per_min: None,
                        closed,
                    },
                );
            }
            SpaceKind::CarPark => {
                i.car_parks.insert(
                    s.id.clone(),
                    CarParkInput {
                        occupancy,
                        capacity: s.instant_capacity,
                        closed,
                    },
                );
            }
            SpaceKind::Hub => {
                i.hubs.insert(
                    s.id.clone(),
                    HubInput {
                        queue: occupancy,
                        ..HubInput::default()
                    },
                );
            }
            _ => {}
        }
    }
    for (advice, at) in followed {
        i.on_road
            .record_advice(model, std::slice::from_ref(advice), *at);
    }
    i.on_road.prune(now);
    i
}

fn names(a: &[SpaceId], registry: &Registry, zh: bool) -> String {
    a.iter()
        .map(|id| {
            registry
                .space_idx(id.as_str())
                .map(|s| {
                    if zh {
                        registry.space(s).name_zh.clone()
                    } else {
                        registry.space(s).name_en.clone()
                    }
                })
                .unwrap_or_else(|| id.to_string())
        })
        .collect::<Vec<_>>()
        .join(if zh { "、" } else { ", " })
}

/// The webhook event announcing a hub's new advice: warning while anything is paused, diverted
/// or held, info otherwise.
pub fn event(advice: &HubAdvice, registry: &Registry, advice_id: i64) -> AlertEvent {
    let hub = registry
        .space_idx(advice.hub.as_str())
        .map(|s| registry.space(s));
    let (name_zh, name_en) = hub.map_or((advice.hub.to_string(), advice.hub.to_string()), |h| {
        (h.name_zh.clone(), h.name_en.clone())
    });
    let paused: Vec<SpaceId> = advice.paused.iter().map(|p| p.area.clone()).collect();
    let diverted: Vec<SpaceId> = advice
        .diversions
        .iter()
        .map(|d| d.from_area.clone())
        .collect();
    let sending: u32 = advice.shuttles.iter().map(|s| s.send_now).sum();
    let mut zh = vec![format!(
        "{name_zh}：建议立即发车 {sending} 辆，候车 {} 人",
        advice.queue
    )];
    let mut en = vec![format!(
        "{name_en}: send {sending} shuttles now; {} waiting",
        advice.queue
    )];
    if !paused.is_empty() {
        zh.push(format!("暂停发往：{}", names(&paused, registry, true)));
        en.push(format!("paused to: {}", names(&paused, registry, false)));
    }
    for d in &advice.diversions {
        let to: Vec<SpaceId> = d.to.iter().map(|a| a.area.clone()).collect();
        zh.push(format!(
            "分流：{} → {}",
            names(std::slice::from_ref(&d.from_area), registry, true),
            names(&to, registry, true)
        ));
        en.push(format!(
            "divert: {} → {}",
            names(std::slice::from_ref(&d.from_area), registry, false),
            names(&to, registry, false)
        ));
    }
    if let Some(h) = &advice.hold {
        zh.push(format!("全部暂缓：{}", h.zh));
        en.push(format!("hold everyone: {}", h.en));
    }
    let attention = !paused.is_empty() || !diverted.is_empty() || advice.hold.is_some();
    AlertEvent {
        delivery_id: String::new(),
        alert_id: format!("{}/dispatch/{advice_id}", advice.hub),
        space_id: advice.hub.to_string(),
        space_name_zh: name_zh,
        space_name_en: name_en,
        kind: "dispatch_advice".into(),
        severity: if attention {
            Severity::Warning
        } else {
            Severity::Info
        },
        state: AlertState::Firing,
        level: None,
        load: None,
        occupancy: Some(u64::from(advice.queue)),
        capacity_approved: None,
        capacity_effective: None,
        forecast_minutes_to_red: None,
        devices: Vec::new(),
        devices_total: None,
        action_zh: String::new(),
        action_en: String::new(),
        message_zh: zh.join("；"),
        message_en: en.join("; "),
        starts_at: advice.at,
        ends_at: None,
        at: advice.at,
        generator_url: None,
        admission: None,
        ladder: None,
    }
}

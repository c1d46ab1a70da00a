//! Where to send the visitors of a paused route, or of one without room: the hub's other open routes
//! below the pause level with room for a vehicle, ranked by visitors absorbable per minute of
//! journey (the score in [`super`]), and the diversion's reason.

use super::area::{Pause, pause_reason};
use super::assemble::{HubCtx, Outcome};
use super::shuttles::{Held, held_reason};
use crate::dispatch::advice::{Alternative, Diversion, Explanation, Reason, ReasonCode};

impl HubCtx<'_> {
    pub(super) fn diversion(
        &self,
        from: usize,
        visitors: u32,
        explanation: Explanation,
        why: Option<Pause>,
    ) -> Diversion {
        let p = self.p;
        let source = &self.hub.routes[from];
        let largest = self.hub.fleet.first().map_or(1, |f| f.seats);
        let smallest = self.hub.fleet.last().map_or(1, |f| f.seats);
        let mut to: Vec<Alternative> = Vec::new();
        for (r, route) in self.hub.routes.iter().enumerate() {
            if r == from || route.area == source.area {
                continue;
            }
            let Some(Outcome::Open { .. }) = self.outcomes[r] else {
                continue;
            };
            let v = &self.views[route.area.as_str()];
            let Some(a) = v.input else { continue };
            if a.closed || a.level >= p.pause_at {
                continue;
            }
            let used = self
                .committed
                .get(route.area.as_str())
                .copied()
                .unwrap_or(0);
            let Some(spare) = v.spare(route.travel_min, p.target_utilisation, used) else {
                continue;
            };
            if spare < i64::from(smallest) {
                continue;
            }
            let useful = spare.min(i64::from(visitors.max(largest))) as f64;
            let score = useful / (f64::from(route.travel_min) + p.diversion_overhead_min).max(1.0);
            let score = (score * 1000.0).round() / 1000.0;
            let (zh, en) = v.names;
            let (m, level) = (route.travel_min, a.level);
            to.push(Alternative {
                area: route.area.clone(),
                route: route.id.clone(),
                spare,
                travel_min: m,
                score,
                reason: Reason {
                    code: ReasonCode::Alternative,
                    zh: format!(
                        "{zh}：余量{spare}人，车程{m}分钟，等级：{}",
                        level.name_zh()
                    ),
                    en: format!(
                        "{en}: {spare} spare, {m} min away, level {}",
                        level.as_str()
                    ),
                },
                explanation: v.explain(p, m, used, 0),
            });
        }
        to.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.travel_min.cmp(&b.travel_min))
                .then(b.spare.cmp(&a.spare))
                .then(a.area.cmp(&b.area))
        });
        to.truncate(p.max_alternatives);
        let (zh, en) = self.views[source.area.as_str()].names;
        let why_zh_en = match why {
            Some(w) => pause_reason(w, zh, en, p, source.travel_min),
            None => held_reason(Held::NoSpare, zh, en, visitors, smallest),
        };
        let reason = if let Some(best) = to.first() {
            let (bz, be) = self.views[best.area.as_str()].names;
            Reason {
                code: ReasonCode::Divert,
                zh: format!("{}；建议{visitors}名游客改往{bz}等景区", why_zh_en.zh),
                en: format!("{}; divert {visitors} visitors, best to {be}", why_zh_en.en),
            }
        } else {
            Reason {
                code: ReasonCode::NoAlternative,
                zh: format!(
                    "{}；暂无有余量的替代景区，请{visitors}名游客在集散中心等候",
                    why_zh_en.zh
                ),
                en: format!(
                    "{}; no alternative has room: {visitors} visitors wait at the hub",
                    why_zh_en.en
                ),
            }
        };
        Diversion {
            from_area: source.area.clone(),
            visitors,
            to,
            reason,
            explanation,
        }
    }
}

//! The simulated day and its people: the date and hours, the two policies compared, the seeded
//! demand (hub walk-ins by destination, self-drive cars, both on the day's arrival curve) and how
//! visitors behave (party size, dwell, patience, readiness to divert).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::dispatch::model::DispatchModel;
use crate::ids::SpaceId;

/// The simulated day: National Day Golden Week.
pub const DAY: (i32, u32, u32) = (2026, 10, 2);
/// Local minute the simulation starts (06:00) and its length (to 22:00).
pub(super) const START_MIN: i64 = 6 * 60;
pub(super) const MINUTES: usize = 16 * 60;
/// Events (departures) may be scheduled past the end of the day.
pub(super) const HORIZON: usize = MINUTES + 12 * 60;
const DWELL_MIN: (u32, u32) = (120, 240);
const PATIENCE_MIN: (u32, u32) = (90, 180);
const PARTY: (u32, u32) = (1, 5);
pub(super) const DIVERSION_ACCEPT: f64 = 0.7;
/// The emulated rule engine's net-inflow window (minutes).
pub(super) const FORECAST_WINDOW: usize = 10;

/// Walk-in demand at a hub (people over the day) and where they want to go.
struct HubDemand {
    hub: &'static str,
    people: u32,
    prefs: &'static [(&'static str, f64)],
}

/// A busy Golden-Week day: the canyon draws most hub visitors.
const HUB_DEMAND: &[HubDemand] = &[
    HubDemand {
        hub: "tsc-visitor-centre",
        people: 7_000,
        prefs: &[("tianshan-canyon", 0.92), ("muxutai", 0.08)],
    },
    HubDemand {
        hub: "banfanggou-station",
        people: 2_500,
        prefs: &[
            ("tianshan-canyon", 0.5),
            ("muxutai", 0.15),
            ("juhuatai", 0.1),
            ("xueling-yinggu", 0.1),
            ("west-baiyanggou", 0.15),
        ],
    },
    HubDemand {
        hub: "nanlv-base",
        people: 9_000,
        prefs: &[
            ("tianshan-canyon", 0.4),
            ("shuixigou-town", 0.15),
            ("silk-road-resort", 0.15),
            ("east-baiyanggou", 0.06),
            ("apricot-village", 0.06),
            ("west-baiyanggou", 0.06),
            ("miaoergou", 0.06),
            ("xiaoquzi", 0.03),
            ("wulasitai-grassland", 0.03),
        ],
    },
];

/// Self-drive cars per area over the day.
const SELF_DRIVE: &[(&str, u32)] = &[
    ("tianshan-canyon", 1_600),
    ("silk-road-resort", 330),
    ("shuixigou-town", 250),
    ("muxutai", 200),
    ("east-baiyanggou", 120),
    ("west-baiyanggou", 200),
    ("xueling-yinggu", 100),
    ("wulasitai-grassland", 150),
    ("juhuatai", 100),
    ("xiaoquzi", 50),
    ("miaoergou", 70),
    ("apricot-village", 40),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Shuttles leave for the preferred destination whatever the crowding.
    NoAdvice,
    /// Every minute `advise` runs and the hubs do what it says.
    AdviceFollowed,
}

pub(super) fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).expect("a valid date")
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Party {
    /// Minute the party started to wait at a hub (or arrived by car).
    pub(super) arrived: usize,
    pub(super) people: u32,
    pub(super) dwell: u32,
    pub(super) patience: u32,
    /// The car park holding the party's car while it rides a shuttle.
    pub(super) car: Option<usize>,
    /// Already offered a diversion (asked once).
    pub(super) offered: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    Hub { hub: usize, route: usize },
    Drive { area: usize },
}

/// Share of the day's arrivals in local minute `m` (unnormalised): the morning wave and the
/// early-afternoon one, from 07:00 to 16:00, shifted by `late` minutes.
fn shape(m: f64, late: f64) -> f64 {
    if !(7.0 * 60.0 + late..16.0 * 60.0 + late).contains(&m) {
        return 0.0;
    }
    let g = |mu: f64, sd: f64| (-0.5 * ((m - mu) / sd).powi(2)).exp() / sd;
    0.8 * g(9.5 * 60.0 + late, 60.0) + 0.2 * g(13.5 * 60.0 + late, 75.0)
}

/// Expected arrivals per simulated minute for `total` over the day.
fn curve(total: u32, late: f64) -> Vec<f64> {
    let raw: Vec<f64> = (0..MINUTES)
        .map(|i| shape(START_MIN as f64 + i as f64 + 0.5, late))
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|r| f64::from(total) * r / sum).collect()
}

/// A whole number with the right expectation.
fn draw(rng: &mut StdRng, x: f64) -> u32 {
    let base = x.floor();
    base as u32 + u32::from(rng.random::<f64>() < x - base)
}

fn party(rng: &mut StdRng, arrived: usize, people: u32) -> Party {
    Party {
        arrived,
        people,
        dwell: rng.random_range(DWELL_MIN.0..=DWELL_MIN.1),
        patience: rng.random_range(PATIENCE_MIN.0..=PATIENCE_MIN.1),
        car: None,
        offered: false,
    }
}

/// The day's demand, drawn once by [`generate`].
pub(super) struct Demand {
    /// Parties arriving in each minute of the day, at a hub's queue or by car.
    pub(super) arrivals: Vec<Vec<(Source, Party)>>,
    /// Areas someone sets out for (indices of `area_idx`): their peak utilisation is reported.
    pub(super) demanded: Vec<usize>,
}

/// Draws the day's [`Demand`] from `rng`; `area_idx` numbers the registry's scenic areas.
pub(super) fn generate(
    model: &DispatchModel,
    area_idx: &BTreeMap<SpaceId, usize>,
    rng: &mut StdRng,
) -> Demand {
    let mut arrivals = vec![Vec::new(); MINUTES];
    let mut demanded = Vec::new();
    for d in HUB_DEMAND {
        let h = model
            .hubs
            .iter()
            .position(|h| h.id.as_str() == d.hub)
            .expect("hub in the example model");
        let routes: Vec<(usize, f64)> = d
            .prefs
            .iter()
            .map(|(area, w)| {
                let r = model.hubs[h]
                    .routes
                    .iter()
                    .position(|r| r.area.as_str() == *area)
                    .expect("preferred area on a route of the hub");
                (r, *w)
            })
            .collect();
        let total_w: f64 = routes.iter().map(|r| r.1).sum();
        for (m, x) in curve(d.people, 0.0).into_iter().enumerate() {
            let mut n = draw(rng, x);
            while n > 0 {
                let people = rng.random_range(PARTY.0..=PARTY.1).min(n);
                n -= people;
                let mut u = rng.random::<f64>() * total_w;
                let route = routes
                    .iter()
                    .find(|(_, w)| {
                        u -= w;
                        u < 0.0
                    })
                    .map_or(routes[routes.len() - 1].0, |r| r.0);
                let p = party(rng, m, people);
                arrivals[m].push((Source::Hub { hub: h, route }, p));
            }
        }
        for (r, _) in &routes {
            let area = &model.hubs[h].routes[*r].area;
            demanded.push(area_idx[area]);
        }
    }
    for (area, cars) in SELF_DRIVE {
        let a = area_idx[*area];
        demanded.push(a);
        for (m, x) in curve(*cars, 30.0).into_iter().enumerate() {
            for _ in 0..draw(rng, x) {
                let people = rng.random_range(PARTY.0..=PARTY.1);
                let p = party(rng, m, people);
                arrivals[m].push((Source::Drive { area: a }, p));
            }
        }
    }
    Demand { arrivals, demanded }
}

//! Test fixtures for the advisor, the model's validation and `diff`: a small county with areas `a`
//! (1,000), `b` (500), `c` (800, its shuttle needs car park `p2`), `d` (no capacity); hub `h1`
//! (routes to all four, park-and-ride `p1` which also serves `a`) and hub `h2` (to `a` and `b`);
//! inputs for a calm day and look-ups into the advice.

use chrono::{DateTime, TimeZone, Utc};

use super::inputs::level_from_utilisation;
use super::*;
use crate::config::Config;
use crate::ids::SpaceId;
use crate::registry::Registry;

const REGISTRY: &str = r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "a"
kind = "scenic_area"
parent = "county"
name_zh = "甲景区"
name_en = "Area A"
instant_capacity = 1000

[[spaces]]
id = "a-zone"
kind = "zone"
parent = "a"
name_zh = "甲景区一区"
name_en = "Zone of A"
instant_capacity = 100

[[spaces]]
id = "b"
kind = "scenic_area"
parent = "county"
name_zh = "乙景区"
name_en = "Area B"
instant_capacity = 500

[[spaces]]
id = "c"
kind = "scenic_area"
parent = "county"
name_zh = "丙景区"
name_en = "Area C"
instant_capacity = 800

[[spaces]]
id = "d"
kind = "scenic_area"
parent = "county"
name_zh = "丁景区"
name_en = "Area D"

[[spaces]]
id = "h1"
kind = "hub"
parent = "county"
name_zh = "一号集散中心"
name_en = "Hub One"
instant_capacity = 300

[[spaces]]
id = "h2"
kind = "hub"
parent = "county"
name_zh = "二号集散中心"
name_en = "Hub Two"
instant_capacity = 300

[[spaces]]
id = "p1"
kind = "car_park"
parent = "h1"
name_zh = "一号停车场"
name_en = "Car Park One"
instant_capacity = 100

[[spaces]]
id = "p2"
kind = "car_park"
parent = "county"
name_zh = "二号停车场"
name_en = "Car Park Two"
instant_capacity = 50
"#;

pub(super) const DISPATCH: &str = r#"
[[hubs]]
hub = "h1"
fleet = [{ vehicles = 4, seats = 19 }, { vehicles = 10, seats = 45 }]
routes = [
    { area = "a", travel_min = 20 },
    { area = "b", travel_min = 30 },
    { area = "c", travel_min = 40, car_parks = ["p2"] },
    { area = "d", travel_min = 10 },
]

[[hubs]]
hub = "h2"
fleet = [{ vehicles = 5, seats = 45 }]
routes = [{ area = "a", travel_min = 40 }, { area = "b", travel_min = 15 }]

[[areas]]
area = "a"
car_parks = ["p1"]
"#;

pub(super) fn registry() -> Registry {
    Config::from_toml(REGISTRY)
        .expect("parses")
        .registry()
        .expect("valid")
}

pub(super) fn model() -> DispatchModel {
    model_with(DISPATCH)
}

pub(super) fn model_with(text: &str) -> DispatchModel {
    let cfg = DispatchConfig::from_toml(text).expect("parses");
    DispatchModel::build(&cfg, &registry()).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 2, 2, 30, 0).unwrap()
}

pub(super) fn id(s: &str) -> SpaceId {
    SpaceId::new(s)
}

pub(super) fn area(occupancy: u32, capacity: Option<u32>) -> AreaInput {
    AreaInput {
        occupancy,
        capacity,
        level: capacity.map_or(Level::Normal, |c| level_from_utilisation(occupancy, c)),
        ..AreaInput::default()
    }
}

/// Every area quiet (20% full), car parks empty, hubs empty.
pub(super) fn calm() -> Inputs {
    let mut i = Inputs::default();
    i.areas.insert(id("a"), area(200, Some(1000)));
    i.areas.insert(id("b"), area(100, Some(500)));
    i.areas.insert(id("c"), area(160, Some(800)));
    i.areas.insert(id("d"), area(50, None));
    for (p, cap) in [("p1", 100), ("p2", 50)] {
        i.car_parks.insert(
            id(p),
            CarParkInput {
                occupancy: 0,
                capacity: Some(cap),
                closed: false,
            },
        );
    }
    i
}

pub(super) fn queue(i: &mut Inputs, hub: &str, per_area: &[(&str, u32)]) {
    let mut h = HubInput::default();
    for (a, n) in per_area {
        h.queue += n;
        h.by_area.insert(
            id(a),
            AreaQueue {
                people: *n,
                oldest_wait_min: Some(0),
            },
        );
    }
    i.hubs.insert(id(hub), h);
}

pub(super) fn hub<'a>(advice: &'a [HubAdvice], hub: &str) -> &'a HubAdvice {
    advice
        .iter()
        .find(|h| h.hub.as_str() == hub)
        .expect("hub advised")
}

pub(super) fn sent<'a>(h: &'a HubAdvice, area: &str) -> Option<&'a ShuttleAdvice> {
    h.shuttles.iter().find(|s| s.area.as_str() == area)
}

pub(super) fn paused<'a>(h: &'a HubAdvice, area: &str, mode: Mode) -> Option<&'a PausedRoute> {
    h.paused
        .iter()
        .find(|p| p.area.as_str() == area && p.mode == mode)
}

pub(super) fn diversion<'a>(h: &'a HubAdvice, from: &str) -> Option<&'a Diversion> {
    h.diversions.iter().find(|d| d.from_area.as_str() == from)
}

pub(super) fn alternatives(d: &Diversion) -> Vec<&str> {
    d.to.iter().map(|t| t.area.as_str()).collect()
}

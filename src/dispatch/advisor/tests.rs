//! The advisor's edge cases and properties, on the small county of [`crate::dispatch::testutil`].

use proptest::prelude::*;

use super::shuttles::{Held, pick_vehicles, split};
use crate::dispatch::inputs::level_from_utilisation;
use crate::dispatch::model::FleetConfig;
use crate::dispatch::testutil::*;
use crate::dispatch::*;

// ---------------------------------------------------------------------------------------------
// The advisor's edge cases

#[test]
fn calm_day_sends_what_the_queue_needs() {
    let m = model();
    let mut i = calm();
    queue(&mut i, "h1", &[("a", 100), ("b", 30)]);
    let advice = advise(now(), &m, &i);
    let h1 = hub(&advice, "h1");
    let a = sent(h1, "a").expect("shuttles to a");
    // 100 = 45 + 45 + 10 → two full buses, then a 19-seater with 10 (≥ half full).
    assert_eq!(a.send_now, 3);
    assert_eq!(a.passengers, 100);
    assert_eq!(a.seats, 45 + 45 + 19);
    assert_eq!(a.reason.code, ReasonCode::Dispatch);
    // 30 fits one 45-seater two-thirds full: one vehicle rather than a full 19 and 11 waiting.
    let b = sent(h1, "b").expect("shuttles to b");
    assert_eq!((b.send_now, b.passengers, b.seats), (1, 30, 45));
    assert!(h1.held.is_empty() && h1.paused.is_empty() && h1.diversions.is_empty());
    assert!(h1.hold.is_none());
    assert_eq!(h1.vehicles_available, 14);
    // The explanation adds up.
    let e = &a.explanation;
    assert_eq!(e.occupancy, Some(200));
    assert_eq!(e.capacity, Some(1000));
    assert_eq!(e.spare, Some(900 - 200));
    assert_eq!(e.queue, 100);
    assert!(a.reason.zh.contains("甲景区") && a.reason.en.contains("Area A"));
}

#[test]
fn zero_queue_sends_nothing_and_holds_nobody() {
    let m = model();
    let mut i = calm();
    queue(&mut i, "h1", &[]);
    for h in advise(now(), &m, &i) {
        assert!(h.shuttles.is_empty(), "{h:#?}");
        assert!(h.held.is_empty());
        assert!(h.hold.is_none());
        assert!(h.diversions.is_empty());
        assert_eq!(h.queue, 0);
    }
}

#[test]
fn every_destination_full_and_no_alternative_holds_everyone_and_says_so() {
    let m = model();
    let mut i = calm();
    // a, b, c at orange or red; d (no capacity) is no alternative, and h1's queue wants a and b.
    i.areas.insert(id("a"), area(950, Some(1000)));
    i.areas.insert(id("b"), area(500, Some(500)));
    i.areas.insert(id("c"), area(760, Some(800)));
    queue(&mut i, "h1", &[("a", 60), ("b", 40)]);
    let h1 = advise(now(), &m, &i).remove(0);
    assert!(h1.shuttles.is_empty());
    let pa = paused(&h1, "a", Mode::Shuttle).expect("a paused");
    assert_eq!(pa.reason.code, ReasonCode::Level);
    assert_eq!(pa.explanation.level, Some(Level::Orange));
    assert_eq!(
        paused(&h1, "b", Mode::Shuttle).unwrap().explanation.level,
        Some(Level::Red)
    );
    for from in ["a", "b"] {
        let d = diversion(&h1, from).expect("diversion listed");
        assert!(d.to.is_empty(), "{d:#?}");
        assert_eq!(d.reason.code, ReasonCode::NoAlternative);
    }
    assert_eq!(diversion(&h1, "a").unwrap().visitors, 60);
    let hold = h1.hold.as_ref().expect("hold everyone");
    assert_eq!(hold.code, ReasonCode::HoldAll);
    assert!(hold.zh.contains("100") && hold.en.contains("hold all 100 visitors"));
}

#[test]
fn areas_full_below_the_pause_level_hold_for_lack_of_spare() {
    // The rule engine still says yellow (its level lags), but 90% is taken: no room for a bus.
    let m = model();
    let mut i = calm();
    for (a, occ, cap) in [("a", 890, 1000), ("b", 450, 500), ("c", 790, 800)] {
        i.areas.insert(
            id(a),
            AreaInput {
                level: Level::Yellow,
                ..area(occ, Some(cap))
            },
        );
    }
    queue(&mut i, "h1", &[("a", 60), ("b", 40)]);
    let h1 = advise(now(), &m, &i).remove(0);
    assert!(h1.shuttles.is_empty(), "{h1:#?}");
    let held: Vec<_> = h1
        .held
        .iter()
        .map(|h| (h.area.as_str(), h.reason.code))
        .collect();
    assert_eq!(
        held,
        [("a", ReasonCode::NoSpare), ("b", ReasonCode::NoSpare)]
    );
    assert_eq!(h1.held[0].explanation.spare, Some(10));
    assert!(diversion(&h1, "a").unwrap().to.is_empty());
    assert_eq!(h1.hold.as_ref().unwrap().code, ReasonCode::HoldAll);
}

#[test]
fn hazard_closure_of_the_preferred_area_pauses_and_diverts() {
    let m = model();
    let mut i = calm();
    i.areas.get_mut("a").unwrap().closed = true;
    queue(&mut i, "h1", &[("a", 120)]);
    let advice = advise(now(), &m, &i);
    let h1 = hub(&advice, "h1");
    assert!(sent(h1, "a").is_none());
    let p = paused(h1, "a", Mode::Shuttle).expect("paused");
    assert_eq!(p.reason.code, ReasonCode::Closed);
    assert!(p.reason.zh.contains("险情") && p.reason.en.contains("hazard"));
    let d = diversion(h1, "a").expect("diverted");
    assert_eq!(d.reason.code, ReasonCode::Divert);
    assert_eq!(d.visitors, 120);
    // b: 450 − 100 spare at 30 min, c: 720 − 160 at 40 min; d has no capacity and is never offered.
    // Both can take all 120: b is nearer → b first.
    assert_eq!(alternatives(d), ["b", "c"]);
    assert!(d.to[0].score > d.to[1].score);
    assert_eq!(d.to[0].spare, 350);
    assert!(h1.hold.is_none());
    // h2 pauses its route to a too and offers b.
    let h2 = hub(&advice, "h2");
    assert_eq!(
        paused(h2, "a", Mode::Shuttle).unwrap().reason.code,
        ReasonCode::Closed
    );
    assert_eq!(alternatives(diversion(h2, "a").unwrap()), ["b"]);
}

#[test]
fn diversion_score_prefers_room_when_room_is_short() {
    let m = model();
    let mut i = calm();
    i.areas.get_mut("a").unwrap().closed = true;
    // b nearer but only 60 spare; c farther with plenty: 300 visitors want a.
    i.areas.insert(id("b"), area(390, Some(500)));
    queue(&mut i, "h1", &[("a", 300)]);
    let h1 = advise(now(), &m, &i).remove(0);
    let d = diversion(&h1, "a").unwrap();
    // b: min(60, 300) / (30 + 30) = 1.0; c: min(560, 300) / (40 + 30) ≈ 4.29.
    assert_eq!(alternatives(d), ["c", "b"]);
    assert_eq!(d.to[1].score, 1.0);
}

#[test]
fn full_self_drive_car_park_pauses_self_drive_but_not_shuttles() {
    let m = model();
    let mut i = calm();
    // p1 serves a's self-drive visitors (95 of 100 is full); a itself has room.
    i.car_parks.get_mut("p1").unwrap().occupancy = 95;
    queue(&mut i, "h1", &[("a", 45)]);
    let advice = advise(now(), &m, &i);
    let h1 = hub(&advice, "h1");
    let p = paused(h1, "a", Mode::SelfDrive).expect("self-drive paused");
    assert_eq!(p.reason.code, ReasonCode::SelfDriveFull);
    assert!(
        p.reason
            .en
            .contains("park at this hub and take the shuttle")
    );
    assert_eq!(p.explanation.car_parks.len(), 1);
    assert!(p.explanation.car_parks[0].full);
    assert!(paused(h1, "a", Mode::Shuttle).is_none());
    assert_eq!(sent(h1, "a").expect("shuttle still runs").passengers, 45);
    // Drivers take the shuttle: no diversion while it runs.
    assert!(diversion(h1, "a").is_none());
    // Every hub with a route to a tells drivers.
    assert!(paused(hub(&advice, "h2"), "a", Mode::SelfDrive).is_some());
}

#[test]
fn full_car_park_a_route_needs_pauses_the_route() {
    let m = model();
    let mut i = calm();
    i.car_parks.get_mut("p2").unwrap().occupancy = 50;
    queue(&mut i, "h1", &[("c", 45)]);
    let h1 = advise(now(), &m, &i).remove(0);
    let p = paused(&h1, "c", Mode::Shuttle).expect("route paused");
    assert_eq!(p.reason.code, ReasonCode::CarParksFull);
    assert_eq!(p.explanation.car_parks[0].occupancy, Some(50));
    // p2 is also c's self-drive parking.
    assert!(paused(&h1, "c", Mode::SelfDrive).is_some());
    assert_eq!(alternatives(diversion(&h1, "c").unwrap()), ["a", "b"]);
    // A closed car park counts as full; a car park without figures never does.
    let mut i = calm();
    i.car_parks.get_mut("p2").unwrap().closed = true;
    assert!(paused(&advise(now(), &m, &i)[0], "c", Mode::Shuttle).is_some());
    let mut i = calm();
    i.car_parks.remove("p2");
    assert!(paused(&advise(now(), &m, &i)[0], "c", Mode::Shuttle).is_none());
}

#[test]
fn forecast_red_before_arrival_pauses_before_red_is_reached() {
    let m = model();
    let mut i = calm();
    // a at 70% (blue), forecast red in 15 min: h1's 20-min shuttle would arrive into red.
    i.areas.insert(
        id("a"),
        AreaInput {
            minutes_to_red: Some(15.0),
            ..area(700, Some(1000))
        },
    );
    queue(&mut i, "h1", &[("a", 90)]);
    let h1 = advise(now(), &m, &i).remove(0);
    let p = paused(&h1, "a", Mode::Shuttle).expect("paused on the forecast");
    assert_eq!(p.reason.code, ReasonCode::RedOnArrival);
    assert_eq!(p.explanation.forecast_min, Some(15.0));
    assert_eq!(p.explanation.level, Some(Level::Blue));
    assert!(diversion(&h1, "a").is_some());

    // Red in 25 min: the shuttle arrives first, but the inflow implied (300 / 25 = 12 per min,
    // 240 over the trip) leaves 900 − 700 − 240 < 0: held, not sent.
    i.areas.get_mut("a").unwrap().minutes_to_red = Some(25.0);
    let h1 = advise(now(), &m, &i).remove(0);
    assert!(paused(&h1, "a", Mode::Shuttle).is_none());
    assert!(sent(&h1, "a").is_none());
    assert_eq!(h1.held[0].explanation.forecast_inflow, 240);
    assert_eq!(h1.held[0].reason.code, ReasonCode::NoSpare);

    // With the shuttle-free inflow given (2 per min), the spare is 900 − 700 − 40 = 160.
    i.areas.get_mut("a").unwrap().net_inflow_per_min = Some(2.0);
    let h1 = advise(now(), &m, &i).remove(0);
    let a = sent(&h1, "a").expect("sent");
    assert_eq!(a.explanation.spare, Some(160));
    assert_eq!(a.passengers, 90);
}

#[test]
fn visitors_already_on_the_road_are_counted() {
    let m = model();
    let route_a = &m.hub("h1").unwrap().routes[0];
    let mut i = calm();
    i.areas.insert(id("a"), area(700, Some(1000)));
    queue(&mut i, "h1", &[("a", 200)]);
    // No one on the road: 200 spare → 4 × 45 + 19 = 199 seats.
    let free = advise(now(), &m, &i).remove(0);
    assert_eq!(sent(&free, "a").unwrap().seats, 199);
    // 150 on their way (left 5 min ago): 50 spare → one bus.
    i.on_road.record(ledger::Trip::new(
        route_a,
        now() - chrono::TimeDelta::minutes(5),
        150,
        vec![VehicleUse {
            seats: 45,
            count: 4,
        }],
        10,
    ));
    let h1 = advise(now(), &m, &i).remove(0);
    let a = sent(&h1, "a").unwrap();
    assert_eq!((a.send_now, a.seats), (1, 45));
    assert_eq!(a.explanation.on_road, 150);
    assert_eq!(a.explanation.spare, Some(50));
    assert_eq!(h1.held[0].waiting, 155);
    // The four buses are away: 10 big ones at home become 6.
    assert_eq!(h1.vehicles_available, 14 - 4);
    // Once arrived (20 min) the visitors count in the occupancy instead; the buses are back after
    // 2 × 20 + 10 minutes.
    let later = now() + chrono::TimeDelta::minutes(16);
    assert_eq!(i.on_road.passengers_to("a", later), 0);
    assert_eq!(i.on_road.vehicles_out("h1", 45, later), 4);
    assert_eq!(
        i.on_road
            .vehicles_out("h1", 45, now() + chrono::TimeDelta::minutes(45)),
        0
    );
}

#[test]
fn routes_to_one_area_share_its_spare_nearest_first() {
    let m = model();
    let mut i = calm();
    // a: 900 − 750 = 150 spare. h1 is 20 min away, h2 40 min: h1 draws first.
    i.areas.insert(id("a"), area(750, Some(1000)));
    queue(&mut i, "h1", &[("a", 90)]);
    queue(&mut i, "h2", &[("a", 90)]);
    let advice = advise(now(), &m, &i);
    let (h1, h2) = (hub(&advice, "h1"), hub(&advice, "h2"));
    assert_eq!(sent(h1, "a").unwrap().seats, 90);
    let a2 = sent(h2, "a").unwrap();
    assert_eq!(a2.seats, 45);
    assert_eq!(a2.explanation.on_road, 90);
    assert_eq!(a2.explanation.spare, Some(60));
    assert_eq!(h2.held[0].reason.code, ReasonCode::NoSpare);
}

#[test]
fn no_vehicles_at_home_holds_without_diverting() {
    let m = model();
    let route_b = m.hub("h2").unwrap().routes[1].clone();
    let mut i = calm();
    queue(&mut i, "h2", &[("b", 45)]);
    i.on_road.record(ledger::Trip::new(
        &route_b,
        now(),
        225,
        vec![VehicleUse {
            seats: 45,
            count: 5,
        }],
        10,
    ));
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert_eq!(h2.vehicles_available, 0);
    assert_eq!(h2.held[0].reason.code, ReasonCode::NoVehicles);
    assert!(h2.diversions.is_empty() && h2.hold.is_none());
}

#[test]
fn area_without_capacity_is_served_unbounded_and_never_an_alternative() {
    let m = model();
    let mut i = calm();
    i.areas.get_mut("a").unwrap().closed = true;
    queue(&mut i, "h1", &[("a", 45), ("d", 500)]);
    let h1 = advise(now(), &m, &i).remove(0);
    let d = sent(&h1, "d").expect("d served");
    assert_eq!(d.reason.code, ReasonCode::DispatchUnbounded);
    assert!(d.reason.en.contains("not bounded"));
    assert_eq!(d.explanation.spare, None);
    assert_eq!(d.explanation.capacity, None);
    // Ten 45-seaters and four 19-seaters: the fleet, not a capacity, is the limit.
    assert_eq!(d.passengers, 10 * 45 + 2 * 19 + 12);
    assert!(!alternatives(diversion(&h1, "a").unwrap()).contains(&"d"));
}

#[test]
fn area_without_live_figures_pauses() {
    let m = model();
    let mut i = calm();
    i.areas.remove("b");
    queue(&mut i, "h2", &[("b", 45)]);
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert_eq!(
        paused(&h2, "b", Mode::Shuttle).unwrap().reason.code,
        ReasonCode::NoData
    );
    assert_eq!(alternatives(diversion(&h2, "b").unwrap()), ["a"]);
}

#[test]
fn unknown_queue_split_is_by_share_or_equal() {
    let m = model();
    let mut i = calm();
    i.hubs.insert(
        id("h2"),
        HubInput {
            queue: 90,
            ..HubInput::default()
        },
    );
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert_eq!(sent(&h2, "a").unwrap().passengers, 45);
    assert_eq!(sent(&h2, "b").unwrap().passengers, 45);

    let shares = DISPATCH.replace(
        r#"routes = [{ area = "a", travel_min = 40 }, { area = "b", travel_min = 15 }]"#,
        r#"routes = [{ area = "a", travel_min = 40, share = 3 }, { area = "b", travel_min = 15, share = 1 }]"#,
    );
    let m = model_with(&shares);
    i.hubs.get_mut("h2").unwrap().queue = 180;
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert_eq!(sent(&h2, "a").unwrap().explanation.queue, 135);
    assert_eq!(sent(&h2, "b").unwrap().explanation.queue, 45);
}

#[test]
fn a_half_empty_bus_waits_until_the_hold_time() {
    let m = model();
    let mut i = calm();
    queue(&mut i, "h2", &[("b", 10)]);
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert!(h2.shuttles.is_empty());
    assert_eq!(h2.held[0].reason.code, ReasonCode::Filling);
    assert!(h2.hold.is_none(), "filling is not a hold");
    i.hubs
        .get_mut("h2")
        .unwrap()
        .by_area
        .get_mut("b")
        .unwrap()
        .oldest_wait_min = Some(15);
    let h2 = hub(&advise(now(), &m, &i), "h2").clone();
    assert_eq!(sent(&h2, "b").unwrap().passengers, 10);
}

#[test]
fn pick_vehicles_cases() {
    let fleet = [
        FleetConfig {
            vehicles: 2,
            seats: 45,
        },
        FleetConfig {
            vehicles: 3,
            seats: 19,
        },
    ];
    let run = |demand, budget, overdue| {
        let mut avail = [2, 3];
        let p = pick_vehicles(demand, budget, &fleet, &mut avail, 0.5, overdue);
        (p.count(), p.seats, p.passengers, p.held)
    };
    assert_eq!(run(0, None, false), (0, 0, 0, None));
    assert_eq!(run(44, None, false), (1, 45, 44, None));
    assert_eq!(run(50, None, false), (1, 45, 45, Some(Held::Filling)));
    assert_eq!(run(50, None, true), (2, 64, 50, None));
    // Budget 60: one 45, then no 19 fits the 15 left.
    assert_eq!(run(100, Some(60), false), (1, 45, 45, Some(Held::NoSpare)));
    assert_eq!(run(10, Some(10), true), (0, 0, 0, Some(Held::NoSpare)));
    // The whole fleet: 2 × 45 + 3 × 19 = 147 seats.
    assert_eq!(run(500, None, false), (5, 147, 147, Some(Held::NoVehicles)));
}

#[test]
fn split_is_exact() {
    assert_eq!(split(10, &[1.0, 1.0, 1.0]), [4, 3, 3]);
    assert_eq!(split(7, &[0.5, 0.25, 0.25]), [3, 2, 2]);
    assert_eq!(split(5, &[]), Vec::<u32>::new());
    assert_eq!(split(5, &[0.0]), [0]);
}

#[test]
fn levels_follow_the_ladder() {
    let l = |o| level_from_utilisation(o, 1000);
    assert_eq!(
        [l(599), l(600), l(800), l(900), l(1000), l(1200)],
        [
            Level::Normal,
            Level::Blue,
            Level::Yellow,
            Level::Orange,
            Level::Red,
            Level::Red
        ]
    );
    assert_eq!(level_from_utilisation(0, 0), Level::Red);
}

#[test]
fn advice_serialises_in_snake_case() {
    let m = model();
    let mut i = calm();
    i.car_parks.get_mut("p1").unwrap().occupancy = 100;
    i.areas.get_mut("b").unwrap().closed = true;
    queue(&mut i, "h2", &[("a", 45), ("b", 20)]);
    let json = serde_json::to_value(advise(now(), &m, &i)).unwrap();
    let h2 = &json[1];
    assert_eq!(h2["hub"], "h2");
    assert_eq!(h2["shuttles"][0]["send_now"], 1);
    assert_eq!(h2["shuttles"][0]["reason"]["code"], "dispatch");
    let modes: Vec<_> = h2["paused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["mode"].as_str().unwrap(),
                p["reason"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        modes.contains(&("self_drive", "self_drive_full")),
        "{modes:?}"
    );
    assert!(modes.contains(&("shuttle", "closed")), "{modes:?}");
    assert_eq!(h2["diversions"][0]["from_area"], "b");
    assert!(h2["diversions"][0]["to"][0]["score"].is_number());
    // The model and the inputs serialise too (the API shows them).
    serde_json::to_string(&m).unwrap();
    let back: Inputs = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(back.areas, i.areas);
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_level() -> impl Strategy<Value = Level> {
    prop_oneof![
        Just(Level::Normal),
        Just(Level::Blue),
        Just(Level::Yellow),
        Just(Level::Orange),
        Just(Level::Red)
    ]
}

fn arb_area() -> impl Strategy<Value = Option<AreaInput>> {
    proptest::option::weighted(
        0.9,
        (
            0u32..1500,
            proptest::option::weighted(0.85, 0u32..1200),
            arb_level(),
            proptest::option::of(0.0f64..120.0),
            proptest::option::of(-10.0f64..30.0),
            proptest::bool::weighted(0.2),
        )
            .prop_map(
                |(occupancy, capacity, level, minutes_to_red, net_inflow_per_min, closed)| {
                    AreaInput {
                        occupancy,
                        capacity,
                        level,
                        minutes_to_red,
                        net_inflow_per_min,
                        closed,
                    }
                },
            ),
    )
}

fn arb_hub() -> impl Strategy<Value = HubInput> {
    (
        0u32..600,
        proptest::collection::vec((0usize..4, 0u32..300, proptest::option::of(0u32..40)), 0..4),
        proptest::option::of(0u32..40),
    )
        .prop_map(|(queue, per, oldest)| {
            let mut h = HubInput {
                queue,
                oldest_wait_min: oldest,
                ..HubInput::default()
            };
            for (a, people, w) in per {
                h.by_area.insert(
                    id(["a", "b", "c", "d"][a]),
                    AreaQueue {
                        people,
                        oldest_wait_min: w,
                    },
                );
            }
            h
        })
}

prop_compose! {
    fn arb_inputs()(
        areas in proptest::collection::vec(arb_area(), 4),
        parks in proptest::collection::vec((0u32..120, proptest::bool::weighted(0.1)), 2),
        hubs in proptest::collection::vec(arb_hub(), 2),
        trips in proptest::collection::vec((0usize..6, 0i64..60, 0u32..200, 1u32..4), 0..6),
    ) -> Inputs {
        let m = model();
        let mut i = Inputs::default();
        for (name, a) in ["a", "b", "c", "d"].into_iter().zip(areas) {
            if let Some(a) = a {
                i.areas.insert(id(name), a);
            }
        }
        for ((name, cap), (occupancy, closed)) in [("p1", 100), ("p2", 50)].into_iter().zip(parks) {
            i.car_parks.insert(id(name), CarParkInput { occupancy, capacity: Some(cap), closed });
        }
        for (name, h) in ["h1", "h2"].into_iter().zip(hubs) {
            i.hubs.insert(id(name), h);
        }
        let routes: Vec<_> = m.routes().cloned().collect();
        for (r, ago, passengers, buses) in trips {
            i.on_road.record(ledger::Trip::new(
                &routes[r],
                now() - chrono::TimeDelta::minutes(ago),
                passengers,
                vec![VehicleUse { seats: 45, count: buses }],
                10,
            ));
        }
        i
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_more_seats_than_the_spare(i in arb_inputs()) {
        let m = model();
        let advice = advise(now(), &m, &i);
        let target = m.policy.target_utilisation;
        for area in ["a", "b", "c", "d"] {
            let shuttles: Vec<_> = advice.iter().flat_map(|h| &h.shuttles)
                .filter(|s| s.area.as_str() == area).collect();
            for s in &shuttles {
                // Each route's seats fit the spare it saw, and the explanation adds up.
                if let Some(spare) = s.explanation.spare {
                    prop_assert!(i64::from(s.seats) <= spare, "{s:#?}");
                    let e = &s.explanation;
                    let room = (f64::from(e.capacity.unwrap()) * target).floor() as i64;
                    prop_assert_eq!(spare, room - i64::from(e.occupancy.unwrap())
                        - i64::from(e.on_road) - i64::from(e.forecast_inflow));
                }
                prop_assert!(s.passengers <= s.seats);
                prop_assert!(s.passengers > 0);
            }
            // And over all hubs, independently of the algorithm: seats to an area fit
            // ⌊capacity × target⌋ − occupancy − visitors on the road.
            if let Some(AreaInput { capacity: Some(cap), occupancy, .. }) = i.areas.get(area) {
                let seats: i64 = shuttles.iter().map(|s| i64::from(s.seats)).sum();
                let room = (f64::from(*cap) * target).floor() as i64 - i64::from(*occupancy)
                    - i64::from(i.on_road.passengers_to(area, now()));
                prop_assert!(seats == 0 || seats <= room, "{area}: {seats} seats, {room} room");
            }
        }
        // Never more vehicles than at home, never more visitors than wait.
        for h in &advice {
            let n: u32 = h.shuttles.iter().map(|s| s.send_now).sum();
            prop_assert!(n <= h.vehicles_available);
            for s in &h.shuttles {
                prop_assert!(s.passengers <= s.explanation.queue);
            }
        }
    }

    #[test]
    fn never_routes_to_a_closed_or_paused_area(i in arb_inputs()) {
        let m = model();
        for h in advise(now(), &m, &i) {
            for s in &h.shuttles {
                let a = i.areas.get(&s.area).expect("only areas with figures get shuttles");
                prop_assert!(!a.closed);
                prop_assert!(a.level < m.policy.pause_at);
                prop_assert!(!h.paused.iter().any(|p| p.route == s.route && p.mode == Mode::Shuttle));
            }
            for d in &h.diversions {
                for t in &d.to {
                    let a = &i.areas[&t.area];
                    prop_assert!(!a.closed);
                    prop_assert!(a.level < m.policy.pause_at);
                    prop_assert!(a.capacity.is_some());
                    prop_assert!(t.spare > 0);
                }
            }
        }
    }

    #[test]
    fn diversions_never_include_their_source(i in arb_inputs()) {
        let m = model();
        for h in advise(now(), &m, &i) {
            for d in &h.diversions {
                prop_assert!(d.to.iter().all(|t| t.area != d.from_area));
                prop_assert!(d.to.len() <= m.policy.max_alternatives);
                prop_assert!(d.to.windows(2).all(|w| w[0].score >= w[1].score));
                prop_assert_eq!(d.to.is_empty(), d.reason.code == ReasonCode::NoAlternative);
            }
        }
    }

    #[test]
    fn advice_is_deterministic(i in arb_inputs()) {
        let m = model();
        let first = advise(now(), &m, &i);
        let again = advise(now(), &m, &i.clone());
        prop_assert_eq!(&first, &again);
        prop_assert_eq!(
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
        prop_assert_eq!(diff(&first, &again), None);
    }
}

//! The model's validation and `diff`, on the small county of [`super::testutil`]. The advisor's own
//! cases and properties are in `advisor/tests.rs`.

use super::testutil::*;
use super::*;
use crate::registry::Problem;

// ---------------------------------------------------------------------------------------------
// The model's validation

fn problems(text: &str) -> Vec<Problem> {
    let cfg = DispatchConfig::from_toml(text).expect("parses");
    match DispatchModel::build(&cfg, &registry()) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e.0,
    }
}

#[track_caller]
fn assert_problem(problems: &[Problem], location: &str, needle: &str) {
    let at: Vec<_> = problems.iter().filter(|p| p.location == location).collect();
    assert_eq!(at.len(), 1, "one problem at {location:?}: {problems:#?}");
    assert!(
        at[0].message.contains(needle),
        "{location}: {:?} should mention {needle:?}",
        at[0].message
    );
}

#[test]
fn model_resolves_routes_fleets_and_car_parks() {
    let m = model();
    let h1 = m.hub("h1").unwrap();
    assert_eq!(h1.name_en, "Hub One");
    // Largest seats first.
    assert_eq!(h1.fleet[0].seats, 45);
    assert_eq!(h1.vehicles(), 14);
    assert_eq!(h1.routes[0].id, "h1:a");
    assert!((h1.routes.iter().map(|r| r.share).sum::<f64>() - 1.0).abs() < 1e-9);
    // a: extra p1; c: its route's p2.
    assert_eq!(m.area("a").unwrap().car_parks, [id("p1")]);
    assert_eq!(m.area("c").unwrap().car_parks, [id("p2")]);
    assert_eq!(m.routes().count(), 6);
    assert_eq!(m.policy, PolicyConfig::default());
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let p = problems(
        r#"
[policy]
target_utilisation = 1.2
min_fill = -1
max_alternatives = 0
pause_at = "normal"

[[hubs]]
hub = "nowhere"
fleet = [{ vehicles = 1, seats = 45 }]

[[hubs]]
hub = "a"
fleet = [{ vehicles = 1, seats = 45 }]

[[hubs]]
hub = "h1"
fleet = [{ vehicles = 3, seats = 0 }, { vehicles = 0, seats = 20 }]
routes = [
    { area = "zzz", travel_min = 10 },
    { area = "a-zone", travel_min = 10 },
    { area = "h2", travel_min = 10 },
    { area = "b", travel_min = 0, car_parks = ["p9", "h2"], share = 1 },
    { area = "b", travel_min = 5 },
]

[[hubs]]
hub = "h1"

[[hubs]]
hub = "h2"
routes = [{ area = "a", travel_min = 10, share = -1 }]

[[areas]]
area = "c"
car_parks = ["p1", "p1"]

[[areas]]
area = "c"
"#,
    );
    assert_problem(&p, "policy.target_utilisation", "(0, 1]");
    assert_problem(&p, "policy.min_fill", "[0, 1]");
    assert_problem(&p, "policy.max_alternatives", "at least one");
    assert_problem(&p, "policy.pause_at", "never send");
    assert_problem(&p, "hubs[0] (hub = \"nowhere\").hub", "unknown space");
    assert_problem(
        &p,
        "hubs[1] (hub = \"a\").hub",
        "is a scenic_area, not a hub",
    );
    let h = "hubs[2] (hub = \"h1\")";
    assert_problem(&p, &format!("{h}.fleet[0].seats"), "at least one seat");
    assert_problem(&p, &format!("{h}.fleet[1].vehicles"), "zero vehicles");
    assert_problem(&p, &format!("{h}.routes"), "every route");
    assert_problem(
        &p,
        &format!("{h}.routes[0] (area = \"zzz\").area"),
        "unknown space",
    );
    assert_problem(
        &p,
        &format!("{h}.routes[1] (area = \"a-zone\").area"),
        "is a zone",
    );
    assert_problem(
        &p,
        &format!("{h}.routes[2] (area = \"h2\").area"),
        "is a hub",
    );
    let r = format!("{h}.routes[3] (area = \"b\")");
    assert_problem(&p, &format!("{r}.travel_min"), "at least one minute");
    assert_problem(&p, &format!("{r}.car_parks[0]"), "unknown space \"p9\"");
    assert_problem(&p, &format!("{r}.car_parks[1]"), "is a hub, not a car_park");
    assert_problem(&p, &format!("{h}.routes[4] (area = \"b\")"), "second route");
    assert_problem(&p, "hubs[3] (hub = \"h1\")", "configured twice");
    assert_problem(&p, "hubs[4] (hub = \"h2\").fleet", "needs a fleet");
    assert_problem(
        &p,
        "hubs[4] (hub = \"h2\").routes[0] (area = \"a\").share",
        "positive",
    );
    assert_problem(&p, "areas[0] (area = \"c\").car_parks[1]", "listed twice");
    assert_problem(&p, "areas[1] (area = \"c\")", "configured twice");
    // The error prints every problem.
    let cfg = DispatchConfig::from_toml("[[hubs]]\nhub = \"x\"\n").unwrap();
    let e = DispatchModel::build(&cfg, &registry())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("1 problem(s)") && e.contains("hubs[0] (hub = \"x\").hub"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    assert!(DispatchConfig::from_toml("[[hubs]]\nhub = \"h1\"\nbuses = 3\n").is_err());
    assert!(DispatchConfig::from_toml("[policy]\ntarget = 0.9\n").is_err());
    assert!(
        DispatchConfig::from_toml(
            "[[hubs]]\nhub = \"h1\"\nroutes = [{ area = \"a\", travel_min = 5, minutes = 3 }]\n"
        )
        .is_err()
    );
    assert!(DispatchConfig::from_toml("[policy]\npause_at = \"purple\"\n").is_err());
}

// ---------------------------------------------------------------------------------------------
// diff

fn diff_case() -> (DispatchModel, Inputs) {
    let m = model();
    let mut i = calm();
    queue(&mut i, "h1", &[("a", 90), ("b", 45)]);
    (m, i)
}

#[test]
fn diff_is_quiet_when_nothing_worth_telling_changed() {
    let (m, mut i) = diff_case();
    let before = advise(now(), &m, &i);
    assert_eq!(diff(&before, &before), None);
    // Figures move, one bus fewer on a route: not news.
    i.areas.get_mut("a").unwrap().occupancy = 260;
    i.hubs
        .get_mut("h1")
        .unwrap()
        .by_area
        .get_mut("a")
        .unwrap()
        .people = 45;
    let after = advise(now() + chrono::TimeDelta::minutes(1), &m, &i);
    assert_ne!(before, after);
    assert_eq!(diff(&before, &after), None);
    // Two buses fewer is.
    i.hubs
        .get_mut("h1")
        .unwrap()
        .by_area
        .get_mut("a")
        .unwrap()
        .people = 0;
    let c = diff(&before, &advise(now(), &m, &i)).expect("news");
    assert_eq!(
        c.changes,
        [Change::Shuttles {
            hub: id("h1"),
            route: "h1:a".into(),
            area: id("a"),
            from: 2,
            to: 0,
        }]
    );
    // A tolerance of 2 hides it.
    assert_eq!(
        diff_with_tolerance(&before, &advise(now(), &m, &i), 2),
        None
    );
}

#[test]
fn diff_reports_pauses_diversions_and_holds() {
    let (m, mut i) = diff_case();
    let calm_advice = advise(now(), &m, &i);
    i.areas.get_mut("a").unwrap().closed = true;
    let closed = advise(now(), &m, &i);
    let c = diff(&calm_advice, &closed).expect("news").changes;
    let kinds: Vec<String> = c
        .iter()
        .map(|c| {
            serde_json::to_value(c).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(kinds.contains(&"paused".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"diversion_started".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"shuttles".to_owned()), "{kinds:?}");
    assert!(c.iter().any(
        |c| matches!(c, Change::Paused { hub, area, mode: Mode::Shuttle, .. }
        if hub.as_str() == "h2" && area.as_str() == "a")
    ));

    // Closed → orange: still paused, another reason.
    i.areas.insert(id("a"), area(950, Some(1000)));
    let orange = advise(now(), &m, &i);
    let c = diff(&closed, &orange).expect("news").changes;
    assert!(
        c.iter()
            .all(|c| matches!(c, Change::PauseReasonChanged { .. })),
        "{c:#?}"
    );

    // b full as well: h1's diversion for a changes (b drops out), and b gets its own.
    i.areas.insert(id("b"), area(480, Some(500)));
    let both = advise(now(), &m, &i);
    let c = diff(&orange, &both).expect("news").changes;
    assert!(
        c.iter().any(
            |c| matches!(c, Change::DiversionChanged { hub, from_area, to, .. }
        if hub.as_str() == "h1" && from_area.as_str() == "a" && to == &[id("c")])
        ),
        "{c:#?}"
    );
    assert!(c.iter().any(
        |c| matches!(c, Change::DiversionStarted { from_area, .. } if from_area.as_str() == "b")
    ));

    // Everything full: the hub holds; back to calm: resumed, ended, hold ended.
    i.areas.insert(id("c"), area(800, Some(800)));
    let full = advise(now(), &m, &i);
    let c = diff(&both, &full).expect("news").changes;
    assert!(
        c.iter()
            .any(|c| matches!(c, Change::HoldStarted { hub, .. } if hub.as_str() == "h1")),
        "{c:#?}"
    );
    let c = diff(&full, &calm_advice).expect("news").changes;
    assert!(c.iter().any(|c| matches!(c, Change::HoldEnded { .. })));
    assert!(c.iter().any(|c| matches!(c, Change::Resumed { .. })));
    assert!(c.iter().any(|c| matches!(c, Change::DiversionEnded { .. })));
    // A hub appearing or disappearing is compared against no advice.
    assert!(diff(&[], &full).is_some());
    assert_eq!(diff(&[], &[]), None);
}

#[test]
fn diff_ignores_a_reshuffle_below_the_first_choice() {
    let (m, mut i) = diff_case();
    i.areas.get_mut("a").unwrap().closed = true;
    let mut before = advise(now(), &m, &i);
    // h1 offers b and c; a third alternative makes a reshuffle possible.
    let d = &mut before[0].diversions[0];
    assert_eq!(alternatives(d), ["b", "c"]);
    let mut third = d.to[1].clone();
    third.area = id("x");
    d.to.push(third);
    let mut after = before.clone();
    let to = &mut after[0].diversions[0].to;
    to.swap(1, 2);
    to[1].spare += 7;
    assert_eq!(diff(&before, &after), None);
    after[0].diversions[0].to.swap(0, 1);
    assert!(matches!(
        &diff(&before, &after).expect("a new first choice").changes[..],
        [Change::DiversionChanged { .. }]
    ));
    after[0].diversions[0].to.pop();
    assert!(diff(&before, &after).is_some());
}

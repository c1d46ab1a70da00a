//! The shipped dispatch model (`[dispatch]` in config/county.toml) as a user meets it: it validates against the shipped registry
//! (through `Config::load`, as the service loads it) and the advisor runs on it.

use visitorflow::config::Config;
use visitorflow::dispatch::{DispatchModel, Inputs, advise};

fn example() -> DispatchModel {
    let cfg = Config::load(None).expect("embedded default loads");
    let registry = cfg.registry().unwrap_or_else(|e| panic!("{e}"));
    DispatchModel::build(&cfg.dispatch, &registry).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn example_validates_against_the_shipped_registry() {
    let m = example();
    let hubs: Vec<&str> = m.hubs.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        hubs,
        ["tsc-visitor-centre", "banfanggou-station", "nanlv-base"]
    );
    let tsc = m.hub("tsc-visitor-centre").unwrap();
    assert_eq!(tsc.name_zh, "天山大峡谷游客中心");
    assert_eq!(
        (tsc.routes[0].area.as_str(), tsc.routes[0].travel_min),
        ("tianshan-canyon", 20)
    );
    assert!(m.hub("banfanggou-station").unwrap().routes.len() >= 3);
    let nanlv: Vec<&str> = m
        .hub("nanlv-base")
        .unwrap()
        .routes
        .iter()
        .map(|r| r.area.as_str())
        .collect();
    for area in ["shuixigou-town", "silk-road-resort", "tianshan-canyon"] {
        assert!(nanlv.contains(&area), "{nanlv:?}");
    }
    // Every hub can reach the canyon; its self-drive parking is the visitor centre's car park.
    assert!(m.hubs.iter().all(|h| {
        h.routes
            .iter()
            .any(|r| r.area.as_str() == "tianshan-canyon")
    }));
    let canyon = m.area("tianshan-canyon").unwrap();
    assert_eq!(canyon.car_parks[0].as_str(), "tsc-visitor-centre-parking");
}

#[test]
fn the_advisor_runs_on_the_example_with_no_figures() {
    // Before any figure arrives every route pauses (no data) and nobody is sent anywhere.
    let m = example();
    let advice = advise(chrono::Utc::now(), &m, &Inputs::default());
    assert_eq!(advice.len(), 3);
    for h in &advice {
        assert!(h.shuttles.is_empty());
        assert_eq!(h.paused.len(), m.hub(h.hub.as_str()).unwrap().routes.len());
    }
}

//! The registry as a user meets it: the shipped county loads and validates, and a broken config is
//! answered with every problem at once, each pointing at where it is.

use visitorflow::config::{Config, DeviceKind, Direction, PayloadFormat, SpaceKind};
use visitorflow::registry::{Problem, Registry, Unit};

fn shipped() -> Registry {
    let cfg =
        Config::from_toml(visitorflow::config::EMBEDDED_DEFAULT).expect("shipped TOML parses");
    cfg.registry()
        .unwrap_or_else(|e| panic!("shipped registry is invalid: {e}"))
}

/// A small valid county; tests append to it.
const BASE: &str = r#"
[county]
time_zone = "Asia/Shanghai"

[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "area"
kind = "scenic_area"
parent = "county"
name_zh = "景区"
name_en = "Area"
instant_capacity = 1000
daily_capacity = 4000
opens_at = "08:00"
"#;

fn problems(toml: &str) -> Vec<Problem> {
    let cfg = Config::from_toml(toml).expect("test TOML parses");
    match cfg.registry() {
        Ok(_) => panic!("expected problems, the registry built"),
        Err(e) => e.0,
    }
}

fn build(toml: &str) -> Registry {
    let cfg = Config::from_toml(toml).expect("test TOML parses");
    cfg.registry().unwrap_or_else(|e| panic!("{e}"))
}

fn target_ids(reg: &Registry, device: &str) -> Vec<String> {
    reg.targets(reg.device_idx(device).expect("device exists"))
        .iter()
        .map(|&s| reg.space(s).id.as_str().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The shipped default

#[test]
fn shipped_default_loads_through_config_load_and_validates() {
    // `Config::load(None)` is what `demo` uses; it also layers VISITORFLOW__ variables.
    let cfg = Config::load(None).expect("embedded default loads");
    assert_eq!(cfg.county.time_zone, "Asia/Shanghai");
    let reg = cfg.registry().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reg.tz, chrono_tz::Asia::Shanghai);
}

#[test]
fn shipped_default_service_sections() {
    let cfg = Config::from_toml(visitorflow::config::EMBEDDED_DEFAULT).unwrap();
    assert_eq!(cfg.mqtt.host, "127.0.0.1");
    assert_eq!(cfg.mqtt.port, 1883);
    assert_eq!(cfg.mqtt.client_id, "visitorflow-ingester");
    assert_eq!(cfg.mqtt.topic_prefix, "vf");
    assert_eq!(cfg.database.url, "");
    assert_eq!(cfg.database.raw_retention_days, 90);
    assert!(cfg.database.timescaledb);
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn shipped_default_has_one_county_root() {
    let reg = shipped();
    let roots: Vec<_> = reg.spaces.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].kind, SpaceKind::County);
    assert_eq!(roots[0].name_zh, "乌鲁木齐县");
    assert_eq!(roots[0].name_en, "Urumqi County");
}

#[test]
fn shipped_default_has_every_scenic_area_of_the_plan() {
    let reg = shipped();
    let county = reg
        .spaces
        .iter()
        .find(|s| s.kind == SpaceKind::County)
        .unwrap()
        .idx;
    let plan = [
        "天山大峡谷",
        "丝绸之路国际度假区",
        "苜蓿台",
        "东白杨沟",
        "西白杨沟",
        "雪岭鹰谷",
        "乌拉斯台草原",
        "菊花台",
        "小渠子",
        "庙尔沟",
        "水西沟冰雪特色小镇",
        "天山杏花村",
    ];
    for name in plan {
        let s = reg
            .spaces
            .iter()
            .find(|s| s.name_zh == name)
            .unwrap_or_else(|| panic!("no space named {name}"));
        assert_eq!(s.kind, SpaceKind::ScenicArea, "{name}");
        assert_eq!(s.parent, Some(county), "{name} hangs off the county");
        assert!(!s.name_en.is_empty(), "{name} has an English name");
        let (i, d) = (s.instant_capacity.unwrap(), s.daily_capacity.unwrap());
        assert!(i < d, "{name}: instantaneous {i} below daily {d}");
        assert!(
            s.opens_at > chrono::NaiveTime::MIN,
            "{name} has an opening time"
        );
    }
    let areas = reg
        .spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::ScenicArea)
        .count();
    assert_eq!(areas, plan.len());
    // The 5A canyon is the biggest.
    let canyon = reg.space(reg.space_idx("tianshan-canyon").unwrap());
    assert_eq!(canyon.name_zh, "天山大峡谷");
    for s in reg
        .spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::ScenicArea)
    {
        assert!(s.instant_capacity <= canyon.instant_capacity, "{}", s.id);
        assert!(s.daily_capacity <= canyon.daily_capacity, "{}", s.id);
    }
}

#[test]
fn shipped_default_has_every_hub_and_car_park() {
    let reg = shipped();
    let named = |kind: SpaceKind, zh: &str| {
        reg.spaces
            .iter()
            .find(|s| s.kind == kind && s.name_zh.contains(zh))
            .unwrap_or_else(|| panic!("no {} for {zh}", kind.as_str()))
    };
    for zh in ["天山大峡谷游客中心", "板房沟镇客运站", "南旅基地"] {
        let hub = named(SpaceKind::Hub, zh);
        assert!(hub.instant_capacity.is_some(), "{zh}: waiting hall size");
        assert_eq!(reg.space(hub.parent.unwrap()).kind, SpaceKind::County);
    }
    for zh in ["南旅基地", "天山大峡谷游客服务中心", "平西梁村", "方家庄村"]
    {
        let park = named(SpaceKind::CarPark, zh);
        assert_eq!(park.unit, Unit::Vehicles);
        assert!(park.instant_capacity.is_some(), "{zh}: number of bays");
        assert!(
            reg.devices
                .iter()
                .any(|d| d.space == park.idx && d.kind == DeviceKind::VehicleCounter),
            "{zh} has a vehicle counter"
        );
    }
    assert_eq!(
        reg.spaces
            .iter()
            .filter(|s| s.kind == SpaceKind::Hub)
            .count(),
        3
    );
    assert_eq!(
        reg.spaces
            .iter()
            .filter(|s| s.kind == SpaceKind::CarPark)
            .count(),
        4
    );
}

#[test]
fn shipped_default_every_space_counted_and_every_device_bound() {
    let reg = shipped();
    // Every device resolves to a space and counts at least its own.
    for d in &reg.devices {
        assert_eq!(reg.targets(d.idx).first(), Some(&d.space), "{}", d.id);
    }
    // Every area, zone, hub and car park is counted: by its own devices or its parts'.
    for s in &reg.spaces {
        assert!(
            reg.devices
                .iter()
                .any(|d| reg.targets(d.idx).contains(&s.idx)),
            "nothing counts {}",
            s.id
        );
    }
    // Turnstiles and cameras count people; only car parks hold vehicle counters.
    for d in &reg.devices {
        let car_park = reg.space(d.space).kind == SpaceKind::CarPark;
        assert_eq!(d.kind == DeviceKind::VehicleCounter, car_park, "{}", d.id);
    }
}

#[test]
fn shipped_default_zones_fit_their_areas() {
    let reg = shipped();
    let mut zones = 0;
    for z in reg.spaces.iter().filter(|s| s.kind == SpaceKind::Zone) {
        zones += 1;
        let area = reg.space(z.parent.unwrap());
        for (mine, theirs) in [
            (z.instant_capacity, area.instant_capacity),
            (z.daily_capacity, area.daily_capacity),
        ] {
            let (m, t) = (mine.unwrap(), theirs.unwrap());
            assert!(m <= t, "zone {} ({m}) exceeds {} ({t})", z.id, area.id);
        }
    }
    for big in ["tianshan-canyon", "silk-road-resort"] {
        let idx = reg.space_idx(big).unwrap();
        assert!(
            !reg.space(idx).children.is_empty(),
            "{big} is divided into zones"
        );
    }
    assert!(zones >= 4);
}

#[test]
fn shipped_default_big_areas_are_measured_at_their_gates() {
    let reg = shipped();
    for (area, gate, zone_cam, zone) in [
        (
            "tianshan-canyon",
            "tsc-gate-1",
            "tsc-cam-pine",
            "tsc-pine-forest",
        ),
        ("silk-road-resort", "srr-gate-1", "srr-cam-ski", "srr-ski"),
    ] {
        assert!(reg.space(reg.space_idx(area).unwrap()).measured, "{area}");
        assert_eq!(target_ids(&reg, gate), [area, "county"]);
        assert_eq!(target_ids(&reg, zone_cam), [zone]);
    }
}

#[test]
fn shipped_default_has_milesight_and_reversed_devices() {
    let reg = shipped();
    let vs = reg
        .devices
        .iter()
        .find(|d| d.format == PayloadFormat::MilesightVs13x)
        .expect("a Milesight VS13x");
    assert!(vs.lines.len() >= 2);
    assert!(vs.lines.iter().any(|l| l.direction == Direction::Reversed));
    assert!(
        reg.devices
            .iter()
            .any(|d| d.kind == DeviceKind::Camera && d.direction == Direction::Reversed)
    );
}

// ---------------------------------------------------------------------------------------------
// Problems, each with its location

/// One configuration mistake: the TOML (the base registry plus or with something changed), and
/// every problem it must produce (location, a word of the message). `exact`: no other problem.
struct Case {
    name: &'static str,
    toml: String,
    expect: Vec<(String, &'static str)>,
    exact: bool,
}

fn case(name: &'static str, extra: &str, expect: &[(&str, &'static str)]) -> Case {
    Case {
        name,
        toml: format!("{BASE}\n{extra}"),
        expect: expect.iter().map(|(l, n)| (l.to_string(), *n)).collect(),
        exact: true,
    }
}

fn replaced(name: &'static str, from: &str, to: &str, expect: &[(&str, &'static str)]) -> Case {
    Case {
        toml: BASE.replace(from, to),
        ..case(name, "", expect)
    }
}

/// The registry's configuration problems, one row each.
fn config_problems() -> Vec<Case> {
    let zone = |id: &str, parent: &str, more: &str| {
        format!(
            "[[spaces]]\nid = {id:?}\nkind = \"zone\"\nparent = {parent:?}\nname_zh = \"区\"\nname_en = \"Z\"\n{more}\n"
        )
    };
    let device = |id: &str, space: &str, more: &str| {
        format!("[[devices]]\nid = {id:?}\nspace = {space:?}\n{more}\n")
    };
    let mut cases = vec![
        case(
            "unknown parent",
            &zone("z", "nowhere", ""),
            &[(r#"spaces[2] (id = "z").parent"#, "unknown parent \"nowhere\"")],
        ),
        case(
            "duplicate space id",
            "[[spaces]]\nid = \"area\"\nkind = \"scenic_area\"\nparent = \"county\"\nname_zh = \"又一个\"\nname_en = \"Again\"\n",
            &[(r#"spaces[2] (id = "area")"#, "duplicate space id")],
        ),
        case(
            "duplicate device id",
            &(device("g1", "area", "kind = \"gate\"") + &device("g1", "county", "kind = \"camera\"")),
            &[(r#"devices[1] (id = "g1")"#, "duplicate device id")],
        ),
        // The first "g1" is refused (unknown space); its twin must still be flagged in the same run.
        case(
            "duplicate of a device rejected for its space",
            &(device("g1", "nowhere", "kind = \"gate\"") + &device("g1", "area", "kind = \"gate\"")),
            &[
                (r#"devices[0] (id = "g1").space"#, "\"nowhere\""),
                (r#"devices[1] (id = "g1")"#, "duplicate device id"),
            ],
        ),
        // An equal daily capacity is fine.
        case(
            "zone capacity over its area",
            &zone("z", "area", "instant_capacity = 1001\ndaily_capacity = 4000"),
            &[(r#"spaces[2] (id = "z").instant_capacity"#, "1001 exceeds the 1000")],
        ),
        case(
            "nested zone over its parent zone",
            &(zone("z", "area", "daily_capacity = 2000") + &zone("z2", "z", "daily_capacity = 2500")),
            &[(r#"spaces[3] (id = "z2").daily_capacity"#, "\"z\"")],
        ),
        case(
            "device bound to an unknown space",
            &device("g1", "aera", "kind = \"gate\""),
            &[(r#"devices[0] (id = "g1").space"#, "\"aera\"")],
        ),
        case(
            "vehicle counter outside a car park and a people counter in one",
            &("[[spaces]]\nid = \"park\"\nkind = \"car_park\"\nparent = \"area\"\nname_zh = \"停车场\"\nname_en = \"Car park\"\ninstant_capacity = 300\n".to_owned()
                + &device("v1", "area", "kind = \"vehicle_counter\"")
                + &device("g1", "park", "kind = \"gate\"")),
            &[
                (r#"devices[0] (id = "v1").kind"#, "belongs in a car_park"),
                (r#"devices[1] (id = "g1").kind"#, "vehicle_counter"),
            ],
        ),
        replaced(
            "bad time zone",
            "Asia/Shanghai",
            "Asia/Urumqi_Local",
            &[("county.time_zone", "Asia/Urumqi_Local")],
        ),
        case(
            "milesight line out of range",
            &device(
                "vs1",
                "area",
                "kind = \"camera\"\nformat = \"milesight_vs13x\"\nlines = [{ line = 1 }, { line = 5, direction = \"reversed\" }]",
            ),
            &[(r#"devices[0] (id = "vs1").lines[1]"#, "line 5")],
        ),
        Case {
            exact: false,
            ..case(
                "lines on a native device",
                &device("c1", "area", "kind = \"camera\"\nlines = [{ line = 1 }]"),
                &[(r#"devices[0] (id = "c1").lines"#, "native format")],
            )
        },
        case(
            "a polled format without poll, and poll on a pushing device",
            &format!(
                "{}{}",
                device("ax", "area", "kind = \"camera\"\nformat = \"axis_live_sum\""),
                device(
                    "c2",
                    "area",
                    "kind = \"camera\"\npoll = { url = \"http://10.0.0.5/x\" }"
                )
            ),
            &[
                (r#"devices[0] (id = "ax").poll"#, "is polled"),
                (r#"devices[1] (id = "c2").poll"#, "only axis_live_sum"),
            ],
        ),
        case(
            "a poll URL that is not http, an interval out of range, a bad secret hash",
            &device(
                "ax",
                "area",
                "kind = \"camera\"\nformat = \"dahua_summary\"\nhttp_sha256 = \"xyz\"\npoll = { url = \"file:///etc/passwd\", interval_s = 0 }",
            ),
            &[
                (r#"devices[0] (id = "ax").poll.url"#, "http(s) URL"),
                (r#"devices[0] (id = "ax").poll.interval_s"#, "1 to 3600"),
                (r#"devices[0] (id = "ax").http_sha256"#, "SHA-256"),
            ],
        ),
        case(
            "two Hikvision regions on one device",
            &device(
                "hk",
                "area",
                "kind = \"camera\"\nformat = \"hikvision_isapi\"\nlines = [{ line = 1 }, { line = 2 }]",
            ),
            &[(r#"devices[0] (id = "hk").lines"#, "one region per device")],
        ),
        case(
            "zone that is its own parent",
            &zone("a", "a", ""),
            &[(r#"spaces[2] (id = "a")"#, "cycle")],
        ),
    ];
    for bad in ["8am", "25:00", "08:00:00", ""] {
        cases.push(replaced(
            "bad opens_at",
            "\"08:00\"",
            &format!("{bad:?}"),
            &[(r#"spaces[1] (id = "area").opens_at"#, "HH:MM")],
        ));
    }
    for bad in ["a+b", "a/b", "a#", "a b", "景区", "", ".."] {
        let mut space = replaced(
            "space id that would break MQTT topics",
            "id = \"area\"",
            &format!("id = {bad:?}"),
            &[],
        );
        space.expect = vec![(format!("spaces[1] (id = {bad:?})"), "topic")];
        space.exact = false;
        cases.push(space);
        let mut dev = case(
            "device id that would break MQTT topics",
            &format!("[[devices]]\nid = {bad:?}\nspace = \"area\"\nkind = \"gate\"\n"),
            &[],
        );
        dev.expect = vec![(format!("devices[0] (id = {bad:?})"), "topic")];
        cases.push(dev);
    }
    cases
}

#[test]
fn every_config_problem_is_found_where_it_is() {
    for c in config_problems() {
        let p = problems(&c.toml);
        for (location, needle) in &c.expect {
            let at: Vec<_> = p.iter().filter(|p| &p.location == location).collect();
            assert_eq!(
                at.len(),
                1,
                "{}: one problem at {location:?}, got {p:#?}",
                c.name
            );
            assert!(
                at[0].message.contains(needle),
                "{}: problem at {location:?} should mention {needle:?}: {:?}",
                c.name,
                at[0].message
            );
        }
        if c.exact {
            assert_eq!(p.len(), c.expect.len(), "{}: {p:#?}", c.name);
        }
    }
}

#[test]
fn cycle_of_zones() {
    let p = problems(&format!(
        r#"{BASE}
[[spaces]]
id = "a"
kind = "zone"
parent = "b"
name_zh = "甲"
name_en = "A"

[[spaces]]
id = "b"
kind = "zone"
parent = "a"
name_zh = "乙"
name_en = "B"
"#
    ));
    assert!(!p.is_empty());
    for pr in &p {
        assert!(pr.message.contains("cycle"), "{pr}");
        assert!(
            pr.location == r#"spaces[2] (id = "a")"# || pr.location == r#"spaces[3] (id = "b")"#,
            "{pr}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"
[county]
time_zone = "Mars/Olympus"

[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "area"
kind = "scenic_area"
parent = "county"
name_zh = "景区"
name_en = "Area"
instant_capacity = 100
opens_at = "8h"

[[spaces]]
id = "zone"
kind = "zone"
parent = "area"
name_zh = "区"
name_en = "Zone"
instant_capacity = 200

[[spaces]]
id = "lost"
kind = "zone"
parent = "missing"
name_zh = "迷"
name_en = "Lost"

[[spaces]]
id = "area"
kind = "scenic_area"
parent = "county"
name_zh = "重"
name_en = "Dup"

[[devices]]
id = "g/1"
space = "area"
kind = "gate"

[[devices]]
id = "g2"
space = "nowhere"
kind = "gate"

[[devices]]
id = "g2"
space = "area"
kind = "gate"

[[devices]]
id = "v1"
space = "zone"
kind = "vehicle_counter"

[[devices]]
id = "vs"
space = "area"
kind = "camera"
format = "milesight_vs13x"
lines = [{ line = 0 }]
"#,
    );
    let expected = [
        "county.time_zone",
        r#"spaces[1] (id = "area").opens_at"#,
        r#"spaces[2] (id = "zone").instant_capacity"#,
        r#"spaces[3] (id = "lost").parent"#,
        r#"spaces[4] (id = "area")"#,
        r#"devices[0] (id = "g/1")"#,
        r#"devices[1] (id = "g2").space"#,
        r#"devices[2] (id = "g2")"#,
        r#"devices[3] (id = "v1").kind"#,
        r#"devices[4] (id = "vs").lines[0]"#,
    ];
    let mut got: Vec<_> = p.iter().map(|p| p.location.as_str()).collect();
    got.sort_unstable();
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{p:#?}");
}

#[test]
fn the_error_lists_every_problem_with_its_location() {
    let cfg = Config::from_toml(&format!(
        "{BASE}\n[[devices]]\nid = \"a+\"\nspace = \"x\"\nkind = \"gate\"\n"
    ))
    .unwrap();
    let text = cfg.registry().unwrap_err().to_string();
    assert!(text.starts_with("2 problem(s)"), "{text}");
    assert!(
        text.contains(r#"devices[0] (id = "a+"): id must be"#),
        "{text}"
    );
    assert!(text.contains(r#"devices[0] (id = "a+").space: "#), "{text}");
}

#[test]
fn unknown_keys_are_refused() {
    let err = Config::from_toml(&format!("{BASE}\ninstant_capacty = 5\n"));
    assert!(err.is_err());
    let err = Config::from_toml(&BASE.replace("opens_at", "opens"));
    assert!(err.is_err());
}

// ---------------------------------------------------------------------------------------------
// Roll-up: which spaces a device's counts change

const ROLLUP: &str = r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "gated"
kind = "scenic_area"
parent = "county"
name_zh = "有门"
name_en = "Gated area"

[[spaces]]
id = "gated-zone"
kind = "zone"
parent = "gated"
name_zh = "有门分区"
name_en = "Zone of the gated area"

[[spaces]]
id = "open"
kind = "scenic_area"
parent = "county"
name_zh = "无门"
name_en = "Open area"

[[spaces]]
id = "open-zone"
kind = "zone"
parent = "open"
name_zh = "无门分区"
name_en = "Zone of the open area"

[[spaces]]
id = "open-inner"
kind = "zone"
parent = "open-zone"
name_zh = "内区"
name_en = "Inner zone"

[[spaces]]
id = "hub"
kind = "hub"
parent = "county"
name_zh = "集散中心"
name_en = "Hub"

[[spaces]]
id = "park"
kind = "car_park"
parent = "gated"
name_zh = "停车场"
name_en = "Car park"

[[spaces]]
id = "hub-park"
kind = "car_park"
parent = "hub"
name_zh = "中心停车场"
name_en = "Hub car park"

[[devices]]
id = "gate"
space = "gated"
kind = "gate"

[[devices]]
id = "zone-cam"
space = "gated-zone"
kind = "camera"

[[devices]]
id = "open-cam"
space = "open-zone"
kind = "camera"

[[devices]]
id = "inner-cam"
space = "open-inner"
kind = "camera"

[[devices]]
id = "hub-cam"
space = "hub"
kind = "camera"

[[devices]]
id = "park-1"
space = "park"
kind = "vehicle_counter"

[[devices]]
id = "hub-park-1"
space = "hub-park"
kind = "vehicle_counter"
"#;

#[test]
fn zone_camera_in_a_measured_area_counts_only_the_zone() {
    let reg = build(ROLLUP);
    assert_eq!(target_ids(&reg, "zone-cam"), ["gated-zone"]);
}

#[test]
fn area_gate_counts_the_area_and_the_county() {
    let reg = build(ROLLUP);
    assert_eq!(target_ids(&reg, "gate"), ["gated", "county"]);
}

#[test]
fn zone_in_an_unmeasured_area_rolls_up_to_area_and_county() {
    let reg = build(ROLLUP);
    assert!(!reg.space(reg.space_idx("open").unwrap()).measured);
    // open-zone is measured by its own camera, so the inner zone's people are already counted there.
    assert_eq!(
        target_ids(&reg, "open-cam"),
        ["open-zone", "open", "county"]
    );
    assert_eq!(target_ids(&reg, "inner-cam"), ["open-inner"]);
}

#[test]
fn car_parks_and_hubs_count_only_themselves() {
    let reg = build(ROLLUP);
    assert_eq!(target_ids(&reg, "park-1"), ["park"]);
    assert_eq!(target_ids(&reg, "hub-park-1"), ["hub-park"]);
    assert_eq!(target_ids(&reg, "hub-cam"), ["hub"]);
    assert_eq!(
        reg.space(reg.space_idx("park").unwrap()).unit,
        Unit::Vehicles
    );
    assert_eq!(reg.space(reg.space_idx("hub").unwrap()).unit, Unit::People);
}

#[test]
fn a_measured_county_stops_area_roll_up() {
    let reg = build(&format!(
        "{ROLLUP}\n[[devices]]\nid = \"county-cam\"\nspace = \"county\"\nkind = \"camera\"\n"
    ));
    assert_eq!(target_ids(&reg, "gate"), ["gated"]);
    assert_eq!(target_ids(&reg, "open-cam"), ["open-zone", "open"]);
    assert_eq!(target_ids(&reg, "county-cam"), ["county"]);
}

#[test]
fn parents_may_be_declared_after_children() {
    let reg = build(
        r#"
[[spaces]]
id = "z"
kind = "zone"
parent = "a"
name_zh = "区"
name_en = "Z"

[[spaces]]
id = "a"
kind = "scenic_area"
parent = "county"
name_zh = "景区"
name_en = "A"

[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[devices]]
id = "cam"
space = "z"
kind = "camera"
"#,
    );
    assert_eq!(target_ids(&reg, "cam"), ["z", "a", "county"]);
    let a = reg.space_idx("a").unwrap();
    assert_eq!(reg.space(a).children, [reg.space_idx("z").unwrap()]);
}

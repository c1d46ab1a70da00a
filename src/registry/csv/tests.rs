use crate::config::Config;
use crate::registry::{Problem, Registry};

const SPACES: &str = r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "峡谷"
name_en = "Canyon"

[[spaces]]
id = "upper"
kind = "zone"
parent = "canyon"
name_zh = "上段"
name_en = "Upper"

[[spaces]]
id = "park"
kind = "car_park"
parent = "county"
name_zh = "停车场"
name_en = "Car park"
"#;

const DEVICES_TOML: &str = r#"
[[devices]]
id = "gate-1"
space = "canyon"
kind = "gate"

[[devices]]
id = "cam-7"
space = "upper"
kind = "camera"
format = "milesight_vs13x"
lines = [{ line = 1 }, { line = 2, direction = "reversed" }]

[[devices]]
id = "hik-1"
space = "upper"
kind = "camera"
format = "hikvision_isapi"
direction = "reversed"
channel = 2
http_sha256 = "8b2c0f1a9d3e4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

[[devices]]
id = "axis-1"
space = "canyon"
kind = "camera"
format = "axis_live_sum"
poll = { url = "http://10.0.0.21/local/tvpc/.api?live-sum.json", interval_s = 300, username = "root", password = "a,b\"c" }

[[devices]]
id = "bar-1"
space = "park"
kind = "vehicle_counter"
"#;

const DEVICES_CSV: &str = "\u{feff}id,space,kind,format,direction,lines,channel,http_sha256,poll_url,poll_interval_s,poll_username,poll_password\r
gate-1,canyon,gate,,,,,,,,,\r
# a comment, then a blank line\r
\r
cam-7 , upper , camera , milesight_vs13x ,, 1;2:reversed ,,,,,,\r
hik-1,upper,camera,hikvision_isapi,reversed,,2,8b2c0f1a9d3e4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678,,,,\r
axis-1,canyon,camera,axis_live_sum,,,,,http://10.0.0.21/local/tvpc/.api?live-sum.json,300,root,\"a,b\"\"c\"\r
bar-1,park,vehicle_counter,,,,,,,,,\r
";

fn from_csv(csv: &str) -> Result<Registry, Vec<Problem>> {
    let cfg = Config::from_toml(SPACES).unwrap();
    Registry::build_with(
        &cfg.county,
        &cfg.spaces,
        &cfg.devices,
        Some(("devices.csv", csv.as_bytes())),
    )
    .map_err(|e| e.0)
}

fn from_toml(devices: &str) -> Result<Registry, Vec<Problem>> {
    Config::from_toml(&format!("{SPACES}{devices}"))
        .unwrap()
        .registry()
        .map_err(|e| e.0)
}

fn problems(csv: &str) -> Vec<String> {
    from_csv(csv)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_csv_registry_equals_the_toml_one() {
    let toml = from_toml(DEVICES_TOML).unwrap();
    let csv = from_csv(DEVICES_CSV).unwrap();
    assert_eq!(toml.devices.len(), 5);
    assert_eq!(format!("{:?}", toml.devices), format!("{:?}", csv.devices));
    assert_eq!(format!("{:?}", toml.spaces), format!("{:?}", csv.spaces));
    for id in ["gate-1", "cam-7", "hik-1", "axis-1", "bar-1"] {
        assert_eq!(toml.device_idx(id), csv.device_idx(id), "{id}");
    }
    let axis = csv.device(csv.device_idx("axis-1").unwrap());
    assert_eq!(
        axis.poll.as_ref().unwrap().password.as_deref(),
        Some("a,b\"c")
    );
}

#[test]
fn toml_and_csv_devices_add_up_and_share_one_id_space() {
    let cfg = Config::from_toml(&format!("{SPACES}{DEVICES_TOML}")).unwrap();
    let csv = "id,space,kind\ngate-2,canyon,gate\ngate-1,canyon,gate\n";
    let err = Registry::build_with(
        &cfg.county,
        &cfg.spaces,
        &cfg.devices,
        Some(("devices.csv", csv.as_bytes())),
    )
    .unwrap_err();
    assert_eq!(
        err.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [r#"devices.csv:3 (id = "gate-1"): duplicate device id "gate-1""#]
    );
    let csv = "id,space,kind\ngate-2,canyon,gate\n";
    let reg = Registry::build_with(
        &cfg.county,
        &cfg.spaces,
        &cfg.devices,
        Some(("devices.csv", csv.as_bytes())),
    )
    .unwrap();
    assert_eq!(reg.devices.len(), 6);
    assert_eq!(reg.device_idx("gate-2").map(|d| d.get()), Some(5));
}

#[test]
fn every_row_problem_is_located_by_line_and_column() {
    let csv = "id,space,kind,format,lines,channel,poll_interval_s
ok-1,canyon,gate,,,,
bad-kind,canyon,gates,,,,
nowhere,lake,gate,,,,
ok-1,canyon,gate,,,,
bad-lines,upper,camera,milesight_vs13x,1;x,,
bad-cells,upper,camera,xml,,two,soon
short,canyon
\"open,canyon,gate,,,,
,canyon,gate,,,,
bad id,canyon,gate,,,,
car,park,camera,,,,
vs,upper,camera,milesight_vs13x,5,,
";
    assert_eq!(
        problems(csv),
        [
            r#"devices.csv:3 (id = "bad-kind").kind: "gates": unknown variant `gates`, expected one of `gate`, `camera`, `vehicle_counter`"#,
            r#"devices.csv:4 (id = "nowhere").space: bound to no known space ("lake")"#,
            r#"devices.csv:5 (id = "ok-1"): duplicate device id "ok-1""#,
            r#"devices.csv:6 (id = "bad-lines").lines: "x" is not a line number (write N or N:reversed, `;` between lines)"#,
            r#"devices.csv:7 (id = "bad-cells").format: "xml": unknown variant `xml`, expected one of `native`, `milesight_vs13x`, `hikvision_isapi`, `xovis`, `axis_live_sum`, `dahua_summary`, `hikvision_counting`"#,
            r#"devices.csv:7 (id = "bad-cells").channel: "two" is not a channel number"#,
            r#"devices.csv:7 (id = "bad-cells").poll_interval_s: "soon" is not a number of seconds"#,
            r#"devices.csv:8 (id = "short"): 2 cells where the header names 7 columns"#,
            "devices.csv:9: a quoted cell is not closed on its line",
            r#"devices.csv:10 (id = "").id: required"#,
            r#"devices.csv:11 (id = "bad id"): id must be 1–64 characters of A–Z a–z 0–9 - _ . (it is a topic segment)"#,
            r#"devices.csv:12 (id = "car").kind: a car park counts vehicles: use kind = "vehicle_counter" for "car""#,
            r#"devices.csv:13 (id = "vs").lines[0]: line 5 does not exist (VS13x has lines 1–4)"#,
        ]
    );
}

#[test]
fn a_problem_reads_the_same_from_toml_and_csv_but_for_where() {
    let toml = from_toml(
        "[[devices]]\nid = \"v\"\nspace = \"upper\"\nkind = \"vehicle_counter\"\nformat = \"dahua_summary\"\n",
    )
    .unwrap_err();
    let csv =
        from_csv("id,space,kind,format\nv,upper,vehicle_counter,dahua_summary\n").unwrap_err();
    assert_eq!(toml.len(), 2);
    for (t, c) in toml.iter().zip(&csv) {
        assert_eq!(t.message, c.message);
        assert_eq!(
            t.location.replace("devices[0]", "devices.csv:2"),
            c.location
        );
    }
}

#[test]
fn a_bad_header_stops_the_file_with_every_header_problem() {
    assert_eq!(
        problems("id,space,colour,space\ncam,canyon,red,canyon\n"),
        [
            r#"devices.csv:1: unknown column "colour" (columns: id, space, kind, format, direction, lines, channel, http_sha256, poll_url, poll_interval_s, poll_username, poll_password, poll_password_file)"#,
            r#"devices.csv:1: column "space" appears twice"#,
            r#"devices.csv:1: no "kind" column (it is required)"#,
        ]
    );
    let empty = problems("# nothing here\n");
    assert_eq!(empty.len(), 1);
    assert!(
        empty[0].starts_with("devices.csv: no header row"),
        "{empty:?}"
    );
}

#[test]
fn a_missing_file_is_a_located_problem() {
    let cfg = Config::from_toml(&format!(
        "[registry]\ndevices_csv = \"/nonexistent/devices.csv\"\n{SPACES}"
    ))
    .unwrap();
    let err = cfg.registry().unwrap_err().0;
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].location, "registry.devices_csv");
    assert!(
        err[0]
            .message
            .starts_with("cannot read /nonexistent/devices.csv")
    );
}

#[test]
fn a_relative_csv_path_is_the_config_file_s_neighbour() {
    let dir = std::env::temp_dir().join(format!("vf-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("devices.csv"), DEVICES_CSV).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!("[registry]\ndevices_csv = \"devices.csv\"\n{SPACES}"),
    )
    .unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    let reg = cfg.registry().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reg.devices.len(), 5);
}

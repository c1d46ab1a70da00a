//! The Grafana dashboards in dashboards/: well-formed (schema version, unique ids, a 24-column grid
//! without overlaps, datasources that the provisioning file defines, variables that exist), every
//! PostgreSQL query run for real — macros expanded as Grafana expands them on plain PostgreSQL —
//! against a migrated database with sample data, as the read-only role Grafana logs in as, and
//! every Prometheus expression checked against the service's metric names and by promtool.

mod ops_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ops_support::*;
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;
use visitorflow::supervise::PgCluster;

const PG_TYPE: &str = "grafana-postgresql-datasource";
const PROVISIONING: &str = "deploy/grafana/provisioning/datasources/datasources.yml";

fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the three dashboards, found {files:?}"
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, v)
        })
        .collect()
}

/// Panels, with the panels inside rows.
fn panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

fn variables(d: &Value) -> Vec<Value> {
    d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// uid → type from the provisioning file.
fn provisioned() -> HashMap<String, String> {
    let ds = yaml(PROVISIONING);
    ds["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .map(|d| {
            (
                d["uid"].as_str().expect("datasource uid").to_string(),
                d["type"].as_str().expect("datasource type").to_string(),
            )
        })
        .collect()
}

/// A datasource reference's uid and type; None for Grafana's built-in annotation source.
fn ds_ref(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Null => None,
        Value::Object(o) => {
            let uid = o.get("uid").and_then(Value::as_str).unwrap_or_default();
            let ty = o.get("type").and_then(Value::as_str).unwrap_or_default();
            (ty != "grafana" && uid != "-- Grafana --").then(|| (uid.to_string(), ty.to_string()))
        }
        Value::String(s) => panic!("datasource referenced by name {s:?}: use {{type, uid}}"),
        other => panic!("datasource {other:?}"),
    }
}

/// A query with where it came from.
struct Query {
    what: String,
    text: String,
    /// time_series or table (SQL); None for Prometheus and variable queries.
    format: Option<String>,
    /// The panel's minimum interval, e.g. "1m".
    min_interval: Option<String>,
    /// The panel's relative time override, e.g. "30d".
    time_from: Option<String>,
}

fn queries(d: &Value, name: &str, ds_type: &str) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        let panel_ds = ds_ref(&p["datasource"]);
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            let ds = ds_ref(&t["datasource"]).or(panel_ds.clone());
            let Some((_, ty)) = ds else { continue };
            if ty != ds_type {
                continue;
            }
            let text = if ty == PG_TYPE {
                assert_eq!(t["rawQuery"], true, "{name} / {}: rawQuery", p["title"]);
                t["rawSql"].as_str()
            } else {
                t["expr"].as_str()
            };
            out.push(Query {
                what: format!(
                    "panel {} {:?} {}",
                    p["id"],
                    p["title"].as_str().unwrap_or(""),
                    t["refId"]
                ),
                text: text
                    .unwrap_or_else(|| panic!("{name} / {}: target without query", p["title"]))
                    .to_string(),
                format: t["format"].as_str().map(String::from),
                min_interval: p["interval"].as_str().map(String::from),
                time_from: p["timeFrom"].as_str().map(String::from),
            });
        }
    }
    for v in variables(d) {
        if v["type"] != "query" {
            continue;
        }
        let Some((_, ty)) = ds_ref(&v["datasource"]) else {
            continue;
        };
        if ty != ds_type {
            continue;
        }
        let text = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("rawSql")
                .or(o.get("query"))
                .and_then(Value::as_str)
                .expect("variable query text")
                .to_string(),
            other => panic!("variable query {other:?}"),
        };
        out.push(Query {
            what: format!("variable ${}", v["name"].as_str().unwrap()),
            text,
            format: None,
            min_interval: None,
            time_from: None,
        });
    }
    out
}

#[test]
fn dashboards_are_well_formed_and_use_provisioned_datasources() {
    let ds = provisioned();
    assert_eq!(ds.get("visitorflow-pg").map(String::as_str), Some(PG_TYPE));
    assert_eq!(
        ds.get("visitorflow-prom").map(String::as_str),
        Some("prometheus")
    );
    let provisioning = yaml(PROVISIONING);
    let pg = provisioning["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["uid"].as_str() == Some("visitorflow-pg"))
        .unwrap();
    assert_eq!(pg["jsonData"]["sslmode"].as_str(), Some("disable"));
    assert_eq!(pg["jsonData"]["postgresVersion"].as_u64(), Some(1500));
    assert!(pg["jsonData"]["timescaledb"].is_bool());
    assert!(pg["jsonData"]["database"].is_string());

    let mut uids = HashSet::new();
    let mut titles = HashSet::new();
    for (name, d) in dashboards() {
        let schema = d["schemaVersion"].as_u64().unwrap_or(0);
        assert!(schema >= 39, "{name}: schemaVersion {schema}");
        assert!(
            d["id"].is_null(),
            "{name}: a provisioned dashboard has no numeric id"
        );
        let uid = d["uid"].as_str().expect("uid");
        assert!(
            uid.len() <= 40 && uids.insert(uid.to_string()),
            "{name}: uid {uid}"
        );
        assert!(
            titles.insert(d["title"].as_str().unwrap().to_string()),
            "{name}: title"
        );

        let mut ids = HashSet::new();
        let mut boxes: Vec<(i64, i64, i64, i64, String)> = Vec::new();
        for p in panels(&d) {
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{name}: panel without id"));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
            let title = p["title"].as_str().unwrap_or_default().to_string();
            assert!(!title.is_empty(), "{name}: panel {id} has no title");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64().unwrap(),
                g["y"].as_i64().unwrap(),
                g["w"].as_i64().unwrap(),
                g["h"].as_i64().unwrap(),
            );
            assert!(
                x >= 0 && y >= 0 && w > 0 && h > 0,
                "{name}/{title}: gridPos {g}"
            );
            assert!(x + w <= 24, "{name}/{title}: beyond 24 columns ({g})");
            for (bx, by, bw, bh, other) in &boxes {
                let overlap = x < bx + bw && *bx < x + w && y < by + bh && *by < y + h;
                assert!(!overlap, "{name}: {title} overlaps {other}");
            }
            boxes.push((x, y, w, h, title.clone()));

            let mut refs = HashSet::new();
            for r in std::iter::once(&p["datasource"]).chain(
                p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| &t["datasource"]),
            ) {
                if let Some((uid, ty)) = ds_ref(r) {
                    let known = ds.get(&uid).unwrap_or_else(|| {
                        panic!("{name}/{title}: datasource uid {uid} is not provisioned")
                    });
                    assert_eq!(known, &ty, "{name}/{title}: {uid} has type {known}");
                }
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let r = t["refId"].as_str().expect("refId");
                assert!(
                    refs.insert(r.to_string()),
                    "{name}/{title}: refId {r} twice"
                );
            }
        }
        for v in variables(&d) {
            if let Some((uid, _)) = ds_ref(&v["datasource"]) {
                assert!(ds.contains_key(&uid), "{name}: variable datasource {uid}");
            }
            // The county constant names the registry's root space (its series sum the areas').
            if v["name"] == "county" {
                let cfg =
                    visitorflow::config::Config::from_toml(&read("deploy/config.toml")).unwrap();
                let root: Vec<&str> = cfg
                    .spaces
                    .iter()
                    .filter(|s| s.parent.is_none())
                    .map(|s| s.id.as_str())
                    .collect();
                assert_eq!(root, [v["query"].as_str().unwrap()], "{name}: $county");
            }
        }

        // Every $variable a query uses is defined; no TimescaleDB-only SQL written by hand.
        let defined: HashSet<String> = variables(&d)
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        for q in queries(&d, &name, PG_TYPE) {
            for var in template_vars(&q.text) {
                assert!(
                    defined.contains(&var),
                    "{name} {}: ${var} is not defined",
                    q.what
                );
            }
            let lower = q.text.to_lowercase();
            for only_timescale in ["time_bucket", "first(", "last(", "locf("] {
                assert!(
                    !lower.contains(only_timescale),
                    "{name} {}: {only_timescale} is TimescaleDB-only; use the $__timeGroup macros",
                    q.what
                );
            }
        }
    }
}

/// `$name`, `${name}` and `[[name]]` references other than Grafana's `$__…` built-ins.
fn template_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let tail = &rest[pos + 1..];
        let tail = tail.strip_prefix('{').unwrap_or(tail);
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.starts_with("__") {
            out.push(name);
        }
        rest = &rest[pos + 1..];
    }
    let mut rest = text;
    while let Some(pos) = rest.find("[[") {
        let end = rest[pos..].find("]]").expect("unclosed [[");
        out.push(rest[pos + 2..pos + end].to_string());
        rest = &rest[pos + end..];
    }
    out
}

// ----------------------------------------------------------------------------------------------
// Grafana's SQL macro expansion (pkg/tsdb/grafana-postgresql-datasource/macros.go)
// ----------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// Grafana's gtime.ParseInterval for the forms dashboards use: `30s`, `5m`, `1h`, `1d`, `1w`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim().trim_matches('\'');
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().map_err(|_| format!("interval {s:?}"))?;
    Ok(match &s[digits.len()..] {
        "ms" => Duration::milliseconds(n),
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        u => return Err(format!("interval unit {u:?} in {s:?}")),
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Float formatting as Go's `%v` prints the seconds of an interval (60, 0.5, 3600).
fn go_v(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Expands `$__macro(args)` calls. `timescaledb` switches `$__timeGroup` to `time_bucket` as the
/// datasource's `timescaledb: true` does.
fn expand_macros(sql: &str, r: Range, timescaledb: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(pos) = rest.find("$__") {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 3..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &tail[name.len()..];
        if !after.starts_with('(') {
            return Err(format!(
                "${name} is not a macro call (variables are substituted first)"
            ));
        }
        // Arguments up to the matching parenthesis, split on top-level commas.
        let mut depth = 0;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unclosed $__{name}("))?;
        let inner = &after[1..end];
        let mut args = Vec::new();
        let (mut d, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '(' => d += 1,
                ')' => d -= 1,
                ',' if d == 0 => {
                    args.push(inner[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        if !inner.trim().is_empty() {
            args.push(inner[start..].trim().to_string());
        }
        let need = |n: usize| {
            if args.len() < n {
                Err(format!("$__{name} needs {n} argument(s), got {args:?}"))
            } else {
                Ok(())
            }
        };
        let time_group = |args: &[String]| -> Result<String, String> {
            let secs = parse_interval(&args[1])?.as_seconds_f64();
            Ok(if timescaledb {
                format!("time_bucket('{secs:.3}s',{})", args[0])
            } else {
                format!(
                    "floor(extract(epoch from {})/{})*{}",
                    args[0],
                    go_v(secs),
                    go_v(secs)
                )
            })
        };
        let expanded = match name.as_str() {
            "time" => {
                need(1)?;
                format!("{} AS \"time\"", args[0])
            }
            "timeEpoch" => {
                need(1)?;
                format!("extract(epoch from {}) as \"time\"", args[0])
            }
            "timeFilter" => {
                need(1)?;
                format!(
                    "{} BETWEEN '{}' AND '{}'",
                    args[0],
                    rfc3339(r.from),
                    rfc3339(r.to)
                )
            }
            "timeFrom" => format!("'{}'", rfc3339(r.from)),
            "timeTo" => format!("'{}'", rfc3339(r.to)),
            "timeGroup" => {
                need(2)?;
                time_group(&args)?
            }
            "timeGroupAlias" => {
                need(2)?;
                format!("{} AS \"time\"", time_group(&args)?)
            }
            "unixEpochFilter" => {
                need(1)?;
                format!(
                    "{c} >= {} AND {c} <= {}",
                    r.from.timestamp(),
                    r.to.timestamp(),
                    c = args[0]
                )
            }
            other => {
                return Err(format!(
                    "macro $__{other} is not known to this test's expander"
                ));
            }
        };
        out.push_str(&expanded);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A template variable's value as Grafana's SQL datasources interpolate it: a single value raw
/// (quotes doubled), a multi-value or include-all variable as a list of quoted literals.
#[derive(Clone)]
enum VarValue {
    Single(String),
    Multi(Vec<String>),
}

fn substitute_vars(sql: &str, vars: &BTreeMap<String, VarValue>, interval: Duration) -> String {
    let mut s = sql.to_string();
    let secs = interval.num_seconds();
    let interval_text = if secs % 86400 == 0 {
        format!("{}d", secs / 86400)
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    };
    s = s.replace("$__interval_ms", &interval.num_milliseconds().to_string());
    s = s.replace("${__interval}", &interval_text);
    s = s.replace("$__interval", &interval_text);
    // Longest names first so `$space_id` is not taken for `$space`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = match &vars[name] {
            VarValue::Single(v) => v.replace('\'', "''"),
            VarValue::Multi(vs) => vs
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(","),
        };
        s = s.replace(&format!("${{{name}}}"), &value);
        s = s.replace(&format!("[[{name}]]"), &value);
        s = s.replace(&format!("${name}"), &value);
    }
    s
}

#[test]
fn macro_expansion_matches_grafana() {
    let r = Range {
        from: "2024-05-01T00:00:00Z".parse().unwrap(),
        to: "2024-05-01T06:00:00Z".parse().unwrap(),
    };
    let sql = "SELECT $__timeGroupAlias(bucket, 5m), x FROM t WHERE $__timeFilter(bucket) AND a > $__timeFrom()";
    assert_eq!(
        expand_macros(sql, r, false).unwrap(),
        "SELECT floor(extract(epoch from bucket)/300)*300 AS \"time\", x FROM t WHERE bucket BETWEEN \
         '2024-05-01T00:00:00Z' AND '2024-05-01T06:00:00Z' AND a > '2024-05-01T00:00:00Z'"
    );
    assert_eq!(
        expand_macros("$__timeGroup(date_trunc('hour', b), '1h')", r, true).unwrap(),
        "time_bucket('3600.000s',date_trunc('hour', b))"
    );
    assert!(expand_macros("$__unknownMacro(x)", r, false).is_err());
    let mut vars = BTreeMap::new();
    vars.insert("space".to_string(), VarValue::Single("o'brien".into()));
    vars.insert(
        "area".to_string(),
        VarValue::Multi(vec!["a".into(), "b".into()]),
    );
    assert_eq!(
        substitute_vars(
            "'$space' IN ($area) $__interval",
            &vars,
            Duration::minutes(5)
        ),
        "'o''brien' IN ('a','b') 5m"
    );
}

// ----------------------------------------------------------------------------------------------
// Running the SQL
// ----------------------------------------------------------------------------------------------

/// `now-24h` → 24 hours.
fn relative(s: &str) -> Duration {
    let s = s.strip_prefix("now-").unwrap_or(s);
    parse_interval(s).unwrap_or_else(|e| panic!("time range: {e}"))
}

/// Columns and row count of a simple (text protocol) query.
async fn run_sql(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), String> {
    let msgs = client
        .simple_query(sql)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })?;
    let mut cols = Vec::new();
    let mut rows = Vec::new();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(d) => {
                cols = d.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                if cols.is_empty() {
                    cols = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
            }
            _ => {}
        }
    }
    Ok((cols, rows))
}

const SAMPLE_DATA: &str = r#"
INSERT INTO space_series_1m (space_id, bucket, entries, exits, occupancy, peak)
SELECT s.id, date_trunc('minute', now()) - make_interval(mins => m),
       5 + m % 7, 3 + m % 5, 100 + (180 - m) * 2, 110 + (180 - m) * 2
FROM unnest(ARRAY['county', 'tianshan-canyon', 'muxutai']) AS s(id), generate_series(0, 180) AS m;
INSERT INTO space_series_1m (space_id, bucket, entries, exits, occupancy, peak)
SELECT 'tianshan-canyon', date_trunc('minute', now()) - make_interval(days => d, mins => 600), 400, 380, 20, 90
FROM generate_series(1, 20) AS d;
INSERT INTO space_state (space_id, day, entries, exits, base, minute, min_in, min_out, closed_drift,
                         peak, peak_at, last_report)
SELECT s.id, (now() AT TIME ZONE vf_time_zone())::date, 1200, 900, 0,
       (extract(epoch FROM now()) / 60)::bigint, 5, 3, 0, 460, now() - interval '1 hour', now()
FROM unnest(ARRAY['county', 'tianshan-canyon', 'muxutai']) AS s(id);
INSERT INTO reports (device_id, seq, ts, received_at, space_id, entries, exits)
SELECT 'tsc-gate-1', n, now() - make_interval(mins => n), now() - make_interval(mins => n), 'tianshan-canyon', 5, 3
FROM generate_series(1, 120) AS n;
INSERT INTO device_state (device_id, high_seq, window_hi, window_lo, last_ts, missing, gaps_total,
                          repaired_total, resets_total, last_received, online)
VALUES ('tsc-gate-1', 120, 0, -1, now(), 0, 1, 1, 0, now(), true);
WITH run AS (
    INSERT INTO forecast_runs (trigger, first_day, days, made_at)
    VALUES ('nightly', (now() AT TIME ZONE vf_time_zone())::date - 1, 3, now() - interval '1 day')
    RETURNING id
)
INSERT INTO day_forecasts (run_id, space_id, day, day_kind, entries, peak, hourly)
SELECT run.id, s.id, (now() AT TIME ZONE vf_time_zone())::date + d, 'workday',
       '{"mean": 1000, "lo80": 800, "hi80": 1200, "lo95": 700, "hi95": 1300}',
       '{"mean": 230, "lo80": 184, "hi80": 276, "lo95": 138, "hi95": 322}',
       (SELECT jsonb_agg(jsonb_build_object(
                   'entries', jsonb_build_object('mean', 50, 'lo80', 40, 'hi80', 60, 'lo95', 30, 'hi95', 70),
                   'occupancy', jsonb_build_object('mean', h * 10, 'lo80', h * 8, 'hi80', h * 12,
                                                   'lo95', h * 6, 'hi95', h * 14)) ORDER BY h)
        FROM generate_series(0, 23) AS h)
FROM run, unnest(ARRAY['county', 'tianshan-canyon', 'muxutai']) AS s(id), generate_series(-1, 1) AS d;
"#;

fn psql_path() -> Option<PathBuf> {
    find_program("psql").or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin/psql")))
            .filter(|p| p.is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_query_runs_on_a_migrated_database_as_grafanas_role() {
    visitorflow::telemetry::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let pg = PgCluster::start(&dir.path().join("pg")).expect("start PostgreSQL");
    let reader = grafana_database(&pg, false).await;
    run_all(&reader, false).await;

    // TimescaleDB mode too, where the extension is installed (it is not in Debian's archive, so
    // not in CI): the provisioned datasource has `timescaledb: true`, so Grafana expands
    // $__timeGroup to time_bucket; the plain expansion must work there as well. A cluster of its
    // own, since the init script creates the (cluster-wide) role, as on a new database volume.
    if pg.timescaledb_available() {
        let pg = PgCluster::start(&dir.path().join("pg-timescaledb")).expect("start PostgreSQL");
        let reader = grafana_database(&pg, true).await;
        run_all(&reader, true).await;
        run_all(&reader, false).await;
    } else {
        println!("note: TimescaleDB is not installed; queries ran in plain PostgreSQL mode only");
    }
}

/// A database set up as the compose file does it: the container's init script creates Grafana's
/// role, then the service migrates (with `timescaledb` as asked) and holds the sample data.
/// Returns a connection as Grafana's read-only role.
async fn grafana_database(pg: &PgCluster, timescaledb: bool) -> tokio_postgres::Client {
    pg.create_database("vf").unwrap();
    let psql = psql_path().expect("psql (PostgreSQL client) not found");
    let path = format!(
        "{}:{}",
        psql.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(repo().join("deploy/postgres/initdb/100-grafana-reader.sh"))
        .env("PATH", path)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("POSTGRES_USER", visitorflow::supervise::PG_USER)
        .env("POSTGRES_DB", "vf")
        .env("GRAFANA_DB_PASSWORD", "test-only")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init script: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let owner_url = pg.url("vf");
    // A week's max_age_days: on TimescaleDB the sample's days 9 to 20 back are materialised, the
    // rest aggregated at query time, so the reader reads both.
    let mode = visitorflow::store::migrate(&owner_url, "Asia/Shanghai", timescaledb, 7)
        .await
        .expect("migrations");
    let want = if timescaledb {
        visitorflow::store::Mode::Timescale
    } else {
        visitorflow::store::Mode::Plain
    };
    assert_eq!(mode, want);
    let owner = visitorflow::store::connect(&owner_url).await.unwrap();
    owner.batch_execute(SAMPLE_DATA).await.expect("sample data");
    if timescaledb {
        // Materialise what the policies would by now, so the reader reads materialised and
        // real-time buckets alike.
        for row in owner
            .query(
                "SELECT job_id FROM timescaledb_information.jobs \
                 WHERE proc_name = 'policy_refresh_continuous_aggregate'",
                &[],
            )
            .await
            .unwrap()
        {
            let job: i32 = row.get(0);
            // A scheduled run of the same policy (they start as soon as they are added) makes
            // this one fail until it is done.
            let mut tries = 0;
            while let Err(e) = owner.execute("CALL run_job($1)", &[&job]).await {
                let busy = e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                assert!(busy && tries < 50, "run_job({job}): {e:?}");
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }

    let reader_url = owner_url.replacen(
        &format!("{}@", visitorflow::supervise::PG_USER),
        "grafana_reader@",
        1,
    );
    let reader = visitorflow::store::connect(&reader_url)
        .await
        .expect("grafana_reader logs in");
    let denied = reader
        .batch_execute("DELETE FROM space_state")
        .await
        .expect_err("grafana_reader must not write");
    assert!(denied.to_string().contains("read-only") || denied.as_db_error().is_some());
    reader
}

async fn run_all(client: &tokio_postgres::Client, timescaledb: bool) {
    let now = Utc::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, d) in dashboards() {
        let default_from = relative(d["time"]["from"].as_str().unwrap_or("now-6h"));
        let range_for = |q: &Query| {
            let span = q.time_from.as_deref().map(relative).unwrap_or(default_from);
            Range {
                from: now - span,
                to: now,
            }
        };
        // Variables first, in order, from their own queries (as Grafana does on load).
        let mut vars: BTreeMap<String, VarValue> = BTreeMap::new();
        let qs = queries(&d, &name, PG_TYPE);
        for v in variables(&d) {
            let vname = v["name"].as_str().unwrap().to_string();
            let value = match v["type"].as_str().unwrap() {
                "constant" | "custom" | "textbox" => {
                    VarValue::Single(v["query"].as_str().unwrap().to_string())
                }
                "query" => {
                    let q = qs
                        .iter()
                        .find(|q| q.what == format!("variable ${vname}"))
                        .unwrap();
                    let sql = substitute_vars(&q.text, &vars, Duration::minutes(1));
                    let sql = expand_macros(&sql, range_for(q), timescaledb)
                        .unwrap_or_else(|e| panic!("{name} {}: {e}", q.what));
                    let (_, rows) = run_sql(client, &sql)
                        .await
                        .unwrap_or_else(|e| panic!("{name} {}: {e}\n{sql}", q.what));
                    ran += 1;
                    let values: Vec<String> =
                        rows.into_iter().filter_map(|r| r[0].clone()).collect();
                    assert!(!values.is_empty(), "{name} {}: no values", q.what);
                    if v["multi"] == true || v["includeAll"] == true {
                        VarValue::Multi(values)
                    } else {
                        // Prefer the area the sample data fills most.
                        let pick = values
                            .iter()
                            .find(|s| *s == "tianshan-canyon")
                            .unwrap_or(&values[0]);
                        VarValue::Single(pick.clone())
                    }
                }
                other => panic!("{name}: variable type {other} not handled"),
            };
            vars.insert(vname, value);
        }
        for q in qs.iter().filter(|q| q.format.is_some()) {
            let interval = q
                .min_interval
                .as_deref()
                .map(|i| parse_interval(i).unwrap())
                .unwrap_or(Duration::minutes(1));
            let sql = substitute_vars(&q.text, &vars, interval);
            let sql = match expand_macros(&sql, range_for(q), timescaledb) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{name} {}: {e}", q.what));
                    continue;
                }
            };
            ran += 1;
            match run_sql(client, &sql).await {
                Err(e) => failures.push(format!("{name} {}: {e}\n{sql}", q.what)),
                Ok((cols, rows)) => {
                    if rows.is_empty() {
                        failures.push(format!(
                            "{name} {}: no rows from sample data\n{sql}",
                            q.what
                        ));
                    }
                    if q.format.as_deref() == Some("time_series")
                        && !cols.iter().any(|c| c == "time")
                    {
                        failures.push(format!(
                            "{name} {}: time series without a `time` column ({cols:?})",
                            q.what
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} queries failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran >= 15, "only {ran} SQL queries found");
}

// ----------------------------------------------------------------------------------------------
// Prometheus panels
// ----------------------------------------------------------------------------------------------

#[test]
fn prometheus_panels_use_the_services_metric_names_and_parse() {
    let m = telemetry_metrics();
    let recorded = recorded_names();
    let mut exprs = Vec::new();
    for (name, d) in dashboards() {
        for q in queries(&d, &name, "prometheus") {
            let unknown = unknown_series(&q.text, &m, &recorded, &["up", "ALERTS"]);
            assert!(
                unknown.is_empty(),
                "{name} {}: unknown series {unknown:?} in {}",
                q.what,
                q.text
            );
            exprs.push(q);
        }
    }
    assert!(exprs.len() >= 10, "only {} Prometheus queries", exprs.len());
    // Every metric the service exports is on the health dashboard, except per-space gauges.
    let all: String = exprs
        .iter()
        .map(|q| q.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for metric in &m.names {
        let per_space = [
            "visitorflow_occupancy",
            "visitorflow_entries_today",
            "visitorflow_drift_today",
        ];
        if !per_space.contains(&metric.as_str()) {
            assert!(all.contains(metric.as_str()), "no panel shows {metric}");
        }
    }

    // promtool parses each expression as a recording rule (Grafana's range variables replaced).
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q
                .text
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h");
            serde_json::json!({ "record": format!("dashboard:expr_{i}"), "expr": expr })
        })
        .collect();
    let doc = serde_json::json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-exprs.yml");
    std::fs::write(&file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool rejects a dashboard expression:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

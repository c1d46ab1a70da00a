//! The deployment files, checked without Docker: docker-compose.yml against the repository (bind
//! mounts, variables, ports, health checks, restart policies, service names), the service's
//! environment against the real configuration loader, deploy/Dockerfile, the container config
//! against the county registry, Prometheus rules against the service's metric names and the
//! runbook, and the systemd unit with `systemd-analyze verify`.

mod ops_support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use ops_support::*;
use serde_yaml_ng::Value;
use visitorflow::config::Config;

const COMPOSE: &str = "docker-compose.yml";
/// The primary + synchronous standby overlay (`-f docker-compose.yml -f` this).
const REPLICATION: &str = "deploy/replication/compose.yml";

fn compose() -> Value {
    yaml(COMPOSE)
}

fn services(c: &Value) -> Vec<(String, Value)> {
    c["services"]
        .as_mapping()
        .expect("compose: services")
        .iter()
        .map(|(k, v)| (k.as_str().expect("service name").to_string(), v.clone()))
        .collect()
}

fn service(c: &Value, name: &str) -> Value {
    let s = c["services"][name].clone();
    assert!(!s.is_null(), "compose has no service {name}");
    s
}

/// `environment:` as a map, from either the mapping or the `KEY=value` list form.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                };
                (k.as_str().unwrap().to_string(), v)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let (k, v) = i
                    .as_str()
                    .unwrap()
                    .split_once('=')
                    .unwrap_or((i.as_str().unwrap(), ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment of unexpected shape: {other:?}"),
    }
}

/// Every string scalar (and mapping key) in a YAML tree.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// A `${NAME…}` or `$NAME` reference as compose interpolates it (`$$` is a literal `$`).
#[derive(Debug)]
struct VarRef {
    name: String,
    /// `:?` / `?`: compose refuses to start without it.
    required: bool,
    /// `:-` / `-` default.
    default: Option<String>,
}

fn var_refs(s: &str) -> Vec<VarRef> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if b.get(i + 1) == Some(&b'{') {
            let end = s[i..].find('}').map(|e| i + e).expect("unclosed ${");
            let inner = &s[i + 2..end];
            let name_len = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, rest) = inner.split_at(name_len);
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            out.push(VarRef {
                name: name.to_string(),
                required: rest.starts_with('?'),
                default: rest.strip_prefix('-').map(String::from),
            });
            i = end + 1;
        } else {
            let name: String = s[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                !name.is_empty(),
                "a lone `$` in {s:?}: write `$$` for a literal dollar"
            );
            out.push(VarRef {
                name,
                required: false,
                default: None,
            });
            i += 1;
        }
    }
    out
}

/// Replaces every reference with `value(name)` (or its default), and `$$` with `$`.
fn interpolate(s: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if tail.starts_with("${") {
            let end = tail.find('}').unwrap();
            let r = &var_refs(&tail[..=end])[0];
            let v = value(&r.name)
                .or_else(|| r.default.clone())
                .unwrap_or_default();
            out.push_str(&v);
            rest = &tail[end + 1..];
        } else {
            let name: String = tail[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push_str(&value(&name).unwrap_or_default());
            rest = &tail[1 + name.len()..];
        }
    }
    out.push_str(rest);
    out
}

/// `.env.example` as (name, value) pairs in file order.
fn env_example() -> Vec<(String, String)> {
    read(".env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!(".env.example: `{l}` is not NAME=value"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// Values a filled-in .env would have: the example's, with a dummy for each empty secret.
fn dummy_env() -> HashMap<String, String> {
    env_example()
        .into_iter()
        .map(|(k, v)| {
            let v = if v.is_empty() {
                format!("test{}", k.to_lowercase().replace('_', ""))
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

/// A service's `ports:` as (host part, container port) pairs, short or long syntax.
fn ports(svc: &Value) -> Vec<(String, u16)> {
    let Some(items) = svc["ports"].as_sequence() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|p| match p {
            Value::String(s) => {
                let (host, container) = s.rsplit_once(':').unwrap_or(("", s));
                let container = container.split('/').next().unwrap();
                (host.to_string(), container.parse().expect("container port"))
            }
            Value::Mapping(_) => (
                p["published"].as_str().unwrap_or_default().to_string(),
                p["target"].as_u64().expect("target port") as u16,
            ),
            other => panic!("port entry {other:?}"),
        })
        .collect()
}

/// `volumes:` of a service as (source, target) pairs; a source starting with `.` or `/` is a
/// bind mount, anything else a named volume.
fn mounts(svc: &Value) -> Vec<(String, String)> {
    let Some(items) = svc["volumes"].as_sequence() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => {
                let mut parts = s.split(':');
                let src = parts.next().unwrap().to_string();
                let dst = parts.next().expect("volume target").to_string();
                (src, dst)
            }
            Value::Mapping(_) => (
                v["source"].as_str().expect("volume source").to_string(),
                v["target"].as_str().expect("volume target").to_string(),
            ),
            other => panic!("volume entry {other:?}"),
        })
        .collect()
}

/// The container path `path` lies under one of the service's mounts.
fn mounted(svc: &Value, path: &str) -> bool {
    mounts(svc)
        .iter()
        .any(|(_, dst)| path == dst || path.starts_with(&format!("{}/", dst.trim_end_matches('/'))))
}

fn healthcheck_command(svc: &Value) -> Vec<String> {
    svc["healthcheck"]["test"]
        .as_sequence()
        .expect("healthcheck test as a list")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_service_has_a_restart_policy_and_a_health_check() {
    let c = compose();
    let all = services(&c);
    assert!(
        all.len() >= 6,
        "expected the full stack, found {}",
        all.len()
    );
    for (name, svc) in &all {
        let restart = svc["restart"]
            .as_str()
            .unwrap_or_else(|| panic!("service {name} has no restart policy"));
        let hc = &svc["healthcheck"];
        assert!(hc.is_mapping(), "service {name} has no healthcheck");
        if restart == "no" {
            // A one-shot job: no health to check, and others wait for it to finish.
            assert_eq!(
                hc["disable"].as_bool(),
                Some(true),
                "{name}: one-shot without disable"
            );
            let awaited = all.iter().any(|(_, other)| {
                other["depends_on"][name.as_str()]["condition"].as_str()
                    == Some("service_completed_successfully")
            });
            assert!(
                awaited,
                "{name}: no service waits for the one-shot to complete"
            );
            continue;
        }
        assert!(
            ["always", "unless-stopped", "on-failure"].contains(&restart),
            "{name}: restart: {restart}"
        );
        let test = healthcheck_command(svc);
        assert!(
            matches!(test[0].as_str(), "CMD" | "CMD-SHELL") && test.len() >= 2,
            "{name}: healthcheck test {test:?}"
        );
        for key in ["interval", "timeout", "retries", "start_period"] {
            assert!(!hc[key].is_null(), "{name}: healthcheck without {key}");
        }
    }
    // The service waits for a healthy database and broker, the broker for its password file.
    let vf = service(&c, "visitorflow");
    for dep in ["timescaledb", "mosquitto"] {
        assert_eq!(
            vf["depends_on"][dep]["condition"].as_str(),
            Some("service_healthy"),
            "visitorflow must wait for a healthy {dep}"
        );
    }
    // The service's health check is its readiness endpoint on its listen port.
    let hc = healthcheck_command(&vf).join(" ");
    assert!(hc.contains("/readyz"), "visitorflow healthcheck: {hc}");
}

#[test]
fn bind_mounts_exist_and_named_volumes_are_declared() {
    let c = compose();
    let declared: HashSet<String> = c["volumes"]
        .as_mapping()
        .expect("top-level volumes")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut used = HashSet::new();
    for (name, svc) in services(&c) {
        for (src, dst) in mounts(&svc) {
            assert!(
                dst.starts_with('/'),
                "{name}: mount target {dst} is not absolute"
            );
            if src.starts_with('/') {
                panic!("{name}: absolute host path {src} is not portable: use ./ paths");
            } else if src.starts_with('.') {
                let p = repo().join(&src);
                assert!(
                    p.exists(),
                    "{name}: bind mount {src} does not exist in the repository"
                );
                let tracked = Command::new("git")
                    .args(["ls-files", "--error-unmatch"])
                    .arg(&src)
                    .current_dir(repo())
                    .output()
                    .map(|o| o.status.success());
                // Outside a git checkout (a source tarball) there is nothing to ask.
                if let Ok(tracked) = tracked {
                    let in_git = Path::new(&repo()).join(".git").exists();
                    assert!(
                        !in_git || tracked,
                        "{name}: bind mount {src} is not tracked by git"
                    );
                }
            } else {
                assert!(
                    declared.contains(&src),
                    "{name}: named volume {src} not declared"
                );
                used.insert(src);
            }
        }
        if let Some(build) = svc.get("build") {
            let ctx = build["context"].as_str().unwrap_or(".");
            let file = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            assert!(
                repo().join(ctx).join(file).is_file(),
                "{name}: {ctx}/{file} missing"
            );
        }
    }
    let unused: Vec<_> = declared.difference(&used).collect();
    assert!(unused.is_empty(), "declared but unused volumes: {unused:?}");
}

#[test]
fn every_variable_is_in_env_example_and_no_secret_is_in_the_file() {
    let c = compose();
    let mut all = Vec::new();
    strings(&c, &mut all);
    // The replication overlay's variables are in .env.example too.
    strings(&yaml(REPLICATION), &mut all);
    let refs: Vec<VarRef> = all.iter().flat_map(|s| var_refs(s)).collect();
    assert!(!refs.is_empty());
    let example = env_example();
    let names: HashSet<&str> = example.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names.len(),
        example.len(),
        ".env.example names a variable twice"
    );
    let used: HashSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let missing: BTreeSet<_> = used.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "used in {COMPOSE} but not in .env.example: {missing:?}"
    );
    let stale: BTreeSet<_> = names.difference(&used).collect();
    assert!(
        stale.is_empty(),
        "in .env.example but unused by {COMPOSE}: {stale:?}"
    );
    // Secrets: required (no default, so a forgotten one stops `up`), and blank in the example.
    for (k, v) in &example {
        let secret = ["PASSWORD", "SECRET", "TOKEN"]
            .iter()
            .any(|s| k.contains(s));
        if secret {
            assert!(
                v.is_empty(),
                ".env.example must not hold a value for the secret {k}"
            );
            for r in refs.iter().filter(|r| &r.name == k) {
                assert!(
                    r.required && r.default.is_none(),
                    "{k} must be written ${{{k}:?…}}"
                );
            }
        }
    }
    // No literal secret in any environment block.
    for (name, svc) in services(&c) {
        for (k, v) in environment(&svc) {
            if ["PASSWORD", "SECRET", "TOKEN"]
                .iter()
                .any(|s| k.contains(s))
            {
                assert!(
                    v.contains("${"),
                    "{name}: {k} is set to a literal, use a variable"
                );
            }
            if k == "VISITORFLOW__DATABASE__URL" {
                let without_vars = interpolate(&v, &|_| Some(String::new()));
                assert!(
                    without_vars.contains("visitorflow:@"),
                    "the database URL's password must come from a variable: {v}"
                );
            }
        }
    }
}

#[test]
fn service_environment_maps_to_real_config_keys() {
    let c = compose();
    let vf = service(&c, "visitorflow");
    let env = dummy_env();
    let vars: HashMap<String, String> = environment(&vf)
        .into_iter()
        .filter(|(k, _)| k.starts_with("VISITORFLOW__"))
        .map(|(k, v)| (k, interpolate(&v, &|n| env.get(n).cloned())))
        .collect();
    for required in [
        "VISITORFLOW__DATABASE__URL",
        "VISITORFLOW__MQTT__HOST",
        "VISITORFLOW__MQTT__USERNAME",
        "VISITORFLOW__MQTT__PASSWORD",
        "VISITORFLOW__HTTP__LISTEN",
    ] {
        assert!(
            vars.contains_key(required),
            "visitorflow service lacks {required}"
        );
    }
    // The container's config file is the mounted deploy/config.toml.
    let cmd: Vec<&str> = vf["command"]
        .as_sequence()
        .expect("visitorflow command as a list")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cmd, ["run", "--config", "/etc/visitorflow/config.toml"]);
    let src = mounts(&vf)
        .into_iter()
        .find(|(_, dst)| dst == "/etc/visitorflow/config.toml")
        .map(|(src, _)| src)
        .expect("deploy/config.toml mounted at /etc/visitorflow/config.toml");

    // Loaded exactly as `visitorflow run` loads it; unknown keys are errors (deny_unknown_fields).
    let cfg = Config::load_with_vars(&repo().join(&src), vars.clone())
        .unwrap_or_else(|e| panic!("config with the compose environment: {e}"));
    cfg.registry()
        .unwrap_or_else(|e| panic!("registry in {src}: {e}"));
    // And each variable arrived where its name says.
    let json = serde_json::to_value(&cfg).unwrap();
    for (k, v) in &vars {
        let path: Vec<String> = k
            .trim_start_matches("VISITORFLOW__")
            .split("__")
            .map(str::to_lowercase)
            .collect();
        let mut node = &json;
        for p in &path {
            node = node
                .get(p)
                .unwrap_or_else(|| panic!("{k}: no config key {}", path.join(".")));
        }
        let got = match node {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(&got, v, "{k} did not set {}", path.join("."));
    }

    // The hosts named are compose services, on the ports they listen on.
    assert_eq!(
        c["services"][cfg.mqtt.host.as_str()]["image"].as_str(),
        Some("eclipse-mosquitto:2"),
        "mqtt.host must be the broker service"
    );
    assert_eq!(cfg.mqtt.port, 1883);
    let db: tokio_postgres::Config = cfg.database.url.parse().expect("database url");
    let host = match &db.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("database host {other:?}"),
    };
    let db_image = c["services"][host.as_str()]["image"]
        .as_str()
        .unwrap_or_default();
    assert!(
        db_image.starts_with("timescale/timescaledb:")
            && (db_image.ends_with("-pg16") || db_image.ends_with("-pg15")),
        "database host {host} is not the TimescaleDB service ({db_image})"
    );
    assert_eq!(db.get_ports(), [5432]);
    assert_eq!(db.get_user(), Some("visitorflow"));
    let pg_env = environment(&service(&c, &host));
    assert_eq!(pg_env["POSTGRES_USER"], "visitorflow");
    assert_eq!(
        db.get_dbname(),
        Some(pg_env["POSTGRES_DB"].as_str()),
        "the service's database is the one the container creates"
    );
    assert_eq!(
        db.get_password(),
        Some(interpolate(&pg_env["POSTGRES_PASSWORD"], &|n| env.get(n).cloned()).as_bytes())
    );
    assert_eq!(cfg.mqtt.username.as_deref(), Some("visitorflow"));
}

#[test]
fn ports_agree_with_listeners_health_checks_and_scrape_targets() {
    let c = compose();
    let vf = service(&c, "visitorflow");
    let listen: std::net::SocketAddr = environment(&vf)["VISITORFLOW__HTTP__LISTEN"]
        .parse()
        .expect("listen address");
    assert!(
        listen.ip().is_unspecified(),
        "inside a container listen on 0.0.0.0"
    );
    let port = listen.port();
    let published = ports(&vf);
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].1, port,
        "published container port != listen port"
    );
    let hc = healthcheck_command(&vf).join(" ");
    assert!(
        hc.contains(&format!("/dev/tcp/127.0.0.1/{port}")),
        "healthcheck port: {hc}"
    );
    // The image's own HEALTHCHECK is the same probe.
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains(&format!("/dev/tcp/127.0.0.1/{port}")));
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    assert!(dockerfile.contains(&format!("VISITORFLOW__HTTP__LISTEN=0.0.0.0:{port}")));

    // Prometheus scrapes the service (and reaches Alertmanager) by service name and port.
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|j| j["job_name"].as_str() == Some("visitorflow"))
        .flat_map(|j| j["static_configs"].as_sequence().unwrap().clone())
        .flat_map(|s| s["targets"].as_sequence().unwrap().clone())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, [format!("visitorflow:{port}")]);
    let scrape = prom["scrape_configs"][0]["metrics_path"].as_str();
    assert_eq!(scrape, Some("/metrics"));
    let am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    let (am_host, am_port) = am.split_once(':').unwrap();
    assert!(c["services"][am_host].is_mapping(), "no service {am_host}");
    assert!(
        ports(&service(&c, am_host))
            .iter()
            .any(|p| p.1.to_string() == am_port)
    );
    let rule_files: Vec<_> = prom["rule_files"].as_sequence().unwrap().clone();
    let p = service(&c, "prometheus");
    for f in rule_files {
        let f = f.as_str().unwrap();
        assert!(
            mounted(&p, &format!("/etc/prometheus/{f}")),
            "rule file {f} not mounted"
        );
    }

    // The broker's published ports are the listeners its configuration opens.
    let mq = service(&c, "mosquitto");
    let conf = read("deploy/mosquitto/mosquitto.conf")
        + &read("deploy/mosquitto/conf.d/tls.conf.disabled");
    let listeners: BTreeSet<u16> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("listener "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let published: BTreeSet<u16> = ports(&mq).into_iter().map(|p| p.1).collect();
    assert_eq!(
        listeners, published,
        "mosquitto listeners vs published ports"
    );
    let hc = healthcheck_command(&mq).join(" ");
    assert!(hc.contains("-p 1883"), "mosquitto healthcheck port: {hc}");
    // Every path the broker's configuration names is mounted.
    for line in conf.lines() {
        let mut w = line.split_whitespace();
        let (Some(key), Some(path)) = (w.next(), w.next()) else {
            continue;
        };
        if [
            "password_file",
            "acl_file",
            "persistence_location",
            "include_dir",
            "cafile",
            "certfile",
            "keyfile",
        ]
        .contains(&key)
        {
            assert!(mounted(&mq, path), "mosquitto {key} {path} is not mounted");
        }
    }
    let init = service(&c, "mosquitto-init");
    let script = init["command"][0].as_str().unwrap();
    assert!(script.contains("/mosquitto/auth/passwd") && mounted(&init, "/mosquitto/auth/passwd"));

    // Grafana's datasources point at the compose services (the database host as the grafana
    // service's environment names it).
    let grafana_env = environment(&service(&c, "grafana"));
    let ds = yaml("deploy/grafana/provisioning/datasources/datasources.yml");
    for d in ds["datasources"].as_sequence().unwrap() {
        let url = interpolate(d["url"].as_str().unwrap(), &|n| grafana_env.get(n).cloned());
        let url = url.as_str();
        let hostport = url.trim_start_matches("http://");
        let (host, port) = hostport.split_once(':').unwrap();
        let port: u16 = port.trim_end_matches('/').parse().unwrap();
        let target = service(&c, host);
        let exposed = ports(&target).iter().any(|p| p.1 == port)
            || (target["image"].as_str().unwrap().starts_with("timescale/") && port == 5432);
        assert!(
            exposed,
            "datasource {url}: {host} does not listen on {port}"
        );
    }
    let g = service(&c, "grafana");
    assert!(mounted(&g, "/etc/grafana/provisioning/datasources"));
    let provider = yaml("deploy/grafana/provisioning/dashboards/visitorflow.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(mounted(&g, path), "dashboards path {path} is not mounted");
    let home = environment(&g)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].clone();
    let home_file = Path::new(&home).file_name().unwrap().to_str().unwrap();
    assert!(
        repo().join("dashboards").join(home_file).is_file(),
        "home dashboard {home}"
    );
}

#[test]
fn provisioning_variables_reach_their_containers() {
    // Grafana expands ${VAR} in provisioning files from its own environment; the database init
    // script reads its variables from the TimescaleDB container's.
    let c = compose();
    let grafana_env = environment(&service(&c, "grafana"));
    for f in ["datasources/datasources.yml", "dashboards/visitorflow.yml"] {
        let mut values = Vec::new();
        strings(
            &yaml(&format!("deploy/grafana/provisioning/{f}")),
            &mut values,
        );
        for r in values.iter().flat_map(|v| var_refs(v)) {
            assert!(
                grafana_env.contains_key(&r.name),
                "{f} uses ${} not given to grafana",
                r.name
            );
        }
    }
    let pg_env = environment(&service(&c, "timescaledb"));
    let script = read("deploy/postgres/initdb/100-grafana-reader.sh");
    for var in ["POSTGRES_USER", "POSTGRES_DB", "GRAFANA_DB_PASSWORD"] {
        assert!(script.contains(var) && pg_env.contains_key(var), "{var}");
    }
    let ds = yaml("deploy/grafana/provisioning/datasources/datasources.yml");
    let pg = ds["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["uid"].as_str() == Some("visitorflow-pg"))
        .unwrap()
        .clone();
    assert_eq!(pg["user"].as_str(), Some("grafana_reader"));
    assert!(script.contains("CREATE ROLE grafana_reader"));
    assert_eq!(
        pg["jsonData"]["database"].as_str(),
        Some(pg_env["POSTGRES_DB"].as_str())
    );
}

#[test]
fn dockerfile_builds_from_tracked_sources_and_runs_unprivileged() {
    let text = read("deploy/Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("FROM rust:1-bookworm AS builder"),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    let runtime = &text[text.find("FROM debian:bookworm-slim").unwrap()..];
    let user = runtime
        .lines()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "USER {user}"
    );
    assert!(runtime.contains("ENTRYPOINT [\"visitorflow\"]"));
    assert!(runtime.contains("CMD [\"run\", \"--config\", \"/etc/visitorflow/config.toml\"]"));
    assert!(runtime.contains("COPY deploy/config.toml /etc/visitorflow/config.toml"));
    assert!(text.contains("cargo build --release --bin visitorflow"));

    // Everything COPY takes from the context exists and survives .dockerignore.
    let ignore = read(".dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore should allow-list"
    );
    let mut copied = HashSet::new();
    for l in &lines {
        let Some(args) = l.strip_prefix("COPY ") else {
            continue;
        };
        if args.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = args.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "COPY {src}: not in the repository"
            );
            assert!(
                allowed.contains(src),
                "COPY {src}: excluded by .dockerignore"
            );
            copied.insert(src.to_string());
        }
    }
    // What the build reads: the manifest, sources, embedded migrations and default config.
    for needed in ["Cargo.toml", "src", "migrations", "config"] {
        assert!(
            copied.contains(needed),
            "the build stage does not COPY {needed}"
        );
    }
    let lib = read("src/config.rs");
    assert!(lib.contains("include_str!(\"../config/county.toml\")"));
    // No build script or workspace member outside what is copied.
    assert!(!repo().join("build.rs").exists() || copied.contains("build.rs"));
}

#[test]
fn container_config_carries_the_county_registry() {
    let deploy = Config::from_toml(&read("deploy/config.toml")).expect("deploy/config.toml");
    let county = Config::from_toml(&read("config/county.toml")).expect("config/county.toml");
    assert_eq!(
        j(&deploy.spaces),
        j(&county.spaces),
        "deploy/config.toml's [[spaces]] differ from config/county.toml"
    );
    assert_eq!(
        j(&deploy.devices),
        j(&county.devices),
        "deploy/config.toml's [[devices]] differ from config/county.toml"
    );
    assert_eq!(j(&deploy.county), j(&county.county));
    assert_eq!(j(&deploy.ingest), j(&county.ingest));
    deploy.registry().expect("deploy registry is valid");
    assert_eq!(deploy.mqtt.host, "mosquitto");
    assert!(deploy.http.listen.ip().is_unspecified());
    assert!(
        deploy.database.url.is_empty(),
        "no database URL (password) in the file"
    );
    assert!(
        deploy.mqtt.password.is_none(),
        "no MQTT password in the file"
    );
}

fn j<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn alert_and_recording_rules_use_real_metrics_and_have_runbook_entries() {
    let m = telemetry_metrics();
    let recorded = recorded_names();
    let runbook = read("deploy/README.md");
    let anchors: HashSet<String> = runbook
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let mut alerts = 0;
    for rule in rule_list() {
        let expr = rule["expr"].as_str().expect("rule expr");
        let unknown = unknown_series(expr, &m, &recorded, &["up"]);
        assert!(
            unknown.is_empty(),
            "rule {rule:?} uses unknown series {unknown:?}"
        );
        if let Some(name) = rule["alert"].as_str() {
            alerts += 1;
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{name}: severity"
            );
            for key in ["summary", "description", "runbook"] {
                assert!(
                    rule["annotations"][key].is_string(),
                    "{name}: no {key} annotation"
                );
            }
            let link = rule["annotations"]["runbook"].as_str().unwrap();
            let (file, anchor) = link.split_once('#').expect("runbook link with #anchor");
            assert_eq!(file, "deploy/README.md");
            assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
            assert!(
                anchors.contains(anchor),
                "deploy/README.md has no section {name}"
            );
        }
    }
    assert!(
        alerts >= 6,
        "expected the six service alerts, found {alerts}"
    );
    // Every alert is exercised by the unit tests promtool runs.
    let tests = read("deploy/prometheus/rules.test.yml");
    for rule in rule_list() {
        if let Some(name) = rule["alert"].as_str() {
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "rules.test.yml never tests {name}"
            );
        }
    }
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/visitorflow.service");
    let has = |kv: &str| unit.lines().any(|l| l.trim() == kv);
    for kv in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
    ] {
        assert!(has(kv), "visitorflow.service lacks {kv}");
    }
    assert!(has("DynamicUser=yes") || unit.lines().any(|l| l.starts_with("User=")));
    assert!(
        unit.lines()
            .any(|l| l.starts_with("EnvironmentFile=/etc/visitorflow/"))
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert_eq!(
        exec,
        "/usr/local/bin/visitorflow run --config /etc/visitorflow/config.toml"
    );

    let Some(analyze) = find_program("systemd-analyze") else {
        println!("note: systemd-analyze not found; skipped `systemd-analyze verify`");
        return;
    };
    // verify insists that ExecStart exists: point it at the binary this test run built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("visitorflow.service");
    let bin = env!("CARGO_BIN_EXE_visitorflow");
    std::fs::write(&copy, unit.replace("/usr/local/bin/visitorflow", bin)).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings (exit 0): any line about our unit fails.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("visitorflow.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn variable_reference_parser() {
    let r = var_refs("a ${X:?need X} b ${Y:-1} $$Z ${W} $V");
    let names: Vec<_> = r.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["X", "Y", "W", "V"]);
    assert!(r[0].required && !r[1].required);
    assert_eq!(r[1].default.as_deref(), Some("1"));
    let s = interpolate("u:${X:?e}@h ${Y:-d} $$Z", &|n| {
        (n == "X").then(|| "pw".into())
    });
    assert_eq!(s, "u:pw@h d $Z");
}

/// The replication overlay: its standby is a TimescaleDB like the primary, with a restart
/// policy, a health check and its scripts mounted from the repository; the service's URL lists
/// both servers and writes to whichever accepts writes, its history and Grafana read the
/// standby.
#[test]
fn the_replication_overlay_names_both_servers_and_reads_from_the_standby() {
    let base = compose();
    let o = yaml(REPLICATION);
    let standby = service(&o, "timescaledb-standby");
    assert_eq!(standby["image"], base["services"]["timescaledb"]["image"]);
    assert!(standby["restart"].is_string() && !healthcheck_command(&standby).is_empty());
    for (svc, _) in services(&o) {
        for (host, _) in mounts(&o["services"][svc.as_str()]) {
            if let Some(rel) = host.strip_prefix("./") {
                assert!(repo().join(rel).is_file(), "{svc}: {host} is missing");
            }
        }
    }
    let env = environment(&service(&o, "visitorflow"));
    let url: tokio_postgres::Config =
        interpolate(&env["VISITORFLOW__DATABASE__URL"], &|_| Some("x".into()))
            .parse()
            .unwrap();
    let hosts: Vec<String> = url
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(hosts, ["timescaledb", "timescaledb-standby"]);
    assert_eq!(
        url.get_target_session_attrs(),
        tokio_postgres::config::TargetSessionAttrs::ReadWrite
    );
    assert!(env["VISITORFLOW__DATABASE__READ_URL"].contains("@timescaledb-standby:5432/"));
    assert_eq!(
        environment(&service(&o, "grafana"))["GRAFANA_DB_HOST"],
        "timescaledb-standby"
    );
    let primary = o["services"]["timescaledb"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        primary.contains("synchronous_standby_names=standby1"),
        "{primary}"
    );
    let script = std::fs::read_to_string(repo().join("deploy/replication/standby.sh")).unwrap();
    assert!(script.contains("application_name=standby1"));
}

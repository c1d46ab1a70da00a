//! Helpers shared by the operations tests (ops, dashboards, ops_mosquitto, ops_metrics): repository
//! paths, YAML loading, the metric names `src/telemetry/mod.rs` defines, PromQL name checks, and
//! locating external linters.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

pub fn yaml(rel: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Metric names exported by the service: every `pub const X: &str = "visitorflow_…";` in
/// src/telemetry/mod.rs, and which of them are histograms (`describe_histogram!(X, …)`).
pub struct Metrics {
    pub names: HashSet<String>,
    pub counters: HashSet<String>,
    pub gauges: HashSet<String>,
    pub histograms: HashSet<String>,
}

pub fn telemetry_metrics() -> Metrics {
    let src = read("src/telemetry/mod.rs");
    let mut consts = std::collections::HashMap::new();
    for line in src.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let Some((ident, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        let value = value.trim_end_matches("\";");
        consts.insert(ident.to_string(), value.to_string());
    }
    let described = |kind: &str| -> HashSet<String> {
        let mut out = HashSet::new();
        for chunk in src.split(&format!("describe_{kind}!(")).skip(1) {
            let ident: String = chunk
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let name = consts
                .get(&ident)
                .unwrap_or_else(|| panic!("describe_{kind}!({ident}) names no constant"));
            out.insert(name.clone());
        }
        out
    };
    let (counters, gauges, histograms) = (
        described("counter"),
        described("gauge"),
        described("histogram"),
    );
    assert_eq!(
        counters.len() + gauges.len() + histograms.len(),
        consts.len(),
        "every metric constant in src/telemetry/mod.rs is described exactly once"
    );
    assert!(
        consts.len() >= 10 && !histograms.is_empty(),
        "src/telemetry/mod.rs changed shape: found {consts:?}"
    );
    Metrics {
        names: consts.into_values().collect(),
        counters,
        gauges,
        histograms,
    }
}

/// Identifiers in a PromQL expression that name series: every `visitorflow_…` or `…:…` token, and
/// any other token directly followed by `{` or `[` (so `up{…}` counts, `sum by (le)` does not).
/// Label matchers' contents (inside braces or quotes) are skipped.
pub fn promql_series_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut depth_brace = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '{' {
            depth_brace += 1;
        } else if c == '}' {
            depth_brace -= 1;
        }
        if depth_brace == 0 && (c.is_ascii_alphabetic() || c == '_' || c == ':') {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let tok: String = chars[start..i].iter().collect();
            // A duration like 5m is digits then a unit; tokens here start with a letter.
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if tok.starts_with("visitorflow_")
                || tok.contains(':')
                || matches!(next, Some('{') | Some('['))
            {
                out.insert(tok);
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Series names in `expr` that are neither exported by the service (a histogram's `_bucket`,
/// `_sum`, `_count`), nor recorded by `recorded`, nor in `others` (e.g. `up`, `ALERTS`).
pub fn unknown_series(
    expr: &str,
    m: &Metrics,
    recorded: &HashSet<String>,
    others: &[&str],
) -> Vec<String> {
    promql_series_names(expr)
        .into_iter()
        .filter(|n| {
            if m.names.contains(n) || recorded.contains(n) || others.contains(&n.as_str()) {
                return false;
            }
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = n.strip_suffix(suffix)
                    && m.histograms.contains(base)
                {
                    return false;
                }
            }
            true
        })
        .collect()
}

/// Names recorded by deploy/prometheus/rules.yml.
pub fn recorded_names() -> HashSet<String> {
    rule_list()
        .iter()
        .filter_map(|r| r.get("record").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

/// Every rule (recording and alerting) of deploy/prometheus/rules.yml.
pub fn rule_list() -> Vec<serde_yaml_ng::Value> {
    let rules = yaml("deploy/prometheus/rules.yml");
    rules["groups"]
        .as_sequence()
        .expect("rules.yml: groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("group rules").clone())
        .collect()
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A program on PATH or in the sbin directories a non-login root shell may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// promtool, or a failure that says how to get it (scripts/test installs it).
pub fn promtool() -> PathBuf {
    find_program("promtool").unwrap_or_else(|| {
        panic!(
            "promtool not found: install Debian's `prometheus` package \
             (`apt-get install --no-install-recommends prometheus`; scripts/test does this)"
        )
    })
}

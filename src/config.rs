//! The one configuration tree: service settings (broker, database, HTTP, ingest limits, time zone) and
//! the county's registry (spaces and devices). Loaded from a TOML file, layered with environment
//! variables (`VISITORFLOW__DATABASE__URL=…`). Validation of the registry lives in [`crate::registry`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The county registry and settings shipped in the binary; `visitorflow demo` runs on it.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/county.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub county: CountyConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub spaces: Vec<SpaceConfig>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// Capacity levels, forecasts and data-quality bounds (LB/T 034 ladder by default).
    #[serde(default)]
    pub rules: crate::rules::RulesConfig,
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Where alerts are delivered: the bureau's own JSON, Alertmanager, DingTalk or WeCom robots.
    #[serde(default)]
    pub webhooks: Vec<crate::webhook::SubscriptionConfig>,
    /// Distribution centres' shuttle fleets and routes, and the car parks serving each area.
    #[serde(default)]
    pub dispatch: crate::dispatch::DispatchConfig,
    /// The daily county report pushed upstream (a provincial monitoring platform) every day.
    #[serde(default)]
    pub report_push: crate::report::push::ReportPushConfig,
    /// Bearer tokens of the API (`visitorflow token` prints an entry).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Partitioned ingest over several instances (docs/scaling.md); absent = one instance owns all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionConfig>,
}

/// `[partition]`: the county is split into `count` fixed partitions, each a set of scenic areas
/// with everything under them; an instance runs some of them and stands by for others.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Fixed for the deployment: instances come and go, partitions (and so areas) do not move.
    pub count: u32,
    /// Partitions this instance takes as soon as they are free. `[0, 2]`, or `"0,2"` from
    /// `VISITORFLOW__PARTITION__RUN`.
    #[serde(default, deserialize_with = "partition_list")]
    pub run: Vec<u32>,
    /// Partitions this instance takes over when their holder is gone (after `standby_delay_ms`
    /// from start, so the instances that `run` them win a cold start).
    #[serde(default, deserialize_with = "partition_list")]
    pub standby: Vec<u32>,
    /// Explicit placements, `{ canyon = 0 }`, overriding the hash for an area (or the root).
    #[serde(default)]
    pub assign: std::collections::BTreeMap<String, u32>,
    /// How often a partition that is held elsewhere is tried again.
    #[serde(default = "default_standby_poll_ms")]
    pub standby_poll_ms: u64,
    #[serde(default = "default_standby_delay_ms")]
    pub standby_delay_ms: u64,
    /// How often the figures of partitions held elsewhere are read from the database.
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// This instance's name in `partition_owner` (default: host name and process id).
    #[serde(default)]
    pub instance: Option<String>,
}

fn default_standby_poll_ms() -> u64 {
    2_000
}
fn default_standby_delay_ms() -> u64 {
    5_000
}
fn default_refresh_ms() -> u64 {
    1_000
}

/// A list of partition numbers as a TOML array, one number, or a comma-separated string (what
/// an environment variable gives).
fn partition_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<u32>),
        One(u32),
        Text(String),
    }
    match Form::deserialize(d)? {
        Form::List(v) => Ok(v),
        Form::One(n) => Ok(vec![n]),
        Form::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not a partition number"))
                })
            })
            .collect(),
    }
}

/// How the alerting loop runs and how deliveries are retried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Rules are evaluated at least this often (and right after every ingest commit), so dwell
    /// timers and device silence advance without new reports.
    pub tick_ms: u64,
    /// An alert at `major` (orange) or above that nobody acknowledged within this time is sent
    /// again to the escalation subscriptions.
    pub escalate_after_s: u64,
    /// Deliveries still failing after this many attempts are dead letters (replayable).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub delivery_timeout_ms: u64,
    /// visitorflow's public base URL, linked from alert messages.
    pub external_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1_000,
            escalate_after_s: 15 * 60,
            max_attempts: 12,
            backoff_base_ms: 1_000,
            backoff_max_ms: 5 * 60 * 1000,
            delivery_timeout_ms: 10_000,
            external_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    #[error("{var}: {reason}")]
    Env { var: String, reason: String },
}

/// Environment variables of the configuration: `VISITORFLOW__DATABASE__URL=…` sets `[database]
/// url` (prefix and levels separated by `__`, names case-insensitive).
const ENV_PREFIX: &str = "VISITORFLOW__";

impl Config {
    /// Loads `path` (or the embedded default when `None`), then applies `VISITORFLOW__…` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::layered(&read(path)?, std::env::vars())
    }

    /// Parses TOML text (no environment layering): for tests and `check-config` on inline text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// As [`Config::load`] of `path`, with `vars` (`VISITORFLOW__SECTION__KEY` → value) in place
    /// of the process environment: checks what a deployment's environment would configure
    /// (tests/ops.rs does this for docker-compose.yml).
    pub fn load_with_vars(path: &Path, vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::layered(&read(Some(path))?, vars)
    }

    /// The file is deserialised straight into the typed tree (a county's registry can hold 100,000
    /// devices; a generic value tree of it cost ~200 MiB at start-up), then only the sections the
    /// environment names go through a TOML table to take their overrides.
    fn layered(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = Self::from_toml(text)?;
        let mut sections: BTreeMap<String, Vec<EnvSet>> = BTreeMap::new();
        for (var, value) in vars {
            let Some(rest) = var
                .get(..ENV_PREFIX.len())
                .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                .map(|_| &var[ENV_PREFIX.len()..])
            else {
                continue;
            };
            let mut path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.len() < 2 || path.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    var,
                    reason: "expected VISITORFLOW__SECTION__KEY".into(),
                });
            }
            let section = path.remove(0);
            sections
                .entry(section)
                .or_default()
                .push(EnvSet { var, path, value });
        }
        if !sections.is_empty() {
            // A second, skimming pass over the text (start-up only): cheaper than holding a
            // generic tree of the whole registry to read the few sections named here.
            let mut file = tables(text, sections.keys().cloned().collect())?;
            for (section, sets) in sections {
                let own = file.remove(&section);
                cfg.apply_env(&section, own, sets)?;
            }
        }
        Ok(cfg)
    }

    /// Sets `section`'s keys from `sets` over the file's own text of that section (`file`: the
    /// file's tables the environment names, as written — not re-serialised from the typed tree,
    /// which would turn redacted secrets into `***`).
    fn apply_env(
        &mut self,
        section: &str,
        file: Option<toml::Table>,
        sets: Vec<EnvSet>,
    ) -> Result<(), ConfigError> {
        let base = file.unwrap_or_default();
        macro_rules! sections {
            ($($name:ident),*) => {
                match section {
                    $(stringify!($name) => self.$name = patch(base, sets)?,)*
                    "partition" => self.partition = Some(patch(base, sets)?),
                    _ => {
                        return Err(ConfigError::Env {
                            var: sets[0].var.clone(),
                            reason: format!("[{section}] cannot be set from the environment"),
                        });
                    }
                }
            };
        }
        sections!(
            county,
            mqtt,
            database,
            http,
            ingest,
            rules,
            alerting,
            dispatch,
            report_push
        );
        Ok(())
    }
}

/// The top-level tables of a TOML text named in `wanted`, everything else skipped.
fn tables(text: &str, wanted: Vec<String>) -> Result<BTreeMap<String, toml::Table>, ConfigError> {
    struct Pick(Vec<String>);
    impl<'de> serde::de::Visitor<'de> for Pick {
        type Value = BTreeMap<String, toml::Table>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a TOML document")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = m.next_key::<String>()? {
                if self.0.contains(&key) {
                    out.insert(key, m.next_value::<toml::Table>()?);
                } else {
                    m.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    Ok(serde::Deserializer::deserialize_map(
        toml::Deserializer::parse(text)?,
        Pick(wanted),
    )?)
}

fn read(path: Option<&Path>) -> Result<String, ConfigError> {
    match path {
        Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.display().to_string(),
            source,
        }),
        None => Ok(EMBEDDED_DEFAULT.to_owned()),
    }
}

/// One `VISITORFLOW__SECTION__A__B=value`: the path below the section, lower-cased.
struct EnvSet {
    var: String,
    path: Vec<String>,
    value: String,
}

/// Sets each variable's key in `base` and deserialises the result. A value takes the type of the
/// key it replaces (a string stays a string even if it looks like a number); a key the section
/// does not show (an unset option, a list) is read as a boolean or number when it parses as one,
/// and as the text itself if the section then does not accept it.
fn patch<T: serde::de::DeserializeOwned>(
    base: toml::Table,
    sets: Vec<EnvSet>,
) -> Result<T, ConfigError> {
    let attempt = |literal: bool| -> Result<T, ConfigError> {
        let mut table = base.clone();
        for set in &sets {
            let env_err = |reason: String| ConfigError::Env {
                var: set.var.clone(),
                reason,
            };
            let Some((leaf, parents)) = set.path.split_last() else {
                continue;
            };
            let mut at = &mut table;
            for key in parents {
                let next = at
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                at = match next {
                    toml::Value::Table(t) => t,
                    _ => return Err(env_err(format!("{key} is not a table"))),
                };
            }
            let raw = set.value.as_str();
            let value = match at.get(leaf) {
                Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
                Some(toml::Value::Integer(_)) => toml::Value::Integer(
                    raw.trim()
                        .parse()
                        .map_err(|_| env_err(format!("{raw:?} is not an integer")))?,
                ),
                Some(toml::Value::Float(_)) => toml::Value::Float(
                    raw.trim()
                        .parse()
                        .map_err(|_| env_err(format!("{raw:?} is not a number")))?,
                ),
                Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
                    raw.trim()
                        .parse()
                        .map_err(|_| env_err(format!("{raw:?} is not true or false")))?,
                ),
                _ if literal => toml::Value::String(raw.to_owned()),
                _ => guess(raw),
            };
            at.insert(leaf.clone(), value);
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Env {
                var: sets
                    .iter()
                    .map(|s| s.var.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: e.message().to_owned(),
            })
    };
    attempt(false).or_else(|first| attempt(true).map_err(|_| first))
}

fn guess(raw: &str) -> toml::Value {
    let t = raw.trim();
    if let Ok(b) = t.parse() {
        toml::Value::Boolean(b)
    } else if let Ok(i) = t.parse() {
        toml::Value::Integer(i)
    } else if let Ok(f) = t.parse::<f64>() {
        toml::Value::Float(f)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountyConfig {
    /// IANA time zone in which days roll and local times are shown (storage is UTC).
    pub time_zone: String,
}

impl Default for CountyConfig {
    fn default() -> Self {
        Self {
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// Fixed so the broker keeps the persistent session (and its queue) across restarts.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// First topic segment: reports arrive on `{prefix}/{space}/{device}/counts`.
    pub topic_prefix: String,
    pub keep_alive_s: u64,
    /// Milliseconds to wait before reconnecting after the broker or database failed.
    pub reconnect_delay_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "visitorflow-ingester".into(),
            username: None,
            password: None,
            topic_prefix: "vf".into(),
            keep_alive_s: 30,
            reconnect_delay_ms: 500,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host:port/db` or key=value form. `demo` fills it in when empty.
    pub url: String,
    pub pool_size: usize,
    /// Raw reports older than this are deleted (0 keeps them forever).
    pub raw_retention_days: u32,
    /// Use TimescaleDB when the extension is available (`false` forces plain PostgreSQL).
    pub timescaledb: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            pool_size: 8,
            raw_retention_days: 90,
            timescaledb: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A client must send a request's headers within this (slowloris clients are dropped).
    pub header_read_timeout_ms: u64,
    /// Origins (`scheme://host[:port]`, exact) whose pages may call the API from a browser; the
    /// control room and the board are served by the service itself and need none.
    pub cors_origins: Vec<String>,
    /// A request not answered within this time gets 408 (the live stream is exempt once open).
    pub request_timeout_ms: u64,
    /// Largest request body accepted (413 beyond).
    pub body_limit_bytes: usize,
    /// Sustained requests per second allowed to one token…
    pub rate_per_token: f64,
    /// …and to one client address (public routes are limited by address only).
    pub rate_per_ip: f64,
    /// Requests a client may send at once above the sustained rate.
    pub rate_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_ms: 10_000,
            cors_origins: Vec::new(),
            request_timeout_ms: 10_000,
            body_limit_bytes: 64 * 1024,
            rate_per_token: 20.0,
            rate_per_ip: 50.0,
            rate_burst: 100,
        }
    }
}

/// What a bearer token may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every `/api/v1` route except the audit log.
    Viewer,
    /// Also acknowledges alerts, sets hazards and policy caps — in its own `spaces` only.
    Operator,
    /// Everything, in every space: dead-letter replay, the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One API token. Only its SHA-256 is configured: `visitorflow token` makes both.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token is: recorded as the actor of everything done with it.
    pub id: String,
    pub role: Role,
    /// Spaces an operator may change (a scenic area covers its zones, car parks and hubs);
    /// empty: none. Ignored for viewers and admins.
    #[serde(default)]
    pub spaces: Vec<String>,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A batch is committed when it holds this many MQTT messages…
    pub batch_max_messages: usize,
    /// …or this long after its first message arrived.
    pub batch_linger_ms: u64,
    /// Reports stamped further than this in the future are rejected (device clock wrong).
    pub max_future_skew_s: i64,
    /// Reports older than this are rejected (a device replaying ancient history).
    pub max_age_days: i64,
    /// A single report counting more people than this in one direction is rejected as absurd.
    pub max_count_per_report: u32,
    /// Largest accepted payload; larger messages are rejected without parsing.
    pub max_payload_bytes: usize,
    /// A batch commit, or a session's database start-up (connect, load state), slower than this
    /// ends the session (a database that stopped answering must not hold the ingester forever;
    /// the broker redelivers the batch to the next session).
    pub commit_timeout_ms: u64,
    /// A seq more than `seq_jump_slack` + `seq_jump_per_second` × (seconds since the device's
    /// newest timestamp) ahead is an anomaly (a flipped bit, a firmware bug): counted once and
    /// flagged, without opening that many missing reports or silencing the counter.
    pub seq_jump_slack: u64,
    pub seq_jump_per_second: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            batch_max_messages: 5_000,
            batch_linger_ms: 10,
            max_future_skew_s: 300,
            max_age_days: 30,
            max_count_per_report: 10_000,
            max_payload_bytes: 256 * 1024,
            commit_timeout_ms: 10_000,
            seq_jump_slack: 10_000,
            seq_jump_per_second: 10.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpaceKind {
    County,
    ScenicArea,
    Zone,
    CarPark,
    Hub,
}

impl SpaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceKind::County => "county",
            SpaceKind::ScenicArea => "scenic_area",
            SpaceKind::Zone => "zone",
            SpaceKind::CarPark => "car_park",
            SpaceKind::Hub => "hub",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceConfig {
    pub id: String,
    pub kind: SpaceKind,
    #[serde(default)]
    pub parent: Option<String>,
    pub name_zh: String,
    pub name_en: String,
    /// LB/T 034 瞬时最大承载量 (people; vehicles for a car park).
    #[serde(default)]
    pub instant_capacity: Option<u32>,
    /// LB/T 034 日最大承载量 (people per local day).
    #[serde(default)]
    pub daily_capacity: Option<u32>,
    /// Local time at which this space's day starts ("06:00"); counts reset then.
    #[serde(default)]
    pub opens_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Gate,
    Camera,
    VehicleCounter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// `{"seq","ts","in","out",…}` as in the README's MQTT contract.
    #[default]
    Native,
    /// Milesight VS133/VS135 decoded uplink (`line_N_period_in`, `line_N_total_in`, …).
    MilesightVs13x,
}

/// Whether a device's "in" means entering its space (`normal`) or leaving it (`reversed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Normal,
    Reversed,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub line: u8,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub space: String,
    pub kind: DeviceKind,
    #[serde(default)]
    pub format: PayloadFormat,
    #[serde(default)]
    pub direction: Direction,
    /// Milesight only: which counting lines to use, each with its own direction (default: line 1).
    #[serde(default)]
    pub lines: Vec<LineConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layered(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::layered(
            text,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn environment_overrides_keep_each_key_s_type() {
        let c = layered(
            "[mqtt]\nport = 1884\nclient_id = \"a\"\n",
            &[
                ("VISITORFLOW__MQTT__PORT", "1999"),
                // Looks like a number, stays the text the key holds.
                ("VISITORFLOW__MQTT__CLIENT_ID", "007"),
                // An unset option: read as a number first, then as text when that is refused.
                ("visitorflow__mqtt__password", "12345"),
                ("VISITORFLOW__DATABASE__URL", "postgres://u@h/db"),
                ("OTHER__MQTT__PORT", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.port, 1999);
        assert_eq!(c.mqtt.client_id, "007");
        assert_eq!(c.mqtt.password.as_deref(), Some("12345"));
        assert_eq!(c.database.url, "postgres://u@h/db");
    }

    #[test]
    fn an_override_keeps_the_section_s_other_keys_and_secrets() {
        let c = layered(
            "[report_push]\nsecret = \"s3cret\"\nmax_attempts = 3\n",
            &[(
                "VISITORFLOW__REPORT_PUSH__URL",
                "https://bureau.example/report",
            )],
        )
        .unwrap();
        let push = &c.report_push;
        assert_eq!(push.url, "https://bureau.example/report");
        assert_eq!(push.secret.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert_eq!(push.max_attempts, 3);
        let c = layered("", &[("VISITORFLOW__PARTITION__COUNT", "4")]).unwrap();
        assert_eq!(c.partition.map(|p| p.count), Some(4));
    }

    #[test]
    fn bad_overrides_name_the_variable() {
        let err = |vars: &[(&str, &str)]| layered("", vars).unwrap_err().to_string();
        assert!(err(&[("VISITORFLOW__MQTT__PORT", "x")]).starts_with("VISITORFLOW__MQTT__PORT"));
        assert!(err(&[("VISITORFLOW__MQTT__NO_SUCH", "1")]).contains("VISITORFLOW__MQTT__NO_SUCH"));
        assert!(err(&[("VISITORFLOW__DEVICES__ID", "x")]).contains("cannot be set"));
        assert!(err(&[("VISITORFLOW__MQTT", "x")]).contains("SECTION__KEY"));
    }

    #[test]
    fn the_registry_is_read_from_the_file_only() {
        let c = layered(
            "[[spaces]]\nid = \"county\"\nkind = \"county\"\nname_zh = \"县\"\nname_en = \"County\"\n",
            &[("VISITORFLOW__INGEST__BATCH_MAX_MESSAGES", "7")],
        )
        .unwrap();
        assert_eq!(c.spaces.len(), 1);
        assert_eq!(c.ingest.batch_max_messages, 7);
    }
}

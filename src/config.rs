//! The aggregate configuration: one TOML file (or the embedded default) holding every component's
//! section, layered with environment variables (`VISITORFLOW__DATABASE__URL=…`). Each section's
//! type lives beside the component that reads it (`source::MqttConfig`, `store::DatabaseConfig`,
//! `registry::SpaceConfig`, …); this module only assembles and loads them, and re-exports the
//! section types for outside users. It sits above every component: components receive their own
//! section, never the whole tree.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::registry::{Problem, Registry, RegistryError};

pub use crate::admission::{AdmissionConfig, AreaReservations};
pub use crate::alerting::AlertingConfig;
pub use crate::api::{HttpConfig, Role, TokenConfig};
pub use crate::calendar::CalendarConfig;
pub use crate::dispatch::DispatchConfig;
pub use crate::forecasting::ForecastConfig;
pub use crate::ingest::IngestConfig;
pub use crate::partition::PartitionConfig;
pub use crate::registry::{
    CountyConfig, DeviceConfig, DeviceKind, Direction, LineConfig, PayloadFormat, RegistryConfig,
    SpaceConfig, SpaceKind,
};
pub use crate::report::live::LiveFeedConfig;
pub use crate::report::push::ReportPushConfig;
pub use crate::rules::RulesConfig;
pub use crate::source::MqttConfig;
pub use crate::store::DatabaseConfig;
pub use crate::webhook::SubscriptionConfig;

/// The county registry and settings shipped in the binary; `visitorflow demo` runs on it.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/county.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub county: CountyConfig,
    /// Files the registry is also read from (`devices_csv`).
    #[serde(default)]
    pub registry: RegistryConfig,
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
    pub rules: RulesConfig,
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Where alerts are delivered: the bureau's own JSON, Alertmanager, DingTalk or WeCom robots.
    #[serde(default)]
    pub webhooks: Vec<SubscriptionConfig>,
    /// Distribution centres' shuttle fleets and routes, and the car parks serving each area.
    #[serde(default)]
    pub dispatch: DispatchConfig,
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub calendar: CalendarConfig,
    #[serde(default)]
    pub forecast: ForecastConfig,
    /// The daily county report pushed upstream (a provincial monitoring platform) every day.
    #[serde(default)]
    pub report_push: ReportPushConfig,
    /// Each scenic area's live figures pushed upstream every few minutes, and at once on red or a
    /// closure.
    #[serde(default)]
    pub live_feed: LiveFeedConfig,
    /// Bearer tokens of the API (`visitorflow token` prints an entry).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Partitioned ingest over several instances (docs/scaling.md); absent = one instance owns all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionConfig>,
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
    /// The sections the ingester reads.
    pub fn ingester(&self) -> crate::ingest::IngesterSettings {
        crate::ingest::IngesterSettings {
            ingest: self.ingest.clone(),
            mqtt: self.mqtt.clone(),
            database: self.database.clone(),
        }
    }

    /// The sections the alerting loop reads.
    pub fn alerter(&self) -> crate::alerting::AlerterSettings {
        crate::alerting::AlerterSettings {
            alerting: self.alerting.clone(),
            rules: self.rules.clone(),
            webhooks: self.webhooks.clone(),
            dispatch: self.dispatch.clone(),
            database: self.database.clone(),
            forecast: self.forecast.clone(),
        }
    }

    /// The validated registry of this configuration's `[county]`, `[[spaces]]` and `[[devices]]`,
    /// and the rows of `[registry] devices_csv` when it names a file.
    pub fn registry(&self) -> Result<Registry, RegistryError> {
        let Some(path) = &self.registry.devices_csv else {
            return Registry::build(&self.county, &self.spaces, &self.devices);
        };
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| {
            RegistryError(vec![Problem {
                location: "registry.devices_csv".into(),
                message: format!("cannot read {name}: {e}"),
            }])
        })?;
        let csv = std::io::BufReader::with_capacity(1 << 16, file);
        Registry::build_with(
            &self.county,
            &self.spaces,
            &self.devices,
            Some((&name, csv)),
        )
    }

    /// Drops the `[[spaces]]` and `[[devices]]` lists, once [`Config::registry`] has been built
    /// from them: a running service holds its registry once, in the `Registry`.
    pub fn forget_registry_lists(&mut self) {
        self.spaces = Vec::new();
        self.devices = Vec::new();
    }

    /// Loads `path` (or the embedded default when `None`), then applies `VISITORFLOW__…` variables.
    /// A relative `[registry] devices_csv` is taken relative to the file's directory.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = Self::layered(&read(path)?, std::env::vars())?;
        cfg.resolve_paths(path);
        Ok(cfg)
    }

    fn resolve_paths(&mut self, path: Option<&Path>) {
        let dir = path.and_then(Path::parent);
        if let (Some(dir), Some(csv)) = (dir, &mut self.registry.devices_csv)
            && csv.is_relative()
        {
            *csv = dir.join(&*csv);
        }
    }

    /// Parses TOML text (no environment layering): for tests and `check-config` on inline text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// As [`Config::load`] of `path`, with `vars` (`VISITORFLOW__SECTION__KEY` → value) in place
    /// of the process environment: checks what a deployment's environment would configure
    /// (tests/ops.rs does this for docker-compose.yml).
    pub fn load_with_vars(path: &Path, vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut cfg = Self::layered(&read(Some(path))?, vars)?;
        cfg.resolve_paths(Some(path));
        Ok(cfg)
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
            registry,
            mqtt,
            database,
            http,
            ingest,
            rules,
            alerting,
            dispatch,
            calendar,
            forecast,
            report_push,
            live_feed
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

//! Alert delivery to systems outside visitorflow: the county bureau's webhook endpoints, DingTalk
//! and WeCom group robots, anything that speaks Alertmanager.
//!
//! - [`model`]: the [`AlertEvent`] handed in (one transition of one alert, self-contained).
//! - [`mod@format`]: the bodies (Json v1, Alertmanager v4, DingTalk, WeCom markdown). Pure.
//! - [`sign`]: Standard Webhooks signatures (sign and verify) and DingTalk URL signing. Pure.
//! - [`deliver`]: one HTTP attempt and what its reply means, the SSRF guard.
//! - here: [`Secret`] and a subscription's configuration ([`SubscriptionConfig`]).
//!
//! Not here: deciding what fires (the rule engine), when to retry and when to give up
//! ([`crate::retry`]), nor storing and scheduling attempts (the outbox, which calls
//! [`deliver::Deliverer::deliver_once`] and acts on [`crate::retry::RetryPolicy::next_step`]).

pub mod deliver;
pub mod format;
pub mod model;
pub mod sign;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use deliver::{Attempt, Deliverer, DeliveryOptions, Outcome, Target, UrlError};
pub use format::{Format, Language, RenderOptions, Rendered, render};
pub use model::{AlertEvent, AlertState};

use crate::rules::Severity;

/// A secret (signing key, header token). Never shown: `Debug` and `Display` print `***`, and it
/// serializes as `"***"`, so a dumped configuration leaks nothing; reading `"***"` back is refused
/// rather than signing with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

const REDACTED: &str = "***";

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself: only for signing and sending.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s == REDACTED {
            return Err(serde::de::Error::custom(
                "a secret must be a real, non-empty value",
            ));
        }
        Ok(Self(s))
    }
}

/// One webhook subscription, as `[[webhooks]]` in the configuration file.
///
/// ```toml
/// [[webhooks]]
/// id = "county-bureau-dingtalk"
/// url = "https://robot.example/send?access_token=…"
/// format = "dingtalk"
/// secret_file = "/etc/visitorflow/dingtalk.secret"
/// min_severity = "warning"
/// spaces = ["tianshan-canyon"]
/// ```
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub format: Format,
    /// Standard Webhooks key (`whsec_<base64>` or raw) for json/alertmanager; the robot's `SEC…`
    /// signing secret for dingtalk. WeCom robots are not signed (their key is in the URL).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The same, read from a file (surrounding whitespace trimmed); not together with `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Space ids whose alerts go here; empty means all.
    #[serde(default)]
    pub spaces: Vec<String>,
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Alert kinds that go here; empty means all.
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub language: Language,
    /// Allow loopback, private and link-local targets (an on-premises receiver). Off, such URLs
    /// are refused, against a configuration that points the server at its own network.
    #[serde(default)]
    pub allow_private_network: bool,
    /// Also send escalations: the rule engine's reminders for alerts left unacknowledged.
    #[serde(default)]
    pub escalation: bool,
    /// Extra request headers (e.g. `Authorization`); values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// Robot URLs carry their key in the query: `Debug` shows the URL without it.
impl fmt::Debug for SubscriptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = url::Url::parse(&self.url)
            .map(|u| deliver::redacted_url(&u))
            .unwrap_or_else(|_| REDACTED.to_owned());
        f.debug_struct("SubscriptionConfig")
            .field("id", &self.id)
            .field("url", &url)
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("spaces", &self.spaces)
            .field("min_severity", &self.min_severity)
            .field("kinds", &self.kinds)
            .field("language", &self.language)
            .field("allow_private_network", &self.allow_private_network)
            .field("escalation", &self.escalation)
            .field("headers", &self.headers)
            .finish()
    }
}

fn default_min_severity() -> Severity {
    Severity::Info
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("webhook {id}: url: {source}")]
    Url {
        id: String,
        #[source]
        source: UrlError,
    },
    #[error("webhook {id}: give either secret or secret_file, not both")]
    TwoSecrets { id: String },
    #[error("webhook {id}: cannot read secret_file {path}: {source}")]
    SecretFile {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook {id}: secret: {source}")]
    BadSecret {
        id: String,
        #[source]
        source: sign::SignError,
    },
    #[error("webhook {id}: wecom robots are not signed (the key is in the URL): remove the secret")]
    SecretNotUsed { id: String },
    #[error("webhook {id}: header {name} is not a valid HTTP header")]
    BadHeader { id: String, name: String },
}

impl SubscriptionConfig {
    /// Whether `event` goes to this subscription (space, severity, kind). Escalations are the rule
    /// engine's to route, with [`SubscriptionConfig::escalation`].
    pub fn matches(&self, event: &AlertEvent) -> bool {
        (self.spaces.is_empty() || self.spaces.contains(&event.space_id))
            && event.severity >= self.min_severity
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }

    /// The secret, from `secret` or `secret_file`.
    pub fn load_secret(&self) -> Result<Option<Secret>, SubscriptionError> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => Err(SubscriptionError::TwoSecrets {
                id: self.id.clone(),
            }),
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    SubscriptionError::SecretFile {
                        id: self.id.clone(),
                        path: path.clone(),
                        source,
                    }
                })?;
                let s = text.trim();
                if s.is_empty() {
                    return Err(SubscriptionError::BadSecret {
                        id: self.id.clone(),
                        source: sign::SignError::Empty,
                    });
                }
                Ok(Some(Secret::new(s)))
            }
            (None, None) => Ok(None),
        }
    }

    /// Checks everything that can be checked without the network (URL and SSRF guard on literal
    /// addresses, secret, headers) and builds the delivery target.
    pub fn target(&self) -> Result<Target, SubscriptionError> {
        let id = || self.id.clone();
        let url = url::Url::parse(&self.url).map_err(|e| SubscriptionError::Url {
            id: id(),
            source: UrlError::Parse(e),
        })?;
        deliver::check_url(&url, self.allow_private_network)
            .map_err(|source| SubscriptionError::Url { id: id(), source })?;
        let secret = self.load_secret()?;
        if let Some(s) = &secret {
            match self.format {
                Format::WeCom => return Err(SubscriptionError::SecretNotUsed { id: id() }),
                Format::Json | Format::Alertmanager | Format::Ticketing => {
                    sign::signing_key(s)
                        .map_err(|source| SubscriptionError::BadSecret { id: id(), source })?;
                }
                Format::DingTalk => {}
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let bad = || SubscriptionError::BadHeader {
                id: id(),
                name: name.clone(),
            };
            let name = HeaderName::try_from(name.as_str()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| bad())?;
            // Keeps the value out of HeaderMap's Debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Target {
            id: self.id.clone(),
            url,
            format: self.format,
            secret,
            headers,
            language: self.language,
            allow_private_network: self.allow_private_network,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::model::tests::orange;

    fn parse(text: &str) -> Result<SubscriptionConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn secret_never_shows() {
        let s = Secret::new("SECtopsecret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        let cfg = parse(
            r#"
            id = "a"
            url = "https://example.org/hook?key=robotkey9"
            secret = "SECtopsecret"
            headers = { Authorization = "Bearer tok123" }
            "#,
        )
        .unwrap();
        let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        assert!(
            !shown.contains("topsecret") && !shown.contains("tok123"),
            "{shown}"
        );
        assert!(!format!("{cfg:?}").contains("robotkey9"));
        let target = cfg.target().unwrap();
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("tok123"),
            "{shown}"
        );
        assert!(!shown.contains("robotkey9"), "{shown}");
        assert!(parse("id = \"a\"\nurl = \"https://e.org\"\nsecret = \"***\"").is_err());
        assert!(parse("id = \"a\"\nurl = \"https://e.org\"\nsecret = \"\"").is_err());
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let cfg = parse("id = \"a\"\nurl = \"https://example.org/hook\"").unwrap();
        assert_eq!(cfg.format, Format::Json);
        assert_eq!(cfg.min_severity, Severity::Info);
        assert_eq!(cfg.language, Language::Zh);
        assert!(!cfg.allow_private_network && !cfg.escalation);
        assert!(cfg.spaces.is_empty() && cfg.kinds.is_empty());
        let err = parse("id = \"a\"\nurl = \"https://e.org\"\nsecrets = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn matching() {
        let mut cfg = parse(
            r#"
            id = "a"
            url = "https://example.org/hook"
            min_severity = "major"
            spaces = ["tianshan-canyon"]
            kinds = ["instant_level", "daily_level"]
            "#,
        )
        .unwrap();
        let e = orange();
        assert!(cfg.matches(&e));
        let mut minor = e.clone();
        minor.severity = Severity::Warning;
        assert!(!cfg.matches(&minor));
        let mut elsewhere = e.clone();
        elsewhere.space_id = "lake".into();
        assert!(!cfg.matches(&elsewhere));
        let mut other_kind = e.clone();
        other_kind.kind = "silent_devices".into();
        assert!(!cfg.matches(&other_kind));
        cfg.spaces.clear();
        cfg.kinds.clear();
        assert!(cfg.matches(&elsewhere) && cfg.matches(&other_kind));
    }

    #[test]
    fn targets_from_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dingtalk.secret");
        std::fs::write(&path, "SECfromfile\n").unwrap();
        let cfg = parse(&format!(
            "id = \"ding\"\nurl = \"https://robot.example/send?access_token=x\"\n\
             format = \"dingtalk\"\nsecret_file = {:?}\nlanguage = \"both\"",
            path.to_str().unwrap()
        ))
        .unwrap();
        let t = cfg.target().unwrap();
        assert_eq!(t.secret.as_ref().unwrap().expose(), "SECfromfile");
        assert_eq!((t.format, t.language), (Format::DingTalk, Language::Both));

        let bad = |extra: &str| {
            parse(&format!("id = \"x\"\n{extra}"))
                .unwrap()
                .target()
                .unwrap_err()
        };
        assert!(matches!(
            bad("url = \"https://e.org\"\nsecret = \"a\"\nsecret_file = \"/nonexistent\""),
            SubscriptionError::TwoSecrets { .. }
        ));
        assert!(matches!(
            bad("url = \"https://e.org\"\nsecret_file = \"/nonexistent/x\""),
            SubscriptionError::SecretFile { .. }
        ));
        assert!(matches!(
            bad("url = \"https://e.org\"\nformat = \"wecom\"\nsecret = \"a\""),
            SubscriptionError::SecretNotUsed { .. }
        ));
        assert!(matches!(
            bad("url = \"https://e.org\"\nsecret = \"whsec_%%%\""),
            SubscriptionError::BadSecret { .. }
        ));
        assert!(matches!(
            bad("url = \"http://10.1.2.3/hook\""),
            SubscriptionError::Url {
                source: UrlError::Forbidden { .. },
                ..
            }
        ));
        assert!(matches!(
            bad("url = \"not a url\""),
            SubscriptionError::Url {
                source: UrlError::Parse(_),
                ..
            }
        ));
        assert!(matches!(
            bad("url = \"https://e.org\"\nheaders = { \"bad header\" = \"v\" }"),
            SubscriptionError::BadHeader { .. }
        ));
        let ok = parse("id = \"x\"\nurl = \"http://10.1.2.3/hook\"\nallow_private_network = true")
            .unwrap()
            .target()
            .unwrap();
        assert!(ok.allow_private_network);
    }
}

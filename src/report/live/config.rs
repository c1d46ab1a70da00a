//! `[live_feed]`: where the live feed goes, how often, and the bounds of its catch-up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::registry::Problem;
use crate::report::deliver::Endpoint;
use crate::webhook::Secret;
use crate::webhook::deliver::{Target, redacted_url};

/// `[live_feed]` in the configuration file.
///
/// ```toml
/// [live_feed]
/// enabled = true
/// url = "https://platform.example/visitorflow/live"
/// interval_s = 300           # a period every 5 minutes, at :00, :05, … local time
/// secret_file = "/etc/visitorflow/live-feed.secret"
/// max_attempts = 12
/// catch_up_periods = 288     # at most a day of periods waits for the platform
/// catch_up_per_s = 1         # the backlog goes at one period a second
/// ```
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveFeedConfig {
    pub enabled: bool,
    pub url: String,
    /// Seconds between periods; divides a day (so periods fall at the same local times daily).
    pub interval_s: u32,
    /// Standard Webhooks key (`whsec_<base64>` or raw) every body is signed with.
    pub secret: Option<Secret>,
    /// The same, read from a file; not together with `secret`.
    pub secret_file: Option<PathBuf>,
    /// Attempts before a push is a dead letter (`GET /api/v1/live-feed/deliveries?status=dead`).
    pub max_attempts: u32,
    /// At most this many periods wait for the platform; older ones are given up (dead letters).
    pub catch_up_periods: u32,
    /// The waiting periods go at most this many a second once the platform answers again.
    pub catch_up_per_s: u32,
    /// Push at once when an area's level changes to red or a hazard closes it.
    pub events: bool,
    /// Settled deliveries (delivered, dead, skipped) are deleted after this many days.
    pub keep_days: u32,
    /// Allow loopback, private and link-local targets (an on-premises receiver).
    pub allow_private_network: bool,
    /// Extra request headers (e.g. `Authorization`); values are secrets.
    pub headers: BTreeMap<String, Secret>,
}

impl Default for LiveFeedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            interval_s: 300,
            secret: None,
            secret_file: None,
            max_attempts: 12,
            catch_up_periods: 288,
            catch_up_per_s: 1,
            events: true,
            keep_days: 30,
            allow_private_network: false,
            headers: BTreeMap::new(),
        }
    }
}

/// The URL may carry a key in its query: never printed.
impl fmt::Debug for LiveFeedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = url::Url::parse(&self.url)
            .map(|u| redacted_url(&u))
            .unwrap_or_else(|_| "***".to_owned());
        f.debug_struct("LiveFeedConfig")
            .field("enabled", &self.enabled)
            .field("url", &url)
            .field("interval_s", &self.interval_s)
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("max_attempts", &self.max_attempts)
            .field("catch_up_periods", &self.catch_up_periods)
            .field("catch_up_per_s", &self.catch_up_per_s)
            .field("events", &self.events)
            .field("keep_days", &self.keep_days)
            .field("allow_private_network", &self.allow_private_network)
            .field("headers", &self.headers)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in [live_feed]:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct LiveFeedConfigError(pub Vec<Problem>);

/// A checked `[live_feed]`.
#[derive(Debug, Clone)]
pub struct LivePlan {
    pub target: Target,
    pub interval_s: u32,
    pub max_attempts: u32,
    pub catch_up_periods: u32,
    pub catch_up_per_s: u32,
    pub events: bool,
    pub keep_days: u32,
}

impl LivePlan {
    pub fn interval(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.interval_s))
    }
}

const DAY_S: u32 = 86_400;

impl LiveFeedConfig {
    /// Checks the section (every problem, located) and, when enabled, gives the plan. What is
    /// set is checked even while disabled, so a section can be prepared and switched on later.
    pub fn plan(&self) -> Result<Option<LivePlan>, LiveFeedConfigError> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| {
            problems.push(Problem {
                location: format!("live_feed.{field}"),
                message,
            })
        };
        if self.interval_s == 0 || !DAY_S.is_multiple_of(self.interval_s) || self.interval_s > 3600
        {
            push(
                "interval_s",
                format!(
                    "{} does not divide the day into whole periods of at most an hour (e.g. 60, 300, 600, 900)",
                    self.interval_s
                ),
            );
        }
        if self.max_attempts == 0 {
            push("max_attempts", "must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.catch_up_periods) {
            push("catch_up_periods", "must be 1–10000".into());
        }
        if !(1..=100).contains(&self.catch_up_per_s) {
            push("catch_up_per_s", "must be 1–100".into());
        }
        if !(1..=3660).contains(&self.keep_days) {
            push("keep_days", "must be 1–3660".into());
        }
        let target = if self.url.is_empty() {
            if self.enabled {
                push(
                    "url",
                    "an enabled feed needs the platform's endpoint URL".into(),
                );
            }
            None
        } else {
            let endpoint = Endpoint {
                url: &self.url,
                secret: self.secret.as_ref(),
                secret_file: self.secret_file.as_ref(),
                allow_private_network: self.allow_private_network,
                headers: &self.headers,
            };
            match endpoint.target("live_feed") {
                Ok(t) => Some(t),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(LiveFeedConfigError(problems));
        }
        Ok(match (self.enabled, target) {
            (true, Some(target)) => Some(LivePlan {
                target,
                interval_s: self.interval_s,
                max_attempts: self.max_attempts,
                catch_up_periods: self.catch_up_periods,
                catch_up_per_s: self.catch_up_per_s,
                events: self.events,
                keep_days: self.keep_days,
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LiveFeedConfig {
        toml::from_str(text).unwrap()
    }

    fn locations(e: LiveFeedConfigError) -> Vec<String> {
        e.0.into_iter().map(|p| p.location).collect()
    }

    #[test]
    fn disabled_by_default_every_five_minutes() {
        let c = LiveFeedConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.interval_s, 300);
        assert!(c.plan().unwrap().is_none());
    }

    #[test]
    fn an_enabled_feed_gives_a_plan_and_hides_its_key() {
        let p = parse(
            r#"
            enabled = true
            url = "https://platform.example/live?key=abc"
            interval_s = 60
            secret = "whsec_c2VjcmV0"
            catch_up_periods = 30
            catch_up_per_s = 2
            "#,
        )
        .plan()
        .unwrap()
        .unwrap();
        assert_eq!(p.interval(), TimeDelta::minutes(1));
        assert_eq!((p.catch_up_periods, p.catch_up_per_s), (30, 2));
        assert!(p.target.secret.is_some() && p.events);
        let shown = format!(
            "{:?}",
            parse("url = \"https://platform.example/l?key=abc\"")
        );
        assert!(!shown.contains("abc"), "{shown}");
    }

    #[test]
    fn every_problem_is_located() {
        let e = parse(
            r#"
            enabled = true
            interval_s = 7
            max_attempts = 0
            catch_up_periods = 0
            catch_up_per_s = 1000
            keep_days = 0
            "#,
        )
        .plan()
        .unwrap_err();
        assert_eq!(
            locations(e),
            [
                "live_feed.interval_s",
                "live_feed.max_attempts",
                "live_feed.catch_up_periods",
                "live_feed.catch_up_per_s",
                "live_feed.keep_days",
                "live_feed.url"
            ]
        );
        for bad in [0, 7, 7200] {
            let e = parse(&format!("interval_s = {bad}")).plan().unwrap_err();
            assert_eq!(locations(e), ["live_feed.interval_s"], "{bad}");
        }
        // The endpoint as the webhooks' and the report push's, even while disabled.
        let e = parse("url = \"http://169.254.169.254/latest\"")
            .plan()
            .unwrap_err();
        assert_eq!(locations(e), ["live_feed.url"]);
        let e = parse("url = \"https://p.example/\"\nsecret = \"a\"\nsecret_file = \"/x\"")
            .plan()
            .unwrap_err();
        assert_eq!(locations(e), ["live_feed.secret"]);
        let ok = parse(
            "enabled = true\nurl = \"http://127.0.0.1:9/l\"\nallow_private_network = true\ninterval_s = 1",
        );
        assert!(ok.plan().unwrap().is_some());
        assert!(toml::from_str::<LiveFeedConfig>("interval = 300").is_err());
    }
}

//! The daily report pushed to an upstream endpoint (the provincial monitoring platform):
//! `[report_push]` and the worker that sends it.
//!
//! At `send_at` local time the previous day's report is built, recorded in `report_push` with the
//! exact body, and POSTed through [`super::deliver::Channel`] (shared with the live feed): the
//! webhooks' SSRF guard, Standard Webhooks signature, the same delivery id (`webhook-id`,
//! `Idempotency-Key`) on every retry; retried by the one [`crate::retry::RetryPolicy`]:
//! exponential backoff with jitter honouring `Retry-After` (`[alerting]`'s `backoff_base_ms` and
//! `backoff_max_ms`), a dead letter after `[report_push]`'s `max_attempts`. Every attempt is
//! recorded. Which days are due comes from [`super::schedule`] and the latest day recorded, so a
//! service down at the scheduled time pushes on start-up and a day delivered is never pushed again
//! by the schedule; an admin may push a day again by hand (a delivery of its own).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::shutdown::Shutdown;

use super::deliver::{Channel, Endpoint};
use super::{DailyReport, ReportError, schedule};
use crate::registry::{Problem, Registry};
use crate::store::StoreError;
use crate::store::reports::{self as db, NewPush, PushOutcome};
use crate::telemetry::events::{self, InternalEvent, ReportPush};
use crate::webhook::Secret;
use crate::webhook::deliver::{Target, redacted_url};

/// The body's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    #[default]
    Json,
    Csv,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The body pushed for `report`: the JSON of `GET /api/v1/reports/daily`, or its CSV.
pub fn render(report: &DailyReport, format: ReportFormat) -> Vec<u8> {
    match format {
        ReportFormat::Json => serde_json::to_vec(report).unwrap_or_default(),
        ReportFormat::Csv => super::to_csv(report).into_bytes(),
    }
}

/// `[report_push]` in the configuration file.
///
/// ```toml
/// [report_push]
/// enabled = true
/// url = "https://platform.example/visitorflow/daily"
/// format = "json"          # json | csv
/// send_at = "01:00"        # local time (county.time_zone) at which yesterday's report goes
/// secret_file = "/etc/visitorflow/report-push.secret"
/// max_attempts = 12
/// ```
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportPushConfig {
    pub enabled: bool,
    pub url: String,
    pub format: ReportFormat,
    /// Local time of day (`HH:MM`, county time zone) at which the previous day's report is sent.
    pub send_at: String,
    /// Standard Webhooks key (`whsec_<base64>` or raw) the body is signed with.
    pub secret: Option<Secret>,
    /// The same, read from a file; not together with `secret`.
    pub secret_file: Option<PathBuf>,
    /// Attempts before the push is a dead letter (listed at `GET /api/v1/reports/pushes`).
    pub max_attempts: u32,
    /// After an outage, at most this many missed days are pushed (the most recent ones).
    pub catch_up_days: u32,
    /// Allow loopback, private and link-local targets (an on-premises receiver).
    pub allow_private_network: bool,
    /// Extra request headers (e.g. `Authorization`); values are secrets.
    pub headers: BTreeMap<String, Secret>,
}

impl Default for ReportPushConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            format: ReportFormat::Json,
            send_at: "01:00".into(),
            secret: None,
            secret_file: None,
            max_attempts: 12,
            catch_up_days: 7,
            allow_private_network: false,
            headers: BTreeMap::new(),
        }
    }
}

/// The URL may carry a key in its query: never printed.
impl fmt::Debug for ReportPushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = url::Url::parse(&self.url)
            .map(|u| redacted_url(&u))
            .unwrap_or_else(|_| "***".to_owned());
        f.debug_struct("ReportPushConfig")
            .field("enabled", &self.enabled)
            .field("url", &url)
            .field("format", &self.format)
            .field("send_at", &self.send_at)
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("max_attempts", &self.max_attempts)
            .field("catch_up_days", &self.catch_up_days)
            .field("allow_private_network", &self.allow_private_network)
            .field("headers", &self.headers)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in [report_push]:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ReportPushConfigError(pub Vec<Problem>);

/// A checked `[report_push]`: where, what and when.
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub target: Target,
    pub format: ReportFormat,
    pub send_at: NaiveTime,
    pub max_attempts: u32,
    pub catch_up_days: u32,
}

impl ReportPushConfig {
    /// Checks the section (every problem, located) and, when enabled, gives the plan. What is
    /// set is checked even while disabled, so a section can be prepared and switched on later.
    pub fn plan(&self) -> Result<Option<PushPlan>, ReportPushConfigError> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| {
            problems.push(Problem {
                location: format!("report_push.{field}"),
                message,
            })
        };
        let send_at = NaiveTime::parse_from_str(&self.send_at, "%H:%M");
        if send_at.is_err() {
            push(
                "send_at",
                format!("{:?} is not a time of day HH:MM", self.send_at),
            );
        }
        if self.max_attempts == 0 {
            push("max_attempts", "must be at least 1".into());
        }
        if !(1..=366).contains(&self.catch_up_days) {
            push("catch_up_days", "must be 1–366".into());
        }
        let target = if self.url.is_empty() {
            if self.enabled {
                push(
                    "url",
                    "an enabled push needs the upstream endpoint's URL".into(),
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
            match endpoint.target("report_push") {
                Ok(t) => Some(t),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(ReportPushConfigError(problems));
        }
        match (self.enabled, target, send_at) {
            (true, Some(target), Ok(send_at)) => Ok(Some(PushPlan {
                target,
                format: self.format,
                send_at,
                max_attempts: self.max_attempts,
                catch_up_days: self.catch_up_days,
            })),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the API needs to queue an admin's push.
pub struct PushHandle {
    pub format: ReportFormat,
    pub wake: Notify,
}

/// The delivery id of the schedule's push of `day` (the same on every attempt).
pub fn scheduled_delivery_id(day: NaiveDate) -> String {
    format!("vf-report-{day}")
}

/// The push worker: takes on due days and delivers what is pending.
pub struct Pusher {
    pub plan: PushPlan,
    pub registry: Arc<Registry>,
    pub calendar: Arc<crate::calendar::Calendar>,
    pub pool: Pool,
    /// The plan's target, the webhooks' retry schedule (`[alerting]` backoff) with the plan's
    /// `max_attempts`, and the `report_push` table.
    pub channel: Channel,
    /// An attempt's time-out (the deliverer's): a claim lasts longer.
    pub timeout: Duration,
    pub handle: Arc<PushHandle>,
}

/// How long the worker sleeps at most between rounds.
const POLL: Duration = Duration::from_secs(60);

impl Pusher {
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(
            url = %redacted_url(&self.plan.target.url),
            send_at = %self.plan.send_at,
            format = self.plan.format.as_str(),
            "daily report push scheduled"
        );
        loop {
            let wait = match self.round(Utc::now()).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "daily report push: will try again");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    /// Takes on the days due at `now`, attempts every due push once, and says how long to sleep.
    async fn round(&self, now: DateTime<Utc>) -> Result<Duration, PushError> {
        let tz = self.registry.tz;
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let last = db::last_scheduled_day(&**client).await?;
        for day in schedule::due_days(now, tz, self.plan.send_at, last, self.plan.catch_up_days) {
            let report =
                super::build(&self.pool, &self.registry, &self.calendar, day, None, now).await?;
            let body = render(&report, self.plan.format);
            let recorded = db::insert_scheduled(
                &**client,
                &scheduled_delivery_id(day),
                &NewPush {
                    day,
                    format: self.plan.format.as_str(),
                    content_type: self.plan.format.content_type(),
                    body: &body,
                },
            )
            .await?;
            if recorded.is_some() {
                tracing::info!(%day, bytes = body.len(), "daily report ready to push");
            }
        }
        let lease = (self.timeout + Duration::from_secs(30)).as_secs_f64();
        while let Some(p) = db::claim(&**client, lease).await? {
            self.attempt(&mut client, p).await?;
        }
        let next_push = db::next_due(&**client)
            .await?
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        let next_day = schedule::next_send(Utc::now(), tz, self.plan.send_at)
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        Ok([Some(POLL), next_push, next_day]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(POLL))
    }

    async fn attempt(
        &self,
        client: &mut deadpool_postgres::Object,
        p: db::DuePush,
    ) -> Result<(), PushError> {
        let delivery = p.delivery_id.clone();
        let a = self.channel.attempt(client, p).await?;
        let reason = a.error.as_deref();
        ReportPush {
            delivery: &delivery,
            attempts: a.attempts,
            outcome: match a.outcome {
                PushOutcome::Delivered => events::PushOutcome::Delivered,
                PushOutcome::Retry(in_s) => events::PushOutcome::Retried { in_s, reason },
                PushOutcome::Dead => events::PushOutcome::Dead { reason },
            },
        }
        .emit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Format;

    fn parse(text: &str) -> ReportPushConfig {
        toml::from_str(text).unwrap()
    }

    fn locations(e: ReportPushConfigError) -> Vec<String> {
        e.0.into_iter().map(|p| p.location).collect()
    }

    #[test]
    fn disabled_by_default_and_nothing_to_check() {
        let c = ReportPushConfig::default();
        assert!(!c.enabled);
        assert!(c.plan().unwrap().is_none());
    }

    #[test]
    fn an_enabled_push_gives_a_plan() {
        let p = parse(
            r#"
            enabled = true
            url = "https://platform.example/daily?key=abc"
            format = "csv"
            send_at = "00:45"
            secret = "whsec_c2VjcmV0"
            max_attempts = 3
            "#,
        )
        .plan()
        .unwrap()
        .unwrap();
        assert_eq!(p.format, ReportFormat::Csv);
        assert_eq!(p.send_at, NaiveTime::from_hms_opt(0, 45, 0).unwrap());
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.target.format, Format::Json, "Standard Webhooks signing");
        assert!(p.target.secret.is_some());
        // The key in the URL never shows.
        let shown = format!(
            "{:?}",
            parse("url = \"https://platform.example/d?key=abc\"")
        );
        assert!(!shown.contains("abc"), "{shown}");
    }

    #[test]
    fn every_problem_is_located() {
        let e = parse(
            r#"
            enabled = true
            send_at = "25:00"
            max_attempts = 0
            catch_up_days = 0
            "#,
        )
        .plan()
        .unwrap_err();
        assert_eq!(
            locations(e),
            [
                "report_push.send_at",
                "report_push.max_attempts",
                "report_push.catch_up_days",
                "report_push.url"
            ]
        );
        // The SSRF guard and the secrets as for webhooks, even while disabled.
        let e = parse("url = \"http://169.254.169.254/latest\"")
            .plan()
            .unwrap_err();
        assert_eq!(e.0[0].location, "report_push.url");
        assert!(e.0[0].message.contains("link-local"), "{}", e.0[0].message);
        let e = parse("url = \"https://p.example/\"\nsecret = \"a\"\nsecret_file = \"/x\"")
            .plan()
            .unwrap_err();
        assert_eq!(locations(e), ["report_push.secret"]);
        let e = parse("url = \"https://p.example/\"\nsecret_file = \"/nonexistent/s\"")
            .plan()
            .unwrap_err();
        assert_eq!(locations(e), ["report_push.secret_file"]);
        let e = parse("url = \"https://p.example/\"\nheaders = { \"a b\" = \"x\" }")
            .plan()
            .unwrap_err();
        assert_eq!(locations(e), ["report_push.headers"]);
        let ok =
            parse("enabled = true\nurl = \"http://127.0.0.1:9/r\"\nallow_private_network = true");
        assert!(ok.plan().unwrap().is_some());
        assert!(toml::from_str::<ReportPushConfig>("sendat = \"01:00\"").is_err());
        assert!(toml::from_str::<ReportPushConfig>("format = \"xml\"").is_err());
    }
}

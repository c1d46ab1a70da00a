//! What the two pushes upstream share — the daily report ([`super::push`]) and the live feed
//! ([`super::live`]): how an `[report_push]`/`[live_feed]` endpoint is checked (as a webhook
//! subscription, with located problems) and one attempt at a recorded push ([`Channel::attempt`]):
//! POSTed with the webhooks' machinery ([`Deliverer::post_once`]: SSRF guard, Standard Webhooks
//! signature, the delivery id as `webhook-id` and `Idempotency-Key`), judged by the one
//! [`RetryPolicy`], and recorded with its outcome in the push's table. Each feed decides which row
//! to attempt and what to count; nothing here is specific to either.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::Client;

use crate::registry::Problem;
use crate::retry::{RetryPolicy, Step};
use crate::store::StoreError;
use crate::store::reports::{self as db, AttemptRecord, DuePush, PushOutcome};
use crate::store::sql::PushTable;
use crate::webhook::deliver::{Deliverer, Target};
use crate::webhook::{Format, Secret, SubscriptionConfig, SubscriptionError};

/// An upstream endpoint as configured: URL, signing key, extra headers.
pub struct Endpoint<'a> {
    pub url: &'a str,
    pub secret: Option<&'a Secret>,
    pub secret_file: Option<&'a PathBuf>,
    pub allow_private_network: bool,
    pub headers: &'a BTreeMap<String, Secret>,
}

impl Endpoint<'_> {
    /// The delivery target, checked exactly as a webhook subscription's (URL guard, secret,
    /// headers); a problem is located in `section` (`report_push.url`, `live_feed.secret`, …).
    pub fn target(&self, section: &str) -> Result<Target, Problem> {
        let sub = SubscriptionConfig {
            id: section.into(),
            url: self.url.to_owned(),
            format: Format::Json,
            secret: self.secret.cloned(),
            secret_file: self.secret_file.cloned(),
            spaces: Vec::new(),
            min_severity: crate::rules::Severity::Info,
            kinds: Vec::new(),
            language: Default::default(),
            allow_private_network: self.allow_private_network,
            escalation: false,
            headers: self.headers.clone(),
        };
        sub.target().map_err(|e| {
            let (field, message) = match e {
                SubscriptionError::Url { source, .. } => ("url", source.to_string()),
                SubscriptionError::TwoSecrets { .. } => (
                    "secret",
                    "give either secret or secret_file, not both".into(),
                ),
                SubscriptionError::SecretFile { path, source, .. } => (
                    "secret_file",
                    format!("cannot read {}: {source}", path.display()),
                ),
                SubscriptionError::BadSecret { source, .. } => ("secret", source.to_string()),
                SubscriptionError::BadHeader { name, .. } => {
                    ("headers", format!("{name} is not a valid HTTP header"))
                }
                SubscriptionError::SecretNotUsed { .. } => {
                    ("secret", "not used by this format".into())
                }
            };
            Problem {
                location: format!("{section}.{field}"),
                message,
            }
        })
    }
}

/// Where a feed's recorded pushes go, how they are retried and where attempts are recorded.
pub struct Channel {
    pub target: Target,
    pub deliverer: Arc<Deliverer>,
    pub policy: RetryPolicy,
    pub table: &'static PushTable,
}

/// How one attempt went, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub outcome: PushOutcome,
    pub http_status: Option<u16>,
    /// Why it failed (retried or dead).
    pub error: Option<String>,
}

impl Attempted {
    pub fn delivered(&self) -> bool {
        self.outcome == PushOutcome::Delivered
    }
}

impl Channel {
    /// One attempt at `p` (claimed by the caller): sends its recorded bytes under its delivery
    /// id, asks the retry policy what follows, and records the attempt and the push's new state.
    pub async fn attempt(&self, client: &mut Client, p: DuePush) -> Result<Attempted, StoreError> {
        let attempt = self
            .deliverer
            .post_once(&self.target, &p.delivery_id, &p.content_type, p.body)
            .await;
        let attempts = u32::try_from(p.attempts).unwrap_or(0) + 1;
        let step =
            self.policy
                .next_step(attempts, attempt.outcome.into_response(), &mut rand::rng());
        let (outcome, error, latency) = match step {
            Step::Done((_, latency)) => (
                PushOutcome::Delivered,
                None,
                Some(latency.as_secs_f64() * 1000.0),
            ),
            Step::Retry { after, failure } => {
                (PushOutcome::Retry(after.as_secs_f64()), Some(failure), None)
            }
            Step::Dead { failure, .. } => (PushOutcome::Dead, Some(failure), None),
        };
        db::record_attempt(
            client,
            self.table,
            p.id,
            &AttemptRecord {
                attempt: i32::try_from(attempts).unwrap_or(i32::MAX),
                outcome,
                http_status: attempt.http_status.map(i32::from),
                error: error.as_deref(),
                latency_ms: latency,
            },
        )
        .await?;
        Ok(Attempted {
            attempts,
            outcome,
            http_status: attempt.http_status,
            error,
        })
    }
}

//! `[alerting]`: how often rules run, escalation, and how deliveries are retried.

use serde::{Deserialize, Serialize};

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

/// The sections the alerting loop reads (built by `Config::alerter`): its own, the rules, the
/// webhook subscriptions, the dispatch model's and the database's.
#[derive(Debug, Clone, Default)]
pub struct AlerterSettings {
    pub alerting: AlertingConfig,
    pub rules: crate::rules::RulesConfig,
    pub webhooks: Vec<crate::webhook::SubscriptionConfig>,
    pub dispatch: crate::dispatch::DispatchConfig,
    pub database: crate::store::DatabaseConfig,
    /// The evening-before warning's lead and lowest level.
    pub forecast: crate::forecasting::ForecastConfig,
}

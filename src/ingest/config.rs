//! `[ingest]`: batching, commit timeout, payload limits and the seq-jump bound.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::decode::Limits;

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
    /// Under sustained load a batch journals the state it changed (one row) and a checkpoint
    /// writes the device, space and minute rows at most this long after; also as soon as input
    /// pauses. See docs/performance.md, "State checkpoints".
    pub state_checkpoint_ms: u64,
    /// Changes of up to this many state rows since the last checkpoint are written directly.
    pub state_direct_rows: usize,
    /// A pause in input this long checkpoints what is journaled (0: at once — a batch cut with
    /// no input waiting writes the state with its reports, so the tables follow every burst).
    pub state_quiet_ms: u64,
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
            state_checkpoint_ms: 5_000,
            state_direct_rows: 256,
            state_quiet_ms: 0,
        }
    }
}

/// The sections the ingester reads: its own, the broker's and the database's (built by
/// `Config::ingester`; the ingester never sees the rest of the tree).
#[derive(Debug, Clone, Default)]
pub struct IngesterSettings {
    pub ingest: IngestConfig,
    pub mqtt: crate::source::MqttConfig,
    pub database: crate::store::DatabaseConfig,
}

/// The decoder's limits from this section (arrays of reports are capped at 10,000).
impl From<&IngestConfig> for Limits {
    fn from(c: &IngestConfig) -> Self {
        Self {
            max_future: TimeDelta::seconds(c.max_future_skew_s),
            max_age: TimeDelta::days(c.max_age_days),
            max_count: c.max_count_per_report,
            max_payload: c.max_payload_bytes,
            max_array: 10_000,
        }
    }
}

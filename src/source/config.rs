//! `[mqtt]`: the broker the ingester subscribes to (and `sim` publishes to).

use serde::{Deserialize, Serialize};

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

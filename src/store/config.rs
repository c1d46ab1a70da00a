//! `[database]`: where PostgreSQL is, the pool size, raw retention and TimescaleDB use.

use serde::{Deserialize, Serialize};

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
    /// A streaming replica (multi-host allowed) for the API's history reads; empty: the primary.
    pub read_url: String,
    /// A replica further behind than this is not read from (the primary is, and says so).
    pub max_replica_lag_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            pool_size: 8,
            raw_retention_days: 90,
            timescaledb: true,
            read_url: String::new(),
            max_replica_lag_ms: 5000,
        }
    }
}

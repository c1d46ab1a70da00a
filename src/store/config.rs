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

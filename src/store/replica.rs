//! Reads that may go to a streaming replica (`[database] read_url`): the API's history (series,
//! level changes, alert lists, the daily report). The replica's lag behind the primary is
//! measured every second — by WAL position first (a replica that replayed everything the
//! primary wrote is current however long ago that was), by the age of its last replayed
//! transaction otherwise — and exported; while it is above `max_replica_lag_ms`, or unknown,
//! history is read from the primary instead, so old data is never served as current. Each
//! response says where it was read from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::{StoreError, sql};
use crate::shutdown::Shutdown;
use crate::telemetry as t;

/// Where a read was served from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "server")]
pub enum ReadFrom {
    /// No replica configured.
    Primary,
    /// The replica, `lag_s` behind.
    Replica { lag_s: f64 },
    /// The primary, because the replica is too far behind (or its lag is unknown: null).
    PrimaryReplicaBehind { lag_s: Option<f64> },
}

impl ReadFrom {
    /// The `X-Visitorflow-Read-From` header's value.
    pub fn header(&self) -> String {
        match self {
            ReadFrom::Primary => "primary".into(),
            ReadFrom::Replica { lag_s } => format!("replica; lag={lag_s:.3}"),
            ReadFrom::PrimaryReplicaBehind { lag_s: Some(l) } => {
                format!("primary; replica-behind={l:.3}")
            }
            ReadFrom::PrimaryReplicaBehind { lag_s: None } => {
                "primary; replica-behind=unknown".into()
            }
        }
    }
}

const UNKNOWN: u64 = u64::MAX;

/// The pools history reads choose from.
pub struct Reads {
    primary: Pool,
    replica: Option<Pool>,
    max_lag: Duration,
    /// Last measured lag in milliseconds; [`UNKNOWN`] until measured or when it cannot be.
    lag_ms: AtomicU64,
}

impl Reads {
    pub fn new(primary: Pool, replica: Option<Pool>, max_lag: Duration) -> Self {
        Self {
            primary,
            replica,
            max_lag,
            lag_ms: AtomicU64::new(UNKNOWN),
        }
    }

    /// The pool for a history read, and where it is.
    pub fn choose(&self) -> (&Pool, ReadFrom) {
        let Some(replica) = &self.replica else {
            return (&self.primary, ReadFrom::Primary);
        };
        let lag = self.lag_ms.load(Ordering::Relaxed);
        let lag_s = (lag != UNKNOWN).then(|| lag as f64 / 1000.0);
        match lag_s {
            Some(l) if Duration::from_millis(lag) <= self.max_lag => {
                (replica, ReadFrom::Replica { lag_s: l })
            }
            _ => (&self.primary, ReadFrom::PrimaryReplicaBehind { lag_s }),
        }
    }

    /// Measures the replica's lag every second until `shutdown`.
    pub async fn watch(self: Arc<Self>, mut shutdown: Shutdown) {
        let Some(replica) = &self.replica else {
            return;
        };
        loop {
            let lag = measure(&self.primary, replica).await;
            let ms = match &lag {
                Ok(d) => d.as_millis().min(u128::from(UNKNOWN - 1)) as u64,
                Err(e) => {
                    tracing::debug!(error = %e, "replica lag unknown");
                    UNKNOWN
                }
            };
            self.lag_ms.store(ms, Ordering::Relaxed);
            let gauge = lag.map_or(f64::NAN, |d| d.as_secs_f64());
            metrics::gauge!(t::DB_REPLICA_LAG).set(gauge);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.recv() => return,
            }
        }
    }
}

/// How far `replica` is behind `primary`: nothing when it replayed the primary's current WAL
/// position, else the age of its last replayed transaction.
async fn measure(primary: &Pool, replica: &Pool) -> Result<Duration, StoreError> {
    let p = primary.get().await?;
    let lsn: String = p.query_one(sql::PRIMARY_LSN, &[]).await?.try_get(0)?;
    drop(p);
    let r = replica.get().await?;
    let row = r.query_one(sql::REPLICA_LAG, &[&lsn]).await?;
    let behind_bytes: Option<f64> = row.try_get("behind_bytes")?;
    let age_s: Option<f64> = row.try_get("age_s")?;
    Ok(match (behind_bytes, age_s) {
        // Not a standby (promoted, or the primary itself), or caught up.
        (None, _) => Duration::ZERO,
        (Some(b), _) if b <= 0.0 => Duration::ZERO,
        (Some(_), Some(a)) => Duration::from_secs_f64(a.max(0.0)),
        (Some(_), None) => Duration::MAX,
    })
}

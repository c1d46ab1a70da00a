//! PostgreSQL storage: migrations, the ingester's batch commit and restart state, and the series
//! the API reads. One error type for this boundary ([`StoreError`]); all SQL text is in [`sql`].

pub mod sql;
pub mod row;
pub mod alerts;
mod batch;
pub mod checkpoint;
pub mod journal;
pub mod bookings;
mod config;
pub mod controls;
pub mod dispatch;
pub mod forecasts;
pub mod live_feed;
pub mod outbox;
pub mod recounts;
pub mod replica;
pub mod reports;
mod state;
pub mod timescale;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Client, NoTls};

/// Every statement read through a [`row::FromRow`] type, with the columns the type reads:
/// `tests/store.rs` prepares each and checks that it returns them.
pub const MAPPINGS: &[(&str, &[&str])] = {
    use row::FromRow;
    &[
        (sql::LIST_ALERTS, alerts::AlertRow::COLUMNS),
        (sql::GET_ALERT, alerts::AlertRow::COLUMNS),
        (sql::ALERT_TRANSITIONS, alerts::TransitionRow::COLUMNS),
        (sql::LEVEL_HISTORY, alerts::LevelChange::COLUMNS),
        (sql::COMPLIANCE, alerts::ComplianceRow::COLUMNS),
        (sql::UPSERT_OPEN_ALERT, &["id", "state", "started_at"]),
        (sql::RESOLVE_ALERT, &["id", "state", "started_at"]),
        (sql::ACK_ALERT, &["severity", "level"]),
        (sql::DUE_ESCALATIONS, &["id"]),
        (sql::LAST_TRANSITION, &["id", "details"]),
        (sql::DUE_DELIVERIES, outbox::Due::COLUMNS),
        (sql::LIST_DELIVERIES, outbox::DeliveryRow::COLUMNS),
        (sql::ACTIVE_CAPS, controls::CapRow::COLUMNS),
        (sql::LIST_CAPS, controls::CapRow::COLUMNS),
        (sql::ACTIVE_HAZARDS, controls::HazardRow::COLUMNS),
        (sql::LIST_AUDIT, controls::AuditRow::COLUMNS),
        (sql::LATEST_ADVICE, dispatch::AdviceRow::COLUMNS),
        (sql::ADVICE_HISTORY, dispatch::AdviceRow::COLUMNS),
        (sql::GET_ADVICE, dispatch::AdviceRow::COLUMNS),
        (sql::FOLLOWED_SINCE, &["advice", "decided_at"]),
        (sql::DAY_NOTICES, reports::NoticeCounts::COLUMNS),
        (sql::DAY_DELIVERIES, reports::DeliveryCounts::COLUMNS),
        (sql::DAY_ADVICE, reports::DayAdvice::COLUMNS),
        (sql::ADVICE_BEFORE, reports::DayAdvice::COLUMNS),
        (sql::CLAIM_PUSH, reports::DuePush::COLUMNS),
        (sql::LIST_PUSHES, reports::PushRow::COLUMNS),
        (sql::INSERT_MANUAL_PUSH, &["id", "delivery_id"]),
        (sql::LATEST_FORECASTS, forecasts::StoredDay::COLUMNS),
        (sql::UPSERT_FORECAST_INPUT, forecasts::InputRow::COLUMNS),
        (sql::FORECAST_INPUTS, forecasts::InputRow::COLUMNS),
        (sql::INSERT_FORECAST_RUN, &["id", "made_at"]),
        (sql::LIVE_CLAIM_EVENT, reports::DuePush::COLUMNS),
        (sql::LIVE_CLAIM_NEWEST, reports::DuePush::COLUMNS),
        (sql::LIVE_CLAIM_BACKLOG, reports::DuePush::COLUMNS),
        (sql::LIVE_RED_OR_CLOSED, live_feed::RedOrClosed::COLUMNS),
        (sql::LIVE_QUEUE, live_feed::Queue::COLUMNS),
        (sql::LIVE_LIST, live_feed::LiveFeedRow::COLUMNS),
        (sql::INSERT_RECOUNT, recounts::Recount::COLUMNS),
        (sql::GET_RECOUNT, recounts::Recount::COLUMNS),
        (sql::LIST_RECOUNTS, recounts::Recount::COLUMNS),
        (sql::DAY_CORRECTIONS, &["space_id", "correction"]),
        (sql::SERIES_1M, SeriesPoint::COLUMNS),
        (sql::SERIES_1H, SeriesPoint::COLUMNS),
        (sql::SERIES_1D, SeriesPoint::COLUMNS),
        (
            sql::STORED_BOOKINGS,
            <crate::admission::Booking as FromRow>::COLUMNS,
        ),
        (sql::SLOT_COUNTS, bookings::SlotRow::COLUMNS),
        (sql::INTAKE_LAST, &["space_id", "last_received"]),
        (sql::OPEN_ADMISSION, alerts::OpenAdmission::COLUMNS),
        (sql::LAST_CONFIRMATIONS, &["space_id", "confirmed_at"]),
        (sql::ACTIVE_HOLDS, &["space_id", "held_at"]),
    ]
};

/// [`MAPPINGS`] and the ingester's restart-state and lookup statements.
pub fn mappings() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    MAPPINGS.iter().chain(state::STATE_MAPPINGS).copied()
}

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("database: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

/// tokio-postgres shows only "db error" for server errors; the server's message is the useful part.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Db(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

/// Which storage path the database supports; logged at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Timescale,
    Plain,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Timescale => "timescaledb",
            Mode::Plain => "plain PostgreSQL",
        }
    }
}

fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    // Never echo the url: it may hold a password.
    tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Url(e.to_string()))
}

/// A dedicated connection (for setup and tests); its driver runs on a spawned task.
pub async fn connect(url: &str) -> Result<Client, StoreError> {
    connect_with(pg_config(url)?).await
}

/// The ingester's connection, named after its MQTT session so that the next session can
/// [`fence`] off what this one leaves behind.
pub async fn connect_ingester(url: &str, client_id: &str) -> Result<Client, StoreError> {
    let mut cfg = pg_config(url)?;
    cfg.application_name(format!("visitorflow ingester {client_id}"));
    connect_with(cfg).await
}

async fn connect_with(mut cfg: tokio_postgres::Config) -> Result<Client, StoreError> {
    // A database host that vanished must fail the connection attempt, not hang it.
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(5));
    }
    cfg.keepalives_idle(std::time::Duration::from_secs(30));
    let (client, conn) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    note_server(&client).await?;
    Ok(client)
}

/// Ends the server side of every other connection with this connection's name (an earlier
/// session's), and waits until they are gone; returns how many there were. A client that times out
/// cannot roll back a transaction its packets no longer reach: the server would keep it, and its
/// row locks, until its own TCP keep-alive gives up (hours). Either that transaction had committed
/// (then the new session's state shows it) or it is rolled back; the redelivered batch is then
/// counted once either way.
pub async fn fence(client: &Client) -> Result<i64, StoreError> {
    let ended: i64 = row::query_scalar(client, sql::FENCE, &[]).await?;
    while ended > 0 && row::query_scalar::<i64>(client, sql::FENCED_LEFT, &[]).await? > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(ended)
}

/// Runs migrations, sets the county time zone, and switches to TimescaleDB when asked and present.
/// `max_age_days` is `ingest.max_age_days` (no older report is stored): on TimescaleDB, buckets
/// older than that are materialised, newer ones aggregated at query time.
pub async fn migrate(
    url: &str,
    time_zone: &str,
    want_timescale: bool,
    max_age_days: i64,
) -> Result<Mode, StoreError> {
    let mut client = connect(url).await?;
    embedded::migrations::runner()
        .run_async(&mut client)
        .await?;
    client.batch_execute(&sql::set_time_zone(time_zone)).await?;
    let mode = if want_timescale {
        timescale::setup(&client, time_zone, max_age_days).await?
    } else {
        Mode::Plain
    };
    Ok(mode)
}

/// Records reports a failover lost (`core::loss`), a row per missing seq range.
pub async fn record_losses(
    client: &Client,
    registry: &crate::registry::Registry,
    losses: &[crate::core::loss::Lost],
) -> Result<(), StoreError> {
    let ranges = || {
        losses
            .iter()
            .flat_map(|l| l.seqs.iter().map(move |r| (l, r)))
    };
    let devices: Vec<&str> = ranges()
        .map(|(l, _)| registry.device(l.device).id.as_str())
        .collect();
    let from: Vec<i64> = ranges().map(|(_, r)| *r.start() as i64).collect();
    let to: Vec<i64> = ranges().map(|(_, r)| *r.end() as i64).collect();
    let after: Vec<Option<DateTime<Utc>>> = ranges().map(|(l, _)| l.after).collect();
    let until: Vec<Option<DateTime<Utc>>> = ranges().map(|(l, _)| l.until).collect();
    client
        .execute(sql::INSERT_LOSSES, &[&devices, &from, &to, &after, &until])
        .await?;
    Ok(())
}

/// Which server a connection reached (with a multi-host URL, the one that was writable), for
/// `visitorflow_db_primary` and the failover count.
async fn note_server(client: &Client) -> Result<(), StoreError> {
    let host: String = client.query_one(sql::SERVER_ADDR, &[]).await?.try_get(0)?;
    use crate::telemetry::events::InternalEvent;
    crate::telemetry::events::DatabasePrimary { host: &host }.emit();
    Ok(())
}

/// Longest wait for a pooled connection, and for creating one.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest check of a pooled connection before reuse (an empty query: milliseconds when the
/// server answers). A network fault can leave every pooled connection open but dead; each one
/// costs a request this long before it is replaced, so eight of them must fit within one
/// request's timeout (`[http] request_timeout_ms`, 10 s): at 5 s, two did, and `/readyz`
/// answered 408 for half a minute after a black hole.
const RECYCLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The read pool used by the API and maintenance. A connection is checked (an empty query) before
/// reuse, under a timeout: one that a network fault left open but dead (no RST, no FIN) is then
/// replaced instead of hanging every later request.
pub fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let mgr = Manager::from_config(
        pg_config(url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(mgr)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(RECYCLE_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Pool(e.to_string()))
}

pub use batch::{
    BatchStatements, BatchWriter, EncodedBatch, TicketApplied, TicketWrite, commit_batch,
    encode_reports,
};
pub use config::DatabaseConfig;
pub use state::{PendingRecount, fold_journal, load_state, lookup, pending_recounts};

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Series resolution the API and Grafana read.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
pub enum Step {
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesPoint {
    pub bucket: DateTime<Utc>,
    pub entries: i64,
    pub exits: i64,
    pub occupancy: Option<i64>,
    pub peak: Option<i64>,
    /// Head-count corrections in the bucket (occupancy = entries − exits + drift + correction).
    pub correction: i64,
}
row::from_row!(SeriesPoint {
    bucket,
    entries,
    exits,
    occupancy,
    peak,
    correction
});

pub async fn series(
    pool: &Pool,
    space_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
    limit: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let client = pool.get().await?;
    let stmt = match step {
        Step::Minute => sql::SERIES_1M,
        Step::Hour => sql::SERIES_1H,
        Step::Day => sql::SERIES_1D,
    };
    let stmt = client.prepare_cached(stmt).await?;
    row::query_as(&**client, &stmt, &[&space_id, &from, &to, &limit]).await
}

pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client.simple_query(sql::PING).await?;
    Ok(())
}

/// Deletes raw reports older than `older_than`; returns how many rows (or chunks) went.
pub async fn prune_reports(
    pool: &Pool,
    mode: Mode,
    older_than: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(match mode {
        Mode::Plain => {
            client
                .execute(sql::PRUNE_REPORTS_PLAIN, &[&older_than])
                .await?
        }
        Mode::Timescale => u64_of(
            row::query_scalar(&**client, sql::PRUNE_REPORTS_TIMESCALE, &[&older_than]).await?,
        ),
    })
}

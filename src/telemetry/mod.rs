//! Prometheus metrics (names, help text, histogram buckets) and logging set-up. Metric names
//! follow Prometheus conventions: `visitorflow_` prefix, base units, counters end in `_total`,
//! labels bounded (reason, space — never a device id).

pub mod events;

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const MQTT_MESSAGES: &str = "visitorflow_mqtt_messages_total";
pub const REPORTS_ACCEPTED: &str = "visitorflow_reports_accepted_total";
pub const REPORTS_REJECTED: &str = "visitorflow_reports_rejected_total";
pub const POLLS: &str = "visitorflow_device_polls_total";
pub const FORECAST_RUNS: &str = "visitorflow_forecast_runs_total";
pub const FORECAST_SECONDS: &str = "visitorflow_forecast_run_seconds";
pub const REPORTS_DUPLICATE: &str = "visitorflow_reports_duplicate_total";
pub const REPORTS_LATE: &str = "visitorflow_reports_late_total";
pub const REPORTS_MISSING: &str = "visitorflow_reports_missing_total";
pub const REPORTS_REPAIRED: &str = "visitorflow_reports_repaired_total";
pub const REPORTS_EARLIER_DAY: &str = "visitorflow_reports_earlier_day_total";
pub const DEVICE_RESTARTS: &str = "visitorflow_device_seq_restarts_total";
pub const DEVICE_SEQ_JUMPS: &str = "visitorflow_device_seq_jumps_total";
pub const REPORTS_LOOKED_UP: &str = "visitorflow_reports_looked_up_total";
pub const LOOKUP_SECONDS: &str = "visitorflow_ingest_lookup_seconds";
pub const RECOUNTS: &str = "visitorflow_recounts_total";
pub const INGEST_LAG: &str = "visitorflow_ingest_lag_seconds";
pub const BATCH_WRITE: &str = "visitorflow_batch_write_seconds";
pub const BATCH_MESSAGES: &str = "visitorflow_batch_messages";
pub const INGEST_RESTARTS: &str = "visitorflow_ingester_restarts_total";
pub const BROKER_CONNECTED: &str = "visitorflow_broker_connected";
pub const OCCUPANCY: &str = "visitorflow_occupancy";
pub const ENTRIES_TODAY: &str = "visitorflow_entries_today";
pub const DRIFT_TODAY: &str = "visitorflow_drift_today";
pub const ALERT_EVALUATION: &str = "visitorflow_alert_evaluation_seconds";
pub const ALERT_TRANSITIONS: &str = "visitorflow_alert_transitions_total";
pub const WEBHOOK_DELIVERIES: &str = "visitorflow_webhook_deliveries_total";
pub const WEBHOOK_LATENCY: &str = "visitorflow_webhook_request_seconds";
pub const ALERT_DELIVERY_DELAY: &str = "visitorflow_alert_delivery_delay_seconds";
pub const REPORT_PUSHES: &str = "visitorflow_report_pushes_total";
pub const LIVE_FEED_PUSHES: &str = "visitorflow_live_feed_pushes_total";
pub const LIVE_FEED_WAITING: &str = "visitorflow_live_feed_waiting_periods";
pub const BOOKINGS: &str = "visitorflow_bookings_total";
pub const DB_PRIMARY: &str = "visitorflow_db_primary";
pub const DB_FAILOVERS: &str = "visitorflow_db_failovers_total";
pub const REPORTS_LOST: &str = "visitorflow_reports_lost_total";
pub const DB_REPLICA_LAG: &str = "visitorflow_db_replica_lag_seconds";
pub const DB_WITHOUT_PRIMARY: &str = "visitorflow_db_without_primary_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use) whose rendering `/metrics` serves.
/// Several services in one process (tests) share it.
pub fn handle() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    // Serialised: two services starting at once must not both try to install the recorder.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = install()?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

/// Installs the global recorder and describes every metric so the scrape has HELP lines.
fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(INGEST_LAG.into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(BATCH_WRITE.into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(LOOKUP_SECONDS.into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(BATCH_MESSAGES.into()),
            &[1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(ALERT_EVALUATION.into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(WEBHOOK_LATENCY.into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(ALERT_DELIVERY_DELAY.into()),
            &[
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
            ],
        )?
        .install_recorder()?;
    describe();
    // Histogram samples (one ingest-lag sample per report) are kept until drained; without
    // upkeep they grow without bound between scrapes, or forever when nothing scrapes. Each
    // second: at 50,000 reports/s five seconds' samples held 4 MB.
    let upkeep = handle.clone();
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                upkeep.run_upkeep();
            }
        });
    Ok(handle)
}

fn describe() {
    describe_counter!(
        BOOKINGS,
        "Booking versions from ticketing systems, by space and outcome (inserted, updated, duplicate, stale, rejected)."
    );
    describe_counter!(
        MQTT_MESSAGES,
        "MQTT messages received on count and status topics."
    );
    describe_counter!(REPORTS_ACCEPTED, "Count reports accepted and committed.");
    describe_counter!(
        REPORTS_REJECTED,
        "Messages or reports rejected, by reason; never counted as visitors."
    );
    describe_counter!(
        POLLS,
        "Polls of devices that only answer requests, by format and outcome (ok, unreachable, refused)."
    );
    describe_counter!(
        REPORTS_DUPLICATE,
        "Reports already counted (QoS 1 redelivery or replayed backlog), ignored."
    );
    describe_counter!(
        REPORTS_LATE,
        "Reports that arrived after a later one and filled a gap."
    );
    describe_counter!(
        REPORTS_MISSING,
        "Reports found missing from a device's sequence."
    );
    describe_counter!(
        REPORTS_REPAIRED,
        "Missing reports whose counts were recovered from cumulative totals."
    );
    describe_counter!(
        REPORTS_EARLIER_DAY,
        "Report applications that belonged to an earlier local day."
    );
    describe_counter!(
        DEVICE_RESTARTS,
        "Devices whose sequence restarted (reboot with a lower seq)."
    );
    describe_counter!(
        DEVICE_SEQ_JUMPS,
        "Reports whose seq jumped implausibly far ahead (counted once, flagged)."
    );
    describe_counter!(
        REPORTS_LOOKED_UP,
        "Reports the de-duplication window could not settle, settled against the raw table."
    );
    describe_histogram!(
        LOOKUP_SECONDS,
        Unit::Seconds,
        "Time to look a batch's unsettled reports up in the raw table."
    );
    describe_counter!(RECOUNTS, "Head counts by hand applied to occupancy.");
    describe_histogram!(
        INGEST_LAG,
        Unit::Seconds,
        "Time from a report's timestamp to its arrival."
    );
    describe_histogram!(
        BATCH_WRITE,
        Unit::Seconds,
        "Time to commit one batch to PostgreSQL."
    );
    describe_histogram!(
        BATCH_MESSAGES,
        Unit::Count,
        "MQTT messages per committed batch."
    );
    describe_counter!(
        INGEST_RESTARTS,
        "Ingest sessions restarted after a broker or database failure, by cause."
    );
    describe_gauge!(
        BROKER_CONNECTED,
        "1 while the ingester holds a broker session."
    );
    describe_gauge!(
        OCCUPANCY,
        "People (vehicles for car parks) inside a space now."
    );
    describe_gauge!(
        ENTRIES_TODAY,
        "Entries into a space since its local day opened."
    );
    describe_gauge!(
        DRIFT_TODAY,
        "Exits without matching entries today (counter drift)."
    );
    describe_histogram!(
        ALERT_EVALUATION,
        Unit::Seconds,
        "Time to evaluate the capacity rules for every space."
    );
    describe_gauge!(
        DB_PRIMARY,
        "1 for the database server (host:port) the service last connected to for writes, 0 for earlier ones."
    );
    describe_histogram!(
        DB_WITHOUT_PRIMARY,
        Unit::Seconds,
        "Time the ingester was without a writable database: from the session a database fault ended to the next one on a primary."
    );
    describe_gauge!(
        DB_REPLICA_LAG,
        "How far the read replica ([database] read_url) is behind the primary (NaN: unknown); above max_replica_lag_ms history is read from the primary."
    );
    describe_counter!(
        REPORTS_LOST,
        "Acknowledged reports found missing on the database after a failover (an asynchronous standby promoted); recorded in report_losses."
    );
    describe_counter!(
        DB_FAILOVERS,
        "Times the service found its writable database on another server than before (a failover)."
    );
    describe_counter!(
        FORECAST_RUNS,
        "Day-ahead forecast runs by trigger (nightly, manual, input) and outcome (stored, failed)."
    );
    describe_histogram!(
        FORECAST_SECONDS,
        Unit::Seconds,
        "Time of one forecast run over every scenic area and the county."
    );
    describe_counter!(
        ALERT_TRANSITIONS,
        "Alert transitions recorded, by severity and change."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by subscription and outcome (delivered, retried, dead)."
    );
    describe_histogram!(
        WEBHOOK_LATENCY,
        Unit::Seconds,
        "HTTP time of successful webhook deliveries."
    );
    describe_histogram!(
        ALERT_DELIVERY_DELAY,
        Unit::Seconds,
        "Time from an alert transition to its confirmed delivery."
    );
    describe_counter!(
        REPORT_PUSHES,
        "Attempts to push the daily county report upstream, by outcome (delivered, retried, dead)."
    );
    describe_counter!(
        LIVE_FEED_PUSHES,
        "Live feed to the provincial platform, by trigger (period, event) and outcome: attempts delivered, retried or dead, and periods skipped (no instance running at the boundary) or given up (beyond the catch-up bound)."
    );
    describe_gauge!(
        LIVE_FEED_WAITING,
        "Live feed periods recorded and not yet delivered (the catch-up backlog, the current period included)."
    );
}

/// Logging to stderr; `RUST_LOG` overrides the default level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

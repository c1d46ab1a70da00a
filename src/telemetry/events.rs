//! Typed internal events (the shape of vector's `internal_events`): where something worth both a
//! log line and a metric happens, the code emits one event, and the event's `emit` writes both,
//! so the line and the counter cannot drift apart. Fields are plain values: this module sits
//! below every component.

use std::time::Duration;

use super as t;

/// Something that happened inside the service, logged and counted in one place.
pub trait InternalEvent {
    fn emit(self);
}

/// Acknowledged reports of `device` missing on the database after a failover: counted, and
/// logged with the device, its topic's space, the seq ranges and the time they cover.
pub struct ReportsLost<'a> {
    pub device: &'a str,
    pub space: &'a str,
    pub seqs: &'a [std::ops::RangeInclusive<u64>],
    pub count: u64,
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl InternalEvent for ReportsLost<'_> {
    fn emit(self) {
        metrics::counter!(t::REPORTS_LOST, "cause" => "failover").increment(self.count);
        let ranges: Vec<String> = self
            .seqs
            .iter()
            .map(|r| format!("{}–{}", r.start(), r.end()))
            .collect();
        tracing::error!(
            device = self.device,
            space = self.space,
            seqs = %ranges.join(","),
            count = self.count,
            after = ?self.after,
            until = ?self.until,
            "acknowledged reports are missing after a database failover; the device will not resend them"
        );
    }
}

/// A connection reached the writable database at `host` (`host:port`, as the server reports
/// it). A host other than the last one seen is a failover: counted and logged, and the info
/// gauge moves to the new primary.
pub struct DatabasePrimary<'a> {
    pub host: &'a str,
}

impl InternalEvent for DatabasePrimary<'_> {
    fn emit(self) {
        static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() == Some(self.host) {
            return;
        }
        if let Some(old) = last.replace(self.host.to_owned()) {
            metrics::gauge!(t::DB_PRIMARY, "host" => old.clone()).set(0.0);
            metrics::counter!(t::DB_FAILOVERS).increment(1);
            tracing::warn!(from = %old, to = self.host, "the writable database moved (failover)");
        } else {
            metrics::counter!(t::DB_FAILOVERS).absolute(0);
        }
        metrics::gauge!(t::DB_PRIMARY, "host" => self.host.to_owned()).set(1.0);
    }
}

/// An ingest session ended on an error; the ingester reloads its state and reconnects.
pub struct IngestSessionEnded<'a> {
    pub error: &'a dyn std::fmt::Display,
    /// `broker`, `database` or `partition`: the label of `visitorflow_ingester_restarts_total`.
    pub cause: &'static str,
}

impl InternalEvent for IngestSessionEnded<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "ingest session ended; reloading state and reconnecting");
        metrics::counter!(t::INGEST_RESTARTS, "cause" => self.cause).increment(1);
    }
}

/// One ticketing message (HTTP or MQTT) taken in: what its items did, in
/// `visitorflow_bookings_total{space,outcome}`, and a log line naming the first refusal.
pub struct TicketIntake<'a> {
    pub space: &'a str,
    /// The token's id, or the MQTT topic.
    pub from: &'a str,
    pub inserted: u64,
    pub updated: u64,
    pub duplicates: u64,
    pub stale: u64,
    pub rejected: u64,
    /// The first refusal's reason, for the log line.
    pub first_refusal: Option<&'a str>,
}

impl<'a> TicketIntake<'a> {
    /// `rejected` items refused before anything was stored, `first` the first one's reason.
    pub fn refused(space: &'a str, from: &'a str, rejected: u64, first: &'a str) -> Self {
        Self {
            space,
            from,
            inserted: 0,
            updated: 0,
            duplicates: 0,
            stale: 0,
            rejected,
            first_refusal: Some(first),
        }
    }

    /// A whole message refused: it counts at least once, even if it held no items.
    pub fn message_refused(space: &'a str, from: &'a str, items: usize, reason: &'a str) -> Self {
        Self::refused(space, from, (items as u64).max(1), reason)
    }
}

impl InternalEvent for TicketIntake<'_> {
    fn emit(self) {
        if let Some(reason) = self.first_refusal {
            tracing::warn!(
                space = self.space,
                from = self.from,
                refused = self.rejected,
                first = reason,
                "ticketing items refused"
            );
        }
        for (outcome, n) in [
            ("inserted", self.inserted),
            ("updated", self.updated),
            ("duplicate", self.duplicates),
            ("stale", self.stale),
            ("rejected", self.rejected),
        ] {
            if n > 0 {
                metrics::counter!(t::BOOKINGS, "space" => self.space.to_owned(), "outcome" => outcome)
                    .increment(n);
            }
        }
    }
}

/// What became of one webhook delivery attempt.
pub enum DeliveryOutcome<'a> {
    Delivered {
        /// The request's own time, and the time from the alert to its confirmed delivery.
        latency: Duration,
        end_to_end_s: f64,
    },
    Retried {
        attempts: u32,
        after: Duration,
        reason: &'a str,
    },
    Dead {
        attempts: u32,
        reason: &'a str,
    },
}

/// One webhook delivery attempt's outcome, for `subscription`'s outbox.
pub struct WebhookDelivery<'a> {
    pub subscription: &'a str,
    pub delivery: &'a str,
    pub outcome: DeliveryOutcome<'a>,
}

impl InternalEvent for WebhookDelivery<'_> {
    fn emit(self) {
        let sub = self.subscription;
        let count = |outcome: &'static str| {
            metrics::counter!(t::WEBHOOK_DELIVERIES, "subscription" => sub.to_owned(), "outcome" => outcome)
                .increment(1);
        };
        match self.outcome {
            DeliveryOutcome::Delivered {
                latency,
                end_to_end_s,
            } => {
                count("delivered");
                metrics::histogram!(t::WEBHOOK_LATENCY, "subscription" => sub.to_owned())
                    .record(latency.as_secs_f64());
                metrics::histogram!(t::ALERT_DELIVERY_DELAY, "subscription" => sub.to_owned())
                    .record(end_to_end_s);
            }
            DeliveryOutcome::Retried {
                attempts,
                after,
                reason,
            } => {
                count("retried");
                tracing::info!(subscription = sub, delivery = self.delivery, attempts, retry_in = ?after, reason, "webhook delivery will be retried");
            }
            DeliveryOutcome::Dead { attempts, reason } => {
                count("dead");
                tracing::warn!(
                    subscription = sub,
                    delivery = self.delivery,
                    attempts,
                    reason,
                    "webhook delivery is a dead letter"
                );
            }
        }
    }
}

/// What became of one attempt to push upstream (the daily report, the live feed).
pub enum PushOutcome<'a> {
    Delivered,
    Retried { in_s: f64, reason: Option<&'a str> },
    Dead { reason: Option<&'a str> },
}

/// One attempt to push a day's report (its delivery id names the day: `vf-report-2026-10-02`).
pub struct ReportPush<'a> {
    pub delivery: &'a str,
    pub attempts: u32,
    pub outcome: PushOutcome<'a>,
}

impl InternalEvent for ReportPush<'_> {
    fn emit(self) {
        let (delivery, attempts) = (self.delivery, self.attempts);
        let label = match self.outcome {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Retried { .. } => "retried",
            PushOutcome::Dead { .. } => "dead",
        };
        metrics::counter!(t::REPORT_PUSHES, "outcome" => label).increment(1);
        match self.outcome {
            PushOutcome::Delivered => {
                tracing::info!(delivery, attempts, "daily report delivered")
            }
            PushOutcome::Retried { in_s, reason } => {
                tracing::info!(
                    delivery,
                    attempts,
                    retry_in_s = in_s,
                    reason,
                    "daily report push will be retried"
                )
            }
            PushOutcome::Dead { reason } => {
                tracing::warn!(
                    delivery,
                    attempts,
                    reason,
                    "daily report push is a dead letter"
                )
            }
        }
    }
}

/// Whether a live-feed push was a period's or an immediate one (a change to red, a closure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveTrigger {
    Period,
    Event,
}

impl LiveTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveTrigger::Period => "period",
            LiveTrigger::Event => "event",
        }
    }
}

/// One attempt of a live-feed push to the provincial platform.
pub struct LiveFeedPush<'a> {
    pub trigger: LiveTrigger,
    pub delivery: &'a str,
    pub attempts: u32,
    pub http_status: Option<u16>,
    pub outcome: PushOutcome<'a>,
}

impl InternalEvent for LiveFeedPush<'_> {
    fn emit(self) {
        let (delivery, attempts, status) = (self.delivery, self.attempts, self.http_status);
        let label = match self.outcome {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Retried { .. } => "retried",
            PushOutcome::Dead { .. } => "dead",
        };
        metrics::counter!(t::LIVE_FEED_PUSHES, "trigger" => self.trigger.as_str(), "outcome" => label)
            .increment(1);
        match self.outcome {
            PushOutcome::Delivered => {
                tracing::debug!(delivery, attempts, status, "live feed push delivered")
            }
            PushOutcome::Retried { in_s, reason } => {
                tracing::info!(
                    delivery,
                    attempts,
                    status,
                    retry_in_s = in_s,
                    reason,
                    "live feed push will be retried"
                )
            }
            PushOutcome::Dead { reason } => {
                tracing::warn!(
                    delivery,
                    attempts,
                    status,
                    reason,
                    "live feed push is a dead letter"
                )
            }
        }
    }
}

/// Periods the live feed will never send: boundaries no instance was running at (`skipped`), or
/// waiting periods beyond the catch-up bound (`given_up`, dead letters).
pub struct LiveFeedGap<'a> {
    /// `skipped` or `given_up`.
    pub outcome: &'static str,
    pub periods: u64,
    /// The first and last delivery ids concerned, for the log line.
    pub first: Option<&'a str>,
    pub last: Option<&'a str>,
    pub reason: &'a str,
}

impl InternalEvent for LiveFeedGap<'_> {
    fn emit(self) {
        if self.periods == 0 {
            return;
        }
        metrics::counter!(t::LIVE_FEED_PUSHES, "trigger" => "period", "outcome" => self.outcome)
            .increment(self.periods);
        tracing::warn!(
            outcome = self.outcome,
            periods = self.periods,
            first = self.first,
            last = self.last,
            reason = self.reason,
            "live feed periods not sent"
        );
    }
}

/// Ingest refusals of one batch, grouped by device and reason: one `visitorflow_reports_rejected_total`
/// increment per refusal at once, one WARN line per group when the batch is finished
/// ([`Rejections::flush`]), at most [`Rejections::LINES`] lines a batch (a device replaying its
/// history must not flood the log with a line per report).
#[derive(Default)]
pub struct Rejections {
    groups: Vec<RejectGroup>,
    index: std::collections::HashMap<(String, &'static str), usize>,
}

struct RejectGroup {
    device: String,
    topic: String,
    reason: &'static str,
    detail: String,
    count: u64,
}

impl Rejections {
    pub const LINES: usize = 20;

    /// One refusal: `reason` is the metric label, `detail` the message (built only for the first
    /// refusal of a group).
    pub fn note(
        &mut self,
        reason: &'static str,
        detail: impl FnOnce() -> String,
        device: &str,
        topic: &str,
    ) {
        metrics::counter!(t::REPORTS_REJECTED, "reason" => reason).increment(1);
        let key = (device.to_owned(), reason);
        match self.index.get(&key) {
            Some(&i) => self.groups[i].count += 1,
            None => {
                self.index.insert(key, self.groups.len());
                self.groups.push(RejectGroup {
                    device: device.to_owned(),
                    topic: topic.to_owned(),
                    reason,
                    detail: detail(),
                    count: 1,
                });
            }
        }
    }

    pub fn flush(&mut self) {
        for g in self.groups.iter().take(Self::LINES) {
            tracing::warn!(
                device = g.device,
                topic = g.topic,
                reason = g.reason,
                detail = g.detail,
                count = g.count,
                "rejected MQTT input"
            );
        }
        if self.groups.len() > Self::LINES {
            let rest: u64 = self.groups[Self::LINES..].iter().map(|g| g.count).sum();
            tracing::warn!(
                devices = self.groups.len() - Self::LINES,
                count = rest,
                "rejected MQTT input from further devices (see visitorflow_reports_rejected_total)"
            );
        }
        self.groups.clear();
        self.index.clear();
    }
}

//! Webhook delivery from the outbox: one worker per subscription (a slow or dead receiver never
//! holds up ingest or the other receivers), timeouts, the same delivery id on every retry, and
//! metrics per subscription. When to retry (exponential backoff with jitter, honouring
//! `Retry-After`) and when to give up (a dead letter after `max_attempts`) is
//! [`RetryPolicy::next_step`]'s to say; the worker stores, counts and logs the step.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use tokio::sync::Notify;

use super::AlertingConfig;
use crate::retry::{RetryPolicy, Step};
use crate::shutdown::Shutdown;
use crate::store::outbox as db;
use crate::telemetry::events::{DeliveryOutcome, InternalEvent, WebhookDelivery};
use crate::webhook::deliver::{Deliverer, Target};
use crate::webhook::model::AlertEvent;

pub struct Worker {
    pub subscription: String,
    pub target: Target,
    pub deliverer: Arc<Deliverer>,
    pub pool: Pool,
    pub cfg: AlertingConfig,
    pub notify: Arc<Notify>,
}

impl Worker {
    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            let idle = match self.round().await {
                Ok(delivered_any) => !delivered_any,
                Err(e) => {
                    tracing::warn!(subscription = %self.subscription, error = %e, "webhook outbox unavailable");
                    true
                }
            };
            if !idle {
                continue;
            }
            let wait = self.next_wait().await;
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    /// How long until the earliest retry is due (bounded, so a missed wake-up costs little).
    async fn next_wait(&self) -> Duration {
        let max = Duration::from_secs(5);
        let Ok(client) = self.pool.get().await else {
            return max;
        };
        match db::next_due(&client, &self.subscription).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(max),
            _ => max,
        }
    }

    /// Attempts every due delivery once; returns whether there were any.
    async fn round(&self) -> Result<bool, crate::store::StoreError> {
        let client = self.pool.get().await?;
        let due = db::due_deliveries(&client, &self.subscription, 50).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let sub = self.subscription.as_str();
        let policy = RetryPolicy::new(
            Duration::from_millis(self.cfg.backoff_base_ms),
            Duration::from_millis(self.cfg.backoff_max_ms),
            self.cfg.max_attempts,
        );
        for d in due {
            let Ok(event) = serde_json::from_value::<AlertEvent>(d.event) else {
                db::mark_dead(&client, d.id, None, "stored event does not decode").await?;
                continue;
            };
            let attempt = self.deliverer.deliver_once(&self.target, &event).await;
            let attempts = u32::try_from(d.attempts).unwrap_or(0) + 1;
            let step =
                policy.next_step(attempts, attempt.outcome.into_response(), &mut rand::rng());
            match step {
                Step::Done((status, latency)) => {
                    db::mark_delivered(&client, d.id, status, latency.as_secs_f64() * 1000.0)
                        .await?;
                    // Time from the transition to its confirmed delivery: the alert latency.
                    let end_to_end_s = (Utc::now() - event.at).as_seconds_f64().max(0.0);
                    WebhookDelivery {
                        subscription: sub,
                        delivery: &d.delivery_id,
                        outcome: DeliveryOutcome::Delivered {
                            latency,
                            end_to_end_s,
                        },
                    }
                    .emit();
                }
                Step::Retry {
                    after: wait,
                    failure: reason,
                } => {
                    db::mark_retry(
                        &client,
                        d.id,
                        wait.as_secs_f64(),
                        attempt.http_status,
                        &reason,
                    )
                    .await?;
                    WebhookDelivery {
                        subscription: sub,
                        delivery: &d.delivery_id,
                        outcome: DeliveryOutcome::Retried {
                            attempts,
                            after: wait,
                            reason: &reason,
                        },
                    }
                    .emit();
                }
                Step::Dead {
                    failure: reason, ..
                } => {
                    db::mark_dead(&client, d.id, attempt.http_status, &reason).await?;
                    WebhookDelivery {
                        subscription: sub,
                        delivery: &d.delivery_id,
                        outcome: DeliveryOutcome::Dead {
                            attempts,
                            reason: &reason,
                        },
                    }
                    .emit();
                }
            }
        }
        Ok(true)
    }
}

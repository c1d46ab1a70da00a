//! Wires the parts into the running service: registry → migrations → ingester → HTTP API →
//! maintenance, with one shutdown signal. `main` and the integration tests both start it here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::{self, Trigger};
use tokio::task::JoinHandle;

use crate::alerting::{Alerter, outbox};
use crate::api::{self, AppState, Feed, RateLimiter, Tokens};
use crate::config::Config;
use crate::ingest::Ingester;
use crate::live::Live;
use crate::live::Wake;
use crate::partition::{self, PartitionError, PartitionMap};
use crate::registry::{Registry, RegistryError};
use crate::report::push::{PushHandle, Pusher};
use crate::rules::{Engine, RulesError};
use crate::store::{self, Mode, StoreError};
use crate::telemetry;
use crate::webhook::SubscriptionError;
use crate::webhook::deliver::{DeliverError, Deliverer, DeliveryOptions};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Dispatch(#[from] crate::dispatch::DispatchConfigError),
    #[error(transparent)]
    ReportPush(#[from] crate::report::push::ReportPushConfigError),
    #[error(transparent)]
    Webhook(#[from] SubscriptionError),
    #[error(transparent)]
    Http(#[from] DeliverError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("database.url is empty: set it in the config or VISITORFLOW__DATABASE__URL")]
    NoDatabase,
    // The cause is in the message, not also a `source`: `{:#}` would print it twice.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("metrics recorder: {0}")]
    Metrics(String),
    #[error("[[tokens]]: {}", .0.join("; "))]
    Tokens(Vec<String>),
}

/// A running service; dropping it does not stop it, `shutdown` does.
pub struct Service {
    pub registry: Arc<Registry>,
    pub live: Arc<Live>,
    pub mode: Mode,
    pub http_addr: SocketAddr,
    stop: Trigger,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    pub async fn start(cfg: Config) -> Result<Service, RunError> {
        let registry = Arc::new(cfg.registry()?);
        // Refuse a bad rules, dispatch or tokens section before touching anything.
        Engine::for_registry(cfg.rules.clone(), &registry)?;
        crate::dispatch::DispatchModel::build(&cfg.dispatch, &registry)?;
        let push_plan = cfg.report_push.plan()?;
        let tokens = Arc::new(Tokens::build(&cfg.tokens, &registry).map_err(RunError::Tokens)?);
        if tokens.is_empty() {
            tracing::warn!(
                "no [[tokens]] configured: /api/v1 answers 401 except /api/v1/public (make one with `visitorflow token --role admin`)"
            );
        }
        if cfg.database.url.is_empty() {
            return Err(RunError::NoDatabase);
        }
        let partitions = match &cfg.partition {
            Some(p) => Some(PartitionMap::build(&registry, p)?),
            None => None,
        };
        let metrics = telemetry::handle().map_err(|e| RunError::Metrics(e.to_string()))?;
        let (url, tz, ts) = (
            &cfg.database.url,
            &cfg.county.time_zone,
            cfg.database.timescaledb,
        );
        let max_age = cfg.ingest.max_age_days;
        let mode = match partitions {
            // Instances starting together must not race on the schema.
            Some(_) => partition::migrate(url, tz, ts, max_age).await?,
            None => store::migrate(url, tz, ts, max_age).await?,
        };
        tracing::info!(mode = mode.as_str(), "storage ready");
        let pool = store::pool(&cfg.database.url, cfg.database.pool_size)?;
        let live = Arc::new(Live::new(registry.spaces.len(), registry.devices.len()));
        let (stop, stopped) = shutdown::channel();
        let cfg = Arc::new(cfg);
        let mut tasks = Vec::new();

        // Alerting: one delivery worker per subscription, the rules loop woken by every commit.
        let deliverer = Arc::new(Deliverer::new(DeliveryOptions {
            timeout: Duration::from_millis(cfg.alerting.delivery_timeout_ms),
            external_url: cfg.alerting.external_url.clone(),
            ..DeliveryOptions::default()
        })?);
        let mut outbox = Vec::new();
        let mut by_subscription = std::collections::HashMap::new();
        for sub in &cfg.webhooks {
            let notify = Arc::new(tokio::sync::Notify::new());
            let worker = outbox::Worker {
                subscription: sub.id.clone(),
                target: sub.target()?,
                deliverer: Arc::clone(&deliverer),
                pool: pool.clone(),
                cfg: cfg.alerting.clone(),
                notify: Arc::clone(&notify),
            };
            tasks.push(tokio::spawn(worker.run(stopped.clone())));
            by_subscription.insert(sub.id.clone(), Arc::clone(&notify));
            outbox.push(notify);
        }
        let wake = Arc::new(Wake::default());
        let mut alerter = Alerter::new(
            Arc::new(cfg.alerter()),
            Arc::clone(&registry),
            Arc::clone(&live),
            Arc::clone(&wake),
            outbox,
        );
        let ingest_cfg = Arc::new(cfg.ingester());
        match (partitions, &cfg.partition) {
            (Some(map), Some(pcfg)) => {
                alerter = alerter.with_leader(partition::Leader {
                    poll: Duration::from_millis(pcfg.standby_poll_ms.max(50)),
                });
                let shared =
                    partition::Shared::new(Arc::clone(&registry), Arc::clone(&live), map, pcfg);
                for scope in shared.scopes(pcfg, &cfg.mqtt) {
                    let span = tracing::info_span!("partition", n = scope.partition);
                    let ingester = Ingester::new(
                        Arc::clone(&ingest_cfg),
                        Arc::clone(&scope.registry),
                        Arc::clone(&live),
                        Arc::clone(&wake),
                    )
                    .with_scope(scope);
                    tasks.push(tokio::spawn(tracing::Instrument::instrument(
                        ingester.run(stopped.clone()),
                        span,
                    )));
                }
                tasks.push(tokio::spawn(partition::refresh(
                    shared,
                    cfg.database.url.clone(),
                    Duration::from_millis(pcfg.refresh_ms),
                    stopped.clone(),
                )));
            }
            _ => {
                let ingester = Ingester::new(
                    Arc::clone(&ingest_cfg),
                    Arc::clone(&registry),
                    Arc::clone(&live),
                    Arc::clone(&wake),
                );
                tasks.push(tokio::spawn(ingester.run(stopped.clone())));
            }
        }
        tasks.push(tokio::spawn(alerter.run(stopped.clone())));

        // The daily report upstream: one worker, scheduled by the recorded days.
        let report_push = push_plan.map(|plan| {
            let handle = Arc::new(PushHandle {
                format: plan.format,
                wake: tokio::sync::Notify::new(),
            });
            let pusher = Pusher {
                plan,
                registry: Arc::clone(&registry),
                pool: pool.clone(),
                deliverer: Arc::clone(&deliverer),
                backoff_base: Duration::from_millis(cfg.alerting.backoff_base_ms),
                backoff_max: Duration::from_millis(cfg.alerting.backoff_max_ms),
                timeout: Duration::from_millis(cfg.alerting.delivery_timeout_ms),
                handle: Arc::clone(&handle),
            };
            tasks.push(tokio::spawn(pusher.run(stopped.clone())));
            handle
        });

        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .map_err(|error| RunError::Listen {
                addr: cfg.http.listen,
                error,
            })?;
        let http_addr = listener.local_addr().map_err(|error| RunError::Listen {
            addr: cfg.http.listen,
            error,
        })?;
        let feed = Arc::new(Feed::new(
            Arc::clone(&registry),
            Arc::clone(&live),
            stopped.clone(),
        ));
        tasks.push(tokio::spawn(Arc::clone(&feed).run()));
        let app = api::router(
            AppState {
                registry: Arc::clone(&registry),
                wake: Arc::clone(&wake),
                outbox: Arc::new(by_subscription),
                live: Arc::clone(&live),
                pool: pool.clone(),
                metrics,
                mode,
                tokens,
                limiter: Arc::new(RateLimiter::new(
                    cfg.http.rate_per_token,
                    cfg.http.rate_per_ip,
                    cfg.http.rate_burst,
                )),
                feed,
                report_push,
                openapi: Arc::default(),
            },
            &cfg.http,
        );
        let header_timeout = Duration::from_millis(cfg.http.header_read_timeout_ms.max(1));
        tasks.push(tokio::spawn(api::serve(
            listener,
            app,
            header_timeout,
            stopped.clone(),
        )));
        tracing::info!(%http_addr, spaces = registry.spaces.len(), devices = registry.devices.len(), "visitorflow running");

        if cfg.database.raw_retention_days > 0 {
            let days = i64::from(cfg.database.raw_retention_days);
            let mut stop_rx = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = stop_rx.recv() => return,
                    }
                    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(days);
                    match store::prune_reports(&pool, mode, cutoff).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(removed = n, %cutoff, "raw report retention")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "raw report retention failed"),
                    }
                }
            }));
        }
        Ok(Service {
            registry,
            live,
            mode,
            http_addr,
            stop,
            tasks,
        })
    }

    /// Stops the ingester (an uncommitted batch is simply not acknowledged), the API and
    /// maintenance, and waits for them.
    pub async fn shutdown(self) {
        self.stop.trigger();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

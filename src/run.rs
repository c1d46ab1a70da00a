//! Wires the parts into the running service (the shape of zero2prod's `startup.rs`): check every
//! section before touching anything → migrate → start alerting, ingest, the report push, the live
//! feed, the HTTP API and retention, all on one shutdown signal. `main` and the integration tests both start it
//! here. Each step is one function taking the sections it needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::admission::{AdmissionError, Reservations};
use crate::alerting::{Alerter, outbox};
use crate::api::{self, AppState, Feed, RateLimiter, Tokens};
use crate::calendar::Calendar;
use crate::config::Config;
use crate::dispatch::DispatchModel;
use crate::forecasting::{ForecastPlan, Forecaster};
use crate::ingest::Ingester;
use crate::live::Live;
use crate::live::Wake;
use crate::partition::{self, PartitionError, PartitionMap};
use crate::registry::{Registry, RegistryError};
use crate::report::deliver::Channel;
use crate::report::live::{Feeder, LivePlan};
use crate::report::push::{PushHandle, PushPlan, Pusher};
use crate::retry::RetryPolicy;
use crate::rules::{Engine, RulesError};
use crate::shutdown::{self, Shutdown, Trigger};
use crate::store::replica::Reads;
use crate::store::{self, Mode, StoreError};
use crate::telemetry;
use crate::webhook::SubscriptionError;
use crate::webhook::deliver::{DeliverError, Deliverer, DeliveryOptions};
use deadpool_postgres::Pool;

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
    Admission(#[from] AdmissionError),
    #[error(transparent)]
    ReportPush(#[from] crate::report::push::ReportPushConfigError),
    #[error(transparent)]
    Calendar(#[from] crate::calendar::CalendarError),
    #[error(transparent)]
    Forecast(#[from] crate::forecasting::ForecastConfigError),
    #[error(transparent)]
    LiveFeed(#[from] crate::report::live::LiveFeedConfigError),
    #[error(transparent)]
    Webhook(#[from] SubscriptionError),
    #[error(transparent)]
    Http(#[from] DeliverError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Poll(#[from] crate::poll::PollError),
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
    /// Forecast runs on request (the demo's after its history is in).
    pub forecaster: Arc<Forecaster>,
    pub mode: Mode,
    pub http_addr: SocketAddr,
    stop: Trigger,
    tasks: Vec<JoinHandle<()>>,
}

/// What [`checked`] proved about a configuration before anything was started.
struct Checked {
    registry: Arc<Registry>,
    reservations: Arc<Reservations>,
    push_plan: Option<PushPlan>,
    calendar: Arc<Calendar>,
    forecast_plan: ForecastPlan,
    live_plan: Option<LivePlan>,
    tokens: Arc<Tokens>,
    partitions: Option<PartitionMap>,
}

/// The tasks of a service, all stopped by one signal.
struct Tasks {
    stopped: Shutdown,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }

    /// A listener for a task about to be spawned.
    fn stopped(&self) -> Shutdown {
        self.stopped.clone()
    }
}

impl Service {
    pub async fn start(mut cfg: Config) -> Result<Service, RunError> {
        let checked = checked(&cfg)?;
        // Everything from here on reads the `Registry`; the lists it was built from would be a
        // second copy of it for as long as start-up runs.
        cfg.forget_registry_lists();
        let metrics = telemetry::handle().map_err(|e| RunError::Metrics(e.to_string()))?;
        let mode = migrate(&cfg, checked.partitions.is_some()).await?;
        tracing::info!(mode = mode.as_str(), "storage ready");
        let pool = store::pool(&cfg.database.url, cfg.database.pool_size)?;
        let registry = checked.registry;
        let live = Arc::new(Live::new(registry.spaces.len(), registry.devices.len()));
        let (stop, stopped) = shutdown::channel();
        let mut tasks = Tasks {
            stopped,
            handles: Vec::new(),
        };
        let deliverer = Arc::new(Deliverer::new(DeliveryOptions {
            timeout: Duration::from_millis(cfg.alerting.delivery_timeout_ms),
            external_url: cfg.alerting.external_url.clone(),
            ..DeliveryOptions::default()
        })?);
        let wake = Arc::new(Wake::default());
        let outbox = start_outbox(&cfg, &pool, &deliverer, &mut tasks)?;
        let mut alerter = Alerter::new(
            Arc::new(cfg.alerter()),
            Arc::clone(&registry),
            Arc::clone(&live),
            Arc::clone(&wake),
            outbox.iter().map(|(_, n)| Arc::clone(n)).collect(),
        )
        .with_reservations(Arc::clone(&checked.reservations));
        let (leader, pushes) = start_ingest(
            &cfg,
            checked.partitions,
            &registry,
            &checked.reservations,
            &live,
            &wake,
            &mut tasks,
        );
        if let Some(leader) = leader {
            alerter = alerter.with_leader(leader);
        }
        let pushes = Arc::new(pushes);
        start_pollers(&cfg, &registry, &pushes, &mut tasks)?;
        tasks.spawn(alerter.run(tasks.stopped()));
        let forecaster = Arc::new(Forecaster {
            plan: checked.forecast_plan,
            registry: Arc::clone(&registry),
            calendar: Arc::clone(&checked.calendar),
            pool: pool.clone(),
            wake: Arc::new(Notify::new()),
            asked: Default::default(),
        });
        tasks.spawn(Arc::clone(&forecaster).run(tasks.stopped()));
        let report_push = checked.push_plan.map(|plan| {
            start_report_push(
                &cfg,
                plan,
                &registry,
                &checked.calendar,
                &pool,
                &deliverer,
                &mut tasks,
            )
        });
        if let Some(plan) = checked.live_plan {
            start_live_feed(&cfg, plan, &registry, &live, &pool, &deliverer, &mut tasks);
        }
        let state = AppState {
            registry: Arc::clone(&registry),
            wake,
            outbox: Arc::new(outbox.into_iter().collect()),
            live: Arc::clone(&live),
            pool: pool.clone(),
            metrics,
            mode,
            tokens: checked.tokens,
            limiter: Arc::new(RateLimiter::new(
                cfg.http.rate_per_token,
                cfg.http.rate_per_ip,
                cfg.http.rate_burst,
            )),
            feed: Arc::new(Feed::new(
                Arc::clone(&registry),
                Arc::clone(&live),
                tasks.stopped(),
            )),
            report_push,
            forecaster: Arc::clone(&forecaster),
            reads: start_reads(&cfg, &pool, &mut tasks)?,
            reservations: Arc::clone(&checked.reservations),
            pushes,
            openapi: Arc::default(),
        };
        let forecaster_handle = forecaster;
        let http_addr = start_http(&cfg, state, &mut tasks).await?;
        tracing::info!(%http_addr, spaces = registry.spaces.len(), devices = registry.devices.len(), "visitorflow running");
        if cfg.database.raw_retention_days > 0 {
            let days = i64::from(cfg.database.raw_retention_days);
            tasks.spawn(retention(pool, mode, days, tasks.stopped()));
        }
        Ok(Service {
            registry,
            live,
            forecaster: forecaster_handle,
            mode,
            http_addr,
            stop,
            tasks: tasks.handles,
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

/// Refuses a bad registry, rules, dispatch, report push, live feed, tokens or partition section before
/// anything is touched.
fn checked(cfg: &Config) -> Result<Checked, RunError> {
    let registry = Arc::new(cfg.registry()?);
    Engine::for_registry(cfg.rules.clone(), &registry)?;
    DispatchModel::build(&cfg.dispatch, &registry)?;
    let reservations = Arc::new(Reservations::build(&cfg.admission, &registry)?);
    let push_plan = cfg.report_push.plan()?;
    let calendar = Arc::new(calendar(&cfg.calendar)?);
    let forecast_plan = cfg.forecast.plan()?;
    let live_plan = cfg.live_feed.plan()?;
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
    Ok(Checked {
        registry,
        reservations,
        push_plan,
        calendar,
        forecast_plan,
        live_plan,
        tokens,
        partitions,
    })
}

async fn migrate(cfg: &Config, partitioned: bool) -> Result<Mode, RunError> {
    let db = &cfg.database;
    let (url, tz, max_age) = (&db.url, &cfg.county.time_zone, cfg.ingest.max_age_days);
    Ok(if partitioned {
        // Instances starting together must not race on the schema.
        partition::migrate(url, tz, db.timescaledb, max_age).await?
    } else {
        store::migrate(url, tz, db.timescaledb, max_age).await?
    })
}

/// One delivery worker per webhook subscription (a slow receiver holds up nobody else); returns
/// each subscription's wake-up, in `[[webhooks]]` order.
fn start_outbox(
    cfg: &Config,
    pool: &Pool,
    deliverer: &Arc<Deliverer>,
    tasks: &mut Tasks,
) -> Result<Vec<(String, Arc<Notify>)>, RunError> {
    let mut outbox = Vec::new();
    for sub in &cfg.webhooks {
        let notify = Arc::new(Notify::new());
        let worker = outbox::Worker {
            subscription: sub.id.clone(),
            target: sub.target()?,
            deliverer: Arc::clone(deliverer),
            pool: pool.clone(),
            cfg: cfg.alerting.clone(),
            notify: Arc::clone(&notify),
        };
        tasks.spawn(worker.run(tasks.stopped()));
        outbox.push((sub.id.clone(), notify));
    }
    Ok(outbox)
}

/// One ingester, or one per partition this instance runs (then alerting runs only on the
/// leader, which is returned), each taking the HTTP pushes of its devices (the intake returned).
fn start_ingest(
    cfg: &Config,
    partitions: Option<PartitionMap>,
    registry: &Arc<Registry>,
    reservations: &Arc<Reservations>,
    live: &Arc<Live>,
    wake: &Arc<Wake>,
    tasks: &mut Tasks,
) -> (Option<partition::Leader>, crate::ingest::PushIntake) {
    let mut pushes = crate::ingest::PushIntake::default();
    let ingest_cfg = Arc::new(cfg.ingester());
    let ingester = |registry: &Arc<Registry>| {
        Ingester::new(
            Arc::clone(&ingest_cfg),
            Arc::clone(registry),
            Arc::clone(live),
            Arc::clone(wake),
        )
        .with_reservations(Arc::clone(reservations))
    };
    let (Some(map), Some(pcfg)) = (partitions, &cfg.partition) else {
        let one = ingester(registry).with_pushes(pushes.route(None));
        tasks.spawn(one.run(tasks.stopped()));
        return (None, pushes);
    };
    let shared = partition::Shared::new(Arc::clone(registry), Arc::clone(live), map, pcfg);
    for scope in shared.scopes(pcfg, &cfg.mqtt) {
        let span = tracing::info_span!("partition", n = scope.partition);
        let run = ingester(&scope.registry)
            .with_pushes(pushes.route(Some(Arc::clone(&scope))))
            .with_scope(scope)
            .run(tasks.stopped());
        tasks.spawn(tracing::Instrument::instrument(run, span));
    }
    tasks.spawn(partition::refresh(
        shared,
        cfg.database.url.clone(),
        Duration::from_millis(pcfg.refresh_ms),
        tasks.stopped(),
    ));
    let leader = partition::Leader {
        poll: Duration::from_millis(pcfg.standby_poll_ms.max(50)),
    };
    (Some(leader), pushes)
}

/// One poller per polled device this instance counts (`crate::poll`).
fn start_pollers(
    cfg: &Config,
    registry: &Registry,
    pushes: &Arc<crate::ingest::PushIntake>,
    tasks: &mut Tasks,
) -> Result<(), RunError> {
    let limits = crate::decode::Limits::from(&cfg.ingest);
    for d in &registry.devices {
        if pushes.sender(d.id.as_str()).is_none() {
            continue;
        }
        if let Some(poller) =
            crate::poll::Poller::new(d.clone(), registry.tz, Arc::clone(pushes), limits)
        {
            tasks.spawn(poller?.run(tasks.stopped()));
        }
    }
    Ok(())
}

/// The daily report upstream: one worker, scheduled by the recorded days.
fn start_report_push(
    cfg: &Config,
    plan: PushPlan,
    registry: &Arc<Registry>,
    calendar: &Arc<Calendar>,
    pool: &Pool,
    deliverer: &Arc<Deliverer>,
    tasks: &mut Tasks,
) -> Arc<PushHandle> {
    let handle = Arc::new(PushHandle {
        format: plan.format,
        wake: Notify::new(),
    });
    let channel = Channel {
        target: plan.target.clone(),
        deliverer: Arc::clone(deliverer),
        policy: retry_policy(cfg, plan.max_attempts),
        table: &crate::store::sql::REPORT_PUSH,
    };
    let pusher = Pusher {
        plan,
        registry: Arc::clone(registry),
        calendar: Arc::clone(calendar),
        pool: pool.clone(),
        channel,
        timeout: Duration::from_millis(cfg.alerting.delivery_timeout_ms),
        handle: Arc::clone(&handle),
    };
    tasks.spawn(pusher.run(tasks.stopped()));
    handle
}

/// The history reads' pools: a replica's when `[database] read_url` names one, watched for lag.
fn start_reads(cfg: &Config, primary: &Pool, tasks: &mut Tasks) -> Result<Arc<Reads>, RunError> {
    let db = &cfg.database;
    let replica = if db.read_url.is_empty() {
        None
    } else {
        Some(store::pool(&db.read_url, db.pool_size)?)
    };
    let reads = Arc::new(Reads::new(
        primary.clone(),
        replica,
        Duration::from_millis(db.max_replica_lag_ms),
    ));
    tasks.spawn(Arc::clone(&reads).watch(tasks.stopped()));
    Ok(reads)
}

/// The calendar of `[calendar]`, with the holiday file it names read here (the embedded one by
/// default).
pub fn calendar(cfg: &crate::calendar::CalendarConfig) -> Result<Calendar, RunError> {
    let text = match &cfg.holidays_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            crate::calendar::CalendarError(vec![crate::registry::Problem {
                location: "calendar.holidays_file".into(),
                message: format!("cannot read {path}: {e}"),
            }])
        })?),
        None => None,
    };
    Ok(Calendar::build(cfg, text.as_deref())?)
}

/// The webhooks' retry schedule (`[alerting]` backoff) with a push's own `max_attempts`.
fn retry_policy(cfg: &Config, max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        Duration::from_millis(cfg.alerting.backoff_base_ms),
        Duration::from_millis(cfg.alerting.backoff_max_ms),
        max_attempts,
    )
}

/// The live feed upstream: one worker, sending while this instance's alerting leads.
fn start_live_feed(
    cfg: &Config,
    plan: LivePlan,
    registry: &Arc<Registry>,
    live: &Arc<Live>,
    pool: &Pool,
    deliverer: &Arc<Deliverer>,
    tasks: &mut Tasks,
) {
    let channel = Channel {
        target: plan.target.clone(),
        deliverer: Arc::clone(deliverer),
        policy: retry_policy(cfg, plan.max_attempts),
        table: &crate::store::sql::LIVE_FEED,
    };
    let feeder = Feeder {
        plan,
        registry: Arc::clone(registry),
        live: Arc::clone(live),
        pool: pool.clone(),
        channel,
        timeout: Duration::from_millis(cfg.alerting.delivery_timeout_ms),
    };
    tasks.spawn(feeder.run(tasks.stopped()));
}

/// Binds the listener (a busy port is an error naming it) and serves the API and the live feed.
async fn start_http(
    cfg: &Config,
    state: AppState,
    tasks: &mut Tasks,
) -> Result<SocketAddr, RunError> {
    let listen = cfg.http.listen;
    let listen_err = |error| RunError::Listen {
        addr: listen,
        error,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(listen_err)?;
    let http_addr = listener.local_addr().map_err(listen_err)?;
    tasks.spawn(Arc::clone(&state.feed).run());
    let app = api::router(state, &cfg.http);
    let header_timeout = Duration::from_millis(cfg.http.header_read_timeout_ms.max(1));
    tasks.spawn(api::serve(listener, app, header_timeout, tasks.stopped()));
    Ok(http_addr)
}

/// Deletes raw reports older than `days`, hourly.
async fn retention(pool: Pool, mode: Mode, days: i64, mut stopped: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.recv() => return,
        }
        let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(days);
        match store::prune_reports(&pool, mode, cutoff).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, %cutoff, "raw report retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "raw report retention failed"),
        }
    }
}

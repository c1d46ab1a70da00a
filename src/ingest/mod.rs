//! The ingester: the async shell around the pure core. One session = one database connection +
//! one MQTT connection + the state loaded from the database. Messages are decoded and applied in
//! batches; a batch is committed in one transaction, then its messages are acknowledged in
//! arrival order. Any failure ends the session: the next one reloads the committed state and the
//! broker redelivers everything unacknowledged, which the de-duplication counts once.

use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use chrono::{DateTime, SubsecRound, Utc};
use rumqttc::Publish;
use tokio::time::Instant;

use crate::live::Wake;
mod config;
mod cut;
mod failover;
mod inflight;
pub mod push;
mod tickets;

use crate::admission::Reservations;
use crate::core::loss::Mark;
use crate::core::route::{Routed, Router};
use crate::core::seq::JumpBound;
use crate::core::{Batch, BatchStats, Core, Pending, Recounted};
use crate::decode::{CountReport, Limits, Reject};
use crate::ids::DeviceIdx;
use crate::live::{Captured, Live};
use crate::partition::{PartitionError, Scope};
use crate::registry::Registry;
use crate::source::{self, Acks, SourceEvent};
use crate::store::TicketWrite;
use crate::store::checkpoint::CheckpointPolicy;
use crate::store::{self, StoreError};
use crate::telemetry as t;
use crate::telemetry::events::{IngestSessionEnded, InternalEvent, Rejections};
pub use config::{IngestConfig, IngesterSettings};
use cut::{BatchCut, Decision};
use inflight::{AbortOnDrop, InFlight, wait_commit};
pub use push::{Push, PushBody, PushIntake, PushRefusal, Pushed};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("broker: {0}")]
    Broker(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("batch commit took longer than {0:?}")]
    CommitTimeout(Duration),
    #[error("batch commit task: {0}")]
    CommitTask(String),
    #[error("connecting to the database and loading the state took longer than {0:?}")]
    SetupTimeout(Duration),
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

impl IngestError {
    fn cause(&self) -> &'static str {
        match self {
            IngestError::Broker(_) => "broker",
            IngestError::Store(_)
            | IngestError::CommitTimeout(_)
            | IngestError::CommitTask(_)
            | IngestError::SetupTimeout(_) => "database",
            IngestError::Partition(_) => "partition",
        }
    }
}

pub struct Ingester {
    cfg: Arc<IngesterSettings>,
    registry: Arc<Registry>,
    live: Arc<Live>,
    limits: Limits,
    /// Told after every commit, so capacity rules run on fresh figures at once.
    committed: Arc<Wake>,
    /// Set when this ingester runs one partition of several (`crate::partition`).
    scope: Option<Arc<Scope>>,
    /// The areas' reservation plans, for ticketing messages (`{prefix}/{space}/tickets`).
    reservations: Arc<Reservations>,
    /// Counts pushed over HTTP for this ingester's devices ([`push`]).
    pushes: Option<tokio::sync::mpsc::Receiver<Push>>,
    /// Per device, the state after its last acknowledged commit: what a failover may lose.
    marks: failover::Marks,
}

impl Ingester {
    pub fn new(
        cfg: Arc<IngesterSettings>,
        registry: Arc<Registry>,
        live: Arc<Live>,
        committed: Arc<Wake>,
    ) -> Self {
        let limits = Limits::from(&cfg.ingest);
        Self {
            cfg,
            marks: failover::Marks::new(registry.devices.len()),
            registry,
            live,
            limits,
            committed,
            scope: None,
            reservations: Arc::default(),
            pushes: None,
        }
    }

    /// Takes counts pushed over HTTP from this receiver ([`PushIntake::route`]).
    pub fn with_pushes(mut self, pushes: tokio::sync::mpsc::Receiver<Push>) -> Self {
        self.pushes = Some(pushes);
        self
    }

    /// Takes ticketing messages for these areas' plans (without, every one is refused).
    pub fn with_reservations(mut self, reservations: Arc<Reservations>) -> Self {
        self.reservations = reservations;
        self
    }

    /// Runs one partition: `scope`'s client id and filters, its claim before any state is read.
    /// The registry given to [`Ingester::new`] must be the partition's (`scope.registry`).
    pub fn with_scope(mut self, scope: Arc<Scope>) -> Self {
        self.scope = Some(scope);
        self
    }

    fn set_ready(&self, up: bool) {
        match &self.scope {
            Some(scope) => scope.set_ready(up),
            None => {
                self.live.set_broker_connected(up);
                self.live.set_ingest_ready(up);
            }
        }
    }

    /// Runs sessions until `shutdown` turns true; failures are logged, counted and retried.
    ///
    /// The ingest pipeline (MQTT reader and writer, this loop, its database connection) runs on a
    /// single-threaded runtime of its own thread: its tasks hand work to each other hundreds of
    /// times a second, and on a shared multi-threaded runtime every hand-off woke another worker
    /// thread (futex, context switch), which cost more CPU than decoding the reports.
    pub async fn run(self, shutdown: Shutdown) {
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(self.sessions(shutdown)),
                    Err(e) => tracing::error!(error = %e, "cannot start the ingest runtime"),
                }
                drop(done);
            });
        match spawned {
            Ok(_) => {
                let _ = finished.await;
            }
            Err(e) => tracing::error!(error = %e, "cannot start the ingest thread"),
        }
    }

    async fn sessions(mut self, mut shutdown: Shutdown) {
        // Owned across sessions: pushes waiting while the ingester reconnects stay queued.
        let mut pushes = self.pushes.take();
        let base = Duration::from_millis(self.cfg.mqtt.reconnect_delay_ms.max(1));
        let mut backoff = crate::retry::Backoff::new(base, base.saturating_mul(16));
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                r = self.session(&mut pushes) => r,
                _ = shutdown.recv() => return,
            };
            // Back off while the broker or database stays down (doubling, at most 16x the base),
            // but start again from the base after a session that ran for a while.
            let delay = if started.elapsed() > Duration::from_secs(30) {
                backoff.reset()
            } else {
                backoff.failed()
            };
            self.set_ready(false);
            if let Err(e) = result {
                if e.cause() == "database" {
                    self.marks.database_lost();
                }
                IngestSessionEnded {
                    error: &e,
                    cause: e.cause(),
                }
                .emit();
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    async fn session(
        &self,
        pushes: &mut Option<tokio::sync::mpsc::Receiver<Push>>,
    ) -> Result<(), IngestError> {
        let limit = Duration::from_millis(self.cfg.ingest.commit_timeout_ms.max(1));
        let (db, mut core, mut writer) = self.open(limit).await?;

        let cut = BatchCut {
            max: self.cfg.ingest.batch_max_messages,
            linger: Duration::from_millis(self.cfg.ingest.batch_linger_ms),
        };
        // Each event is one socket read's worth of publishes; a few dozen keep the reader ahead
        // of a batch commit without holding much memory.
        let mut conn = match &self.scope {
            Some(scope) => source::connect_with(&scope.mqtt, 64, scope.filters.clone()),
            None => source::connect(&self.cfg.mqtt, 64),
        };
        let mut work = Work {
            batch: core.new_batch(),
            tickets: Vec::new(),
            pushes: Vec::new(),
            acks: Acks::default(),
            scratch: Vec::new(),
            // Handles resolved once per session, not looked up per report.
            messages: metrics::counter!(t::MQTT_MESSAGES),
            lag: metrics::histogram!(t::INGEST_LAG),
            rejects: Rejections::default(),
        };
        // Head counts asked for through the API: this instance's API says so at once; another
        // instance's are found on the periodic look.
        let mut recount_tick = tokio::time::interval(RECOUNT_POLL);
        recount_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recounts_due = true;

        // One batch commits while the next is received and applied: the database and this thread
        // work at the same time (the connection is lent to the commit task meanwhile). Batches
        // still commit one after another and are acknowledged in order, each after its commit.
        let mut db = Some(db);
        let mut inflight: Option<InFlight> = None;
        let mut deadline: Option<Instant> = None;
        // Journaled state is checkpointed once input pauses, so the state tables catch up as
        // soon as a burst ends rather than after `state_checkpoint_ms`.
        let mut last_input = Instant::now();
        let quiet = Duration::from_millis(self.cfg.ingest.state_quiet_ms);
        loop {
            if recounts_due && inflight.is_none() {
                recounts_due = false;
                if let Some(client) = db.as_ref() {
                    self.apply_recounts(client, &mut core, &mut work, limit)
                        .await?;
                }
            }
            let recounts = !work.batch.recounts.is_empty();
            let Decision { full, due } =
                cut.decide(work.pending(), deadline, recounts, Instant::now());
            if due && inflight.is_none() {
                let Some(client) = db.take() else {
                    return Err(IngestError::CommitTask("database connection lost".into()));
                };
                // What the window could not settle, the raw table does: one query for the
                // batch, only when it holds such reports, after the previous commit landed.
                if !work.batch.pending.is_empty() {
                    self.settle(&mut core, &mut work, &client, limit).await?;
                }
                // Nothing more waiting: the batch ends a burst and writes the state with its
                // reports, so the tables are current whenever input is not sustained (unless a
                // pause is to be waited for: `state_quiet_ms`).
                if quiet.is_zero() && conn.events.is_empty() {
                    writer.checkpoint_next();
                }
                inflight =
                    Some(self.start_commit(&mut core, &mut work, &mut writer, client, limit));
                deadline = None;
                continue;
            }
            let flush_at = (writer.journaled() && inflight.is_none() && work.pending() == 0)
                .then(|| last_input + quiet);
            let step = tokio::select! {
                biased;
                r = wait_commit(&mut inflight, limit) => Step::Committed(r),
                ev = conn.events.recv(), if !full => Step::Event(ev),
                Some(p) = next_push(pushes), if !full => Step::Push(p),
                // After input: a checkpoint waits while there is any.
                _ = sleep_until_some(flush_at), if flush_at.is_some() => Step::Flush,
                _ = sleep_until_some(deadline), if !due => Step::Linger,
                _ = self.live.recount_requested() => Step::Recount,
                _ = recount_tick.tick() => Step::Recount,
            };
            match step {
                Step::Committed(r) => {
                    db = Some(r?);
                    if let Some(done) = inflight.take() {
                        self.finish_commit(done, &mut conn).await?;
                    }
                }
                Step::Event(ev) => {
                    last_input = Instant::now();
                    self.handle(ev, &mut core, &mut work)?;
                    deadline = cut.deadline(deadline, work.pending(), Instant::now());
                }
                Step::Push(p) => {
                    last_input = Instant::now();
                    self.push(p, &mut core, &mut work);
                    deadline = cut.deadline(deadline, work.pending(), Instant::now());
                }
                Step::Linger => {}
                Step::Flush => {
                    let Some(client) = db.take() else {
                        return Err(IngestError::CommitTask("database connection lost".into()));
                    };
                    writer.checkpoint_next();
                    inflight =
                        Some(self.start_commit(&mut core, &mut work, &mut writer, client, limit));
                }
                Step::Recount => recounts_due = true,
            }
        }
    }

    /// Settles the batch's pending reports against the raw table; those beyond raw retention
    /// (their copies may be gone) are refused instead.
    /// A session's start: the database connection (fenced, or holding the partition's lock), the
    /// committed state loaded into a new [`Core`], the prepared batch writer, and the loaded
    /// figures published. Each step is bounded by `limit`.
    async fn open(
        &self,
        limit: Duration,
    ) -> Result<(tokio_postgres::Client, Core, store::BatchWriter), IngestError> {
        // Bounded like a commit: tokio-postgres's connect_timeout covers only the TCP connect, so a
        // database that accepts but never answers (a black hole) would hang the start-up forever.
        let bounded = |_: tokio::time::error::Elapsed| IngestError::SetupTimeout(limit);
        let mut db = tokio::time::timeout(
            limit,
            store::connect_ingester(&self.cfg.database.url, &self.cfg.mqtt.client_id),
        )
        .await
        .map_err(bounded)??;
        match &self.scope {
            // Before any state is read: the partition's lock lives on this connection. Another
            // instance may hold it legitimately (this one then waits as a standby, unbounded), so
            // nothing of its is ended here.
            Some(scope) => scope.claim(&mut db).await?,
            None => {
                let fenced = tokio::time::timeout(limit, store::fence(&db))
                    .await
                    .map_err(bounded)??;
                if fenced > 0 {
                    tracing::warn!(
                        fenced,
                        "ended database connections an earlier session left open"
                    );
                }
            }
        }
        let mut core = Core::new(Arc::clone(&self.registry)).with_jump_bound(JumpBound {
            slack: self.cfg.ingest.seq_jump_slack,
            per_second: self.cfg.ingest.seq_jump_per_second.max(0.0),
        });
        let folded = tokio::time::timeout(limit, store::fold_journal(&mut db))
            .await
            .map_err(bounded)??;
        if folded > 0 {
            tracing::info!(
                rows = folded,
                "wrote the state journal an earlier session left into the state tables"
            );
        }
        tokio::time::timeout(limit, store::load_state(&db, &mut core))
            .await
            .map_err(bounded)??;
        self.marks.database_back();
        let lost = self.marks.compare(&mut core, Utc::now());
        if !lost.is_empty() {
            tokio::time::timeout(limit, failover::record(&db, &self.registry, &lost))
                .await
                .map_err(bounded)??;
        }
        // Other instances read partitioned state from the tables: it is written with every batch.
        let policy = CheckpointPolicy {
            every: Duration::from_millis(self.cfg.ingest.state_checkpoint_ms),
            direct_rows: self.cfg.ingest.state_direct_rows,
            journal: self.scope.is_none(),
            ..CheckpointPolicy::default()
        };
        let writer = tokio::time::timeout(limit, store::BatchWriter::prepare(&db))
            .await
            .map_err(bounded)??
            .with_policy(policy);
        match &self.scope {
            Some(scope) => scope.publish_loaded(&core),
            None => self.live.publish_all(&core),
        }
        Ok((db, core, writer))
    }

    /// Head counts asked for through the API (any instance's), applied to this batch.
    async fn apply_recounts(
        &self,
        client: &tokio_postgres::Client,
        core: &mut Core,
        work: &mut Work,
        limit: Duration,
    ) -> Result<(), IngestError> {
        let found = tokio::time::timeout(limit, store::pending_recounts(client, &self.registry))
            .await
            .map_err(|_| IngestError::CommitTimeout(limit))??;
        let at = Utc::now().trunc_subsecs(6);
        for r in found {
            let (before, delta) = core.recount(r.space, r.inside, at, &mut work.batch);
            tracing::info!(
                space = self.registry.space(r.space).id.as_str(),
                inside = r.inside,
                before,
                delta,
                "head count applied"
            );
            work.batch.recounts.push(Recounted {
                id: r.id,
                at,
                before,
                delta,
            });
        }
        Ok(())
    }

    async fn settle(
        &self,
        core: &mut Core,
        work: &mut Work,
        client: &tokio_postgres::Client,
        limit: Duration,
    ) -> Result<(), IngestError> {
        let retention = self.cfg.database.raw_retention_days;
        if retention > 0 {
            let horizon = Utc::now() - chrono::TimeDelta::days(i64::from(retention));
            let (keep, expired): (Vec<Pending>, Vec<Pending>) = work
                .batch
                .pending
                .drain(..)
                .partition(|p| p.report.ts >= horizon);
            work.batch.pending = keep;
            for p in expired {
                let device = self.registry.device(p.device).id.as_str();
                note(&mut work.rejects, &Reject::SeqTooOld, device, "-");
            }
        }
        let started = Instant::now();
        let found = tokio::time::timeout(
            limit,
            store::lookup(client, &self.registry, &work.batch.pending),
        )
        .await
        .map_err(|_| IngestError::CommitTimeout(limit))??;
        metrics::histogram!(t::LOOKUP_SECONDS).record(started.elapsed().as_secs_f64());
        core.settle(&mut work.batch, &found);
        Ok(())
    }

    /// Finishes the current batch, takes what its commit writes and publishes, and starts its
    /// commit; the batch is then empty for the next messages.
    fn start_commit(
        &self,
        core: &mut Core,
        work: &mut Work,
        writer: &mut store::BatchWriter,
        mut client: tokio_postgres::Client,
        limit: Duration,
    ) -> InFlight {
        let batch = &mut work.batch;
        core.finish_batch(batch);
        let mut encoded = writer.encode(core, batch);
        encoded.tickets = std::mem::take(&mut work.tickets);
        let captured = Captured::take(core, &batch.spaces, &batch.devices);
        let states = batch
            .devices
            .iter()
            .map(|&d| (d, Mark::of(&core.seq.get(d))))
            .collect();
        let stats = std::mem::take(&mut batch.stats);
        batch.clear();
        work.rejects.flush();
        let statements = writer.statements().clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let r = statements
                .write(&mut client, &encoded)
                .await
                .map(|tickets| {
                    for t in &tickets {
                        t.applied.event(&t.space, &t.topic, &[]).emit();
                    }
                });
            (client, r)
        });
        InFlight {
            task: AbortOnDrop(task),
            deadline: started + limit,
            started,
            acks: std::mem::take(&mut work.acks),
            pushes: std::mem::take(&mut work.pushes),
            captured,
            stats,
            states,
        }
    }

    /// After a batch's commit: publish its figures, wake the capacity rules, acknowledge.
    async fn finish_commit(
        &self,
        mut done: InFlight,
        conn: &mut source::Connection,
    ) -> Result<(), IngestError> {
        metrics::histogram!(t::BATCH_WRITE).record(done.started.elapsed().as_secs_f64());
        metrics::histogram!(t::BATCH_MESSAGES).record(done.acks.len() as f64);
        self.live.publish_captured(&self.registry, &done.captured);
        self.committed.wake();
        record_stats(&done.stats);
        // Acknowledge in arrival order, and only now that the batch is durable.
        for (reply, pushed) in done.pushes.drain(..) {
            // A client that gave up gets nothing; its retry is a duplicate.
            let _ = reply.send(Ok(pushed));
        }
        conn.ack(&mut done.acks)
            .await
            .map_err(IngestError::Broker)?;
        self.marks.acknowledged(std::mem::take(&mut done.states));
        Ok(())
    }

    fn handle(
        &self,
        ev: Option<SourceEvent>,
        core: &mut Core,
        work: &mut Work,
    ) -> Result<(), IngestError> {
        match ev {
            None => Err(IngestError::Broker("event loop stopped".into())),
            Some(SourceEvent::Down(e)) => Err(IngestError::Broker(e)),
            Some(SourceEvent::Connected { session_present }) => {
                tracing::info!(session_present, "broker session established");
                self.set_ready(true);
                Ok(())
            }
            Some(SourceEvent::Publish(publishes)) => {
                // One socket read: these arrived together.
                let received = Utc::now().trunc_subsecs(6);
                work.messages.increment(publishes.len() as u64);
                for p in &publishes {
                    self.process(p, received, core, work);
                    work.acks.push(p);
                }
                Ok(())
            }
        }
    }

    /// Decodes and applies one message. Nothing here can fail the session: bad input is
    /// rejected with a reason, logged with its topic and counted.
    /// One message: the router decides, this applies what it accepted and notes what it refused.
    fn process(&self, p: &Publish, received: DateTime<Utc>, core: &mut Core, work: &mut Work) {
        let router = Router {
            registry: &self.registry,
            prefix: &self.cfg.mqtt.topic_prefix,
            limits: &self.limits,
        };
        let batch = &mut work.batch;
        match router.route(&p.topic, &p.payload, received, &mut work.scratch) {
            Routed::Rejected(r) => note(
                &mut work.rejects,
                &r.reason,
                r.device.unwrap_or("-"),
                r.topic,
            ),
            Routed::Hazard { space, signal } => batch.hazards.push((space, signal, received)),
            Routed::Tickets { space } => self.tickets(space, p, received, work),
            Routed::Status { device, online } => core.set_online(device, online, batch),
            Routed::Counts { device } => {
                self.apply_decoded(device, &p.topic, received, core, work, None);
            }
        }
    }

    /// Applies the reports decoded into `work.scratch`; refusals are logged and counted with
    /// `topic`, and listed in `refused` for a caller that answers with them (an HTTP push; the
    /// MQTT path has nobody to tell and skips the listing).
    fn apply_decoded(
        &self,
        device: DeviceIdx,
        topic: &str,
        received: DateTime<Utc>,
        core: &mut Core,
        work: &mut Work,
        mut refused: Option<&mut Vec<PushRefusal>>,
    ) {
        let name = self.registry.device(device).id.as_str();
        let Work {
            scratch,
            batch,
            rejects,
            lag,
            ..
        } = work;
        for (index, item) in scratch.drain(..).enumerate() {
            match item {
                Ok(report) => {
                    let late = (received - report.ts).as_seconds_f64().max(0.0);
                    if core.apply(device, &report, received, batch).counts() {
                        lag.record(late);
                    }
                }
                Err(r) => {
                    note(rejects, &r, name, topic);
                    if let Some(list) = refused.as_deref_mut() {
                        list.push(PushRefusal {
                            index,
                            reason: r.as_str(),
                            message: r.to_string(),
                        });
                    }
                }
            }
        }
    }
}

enum Step {
    Committed(Result<tokio_postgres::Client, IngestError>),
    Event(Option<SourceEvent>),
    Push(Push),
    Linger,
    /// Input paused with state still only journaled: commit an empty checkpoint batch.
    Flush,
    Recount,
}

/// How often an ingester looks for head counts asked for through another instance's API.
const RECOUNT_POLL: Duration = Duration::from_secs(2);

/// The next push, or never without a receiver.
async fn next_push(pushes: &mut Option<tokio::sync::mpsc::Receiver<Push>>) -> Option<Push> {
    match pushes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Work {
    batch: Batch,
    /// Ticketing messages of the batch, written in its transaction.
    tickets: Vec<TicketWrite>,
    /// HTTP pushes applied to the batch, answered once it is committed.
    pushes: Vec<(PushReply, Pushed)>,
    acks: Acks,
    scratch: Vec<Result<CountReport, Reject>>,
    messages: metrics::Counter,
    lag: metrics::Histogram,
    rejects: Rejections,
}

type PushReply = tokio::sync::oneshot::Sender<Result<Pushed, Reject>>;

impl Work {
    /// Messages and pushes the batch holds (what its size is measured in).
    fn pending(&self) -> usize {
        self.acks.len() + self.pushes.len()
    }
}

/// One refusal into the batch's [`Rejections`].
fn note(rejects: &mut Rejections, r: &Reject, device: &str, topic: &str) {
    rejects.note(r.as_str(), || r.to_string(), device, topic);
}

fn record_stats(s: &BatchStats) {
    for (name, v) in [
        (t::REPORTS_ACCEPTED, s.accepted),
        (t::REPORTS_DUPLICATE, s.duplicates),
        (t::REPORTS_LATE, s.late),
        (t::REPORTS_MISSING, s.gap_reports),
        (t::REPORTS_REPAIRED, s.repaired_reports),
        (t::REPORTS_EARLIER_DAY, s.earlier_day),
        (t::DEVICE_RESTARTS, s.restarts),
        (t::REPORTS_LOOKED_UP, s.looked_up),
        (t::DEVICE_SEQ_JUMPS, s.jumps),
        (t::RECOUNTS, s.recounts),
    ] {
        if v > 0 {
            metrics::counter!(name).increment(v);
        }
    }
}

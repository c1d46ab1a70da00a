//! Partitioned ingest: several instances share one county. This module owns
//!
//! - the **partition map**: which of the `count` fixed partitions counts each *unit* (a child of
//!   the county root — a scenic area with its zones and car parks, a hub — or the root itself);
//!   every space and device follows its unit. Rendezvous hashing of the unit id, overridden by
//!   `[partition] assign`: deterministic on every instance, and growing `count` moves only the
//!   units the new partition wins;
//! - the **claim** of a partition by one ingest session: a PostgreSQL advisory lock taken on the
//!   session's own connection before any state is read (a session that loses its connection loses
//!   the lock and cannot commit any more), then the fence against two partition maps at once;
//! - the instance's **view of what it does not count**: the figures of partitions held elsewhere,
//!   read from `space_state`/`device_state`, and the spaces nobody counts (an unmeasured county
//!   root: the sum of its areas), written into the same [`Live`] the API and the rules read;
//! - the **leader** lock under which exactly one instance runs the alerting loop.
//!
//! Without a `[partition]` section none of this runs. The decisions (placement, the fence, the
//! readiness flags, derived sums) are pure, in `plan.rs`; this file is the shell around them. Its
//! SQL is in `store::sql` with the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::source::MqttConfig;

mod config;
mod plan;

use crate::core::Core;
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::live::Live;
use crate::registry::Registry;
use crate::store::{self, StoreError};
use crate::telemetry;
pub use config::PartitionConfig;
use plan::{Held, Peak};
pub use plan::{PartitionMap, derived_figures, fence, moved_units, place};
use store::row::query_scalar;
use store::sql::{LOAD_UNITS, LOCK, LOCK_UNITS, OTHER_HOLDERS, SAVE_OWNER, SAVE_UNITS, TRY_LOCK};

/// Advisory-lock key spaces (the two-`int4` form, so they cannot collide with one-key locks).
const PARTITION_LOCKS: i32 = 0x5646_0001;
const SERVICE_LOCKS: i32 = 0x5646_0002;
const LEADER_KEY: i32 = 0;
const MIGRATE_KEY: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("[partition] {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "partition map differs from the one in force ({0}) while other instances hold partitions: \
         stop every ingester before changing [partition] count or assign"
    )]
    Fence(String),
}

impl From<tokio_postgres::Error> for PartitionError {
    fn from(e: tokio_postgres::Error) -> Self {
        PartitionError::Store(StoreError::from(e))
    }
}

/// What the partitions of one instance share: the live view, who holds what, and the lock that
/// keeps a partition's own figures and the database copy from overwriting each other.
pub struct Shared {
    registry: Arc<Registry>,
    live: Arc<Live>,
    pub map: PartitionMap,
    held: Vec<AtomicU8>,
    /// Partitions in `run`: the instance is ready when each is here or held elsewhere.
    runs: Vec<bool>,
    publish: Mutex<()>,
    /// Per derived space: the highest sum seen on its current day.
    peaks: Mutex<HashMap<SpaceIdx, Peak>>,
    holder: String,
}

impl Shared {
    pub fn new(
        registry: Arc<Registry>,
        live: Arc<Live>,
        map: PartitionMap,
        cfg: &PartitionConfig,
    ) -> Arc<Self> {
        let mut runs = vec![false; map.count as usize];
        for &n in &cfg.run {
            runs[n as usize] = true;
        }
        let holder = cfg.instance.clone().unwrap_or_else(|| {
            let host = gethostname::gethostname();
            format!("{}:{}", host.to_string_lossy(), std::process::id())
        });
        let shared = Arc::new(Self {
            held: (0..map.count)
                .map(|_| AtomicU8::new(Held::Down as u8))
                .collect(),
            registry,
            live,
            map,
            runs,
            publish: Mutex::new(()),
            peaks: Mutex::new(HashMap::new()),
            holder,
        });
        shared.update_flags();
        shared
    }

    /// One scope per partition this instance runs or stands by for, in that order.
    pub fn scopes(self: &Arc<Self>, cfg: &PartitionConfig, mqtt: &MqttConfig) -> Vec<Arc<Scope>> {
        let mut seen = vec![false; self.map.count as usize];
        let mut out = Vec::new();
        let wanted = cfg
            .run
            .iter()
            .map(|&n| (n, false))
            .chain(cfg.standby.iter().map(|&n| (n, true)));
        for (n, standby) in wanted {
            if std::mem::replace(&mut seen[n as usize], true) {
                continue;
            }
            let owned = self.map.owned(n);
            let registry = Arc::new(self.registry.restricted(&owned, &self.map.derived));
            let spaces = (0..owned.len() as u32)
                .map(SpaceIdx)
                .filter(|s| owned[s.get()] && !self.map.derived[s.get()])
                .collect();
            let devices = self
                .registry
                .devices
                .iter()
                .filter(|d| owned[d.space.get()])
                .map(|d| d.idx)
                .collect();
            let mut mqtt = mqtt.clone();
            // One persistent session per partition: whoever runs partition n resumes its queue.
            mqtt.client_id = format!("{}-p{n}", mqtt.client_id);
            out.push(Arc::new(Scope {
                partition: n,
                filters: self.map.filters(&self.registry, n, &mqtt.topic_prefix),
                mqtt,
                registry,
                spaces,
                devices,
                standby_delay: standby.then(|| Duration::from_millis(cfg.standby_delay_ms)),
                poll: Duration::from_millis(cfg.standby_poll_ms.max(50)),
                started: Instant::now(),
                shared: Arc::clone(self),
            }));
        }
        out
    }

    fn set(&self, n: u32, h: Held) {
        self.held[n as usize].store(h as u8, Ordering::Relaxed);
        self.update_flags();
    }

    fn get(&self, n: u32) -> Held {
        Held::of(self.held[n as usize].load(Ordering::Relaxed))
    }

    fn update_flags(&self) {
        let held: Vec<Held> = (0..self.map.count).map(|n| self.get(n)).collect();
        let (ready, broker) = plan::flags(&held, &self.runs);
        self.live.set_ingest_ready(ready);
        self.live.set_broker_connected(broker);
    }

    /// Publishes the database's figures for every space and device of partitions not held here.
    fn publish_remote(&self, core: &Core) {
        let _g = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        let here: Vec<bool> = (0..self.map.count).map(|n| self.get(n).here()).collect();
        let remote = |s: SpaceIdx| !here[self.map.partition[s.get()] as usize];
        let spaces: Vec<SpaceIdx> = self
            .registry
            .spaces
            .iter()
            .map(|s| s.idx)
            .filter(|&s| remote(s) && !self.map.derived[s.get()])
            .collect();
        let devices: Vec<DeviceIdx> = self
            .registry
            .devices
            .iter()
            .filter(|d| remote(d.space))
            .map(|d| d.idx)
            .collect();
        self.live.publish_only(core, &spaces, &devices);
    }

    /// Recomputes each derived space as the sum of its parts ([`derived_figures`]).
    pub fn publish_derived(&self, now: DateTime<Utc>) {
        let mut peaks = self.peaks.lock().unwrap_or_else(|e| e.into_inner());
        let sums = derived_figures(
            &self.registry,
            &self.map,
            &self.live.spaces(),
            &mut peaks,
            now,
        );
        for (d, sum) in sums {
            self.live.set_space(d, sum);
            let id = self.registry.space(d).id.as_str().to_owned();
            metrics::gauge!(telemetry::OCCUPANCY, "space" => id.clone()).set(sum.occupancy as f64);
            metrics::gauge!(telemetry::ENTRIES_TODAY, "space" => id.clone())
                .set(sum.entries_today as f64);
            metrics::gauge!(telemetry::DRIFT_TODAY, "space" => id).set(sum.drift_today as f64);
        }
    }
}

/// One partition as an ingest session runs it: its restricted registry, its MQTT session and
/// filters, and its claim.
pub struct Scope {
    pub partition: u32,
    /// The partition's view of the registry ([`Registry::restricted`]).
    pub registry: Arc<Registry>,
    /// The base MQTT settings with the partition's client id (`{client_id}-p{n}`).
    pub mqtt: MqttConfig,
    pub filters: Vec<String>,
    /// What the session publishes from its own core.
    spaces: Vec<SpaceIdx>,
    devices: Vec<DeviceIdx>,
    /// A standby waits this long after the instance started before its first try.
    standby_delay: Option<Duration>,
    poll: Duration,
    started: Instant,
    shared: Arc<Shared>,
}

impl Scope {
    /// Takes the partition for the session whose connection `db` is: waits while another
    /// instance holds it, then checks the fence and records the holder. The lock is never
    /// released explicitly: it ends with the connection, i.e. with the session.
    pub async fn claim(&self, db: &mut Client) -> Result<(), PartitionError> {
        if let Some(delay) = self.standby_delay {
            tokio::time::sleep_until(self.started + delay).await;
        }
        let n = self.partition as i32;
        let mut waiting = false;
        while !query_scalar::<bool>(&*db, TRY_LOCK, &[&PARTITION_LOCKS, &n]).await? {
            if !waiting {
                tracing::info!(
                    partition = n,
                    "partition held by another instance; standing by"
                );
                waiting = true;
            }
            self.shared.set(self.partition, Held::Elsewhere);
            tokio::time::sleep(self.poll).await;
        }
        // Held by this session now, not yet loaded: not "elsewhere" even if the fence fails.
        self.shared.set(self.partition, Held::Down);
        self.fence(db).await?;
        tracing::info!(
            partition = n,
            holder = %self.shared.holder,
            spaces = self.spaces.len(),
            devices = self.devices.len(),
            client_id = %self.mqtt.client_id,
            "partition claimed"
        );
        Ok(())
    }

    /// Refuses to run a map that moves units while sessions of another map may be running: the
    /// same area counted by two partitions would overwrite its own state. A map is adopted when
    /// it moves nothing, or when no other session holds any partition (everything was stopped).
    async fn fence(&self, db: &mut Client) -> Result<(), PartitionError> {
        let units = &self.shared.map.units;
        let tx = db.transaction().await?;
        tx.batch_execute(LOCK_UNITS).await?;
        let stored: HashMap<String, i32> = tx
            .query(LOAD_UNITS, &[])
            .await?
            .iter()
            .map(|r| Ok((r.try_get("unit")?, r.try_get("partition")?)))
            .collect::<Result<_, tokio_postgres::Error>>()?;
        let moved = moved_units(units, &stored);
        let others: i64 = if moved.is_empty() {
            0
        } else {
            query_scalar(&tx, OTHER_HOLDERS, &[&i64::from(PARTITION_LOCKS)]).await?
        };
        if let Some(summary) = fence(&moved, others)? {
            tracing::warn!(moves = %summary, "adopting a new partition map");
        }
        let ids: Vec<&str> = units.iter().map(|(u, _)| u.as_str()).collect();
        let parts: Vec<i32> = units.iter().map(|(_, p)| *p as i32).collect();
        tx.execute(SAVE_UNITS, &[&ids, &parts]).await?;
        tx.execute(
            SAVE_OWNER,
            &[
                &(self.partition as i32),
                &self.shared.holder,
                &(self.spaces.len() as i32),
                &(self.devices.len() as i32),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Publishes the partition's freshly loaded state and marks it held here, under the same
    /// lock as the database copy, so neither can overwrite the other's newer figures.
    pub fn publish_loaded(&self, core: &Core) {
        let _g = self
            .shared
            .publish
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.shared
            .live
            .publish_only(core, &self.spaces, &self.devices);
        self.shared.set(self.partition, Held::Claimed);
    }

    /// Whether this instance holds the partition now (claimed it, or connected its session).
    pub fn is_held(&self) -> bool {
        matches!(
            self.shared.get(self.partition),
            Held::Claimed | Held::Connected
        )
    }

    /// The session's broker state: up once subscribed, down when the session ends (the
    /// database copy then shows the partition again).
    pub fn set_ready(&self, up: bool) {
        let h = match (up, self.shared.get(self.partition)) {
            (true, _) => Held::Connected,
            (false, Held::Elsewhere) => Held::Elsewhere,
            (false, _) => Held::Down,
        };
        self.shared.set(self.partition, h);
    }
}

/// Keeps the live view of partitions held elsewhere (and of derived spaces) fresh: every
/// `every`, the committed state is read from the database, as the owner's restart would read it.
pub async fn refresh(shared: Arc<Shared>, url: String, every: Duration, mut stop: Shutdown) {
    let mut core = Core::new(Arc::clone(&shared.registry));
    let mut client: Option<Client> = None;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => return,
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            client = match store::connect(&url).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "partition refresh: database unavailable");
                    None
                }
            };
        }
        if let Some(c) = &client {
            match store::load_state(c, &mut core).await {
                Ok(()) => shared.publish_remote(&core),
                Err(e) => {
                    tracing::warn!(error = %e, "partition refresh failed");
                    client = None;
                }
            }
        }
        shared.publish_derived(Utc::now());
    }
}

/// Takes `key` in the service lock space on `client`, waiting as long as another session has it.
async fn lock(client: &Client, key: i32) -> Result<(), StoreError> {
    client.query_one(LOCK, &[&SERVICE_LOCKS, &key]).await?;
    Ok(())
}

/// Runs the migrations under a lock, so instances starting together do not race on the schema.
pub async fn migrate(
    url: &str,
    time_zone: &str,
    want_timescale: bool,
    max_age_days: i64,
) -> Result<store::Mode, StoreError> {
    let guard = store::connect(url).await?;
    lock(&guard, MIGRATE_KEY).await?;
    let mode = store::migrate(url, time_zone, want_timescale, max_age_days).await;
    drop(guard); // the lock ends with its connection
    mode
}

/// The alerting leader: of all instances, only the one whose alerting session holds this lock
/// evaluates rules and records alerts (two would send every alert twice). The others wait and
/// take over when the leader's connection goes.
#[derive(Debug, Clone)]
pub struct Leader {
    pub poll: Duration,
}

impl Leader {
    /// Returns once `client` (the alerting session's connection) holds the leadership.
    pub async fn acquire(&self, client: &Client) -> Result<(), StoreError> {
        let mut waiting = false;
        loop {
            let got: bool = query_scalar(client, TRY_LOCK, &[&SERVICE_LOCKS, &LEADER_KEY]).await?;
            if got {
                tracing::info!("alerting leader: this instance evaluates the rules");
                return Ok(());
            }
            if !waiting {
                tracing::info!("alerting runs on another instance; standing by");
                waiting = true;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

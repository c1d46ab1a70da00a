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
//! Without a `[partition]` section none of this runs. Its SQL lives here, not in `store::sql`, so
//! the single-instance path stays as it is; `tests/partition.rs` prepares every statement.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::shutdown::Shutdown;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::source::MqttConfig;

mod config;

use crate::core::{Core, business_day};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::live::{Live, SpaceNow};
use crate::registry::Registry;
use crate::store::{self, StoreError};
use crate::telemetry;
pub use config::PartitionConfig;

/// Advisory-lock key spaces (the two-`int4` form, so they cannot collide with one-key locks).
const PARTITION_LOCKS: i32 = 0x5646_0001;
const SERVICE_LOCKS: i32 = 0x5646_0002;
const LEADER_KEY: i32 = 0;
const MIGRATE_KEY: i32 = 1;

pub const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1::int4, $2::int4)";
pub const LOCK: &str = "SELECT pg_advisory_lock($1::int4, $2::int4)";
pub const LOCK_UNITS: &str = "LOCK TABLE partition_units IN SHARE ROW EXCLUSIVE MODE";
pub const LOAD_UNITS: &str = "SELECT unit, partition FROM partition_units";
/// Partitions held by sessions other than this one.
pub const OTHER_HOLDERS: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
     AND classid::int8 = $1::int8 AND objsubid = 2 AND granted AND pid <> pg_backend_pid()";
pub const SAVE_UNITS: &str = "INSERT INTO partition_units (unit, partition) \
     SELECT * FROM unnest($1::text[], $2::int4[]) \
     ON CONFLICT (unit) DO UPDATE SET partition = EXCLUDED.partition \
     WHERE partition_units.partition <> EXCLUDED.partition";
pub const SAVE_OWNER: &str = "INSERT INTO partition_owner (partition, holder, since, spaces, devices) \
     VALUES ($1, $2, now(), $3, $4) ON CONFLICT (partition) DO UPDATE SET holder = EXCLUDED.holder, \
     since = EXCLUDED.since, spaces = EXCLUDED.spaces, devices = EXCLUDED.devices";

/// Every statement above, for the prepare-everything test.
pub const ALL: &[&str] = &[
    TRY_LOCK,
    LOCK,
    LOCK_UNITS,
    LOAD_UNITS,
    OTHER_HOLDERS,
    SAVE_UNITS,
    SAVE_OWNER,
];

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

/// The partition a unit goes to: rendezvous (highest-random-weight) hashing. Every instance
/// computes the same answer from the id alone, and going from `count` to `count + 1` moves only
/// the units the new partition wins (about 1 in `count + 1`), never one between old partitions.
pub fn place(unit: &str, count: u32) -> u32 {
    let h = fnv1a(unit.as_bytes());
    (0..count.max(1))
        .max_by_key(|&p| (mix(h ^ mix(u64::from(p) + 1)), std::cmp::Reverse(p)))
        .unwrap_or(0)
}

/// FNV-1a: stable across Rust versions and machines (std's hasher is neither promised).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where every space of a registry goes.
#[derive(Debug, Clone)]
pub struct PartitionMap {
    pub count: u32,
    /// Each space's partition (its unit's).
    pub partition: Vec<u32>,
    /// Spaces that no partition counts: their figures are the sum of [`PartitionMap::parts`].
    pub derived: Vec<bool>,
    /// For each derived space, the spaces that add up to it (those whose devices' roll-up would
    /// have reached it: the county's scenic areas).
    pub parts: Vec<(SpaceIdx, Vec<SpaceIdx>)>,
    /// Each unit's id and partition: what the fence compares.
    pub units: Vec<(String, u32)>,
}

impl PartitionMap {
    pub fn build(reg: &Registry, cfg: &PartitionConfig) -> Result<Self, PartitionError> {
        let count = cfg.count;
        if count == 0 || count > 4096 {
            return Err(PartitionError::Config(format!(
                "count = {count}: between 1 and 4096"
            )));
        }
        for n in cfg.run.iter().chain(&cfg.standby) {
            if *n >= count {
                return Err(PartitionError::Config(format!(
                    "partition {n} does not exist (count = {count}: 0 … {})",
                    count - 1
                )));
            }
        }
        // A unit is a space directly below a root, or a root itself.
        let unit_of = |s: SpaceIdx| -> SpaceIdx {
            let mut cur = s;
            while let Some(p) = reg.space(cur).parent {
                if reg.space(p).parent.is_none() {
                    return cur;
                }
                cur = p;
            }
            cur
        };
        for (id, n) in &cfg.assign {
            let Some(s) = reg.space_idx(id) else {
                return Err(PartitionError::Config(format!("assign: no space {id:?}")));
            };
            if unit_of(s) != s {
                return Err(PartitionError::Config(format!(
                    "assign: {id:?} is inside {:?}; only an area (a child of the root) or the root is placed",
                    reg.space(unit_of(s)).id.as_str()
                )));
            }
            if *n >= count {
                return Err(PartitionError::Config(format!(
                    "assign: {id:?} = {n}, but count = {count}"
                )));
            }
        }
        let mut unit_partition: BTreeMap<SpaceIdx, u32> = BTreeMap::new();
        let partition: Vec<u32> = reg
            .spaces
            .iter()
            .map(|s| {
                let u = unit_of(s.idx);
                *unit_partition.entry(u).or_insert_with(|| {
                    let id = reg.space(u).id.as_str();
                    cfg.assign
                        .get(id)
                        .copied()
                        .unwrap_or_else(|| place(id, count))
                })
            })
            .collect();
        // A root that devices of its units roll up into is shared by every partition: no one
        // counts it, readers add up its parts.
        let mut derived = vec![false; reg.spaces.len()];
        let mut parts: BTreeMap<SpaceIdx, Vec<SpaceIdx>> = BTreeMap::new();
        for d in &reg.devices {
            for w in d.targets.windows(2) {
                let (part, up) = (w[0], w[1]);
                if reg.space(up).parent.is_none() {
                    derived[up.get()] = true;
                    let v = parts.entry(up).or_default();
                    if !v.contains(&part) {
                        v.push(part);
                    }
                }
            }
        }
        let units = unit_partition
            .iter()
            .map(|(u, p)| (reg.space(*u).id.as_str().to_owned(), *p))
            .collect();
        Ok(Self {
            count,
            partition,
            derived,
            parts: parts.into_iter().collect(),
            units,
        })
    }

    /// Which spaces partition `n` owns (topics, state rows, hazards), derived ones included.
    pub fn owned(&self, n: u32) -> Vec<bool> {
        self.partition.iter().map(|&p| p == n).collect()
    }

    /// The topic filters of partition `n`: its spaces' counts, statuses and hazards. Topics name
    /// the device's own space, so there is one filter per space, not per area.
    pub fn filters(&self, reg: &Registry, n: u32, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for s in reg
            .spaces
            .iter()
            .filter(|s| self.partition[s.idx.get()] == n)
        {
            let id = s.id.as_str();
            out.push(format!("{prefix}/{id}/+/counts"));
            out.push(format!("{prefix}/{id}/+/status"));
            out.push(format!("{prefix}/{id}/hazard"));
        }
        out
    }
}

/// Where a partition stands on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Held {
    /// No session, or between sessions.
    Down = 0,
    /// Another instance holds it; this one waits to take over.
    Elsewhere = 1,
    /// Claimed and loaded here; the broker session is not up yet.
    Claimed = 2,
    /// Claimed, loaded and subscribed.
    Connected = 3,
}

impl Held {
    fn of(v: u8) -> Held {
        match v {
            1 => Held::Elsewhere,
            2 => Held::Claimed,
            3 => Held::Connected,
            _ => Held::Down,
        }
    }

    fn here(self) -> bool {
        matches!(self, Held::Claimed | Held::Connected)
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
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "host".into());
            format!("{host}:{}", std::process::id())
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

    /// Ready: every partition in `run` is here and subscribed, or held by another instance.
    /// Broker: every partition held here is subscribed (vacuously true on a pure standby).
    fn update_flags(&self) {
        let held: Vec<Held> = (0..self.map.count).map(|n| self.get(n)).collect();
        let ready = held
            .iter()
            .zip(&self.runs)
            .all(|(h, run)| !run || matches!(h, Held::Connected | Held::Elsewhere));
        let broker = held.iter().all(|h| *h != Held::Claimed);
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

    /// Recomputes each derived space as the sum of its parts' figures for their current day.
    /// Entries, exits, occupancy and drift add up exactly (so `occupancy = entries − exits +
    /// drift` still holds); the peak is the highest sum this instance has seen today.
    pub fn publish_derived(&self, now: DateTime<Utc>) {
        let reg = &self.registry;
        let spaces = self.live.spaces();
        let mut peaks = self.peaks.lock().unwrap_or_else(|e| e.into_inner());
        for (d, parts) in &self.map.parts {
            let day = business_day(reg.tz, reg.space(*d).opens_at, now);
            let mut sum = SpaceNow::default();
            let mut any = false;
            for &p in parts {
                let part = &spaces[p.get()];
                if part.day != Some(business_day(reg.tz, reg.space(p).opens_at, now)) {
                    continue; // yesterday's figures of a quiet area are not today's
                }
                any = true;
                sum.occupancy += part.occupancy;
                sum.entries_today += part.entries_today;
                sum.exits_today += part.exits_today;
                sum.drift_today += part.drift_today;
                sum.last_report = sum.last_report.max(part.last_report);
            }
            if any {
                sum.day = Some(day);
                let peak = peaks.entry(*d).or_insert((day, 0, now));
                if peak.0 != day {
                    *peak = (day, 0, now);
                }
                if sum.occupancy > peak.1 || peak.1 == 0 {
                    *peak = (day, sum.occupancy, now);
                }
                sum.peak_today = peak.1;
                sum.peak_at = Some(peak.2);
            }
            self.live.set_space(*d, sum);
            let id = reg.space(*d).id.as_str().to_owned();
            metrics::gauge!(telemetry::OCCUPANCY, "space" => id.clone()).set(sum.occupancy as f64);
            metrics::gauge!(telemetry::ENTRIES_TODAY, "space" => id.clone())
                .set(sum.entries_today as f64);
            metrics::gauge!(telemetry::DRIFT_TODAY, "space" => id).set(sum.drift_today as f64);
        }
    }
}

/// A derived space's day, highest sum that day, and when it was seen.
type Peak = (NaiveDate, u64, DateTime<Utc>);

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
        while !db
            .query_one(TRY_LOCK, &[&PARTITION_LOCKS, &n])
            .await?
            .get::<_, bool>(0)
        {
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
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let moved: Vec<String> = units
            .iter()
            .filter_map(|(u, p)| {
                let was = *stored.get(u)?;
                (was != *p as i32).then(|| format!("{u}: p{was} → p{p}"))
            })
            .collect();
        if !moved.is_empty() {
            let others: i64 = tx
                .query_one(OTHER_HOLDERS, &[&i64::from(PARTITION_LOCKS)])
                .await?
                .get(0);
            let summary = format!(
                "{} unit(s) move, e.g. {}",
                moved.len(),
                moved[..moved.len().min(3)].join(", ")
            );
            if others > 0 {
                return Err(PartitionError::Fence(summary));
            }
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
            let got: bool = client
                .query_one(TRY_LOCK, &[&SERVICE_LOCKS, &LEADER_KEY])
                .await?
                .get(0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A county with `areas` scenic areas, each with a zone, a car park and devices in each.
    fn county(areas: usize, assign: &str) -> (Registry, PartitionConfig) {
        let mut t = String::from(
            "[[spaces]]\nid = \"county\"\nkind = \"county\"\nname_zh = \"县\"\nname_en = \"C\"\n\
             [[spaces]]\nid = \"hub\"\nkind = \"hub\"\nparent = \"county\"\nname_zh = \"集散\"\nname_en = \"H\"\n\
             [[devices]]\nid = \"hub-gate\"\nspace = \"hub\"\nkind = \"gate\"\n",
        );
        for a in 0..areas {
            t.push_str(&format!(
                "[[spaces]]\nid = \"a{a}\"\nkind = \"scenic_area\"\nparent = \"county\"\nname_zh = \"景\"\nname_en = \"A\"\n\
                 [[spaces]]\nid = \"a{a}-z\"\nkind = \"zone\"\nparent = \"a{a}\"\nname_zh = \"区\"\nname_en = \"Z\"\n\
                 [[spaces]]\nid = \"a{a}-p\"\nkind = \"car_park\"\nparent = \"a{a}\"\nname_zh = \"停\"\nname_en = \"P\"\n\
                 [[devices]]\nid = \"a{a}-cam\"\nspace = \"a{a}-z\"\nkind = \"camera\"\n\
                 [[devices]]\nid = \"a{a}-bar\"\nspace = \"a{a}-p\"\nkind = \"vehicle_counter\"\n"
            ));
        }
        t.push_str(&format!("[partition]\ncount = 3\n{assign}\n"));
        let cfg = Config::from_toml(&t).unwrap();
        (cfg.registry().unwrap(), cfg.partition.clone().unwrap())
    }

    #[test]
    fn placement_is_deterministic_and_spread() {
        let ids: Vec<String> = (0..3000).map(|i| format!("area-{i}")).collect();
        let mut per = [0u32; 3];
        for id in &ids {
            let p = place(id, 3);
            assert_eq!(p, place(id, 3));
            per[p as usize] += 1;
        }
        // Pinned values: a change of hash would silently move every area of a running county.
        assert_eq!(
            [place("canyon", 3), place("village", 3), place("lake", 3)],
            PINNED
        );
        for n in per {
            assert!((900..=1100).contains(&n), "uneven spread {per:?}");
        }
    }

    const PINNED: [u32; 3] = [2, 2, 0];

    #[test]
    fn adding_a_partition_moves_only_units_it_wins() {
        let ids: Vec<String> = (0..3000).map(|i| format!("area-{i}")).collect();
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (place(id, 4), place(id, 5));
            if before != after {
                assert_eq!(after, 4, "{id} moved between old partitions");
                moved += 1;
            }
        }
        // About a fifth of the units go to the new partition, no more.
        assert!((450..=750).contains(&moved), "{moved} moved");
    }

    #[test]
    fn every_space_and_device_follows_its_area() {
        let (reg, cfg) = county(20, "");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        for s in &reg.spaces {
            let mut unit = s.idx;
            while let Some(p) = reg.space(unit).parent {
                if reg.space(p).parent.is_none() {
                    break;
                }
                unit = p;
            }
            assert_eq!(map.partition[s.idx.get()], map.partition[unit.get()]);
        }
        // Each space is owned by exactly one partition.
        let owned: Vec<Vec<bool>> = (0..3).map(|n| map.owned(n)).collect();
        for s in 0..reg.spaces.len() {
            assert_eq!(owned.iter().filter(|o| o[s]).count(), 1);
        }
        // Every partition gets some of the 20 areas.
        for o in &owned {
            assert!(o.iter().filter(|x| **x).count() >= 3);
        }
    }

    #[test]
    fn county_is_derived_from_its_areas_and_nobody_counts_it() {
        let (reg, cfg) = county(6, "");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        let county = reg.space_idx("county").unwrap();
        assert!(map.derived[county.get()]);
        assert_eq!(map.derived.iter().filter(|d| **d).count(), 1);
        let (d, parts) = &map.parts[0];
        assert_eq!(*d, county);
        let mut ids: Vec<&str> = parts.iter().map(|p| reg.space(*p).id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["a0", "a1", "a2", "a3", "a4", "a5"]);
        for n in 0..3 {
            let r = reg.restricted(&map.owned(n), &map.derived);
            for d in &r.devices {
                assert!(
                    !d.targets.contains(&county),
                    "{} still counts the county",
                    d.id
                );
                if r.device_idx(d.id.as_str()).is_some() {
                    assert!(!d.targets.is_empty());
                    assert!(d.targets.iter().all(|t| map.partition[t.get()] == n));
                }
            }
        }
        // The camera of a zone still counts in its zone and area, in its own partition.
        let cam = reg.device_idx("a0-cam").unwrap();
        let n = map.partition[cam.get()];
        let r = reg.restricted(&map.owned(n), &map.derived);
        let t: Vec<&str> = r
            .device(cam)
            .targets
            .iter()
            .map(|s| r.space(*s).id.as_str())
            .collect();
        assert_eq!(t, ["a0-z", "a0"]);
    }

    #[test]
    fn a_partition_answers_only_for_its_own_ids_and_topics() {
        let (reg, cfg) = county(6, "assign = { a0 = 1, hub = 2 }");
        let map = PartitionMap::build(&reg, &cfg).unwrap();
        let r1 = reg.restricted(&map.owned(1), &map.derived);
        assert!(r1.device_idx("a0-cam").is_some());
        assert!(r1.space_idx("a0-p").is_some());
        assert!(r1.device_idx("hub-gate").is_none());
        let f = map.filters(&reg, 1, "vf");
        assert!(f.contains(&"vf/a0-z/+/counts".to_string()));
        assert!(f.contains(&"vf/a0/hazard".to_string()));
        assert!(!f.iter().any(|t| t.starts_with("vf/hub/")));
        let f2 = map.filters(&reg, 2, "vf");
        assert!(f2.contains(&"vf/hub/+/counts".to_string()));
        // Indices are the global ones, so a partition's core writes into the shared live view.
        assert_eq!(r1.spaces.len(), reg.spaces.len());
        assert_eq!(r1.device_idx("a0-cam"), reg.device_idx("a0-cam"));
    }

    #[test]
    fn bad_partition_sections_are_refused() {
        for (assign, want) in [
            ("assign = { a0-z = 1 }", "inside"),
            ("assign = { nowhere = 1 }", "no space"),
            ("assign = { a0 = 3 }", "count = 3"),
            ("run = [0, 5]", "does not exist"),
        ] {
            let (reg, cfg) = county(2, assign);
            let e = PartitionMap::build(&reg, &cfg).unwrap_err().to_string();
            assert!(e.contains(want), "{assign}: {e}");
        }
    }

    #[test]
    fn partition_lists_come_from_toml_or_the_environment() {
        let p = |s: &str| {
            Config::from_toml(&format!("[partition]\ncount = 4\n{s}"))
                .unwrap()
                .partition
                .unwrap()
        };
        assert_eq!(p("run = [0, 2]").run, [0, 2]);
        assert_eq!(p("run = 3").run, [3]);
        assert_eq!(p("run = \"1, 2\"\nstandby = \"0\"").run, [1, 2]);
        assert_eq!(p("standby = \"0,3\"").standby, [0, 3]);
        let mut vars = std::collections::HashMap::new();
        vars.insert("VISITORFLOW__PARTITION__RUN".to_string(), "1,3".to_string());
        vars.insert(
            "VISITORFLOW__PARTITION__STANDBY".to_string(),
            "2".to_string(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[partition]\ncount = 4\n").unwrap();
        let c = Config::load_with_vars(&path, vars)
            .unwrap()
            .partition
            .unwrap();
        assert_eq!((c.run, c.standby), (vec![1, 3], vec![2]));
    }
}

//! Jepsen-style checking for the fault tests: a workload with duplicates and out-of-order arrivals,
//! the fault-free run of it (the pure decode + core, in publish order), and a verifier that
//! compares what the service committed with it:
//!
//! 1. stored `(device, seq)` set == published set (lost, unexpected, stored twice);
//! 2. every `space_series_1m` bucket == the recomputation from the raw rows through each device's
//!    target spaces;
//! 3. every `space_state` row's entries/exits == the raw rows of its business day;
//! 4. every space's live figures (API) and `space_state` == the fault-free run's.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use visitorflow::config::Config;
use visitorflow::core::occupancy::unix_minute;
use visitorflow::core::{Core, business_day, lookup_rows, move_repairs};
use visitorflow::decode::{self, Limits};
use visitorflow::registry::Registry;

use super::{REGISTRY, counts_topic, get_json, publish_all};

pub type Key = (String, u64);
pub type Msg = (String, String);

pub fn registry() -> Arc<Registry> {
    Arc::new(Config::from_toml(REGISTRY).unwrap().registry().unwrap())
}

/// Devices of the test registry a workload publishes as: (space, device, mounted reversed).
pub const DEVICES: &[(&str, &str, bool)] = &[
    ("canyon", "gate-1", false),
    ("canyon", "gate-2", false),
    ("canyon-pines", "cam-pines", true),
    ("village", "door", false),
    ("park", "barrier", false),
];

/// Timestamps for a workload: a window in the past that stays inside today's local day (so the
/// day's figures can be compared), as wide as the time since local midnight allows.
pub fn ts_window() -> (DateTime<Utc>, Duration) {
    let tz = registry().tz;
    let now = Utc::now();
    let midnight = tz
        .from_local_datetime(&now.with_timezone(&tz).date_naive().and_time(NaiveTime::MIN))
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let start = (now - TimeDelta::seconds(180)).max(midnight + TimeDelta::seconds(1));
    let span = (now - start - TimeDelta::seconds(5)).max(TimeDelta::seconds(1));
    (start, span.to_std().unwrap())
}

fn stamp(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

/// One report in the space's frame; a reversed device sends in/out swapped.
fn report_json(seq: u64, ts: DateTime<Utc>, entries: u32, exits: u32, reversed: bool) -> String {
    let (i, o) = if reversed {
        (exits, entries)
    } else {
        (entries, exits)
    };
    format!(r#"{{"seq":{seq},"ts":"{}","in":{i},"out":{o}}}"#, stamp(ts))
}

/// The published messages, in chunks (one publisher connection each), and the keys of each chunk.
pub struct Workload {
    pub chunks: Vec<Vec<Msg>>,
    pub chunk_keys: Vec<HashSet<Key>>,
}

impl Workload {
    pub fn messages(&self) -> Vec<Msg> {
        self.chunks.iter().flatten().cloned().collect()
    }

    pub fn keys(&self) -> HashSet<Key> {
        self.chunk_keys.iter().flatten().cloned().collect()
    }
}

/// `per_device` reports for each of [`DEVICES`], interleaved, with what at-least-once delivery and
/// real devices produce mixed in:
/// - held-back runs of 3–6 reports flushed later as one JSON array (a device's backlog), so they
///   arrive after later seqs (out of order, within the de-duplication window);
/// - single reports sent again, an array overlapping reports already sent, and the tail of each
///   chunk repeated at the start of the next (a redelivered chunk).
///
/// Every report has entries ≥ exits in its space's frame, so no space ever clamps at zero and the
/// final figures do not depend on the arrival order (which faults change). Timestamps rise with
/// `seq`, so a late report is never mistaken for a device restart. No report carries cumulative
/// totals: a gap is then filled by the late original itself, which is what this checks.
pub fn workload(per_device: u64, chunk_len: usize, seed: u64) -> Workload {
    let (start, span) = ts_window();
    let step = span.as_secs_f64() / per_device as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    struct Dev {
        topic: String,
        reversed: bool,
        next: u64,
        held: Vec<u64>,
        hold_until: u64,
        sent: Vec<String>,
    }
    let mut devs: Vec<Dev> = DEVICES
        .iter()
        .map(|&(space, device, reversed)| Dev {
            topic: counts_topic(space, device),
            reversed,
            next: 1,
            held: Vec::new(),
            hold_until: 0,
            sent: Vec::new(),
        })
        .collect();
    let one = |seq: u64, reversed: bool| {
        let ts = start + TimeDelta::microseconds((seq as f64 * step * 1e6) as i64);
        let e = 1 + (seq % 3) as u32;
        report_json(seq, ts, e, (seq % 2) as u32 * e, reversed)
    };
    let mut msgs: Vec<(Msg, Vec<u64>, usize)> = Vec::new(); // message, its seqs, device
    while devs
        .iter()
        .any(|d| d.next <= per_device || !d.held.is_empty())
    {
        for (di, d) in devs.iter_mut().enumerate() {
            if d.next > per_device && d.held.is_empty() {
                continue;
            }
            // Flush a held-back run once a dozen later reports went ahead of it.
            if !d.held.is_empty() && (d.next >= d.hold_until || d.next > per_device) {
                let seqs = std::mem::take(&mut d.held);
                let body = seqs
                    .iter()
                    .map(|&s| one(s, d.reversed))
                    .collect::<Vec<_>>()
                    .join(",");
                msgs.push(((d.topic.clone(), format!("[{body}]")), seqs, di));
                continue;
            }
            if d.next > per_device {
                continue;
            }
            let seq = d.next;
            d.next += 1;
            if d.held.is_empty() && seq > 10 && rng.random_ratio(1, 40) {
                let run = rng.random_range(3..=6);
                d.held = (seq..(seq + run).min(per_device + 1)).collect();
                d.next = seq + d.held.len() as u64;
                d.hold_until = d.next + 12;
                continue;
            }
            let body = one(seq, d.reversed);
            d.sent.push(body.clone());
            msgs.push(((d.topic.clone(), body), vec![seq], di));
            if rng.random_ratio(1, 20) {
                // The same report again, a little later.
                let back = rng.random_range(1..=d.sent.len().min(30));
                let again = d.sent[d.sent.len() - back].clone();
                msgs.push(((d.topic.clone(), again), vec![], di));
            }
            if seq > 3 && rng.random_ratio(1, 60) {
                // A backlog flush overlapping what was already sent.
                let body = (seq - 2..=seq)
                    .map(|s| one(s, d.reversed))
                    .collect::<Vec<_>>()
                    .join(",");
                msgs.push(((d.topic.clone(), format!("[{body}]")), vec![], di));
            }
        }
    }
    let mut chunks: Vec<Vec<Msg>> = Vec::new();
    let mut chunk_keys = Vec::new();
    for (i, part) in msgs.chunks(chunk_len).enumerate() {
        let mut chunk: Vec<Msg> = Vec::new();
        if i > 0 {
            // The previous chunk's tail once more: a redelivered chunk.
            let prev = &chunks[i - 1];
            chunk.extend(prev[prev.len().saturating_sub(15)..].iter().cloned());
        }
        let mut keys = HashSet::new();
        for (m, seqs, di) in part {
            chunk.push(m.clone());
            keys.extend(seqs.iter().map(|&s| (DEVICES[*di].1.to_string(), s)));
        }
        chunks.push(chunk);
        chunk_keys.push(keys);
    }
    Workload { chunks, chunk_keys }
}

/// The fault-free run: every message decoded and applied once, in publish order, by the same pure
/// code the service runs.
pub struct Model {
    pub core: Core,
    pub keys: HashSet<Key>,
    pub messages: usize,
    /// Reports that arrived after later ones, and reports sent more than once.
    pub late: u64,
    pub duplicates: u64,
}

impl Model {
    pub fn of(msgs: &[Msg]) -> Model {
        let registry = registry();
        let cfg = Config::from_toml(REGISTRY).unwrap();
        let limits = Limits::from(&cfg.ingest);
        let mut core = Core::new(Arc::clone(&registry));
        let mut batch = core.new_batch();
        let mut keys = HashSet::new();
        let mut rows = Vec::new();
        let mut out = Vec::new();
        let now = Utc::now();
        let (mut late, mut duplicates) = (0, 0);
        for (topic, payload) in msgs {
            let t = decode::parse_topic("vf", topic).expect("workload topic");
            let dev = registry.device_idx(t.device).expect("workload device");
            out.clear();
            decode::decode_counts(
                registry.device(dev),
                payload.as_bytes(),
                now,
                &limits,
                &mut out,
            )
            .expect("workload payload");
            for r in out.drain(..) {
                let r = r.expect("workload report");
                core.apply(dev, &r, now, &mut batch);
                keys.insert((t.device.to_string(), r.seq));
            }
            // What the window cannot settle, the stored rows do (as the raw table does).
            let found: Vec<_> = batch
                .pending
                .iter()
                .map(|p| lookup_rows(&rows, p))
                .collect();
            core.settle(&mut batch, &found);
            move_repairs(&mut rows, &batch.repair_moves);
            rows.extend(batch.rows.iter().copied());
            late += batch.stats.late;
            duplicates += batch.stats.duplicates;
            batch.clear();
        }
        Model {
            core,
            keys,
            messages: msgs.len(),
            late,
            duplicates,
        }
    }
}

/// What the verifier found; `ok()` when nothing is lost, doubled or inconsistent.
#[derive(Debug, Default)]
pub struct Findings {
    pub published: usize,
    pub messages: usize,
    pub late: u64,
    pub duplicates: u64,
    pub stored_rows: usize,
    pub lost: usize,
    pub double_counted: u64,
    pub buckets: usize,
    pub problems: Vec<String>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.double_counted == 0 && self.problems.is_empty()
    }

    /// The one-line report of a scenario.
    pub fn line(&self, scenario: &str, recovered: Option<Duration>) -> String {
        format!(
            "{scenario}: published {} reports in {} messages ({} late, {} duplicates), stored {}, \
             lost {}, double-counted {}, {} buckets and every space consistent: {}, recovered in {}",
            self.published,
            self.messages,
            self.late,
            self.duplicates,
            self.stored_rows,
            self.lost,
            self.double_counted,
            self.buckets,
            if self.problems.is_empty() {
                "yes"
            } else {
                "NO"
            },
            recovered.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        )
    }
}

/// Stored `(device, seq)` keys.
pub async fn stored_keys(db: &tokio_postgres::Client) -> HashSet<Key> {
    db.query("SELECT device_id, seq FROM reports", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

/// Waits until every key in `keys` is stored; returns how long that took.
pub async fn wait_stored(
    db: &tokio_postgres::Client,
    keys: &HashSet<Key>,
    limit: Duration,
) -> Duration {
    let t = Instant::now();
    loop {
        let stored = stored_keys(db).await;
        let missing = keys.difference(&stored).count();
        if missing == 0 {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{missing} of {} reports still not stored after {limit:?}",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the database (and the live API at `api`, if given) against the fault-free run, or, with
/// no model (a replay whose messages the test does not hold), for internal consistency: raw rows
/// vs buckets vs day state vs live figures.
pub async fn verify(
    db: &tokio_postgres::Client,
    api: Option<SocketAddr>,
    model: Option<&Model>,
) -> Findings {
    let reg = registry();
    let mut f = Findings::default();
    if let Some(m) = model {
        f.published = m.keys.len();
        f.messages = m.messages;
        f.late = m.late;
        f.duplicates = m.duplicates;
    }

    // 1. The raw set.
    let rows = db
        .query(
            "SELECT device_id, seq, ts, (entries + repaired_entries)::int8, \
             (exits + repaired_exits)::int8 FROM reports",
            &[],
        )
        .await
        .unwrap();
    f.stored_rows = rows.len();
    let stored: HashSet<Key> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    f.double_counted += (rows.len() - stored.len()) as u64;
    if let Some(m) = model {
        f.lost = m.keys.difference(&stored).count();
        let unexpected = stored.difference(&m.keys).count();
        f.double_counted += unexpected as u64;
        if unexpected > 0 {
            f.problems
                .push(format!("{unexpected} stored reports were never published"));
        }
    }

    // 2. Minute buckets recomputed from the raw rows through each device's target spaces.
    let mut raw_buckets: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    let mut raw_days: BTreeMap<(String, NaiveDate), (i64, i64)> = BTreeMap::new();
    for r in &rows {
        let dev = reg
            .device_idx(r.get::<_, &str>(0))
            .expect("stored device in registry");
        let ts: DateTime<Utc> = r.get(2);
        let (e, x): (i64, i64) = (r.get(3), r.get(4));
        let at = ts - TimeDelta::microseconds(1);
        for &s in reg.targets(dev) {
            let space = reg.space(s);
            let b = raw_buckets
                .entry((space.id.as_str().to_string(), unix_minute(at)))
                .or_default();
            b.0 += e;
            b.1 += x;
            let d = raw_days
                .entry((
                    space.id.as_str().to_string(),
                    business_day(reg.tz, space.opens_at, at),
                ))
                .or_default();
            d.0 += e;
            d.1 += x;
        }
    }
    let table: BTreeMap<(String, i64), (i64, i64)> = db
        .query(
            "SELECT space_id, bucket, entries, exits FROM space_series_1m \
             WHERE entries <> 0 OR exits <> 0",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let b: DateTime<Utc> = r.get(1);
            ((r.get(0), b.timestamp() / 60), (r.get(2), r.get(3)))
        })
        .collect();
    f.buckets = table.len();
    for key in raw_buckets.keys().chain(table.keys()) {
        let want = raw_buckets.get(key).copied().unwrap_or_default();
        let got = table.get(key).copied().unwrap_or_default();
        if want != got {
            f.double_counted += (got.0 - want.0).max(0) as u64 + (got.1 - want.1).max(0) as u64;
            f.problems.push(format!(
                "bucket {key:?}: table (in, out) = {got:?}, raw = {want:?}"
            ));
        }
    }

    // 3. The day's state: the raw sums of its day (and the fault-free run's figures).
    let state = db
        .query(
            "SELECT space_id, day, entries, exits, greatest(base + min_in - min_out, 0) \
             FROM space_state",
            &[],
        )
        .await
        .unwrap();
    let mut committed = BTreeMap::new();
    for r in &state {
        let (space, day): (String, NaiveDate) = (r.get(0), r.get(1));
        let got: (i64, i64) = (r.get(2), r.get(3));
        committed.insert(
            space.clone(),
            (r.get::<_, i64>(4) as u64, got.0 as u64, got.1 as u64),
        );
        let want = raw_days
            .get(&(space.clone(), day))
            .copied()
            .unwrap_or_default();
        if got != want {
            f.double_counted += (got.0 - want.0).max(0) as u64 + (got.1 - want.1).max(0) as u64;
            f.problems.push(format!(
                "space_state {space} {day}: (entries, exits) = {got:?}, raw rows of the day = {want:?}"
            ));
        }
        if let Some(model) = model {
            let m = &model.core.counts[reg.space_idx(&space).unwrap().get()];
            if (m.day, m.entries as i64, m.exits as i64) != (Some(day), got.0, got.1) {
                f.problems.push(format!(
                    "space_state {space}: {day} {got:?}, fault-free run: {:?} ({}, {})",
                    m.day, m.entries, m.exits
                ));
            }
        }
    }
    if let Some(m) = model {
        let touched = m.core.counts.iter().filter(|c| c.day.is_some()).count();
        if state.len() != touched {
            f.problems.push(format!(
                "space_state has {} rows, the fault-free run touched {touched} spaces",
                state.len()
            ));
        }
    }

    // 4. The live figures: the fault-free run's, or at least the committed state's.
    if let Some(addr) = api {
        let (_, spaces) = get_json(addr, "/api/v1/spaces").await;
        for v in spaces.as_array().expect("space list") {
            let id = v["id"].as_str().unwrap();
            let got = (
                v["occupancy"].as_u64(),
                v["entries_today"].as_u64(),
                v["exits_today"].as_u64(),
            );
            let (want, whose) = match model {
                Some(model) => {
                    let m = &model.core.counts[reg.space_idx(id).unwrap().get()];
                    ((m.occupancy(), m.entries, m.exits), "fault-free run")
                }
                None => (
                    committed.get(id).copied().unwrap_or_default(),
                    "committed state",
                ),
            };
            if got != (Some(want.0), Some(want.1), Some(want.2)) {
                f.problems.push(format!(
                    "live {id}: (occupancy, entries, exits) = {got:?}, {whose}: {want:?}"
                ));
            }
        }
    }
    f
}

/// Publishes a workload's chunks one after another in the background (each chunk on its own
/// publisher connection, straight to the broker), pausing between chunks, and remembers which
/// chunks the broker has fully acknowledged.
pub struct Feed {
    task: tokio::task::JoinHandle<()>,
    acked: Arc<Mutex<HashSet<Key>>>,
}

impl Feed {
    pub fn start(broker: u16, name: &str, w: &Workload, pause: Duration) -> Feed {
        let acked = Arc::new(Mutex::new(HashSet::new()));
        let chunks: Vec<_> = w.chunks.iter().cloned().zip(w.chunk_keys.clone()).collect();
        let (name, done) = (name.to_string(), Arc::clone(&acked));
        let task = tokio::spawn(async move {
            for (i, (chunk, keys)) in chunks.into_iter().enumerate() {
                publish_all(broker, &format!("{name}-{i}"), chunk).await;
                done.lock().unwrap().extend(keys);
                tokio::time::sleep(pause).await;
            }
        });
        Feed { task, acked }
    }

    /// Keys of every chunk the broker has acknowledged so far.
    pub fn acked(&self) -> HashSet<Key> {
        self.acked.lock().unwrap().clone()
    }

    pub async fn finish(self) {
        self.task.await.expect("publisher");
    }
}

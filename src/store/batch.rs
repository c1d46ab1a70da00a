//! The ingester's batch commit, pipelined: binary COPY of the raw reports, the state it changed
//! (`unnest` upserts of buckets and state at a checkpoint, otherwise one journal row, as
//! `checkpoint.rs` decides), repair moves, revised days, applied head counts. What it loads on
//! start and looks up in the raw table is `state.rs`.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{SinkExt, pin_mut};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Statement};

use super::checkpoint::{CheckpointPolicy, Checkpoints, MergedBucket};
use super::{StoreError, bookings, controls, i64_of, journal, sql};
use crate::core::occupancy::SpaceCounts;
use crate::core::seq::SeqState;
use crate::core::{Batch, Core, DeviceSeen, RawRow, Recounted, RepairMove, Revision};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;

/// The ingester's batch commit. Its statements are prepared once per session (not parsed and
/// planned again for every batch), and the raw reports' binary COPY stream is encoded directly
/// into one reused buffer and sent as a single message.
///
/// Encoding and writing are separate steps so the ingester can pipeline: [`BatchWriter::encode`]
/// takes everything a batch's commit writes out of the core (an [`EncodedBatch`] owns it), after
/// which the core moves on to the next batch while [`BatchStatements::write`] commits this one.
pub struct BatchWriter {
    statements: BatchStatements,
    buf: BytesMut,
    policy: CheckpointPolicy,
    /// What changed since the last checkpoint, and a checkpoint in progress.
    checkpoints: Checkpoints,
}

/// The commit's prepared statements (cheap to clone: a statement is a handle).
#[derive(Clone)]
pub struct BatchStatements {
    copy: Statement,
    buckets: Statement,
    devices: Statement,
    spaces: Statement,
    journal: Statement,
    clear_journal: Statement,
    moves: Statement,
    revisions: Statement,
    recounts: Statement,
}

/// One batch as its commit writes it: raw reports already COPY-encoded, the minute buckets and the
/// device and space state *as they were when the batch was finished*, and its hazard signals.
pub struct EncodedBatch {
    registry: Arc<Registry>,
    copy: Option<Bytes>,
    state: EncodedState,
    hazards: Vec<(SpaceIdx, crate::decode::HazardSignal, DateTime<Utc>)>,
    moves: Vec<RepairMove>,
    revisions: Vec<Revision>,
    recounts: Vec<Recounted>,
    /// Ticketing messages received over MQTT, applied in the batch's transaction so they are
    /// acknowledged only once stored.
    pub tickets: Vec<TicketWrite>,
    /// When the batch was finished: a revised day says when.
    finished: DateTime<Utc>,
}

impl BatchWriter {
    pub async fn prepare(client: &Client) -> Result<Self, StoreError> {
        Ok(Self {
            statements: BatchStatements {
                copy: client.prepare(sql::COPY_REPORTS).await?,
                buckets: client.prepare(sql::UPSERT_BUCKETS).await?,
                devices: client.prepare(sql::UPSERT_DEVICE_STATE).await?,
                spaces: client.prepare(sql::UPSERT_SPACE_STATE).await?,
                journal: client.prepare(sql::JOURNAL_STATE).await?,
                clear_journal: client.prepare(sql::CLEAR_JOURNAL).await?,
                moves: client.prepare(sql::MOVE_REPAIRS).await?,
                revisions: client.prepare(sql::UPSERT_REVISIONS).await?,
                recounts: client.prepare(sql::COMPLETE_RECOUNTS).await?,
            },
            buf: BytesMut::new(),
            policy: CheckpointPolicy::default(),
            checkpoints: Checkpoints::new(Instant::now()),
        })
    }

    /// When state reaches its tables (the default journals under load and checkpoints every 5 s).
    pub fn with_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The next batch begins a checkpoint, whatever it holds.
    pub fn checkpoint_next(&mut self) {
        self.checkpoints.force();
    }

    /// Journal rows or a checkpoint wait to be finished (the ingester flushes when input pauses).
    pub fn journaled(&self) -> bool {
        self.checkpoints.pending()
    }

    pub fn statements(&self) -> &BatchStatements {
        &self.statements
    }

    /// Takes what `batch`'s commit writes out of `core` (call after [`Core::finish_batch`]).
    pub fn encode(&mut self, core: &Core, batch: &Batch) -> EncodedBatch {
        let reg = &core.registry;
        let copy = (!batch.rows.is_empty()).then(|| {
            encode_reports(&mut self.buf, reg, &batch.rows);
            self.buf.split().freeze()
        });
        let plan = self.checkpoints.plan(batch, &self.policy, Instant::now());
        let journal = plan.journal.and_then(|seq| {
            let changes = journal::Changes {
                devices: changed_devices(core, &batch.devices)
                    .map(|(id, st, seen)| (id, st, seen.last_received, seen.online))
                    .collect(),
                spaces: changed_spaces(core, &batch.spaces)
                    .map(|(id, _, c)| (id, c))
                    .collect(),
                buckets: batch
                    .buckets
                    .iter()
                    .map(|(s, m, d)| (reg.space(s).id.as_str(), m, MergedBucket::of(d)))
                    .collect(),
            };
            let empty = changes.devices.is_empty()
                && changes.spaces.is_empty()
                && changes.buckets.is_empty();
            (!empty).then(|| {
                journal::encode(&mut self.buf, &changes);
                (i64_of(seq), self.buf.split().freeze())
            })
        });
        let state = EncodedState {
            journal,
            rows: Box::new(StateRows::of(
                core,
                &plan.devices,
                &plan.spaces,
                &plan.buckets,
            )),
            clear_upto: plan.clear_upto.map(i64_of),
        };
        EncodedBatch {
            registry: Arc::clone(reg),
            copy,
            state,
            hazards: batch.hazards.clone(),
            moves: batch.repair_moves.clone(),
            revisions: batch.revisions.clone(),
            recounts: batch.recounts.clone(),
            tickets: Vec::new(),
            finished: Utc::now(),
        }
    }

    /// Writes one batch atomically: raw reports (binary COPY), minute buckets, and the device and
    /// space state they lead to. Acknowledging the batch's messages is only safe after this
    /// returns.
    pub async fn commit(
        &mut self,
        client: &mut Client,
        core: &Core,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let encoded = self.encode(core, batch);
        self.statements.write(client, &encoded).await.map(drop)
    }
}

impl BatchStatements {
    /// Commits an encoded batch in one transaction; returns what its ticketing messages did.
    pub async fn write(
        &self,
        client: &mut Client,
        b: &EncodedBatch,
    ) -> Result<Vec<TicketApplied>, StoreError> {
        let reg = &b.registry;
        let tx = client.transaction().await?;
        if let Some(copy) = &b.copy {
            let sink = tx.copy_in::<_, Bytes>(&self.copy).await?;
            pin_mut!(sink);
            sink.send(copy.clone()).await?;
            sink.finish().await?;
        }
        if let Some((seq, body)) = &b.state.journal {
            tx.execute(&self.journal, &[seq, &body.as_ref()]).await?;
        }
        b.state
            .rows
            .write(&tx, &self.buckets, &self.devices, &self.spaces)
            .await?;
        if let Some(upto) = &b.state.clear_upto {
            tx.execute(&self.clear_journal, &[upto]).await?;
        }
        if !b.moves.is_empty() {
            let m = &b.moves;
            let id: Vec<&str> = m.iter().map(|m| reg.device(m.device).id.as_str()).collect();
            let seq: Vec<i64> = m.iter().map(|m| i64_of(m.seq)).collect();
            let ts: Vec<DateTime<Utc>> = m.iter().map(|m| m.ts).collect();
            let e: Vec<i32> = m.iter().map(|m| count_i32(m.entries)).collect();
            let x: Vec<i32> = m.iter().map(|m| count_i32(m.exits)).collect();
            tx.execute(&self.moves, &[&id, &seq, &ts, &e, &x]).await?;
        }
        if !b.revisions.is_empty() {
            let r = &b.revisions;
            let space: Vec<&str> = r.iter().map(|r| reg.space(r.space).id.as_str()).collect();
            let day: Vec<NaiveDate> = r.iter().map(|r| r.day).collect();
            let n: Vec<i64> = r.iter().map(|r| i64_of(r.reports)).collect();
            let e: Vec<i64> = r.iter().map(|r| r.entries).collect();
            let x: Vec<i64> = r.iter().map(|r| r.exits).collect();
            tx.execute(&self.revisions, &[&space, &day, &n, &e, &x, &b.finished])
                .await?;
        }
        if !b.recounts.is_empty() {
            let r = &b.recounts;
            let id: Vec<i64> = r.iter().map(|r| r.id).collect();
            let at: Vec<DateTime<Utc>> = r.iter().map(|r| r.at).collect();
            let before: Vec<i64> = r.iter().map(|r| i64_of(r.before)).collect();
            let delta: Vec<i64> = r.iter().map(|r| r.delta).collect();
            tx.execute(&self.recounts, &[&id, &at, &before, &delta])
                .await?;
        }
        for (space, h, received) in &b.hazards {
            let w = controls::HazardWrite {
                space: reg.space(*space).id.as_str(),
                kind: &h.kind,
                severity: &h.severity,
                message: &h.message,
                since: *received,
                until: h.until.map(|u| u.with_timezone(&Utc)),
                source: "mqtt",
                active: h.active,
            };
            controls::write_hazard(&tx, &w).await?;
        }
        let mut applied = Vec::with_capacity(b.tickets.len());
        for t in &b.tickets {
            let a = bookings::apply_in(&tx, &t.space, "mqtt", &t.checked).await?;
            applied.push(TicketApplied {
                space: t.space.clone(),
                topic: t.topic.clone(),
                applied: a,
            });
        }
        tx.commit().await?;
        Ok(applied)
    }
}

/// One ticketing message of a batch, checked against its area's plan.
#[derive(Debug, Clone)]
pub struct TicketWrite {
    pub space: String,
    pub topic: String,
    pub checked: crate::admission::Checked,
}

/// What one ticketing message of a committed batch did.
#[derive(Debug, Clone)]
pub struct TicketApplied {
    pub space: String,
    pub topic: String,
    pub applied: bookings::Applied,
}

/// One batch with statements prepared for it alone; the ingester keeps a [`BatchWriter`].
pub async fn commit_batch(
    client: &mut Client,
    core: &Core,
    batch: &Batch,
) -> Result<(), StoreError> {
    // Nothing follows to checkpoint a journal row: the state is written with the batch.
    let direct = CheckpointPolicy {
        journal: false,
        ..CheckpointPolicy::default()
    };
    BatchWriter::prepare(client)
        .await?
        .with_policy(direct)
        .commit(client, core, batch)
        .await
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Appends `rows` as a complete PostgreSQL binary COPY stream (header, one tuple per row,
/// trailer) in the column order of [`sql::COPY_REPORTS`]: device_id text, seq int8, ts and
/// received_at timestamptz, space_id text, entries, exits, repaired_entries, repaired_exits int4,
/// total_in, total_out int8 (nullable), period_s int4 (nullable).
pub fn encode_reports(buf: &mut BytesMut, reg: &Registry, rows: &[RawRow]) {
    fn text(buf: &mut BytesMut, s: &str) {
        buf.put_i32(s.len() as i32);
        buf.put_slice(s.as_bytes());
    }
    fn int8(buf: &mut BytesMut, v: i64) {
        buf.put_i32(8);
        buf.put_i64(v);
    }
    fn int4(buf: &mut BytesMut, v: i32) {
        buf.put_i32(4);
        buf.put_i32(v);
    }
    fn time(buf: &mut BytesMut, t: DateTime<Utc>) {
        int8(buf, t.timestamp_micros() - PG_EPOCH_MICROS);
    }
    let count = count_i32;
    buf.reserve(19 + rows.len() * 136 + 2);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for r in rows {
        let dev = reg.device(r.device);
        buf.put_i16(14);
        text(buf, dev.id.as_str());
        int8(buf, i64_of(r.seq));
        time(buf, r.ts);
        time(buf, r.received);
        text(buf, reg.space(dev.space).id.as_str());
        int4(buf, count(r.entries));
        int4(buf, count(r.exits));
        int4(buf, count(r.repaired_entries));
        int4(buf, count(r.repaired_exits));
        for total in [r.total_entries, r.total_exits] {
            match total {
                Some(v) => int8(buf, i64_of(v)),
                None => buf.put_i32(-1),
            }
        }
        match r.period_s {
            Some(p) => int4(buf, i32::try_from(p).unwrap_or(i32::MAX)),
            None => buf.put_i32(-1),
        }
        match r.gap_from {
            Some(g) => int8(buf, i64_of(g)),
            None => buf.put_i32(-1),
        }
        match r.repair_from {
            Some(t) => time(buf, t),
            None => buf.put_i32(-1),
        }
    }
    buf.put_i16(-1);
}

fn count_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A batch's state writes: its own journal row (numbered), a checkpoint's slice, and the journal
/// rows that slice finished covering.
struct EncodedState {
    journal: Option<(i64, Bytes)>,
    rows: Box<StateRows>,
    clear_upto: Option<i64>,
}

/// The devices among `devices` with state worth keeping (heard from, or told online/offline).
fn changed_devices<'a>(
    core: &'a Core,
    devices: &'a [DeviceIdx],
) -> impl Iterator<Item = (&'a str, SeqState, &'a DeviceSeen)> {
    devices.iter().filter_map(|&d| {
        let (st, seen) = (core.seq.get(d), &core.seen[d.get()]);
        (st.started || seen.online.is_some())
            .then(|| (core.registry.device(d).id.as_str(), st, seen))
    })
}

/// The spaces among `spaces` that have a day's counts.
fn changed_spaces<'a>(
    core: &'a Core,
    spaces: &'a [SpaceIdx],
) -> impl Iterator<Item = (&'a str, NaiveDate, &'a SpaceCounts)> {
    spaces.iter().filter_map(|&s| {
        let c = &core.counts[s.get()];
        c.day
            .map(|day| (core.registry.space(s).id.as_str(), day, c))
    })
}

/// State rows as the upserts take them: minute buckets, device state, space state.
#[derive(Default)]
pub(super) struct StateRows {
    buckets: BucketCols,
    devices: DeviceCols,
    spaces: SpaceCols,
}

impl StateRows {
    /// The core's current state of `devices` and `spaces`, and `buckets`.
    fn of(
        core: &Core,
        devices: &[DeviceIdx],
        spaces: &[SpaceIdx],
        buckets: &[(SpaceIdx, i64, MergedBucket)],
    ) -> Self {
        let mut rows = Self::default();
        for &(s, minute, b) in buckets {
            rows.buckets
                .push(core.registry.space(s).id.as_str().to_owned(), minute, &b);
        }
        for (id, st, seen) in changed_devices(core, devices) {
            rows.devices
                .push(id.to_owned(), &st, seen.last_received, seen.online);
        }
        for (id, day, c) in changed_spaces(core, spaces) {
            rows.spaces.push(id.to_owned(), day, c);
        }
        rows
    }

    /// What journal rows folded together hold.
    pub(super) fn of_journal(e: journal::Entry) -> Self {
        let mut rows = Self::default();
        for (id, minute, b) in e.buckets {
            rows.buckets.push(id, minute, &b);
        }
        for (id, d) in e.devices {
            rows.devices.push(id, &d.seq, d.last_received, d.online);
        }
        for (id, c) in e.spaces {
            if let Some(day) = c.day {
                rows.spaces.push(id, day, &c);
            }
        }
        rows
    }

    /// Upserts the rows (each statement only when it has rows).
    pub(super) async fn write(
        &self,
        tx: &impl GenericClient,
        buckets: &Statement,
        devices: &Statement,
        spaces: &Statement,
    ) -> Result<(), StoreError> {
        if !self.buckets.space.is_empty() {
            tx.execute(buckets, &self.buckets.params()).await?;
        }
        if !self.devices.device.is_empty() {
            tx.execute(devices, &self.devices.params()).await?;
        }
        if !self.spaces.space.is_empty() {
            tx.execute(spaces, &self.spaces.params()).await?;
        }
        Ok(())
    }
}

/// Statement parameters, borrowed from column vectors.
type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

#[derive(Default)]
struct BucketCols {
    space: Vec<String>,
    start: Vec<DateTime<Utc>>,
    entries: Vec<i64>,
    exits: Vec<i64>,
    occupancy: Vec<Option<i64>>,
    correction: Vec<i64>,
    peak: Vec<Option<i64>>,
}

impl BucketCols {
    fn push(&mut self, space: String, minute: i64, b: &MergedBucket) {
        self.space.push(space);
        self.start
            .push(DateTime::<Utc>::from_timestamp(minute * 60, 0).unwrap_or_default());
        self.entries.push(b.entries);
        self.exits.push(b.exits);
        self.occupancy.push(b.occupancy.map(i64_of));
        self.correction.push(b.correction);
        self.peak.push(b.peak.map(i64_of));
    }

    /// `sql::UPSERT_BUCKETS`'s parameters.
    fn params(&self) -> Params<'_> {
        vec![
            &self.space,
            &self.start,
            &self.entries,
            &self.exits,
            &self.occupancy,
            &self.correction,
            &self.peak,
        ]
    }
}

#[derive(Default)]
struct DeviceCols {
    device: Vec<String>,
    high: Vec<i64>,
    hi: Vec<i64>,
    lo: Vec<i64>,
    last_ts: Vec<Option<DateTime<Utc>>>,
    run_start: Vec<Option<DateTime<Utc>>>,
    tin: Vec<Option<i64>>,
    tout: Vec<Option<i64>>,
    missing: Vec<i64>,
    gaps: Vec<i64>,
    repaired: Vec<i64>,
    resets: Vec<i64>,
    last_received: Vec<Option<DateTime<Utc>>>,
    online: Vec<Option<bool>>,
    rhi: Vec<i64>,
    rlo: Vec<i64>,
    prev_run_start: Vec<Option<DateTime<Utc>>>,
    jumps: Vec<i64>,
    jump_at: Vec<Option<DateTime<Utc>>>,
    jump_seq: Vec<Option<i64>>,
    jumped_in: Vec<i64>,
    jumped_out: Vec<i64>,
    high_ts: Vec<Option<DateTime<Utc>>>,
}

impl DeviceCols {
    /// `sql::UPSERT_DEVICE_STATE`'s parameters.
    fn params(&self) -> Params<'_> {
        vec![
            &self.device,
            &self.high,
            &self.hi,
            &self.lo,
            &self.last_ts,
            &self.run_start,
            &self.tin,
            &self.tout,
            &self.missing,
            &self.gaps,
            &self.repaired,
            &self.resets,
            &self.last_received,
            &self.online,
            &self.rhi,
            &self.rlo,
            &self.prev_run_start,
            &self.jumps,
            &self.jump_at,
            &self.jump_seq,
            &self.jumped_in,
            &self.jumped_out,
            &self.high_ts,
        ]
    }

    fn push(
        &mut self,
        id: String,
        st: &SeqState,
        last_received: Option<DateTime<Utc>>,
        online: Option<bool>,
    ) {
        self.device.push(id);
        self.high.push(i64_of(st.high));
        // The window's bits are stored as two bigints, bit patterns preserved.
        self.hi.push((st.window >> 64) as u64 as i64);
        self.lo.push(st.window as u64 as i64);
        self.last_ts.push(st.last_ts);
        self.run_start.push(st.run_start);
        self.tin.push(st.totals.map(|t| i64_of(t.0)));
        self.tout.push(st.totals.map(|t| i64_of(t.1)));
        self.missing.push(i64_of(st.missing));
        self.gaps.push(i64_of(st.gaps_total));
        self.repaired.push(i64_of(st.repaired_total));
        self.resets.push(i64_of(st.resets_total));
        self.last_received.push(last_received);
        self.online.push(online);
        self.rhi.push((st.repaired >> 64) as u64 as i64);
        self.rlo.push(st.repaired as u64 as i64);
        self.prev_run_start.push(st.prev_run_start);
        self.jumps.push(i64_of(st.jumps_total));
        self.jump_at.push(st.last_jump.map(|j| j.0));
        self.jump_seq.push(st.last_jump.map(|j| i64_of(j.1)));
        self.jumped_in.push(i64::from(st.jumped.0));
        self.jumped_out.push(i64::from(st.jumped.1));
        self.high_ts.push(st.high_ts);
    }
}

#[derive(Default)]
struct SpaceCols {
    space: Vec<String>,
    day: Vec<NaiveDate>,
    entries: Vec<i64>,
    exits: Vec<i64>,
    base: Vec<i64>,
    minute: Vec<i64>,
    min_in: Vec<i64>,
    min_out: Vec<i64>,
    drift: Vec<i64>,
    peak: Vec<i64>,
    peak_at: Vec<Option<DateTime<Utc>>>,
    last_report: Vec<Option<DateTime<Utc>>>,
    adjust: Vec<i64>,
    corrected: Vec<i64>,
}

impl SpaceCols {
    /// `sql::UPSERT_SPACE_STATE`'s parameters.
    fn params(&self) -> Params<'_> {
        vec![
            &self.space,
            &self.day,
            &self.entries,
            &self.exits,
            &self.base,
            &self.minute,
            &self.min_in,
            &self.min_out,
            &self.drift,
            &self.peak,
            &self.peak_at,
            &self.last_report,
            &self.adjust,
            &self.corrected,
        ]
    }

    fn push(&mut self, id: String, day: NaiveDate, c: &SpaceCounts) {
        self.space.push(id);
        self.day.push(day);
        self.entries.push(i64_of(c.entries));
        self.exits.push(i64_of(c.exits));
        self.base.push(i64_of(c.base));
        self.minute.push(c.minute);
        self.min_in.push(i64_of(c.min_in));
        self.min_out.push(i64_of(c.min_out));
        self.drift.push(i64_of(c.closed_drift));
        self.peak.push(i64_of(c.peak));
        self.peak_at.push(c.peak_at);
        self.last_report.push(c.last_report);
        self.adjust.push(c.adjust);
        self.corrected.push(c.corrected);
    }
}

//! The ingester's restart state and raw-table lookups: the `device_state` and `space_state` rows
//! it loads on start, what the raw table knows about reports the de-duplication window cannot
//! settle, and the head counts waiting for it. The batch commit that writes them is `batch.rs`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{Client, Row};

use super::batch::StateRows;
use super::checkpoint::CheckpointPolicy;
use super::row::{FromRow, query_as};
use super::{StoreError, i64_of, journal, sql, u64_of};
use crate::core::occupancy::SpaceCounts;
use crate::core::seq::{Found, RepairOwner, SeqState};
use crate::core::{Core, Pending};
use crate::ids::SpaceIdx;
use crate::registry::Registry;

/// A `device_state` row: the de-duplication state of one device.
struct DeviceStateRow {
    device_id: String,
    seq: SeqState,
    last_received: Option<DateTime<Utc>>,
    online: Option<bool>,
}

impl FromRow for DeviceStateRow {
    const COLUMNS: &'static [&'static str] = &[
        "device_id",
        "high_seq",
        "window_hi",
        "window_lo",
        "last_ts",
        "run_start",
        "totals_in",
        "totals_out",
        "missing",
        "gaps_total",
        "repaired_total",
        "resets_total",
        "last_received",
        "online",
        "repaired_hi",
        "repaired_lo",
        "prev_run_start",
        "jumps_total",
        "last_jump_at",
        "last_jump_seq",
        "jumped_in",
        "jumped_out",
        "high_ts",
    ];

    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let bits = |hi: &str, lo: &str| -> Result<u128, tokio_postgres::Error> {
            let (hi, lo) = (
                row.try_get::<_, i64>(hi)? as u64,
                row.try_get::<_, i64>(lo)? as u64,
            );
            Ok((u128::from(hi) << 64) | u128::from(lo))
        };
        let u = |c: &str| row.try_get::<_, i64>(c).map(u64_of);
        let totals = row
            .try_get::<_, Option<i64>>("totals_in")?
            .zip(row.try_get::<_, Option<i64>>("totals_out")?);
        let jump = row
            .try_get::<_, Option<DateTime<Utc>>>("last_jump_at")?
            .zip(row.try_get::<_, Option<i64>>("last_jump_seq")?);
        let jumped = |c: &str| {
            row.try_get::<_, i64>(c)
                .map(|v| u32::try_from(v).unwrap_or(0))
        };
        Ok(DeviceStateRow {
            device_id: row.try_get("device_id")?,
            seq: SeqState {
                high: u("high_seq")?,
                window: bits("window_hi", "window_lo")?,
                repaired: bits("repaired_hi", "repaired_lo")?,
                started: true,
                last_ts: row.try_get("last_ts")?,
                high_ts: row.try_get("high_ts")?,
                run_start: row.try_get("run_start")?,
                prev_run_start: row.try_get("prev_run_start")?,
                totals: totals.map(|(a, b)| (u64_of(a), u64_of(b))),
                missing: u("missing")?,
                gaps_total: u("gaps_total")?,
                repaired_total: u("repaired_total")?,
                resets_total: u("resets_total")?,
                jumps_total: u("jumps_total")?,
                last_jump: jump.map(|(t, s)| (t, u64_of(s))),
                jumped: (jumped("jumped_in")?, jumped("jumped_out")?),
            },
            last_received: row.try_get("last_received")?,
            online: row.try_get("online")?,
        })
    }
}

/// A `space_state` row: one space's counts of its current day.
struct SpaceStateRow {
    space_id: String,
    counts: SpaceCounts,
}

impl FromRow for SpaceStateRow {
    const COLUMNS: &'static [&'static str] = &[
        "space_id",
        "day",
        "entries",
        "exits",
        "base",
        "minute",
        "min_in",
        "min_out",
        "closed_drift",
        "peak",
        "peak_at",
        "last_report",
        "adjust",
        "corrected",
    ];

    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let u = |c: &str| row.try_get::<_, i64>(c).map(u64_of);
        Ok(SpaceStateRow {
            space_id: row.try_get("space_id")?,
            counts: SpaceCounts {
                day: Some(row.try_get::<_, NaiveDate>("day")?),
                entries: u("entries")?,
                exits: u("exits")?,
                base: u("base")?,
                minute: row.try_get("minute")?,
                min_in: u("min_in")?,
                min_out: u("min_out")?,
                closed_drift: u("closed_drift")?,
                peak: u("peak")?,
                peak_at: row.try_get("peak_at")?,
                last_report: row.try_get("last_report")?,
                adjust: row.try_get("adjust")?,
                corrected: row.try_get("corrected")?,
            },
        })
    }
}

/// What the restart state's statements return, for the mapping test.
pub(super) const STATE_MAPPINGS: &[(&str, &[&str])] = &[
    (sql::LOAD_DEVICE_STATE, DeviceStateRow::COLUMNS),
    (sql::LOAD_SPACE_STATE, SpaceStateRow::COLUMNS),
    (sql::LOOKUP_REPORTS, LookupRow::COLUMNS),
    (sql::PENDING_RECOUNTS, &["id", "space_id", "inside"]),
];

/// Writes what a session that ended between checkpoints left in `state_journal` into the state
/// tables and empties it, in one transaction; returns the journal rows folded. Runs before
/// [`load_state`], under a lock so two starting sessions never fold the same rows.
pub async fn fold_journal(client: &mut Client) -> Result<u64, StoreError> {
    let tx = client.transaction().await?;
    tx.execute(sql::FOLD_LOCK, &[]).await?;
    let rows = tx.query(sql::READ_JOURNAL, &[]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let body: &[u8] = row.try_get("body")?;
        entries.push(journal::decode(body)?);
    }
    let mut folded = journal::fold(entries);
    let (buckets, devices, spaces) = (
        tx.prepare(sql::UPSERT_BUCKETS).await?,
        tx.prepare(sql::UPSERT_DEVICE_STATE).await?,
        tx.prepare(sql::UPSERT_SPACE_STATE).await?,
    );
    // In slices, as a checkpoint writes, so a province's journal is never all in rows at once.
    let slice = CheckpointPolicy::default().slice_rows;
    loop {
        let part = journal::Entry {
            devices: take_front(&mut folded.devices, slice),
            spaces: take_front(&mut folded.spaces, slice),
            buckets: take_front(&mut folded.buckets, slice),
        };
        if part.devices.is_empty() && part.spaces.is_empty() && part.buckets.is_empty() {
            break;
        }
        StateRows::of_journal(part)
            .write(&tx, &buckets, &devices, &spaces)
            .await?;
    }
    tx.execute(sql::EMPTY_JOURNAL, &[]).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Up to `n` elements from the front of `v`.
fn take_front<T>(v: &mut Vec<T>, n: usize) -> Vec<T> {
    v.drain(..n.min(v.len())).collect()
}

/// Restores the ingest state written by earlier batches, so a restart neither resets occupancy
/// nor counts a redelivered report twice. Rows for ids no longer in the registry are skipped.
pub async fn load_state(client: &Client, core: &mut Core) -> Result<(), StoreError> {
    let registry = Arc::clone(&core.registry);
    for row in query_as::<DeviceStateRow, _>(client, sql::LOAD_DEVICE_STATE, &[]).await? {
        let Some(d) = registry.device_idx(&row.device_id) else {
            continue;
        };
        core.seq.set(d, &row.seq);
        core.seen[d.get()].last_received = row.last_received;
        core.seen[d.get()].online = row.online;
    }
    for row in query_as::<SpaceStateRow, _>(client, sql::LOAD_SPACE_STATE, &[]).await? {
        if let Some(s) = registry.space_idx(&row.space_id) {
            core.counts[s.get()] = row.counts;
        }
    }
    Ok(())
}

/// Asks the raw table about the reports the window could not settle (one round trip for the
/// batch); the answers line up with `pending`.
pub async fn lookup(
    client: &Client,
    registry: &Registry,
    pending: &[Pending],
) -> Result<Vec<Found>, StoreError> {
    let mut found = vec![Found::default(); pending.len()];
    if pending.is_empty() {
        return Ok(found);
    }
    let d: Vec<&str> = pending
        .iter()
        .map(|p| registry.device(p.device).id.as_str())
        .collect();
    let s: Vec<i64> = pending.iter().map(|p| i64_of(p.report.seq)).collect();
    let lo: Vec<Option<DateTime<Utc>>> = pending.iter().map(|p| p.lookup.run.from).collect();
    let hi: Vec<Option<DateTime<Utc>>> = pending.iter().map(|p| p.lookup.run.until).collect();
    let i: Vec<i32> = (0..pending.len() as i32).collect();
    let e: Vec<Option<DateTime<Utc>>> = pending.iter().map(|p| p.lookup.exact).collect();
    for row in
        query_as::<LookupRow, _>(client, sql::LOOKUP_REPORTS, &[&d, &s, &lo, &hi, &i, &e]).await?
    {
        if let Some(f) = usize::try_from(row.i).ok().and_then(|i| found.get_mut(i)) {
            *f = row.found;
        }
    }
    Ok(found)
}

/// One answer of [`sql::LOOKUP_REPORTS`]: report `i` of the batch and what the raw table knows.
struct LookupRow {
    i: i32,
    found: Found,
}

impl FromRow for LookupRow {
    const COLUMNS: &'static [&'static str] = &[
        "i",
        "present",
        "seq",
        "ts",
        "repaired_entries",
        "repaired_exits",
    ];

    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let count = |c: &str| {
            row.try_get::<_, Option<i32>>(c)
                .map(|v| u32::try_from(v.unwrap_or(0)).unwrap_or(0))
        };
        let seq: Option<i64> = row.try_get("seq")?;
        let owner = match seq {
            Some(seq) => Some(RepairOwner {
                seq: u64_of(seq),
                ts: row.try_get("ts")?,
                entries: count("repaired_entries")?,
                exits: count("repaired_exits")?,
            }),
            None => None,
        };
        Ok(LookupRow {
            i: row.try_get("i")?,
            found: Found {
                present: row.try_get("present")?,
                owner,
            },
        })
    }
}

/// A head count waiting for the ingester (`recounts` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecount {
    pub id: i64,
    pub space: SpaceIdx,
    pub inside: u64,
}

/// The head counts waiting for spaces this ingester counts (those `registry` answers for).
pub async fn pending_recounts(
    client: &Client,
    registry: &Registry,
) -> Result<Vec<PendingRecount>, StoreError> {
    let spaces: Vec<&str> = registry
        .spaces
        .iter()
        .filter(|s| registry.space_idx(s.id.as_str()).is_some())
        .map(|s| s.id.as_str())
        .collect();
    let mut out = Vec::new();
    for row in client.query(sql::PENDING_RECOUNTS, &[&spaces]).await? {
        let Some(space) = registry.space_idx(row.try_get("space_id")?) else {
            continue;
        };
        out.push(PendingRecount {
            id: row.try_get("id")?,
            space,
            inside: u64_of(row.try_get("inside")?),
        });
    }
    Ok(out)
}

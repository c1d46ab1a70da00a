//! The state journal's row format and its fold. A journal row is what one batch changed — each
//! device's de-duplication state, each space's counts, each minute bucket's change — packed into
//! one `bytea`: LEB128 varints, timestamps relative to the row's first, the seq window stored
//! inverted (a healthy counter's window is all ones). A batch of 5,000 counters packs into about
//! 0.4 MB where 44 PostgreSQL arrays took 2 MB and most of the journal's cost was the server
//! receiving their elements one by one. Encoding, decoding and folding rows together are pure;
//! `state.rs` reads and writes them.

use std::collections::HashMap;

use bytes::{Buf, BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};

use super::checkpoint::MergedBucket;
use crate::core::occupancy::SpaceCounts;
use crate::core::seq::SeqState;

const VERSION: u8 = 1;

/// A journal row that does not decode: written by a newer version, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("state journal row: {0}")]
pub struct JournalError(&'static str);

/// One device's state as journaled (and as a `device_state` row holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub seq: SeqState,
    pub last_received: Option<DateTime<Utc>>,
    pub online: Option<bool>,
}

/// What one or more journal rows hold, by id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub devices: Vec<(String, DeviceState)>,
    pub spaces: Vec<(String, SpaceCounts)>,
    /// (space, Unix minute, change)
    pub buckets: Vec<(String, i64, MergedBucket)>,
}

/// A device's id (borrowed), de-duplication state, last receipt and online flag.
pub type DeviceChange<'a> = (&'a str, SeqState, Option<DateTime<Utc>>, Option<bool>);

/// What a batch changed, borrowed for [`encode`].
pub struct Changes<'a> {
    pub devices: Vec<DeviceChange<'a>>,
    pub spaces: Vec<(&'a str, &'a SpaceCounts)>,
    pub buckets: Vec<(&'a str, i64, MergedBucket)>,
}

/// Appends one journal row's body to `buf`.
pub fn encode(buf: &mut BytesMut, c: &Changes<'_>) {
    buf.put_u8(VERSION);
    // Timestamps are written relative to one near them all: a few bytes instead of eight.
    let base = c
        .devices
        .iter()
        .find_map(|d| d.1.last_ts.or(d.2))
        .or_else(|| c.spaces.iter().find_map(|s| s.1.last_report))
        .map_or(0, |t| t.timestamp_micros());
    put_i(buf, base);
    let mut w = Writer { buf, base };
    w.u(c.devices.len() as u64);
    for &(id, s, last_received, online) in &c.devices {
        w.str(id);
        let flags = bit(0, s.last_ts.is_some())
            | bit(1, s.high_ts.is_some())
            | bit(2, s.run_start.is_some())
            | bit(3, s.prev_run_start.is_some())
            | bit(4, s.totals.is_some())
            | bit(5, s.last_jump.is_some())
            | bit(6, last_received.is_some())
            | bit(7, online.is_some())
            | bit(8, online == Some(true))
            | bit(9, s.started);
        w.u(flags);
        w.u(s.high);
        w.bits(!s.window);
        w.bits(s.repaired);
        for t in [
            s.last_ts,
            s.high_ts,
            s.run_start,
            s.prev_run_start,
            last_received,
        ] {
            w.time(t);
        }
        if let Some((a, b)) = s.totals {
            w.u(a);
            w.u(b);
        }
        for v in [
            s.missing,
            s.gaps_total,
            s.repaired_total,
            s.resets_total,
            s.jumps_total,
            u64::from(s.jumped.0),
            u64::from(s.jumped.1),
        ] {
            w.u(v);
        }
        if let Some((at, seq)) = s.last_jump {
            w.time(Some(at));
            w.u(seq);
        }
    }
    w.u(c.spaces.len() as u64);
    for &(id, s) in &c.spaces {
        w.str(id);
        w.u(bit(0, s.day.is_some())
            | bit(1, s.peak_at.is_some())
            | bit(2, s.last_report.is_some()));
        if let Some(day) = s.day {
            w.i(i64::from(day.to_epoch_days()));
        }
        for v in [
            s.entries,
            s.exits,
            s.base,
            s.min_in,
            s.min_out,
            s.closed_drift,
            s.peak,
        ] {
            w.u(v);
        }
        w.i(s.minute);
        w.i(s.adjust);
        w.i(s.corrected);
        w.time(s.peak_at);
        w.time(s.last_report);
    }
    w.u(c.buckets.len() as u64);
    let base_minute = base.div_euclid(60_000_000);
    for &(id, minute, b) in &c.buckets {
        w.str(id);
        w.i(minute - base_minute);
        w.i(b.entries);
        w.i(b.exits);
        w.i(b.correction);
        w.u(bit(0, b.occupancy.is_some()) | bit(1, b.peak.is_some()));
        for v in [b.occupancy, b.peak].into_iter().flatten() {
            w.u(v);
        }
    }
}

/// One journal row's body.
pub fn decode(mut body: &[u8]) -> Result<Entry, JournalError> {
    if body.is_empty() || body.get_u8() != VERSION {
        return Err(JournalError("unknown version"));
    }
    let base = get_i(&mut body)?;
    let mut r = Reader { buf: body, base };
    let mut e = Entry::default();
    for _ in 0..r.len()? {
        let id = r.str()?;
        let flags = r.flags(10)?;
        let has = |b: u32| flags & (1 << b) != 0;
        if has(8) && !has(7) {
            return Err(JournalError("online flags"));
        }
        let high = r.u()?;
        let window = !r.bits()?;
        let repaired = r.bits()?;
        // last_ts, high_ts, run_start, prev_run_start, last_received
        let mut times = [None; 5];
        for (t, b) in times.iter_mut().zip([0, 1, 2, 3, 6]) {
            *t = r.time(has(b))?;
        }
        let totals = if has(4) { Some((r.u()?, r.u()?)) } else { None };
        let mut n = [0u64; 7];
        for v in &mut n {
            *v = r.u()?;
        }
        let last_jump = if has(5) {
            let at = r.time(true)?.ok_or(JournalError("jump time"))?;
            Some((at, r.u()?))
        } else {
            None
        };
        let jumped = |v: u64| u32::try_from(v).map_err(|_| JournalError("jumped"));
        e.devices.push((
            id,
            DeviceState {
                seq: SeqState {
                    high,
                    window,
                    repaired,
                    started: has(9),
                    last_ts: times[0],
                    high_ts: times[1],
                    run_start: times[2],
                    prev_run_start: times[3],
                    totals,
                    missing: n[0],
                    gaps_total: n[1],
                    repaired_total: n[2],
                    resets_total: n[3],
                    jumps_total: n[4],
                    last_jump,
                    jumped: (jumped(n[5])?, jumped(n[6])?),
                },
                last_received: times[4],
                online: has(7).then_some(has(8)),
            },
        ));
    }
    for _ in 0..r.len()? {
        let id = r.str()?;
        let flags = r.flags(3)?;
        let day = if flags & 1 != 0 {
            let d = i32::try_from(r.i()?).map_err(|_| JournalError("day"))?;
            Some(NaiveDate::from_epoch_days(d).ok_or(JournalError("day"))?)
        } else {
            None
        };
        let mut n = [0u64; 7];
        for v in &mut n {
            *v = r.u()?;
        }
        let (minute, adjust, corrected) = (r.i()?, r.i()?, r.i()?);
        let peak_at = r.time(flags & 2 != 0)?;
        let last_report = r.time(flags & 4 != 0)?;
        e.spaces.push((
            id,
            SpaceCounts {
                day,
                entries: n[0],
                exits: n[1],
                base: n[2],
                min_in: n[3],
                min_out: n[4],
                closed_drift: n[5],
                peak: n[6],
                minute,
                adjust,
                corrected,
                peak_at,
                last_report,
            },
        ));
    }
    let base_minute = base.div_euclid(60_000_000);
    for _ in 0..r.len()? {
        let id = r.str()?;
        let minute = base_minute + r.i()?;
        let (entries, exits, correction) = (r.i()?, r.i()?, r.i()?);
        let flags = r.flags(2)?;
        let occupancy = if flags & 1 != 0 { Some(r.u()?) } else { None };
        let peak = if flags & 2 != 0 { Some(r.u()?) } else { None };
        e.buckets.push((
            id,
            minute,
            MergedBucket {
                entries,
                exits,
                occupancy,
                peak,
                correction,
            },
        ));
    }
    if r.buf.has_remaining() {
        return Err(JournalError("trailing bytes"));
    }
    Ok(e)
}

/// Journal rows in the order they were written, as one: each device's and space's newest state,
/// each bucket's changes merged.
pub fn fold(rows: impl IntoIterator<Item = Entry>) -> Entry {
    let mut out = Entry::default();
    let (mut dev, mut space, mut bucket) = (HashMap::new(), HashMap::new(), HashMap::new());
    for row in rows {
        for d in row.devices {
            keep(&mut dev, &mut out.devices, d.0.clone(), d, newest);
        }
        for s in row.spaces {
            keep(&mut space, &mut out.spaces, s.0.clone(), s, newest);
        }
        for b in row.buckets {
            let key = (b.0.clone(), b.1);
            keep(&mut bucket, &mut out.buckets, key, b, |old, new| {
                old.2.merge(&new.2)
            });
        }
    }
    out
}

/// A device's or space's newer state replaces the older.
fn newest<V>(old: &mut V, new: V) {
    *old = new;
}

/// `v` into `out` once per `key`, in first-seen order; a later one is `combine`d into it.
fn keep<K: std::hash::Hash + Eq, V>(
    index: &mut HashMap<K, usize>,
    out: &mut Vec<V>,
    key: K,
    v: V,
    combine: impl FnOnce(&mut V, V),
) {
    match index.get(&key) {
        Some(&i) => combine(&mut out[i], v),
        None => {
            index.insert(key, out.len());
            out.push(v);
        }
    }
}

fn bit(n: u32, on: bool) -> u64 {
    u64::from(on) << n
}

fn put_u(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Zigzag, so small negative numbers stay small.
fn put_i(buf: &mut BytesMut, v: i64) {
    put_u(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn get_u(buf: &mut &[u8]) -> Result<u64, JournalError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(JournalError("truncated"));
        }
        let b = buf.get_u8();
        if shift == 63 && b > 1 {
            return Err(JournalError("varint overflows"));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(JournalError("varint too long"))
}

fn get_i(buf: &mut &[u8]) -> Result<i64, JournalError> {
    let u = get_u(buf)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

struct Writer<'a> {
    buf: &'a mut BytesMut,
    base: i64,
}

impl Writer<'_> {
    fn u(&mut self, v: u64) {
        put_u(self.buf, v);
    }
    fn i(&mut self, v: i64) {
        put_i(self.buf, v);
    }
    fn str(&mut self, s: &str) {
        self.u(s.len() as u64);
        self.buf.put_slice(s.as_bytes());
    }
    fn bits(&mut self, v: u128) {
        self.u((v >> 64) as u64);
        self.u(v as u64);
    }
    /// Present times only (the reader knows from the flags which are).
    fn time(&mut self, t: Option<DateTime<Utc>>) {
        if let Some(t) = t {
            self.i(t.timestamp_micros() - self.base);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    base: i64,
}

impl Reader<'_> {
    fn u(&mut self) -> Result<u64, JournalError> {
        get_u(&mut self.buf)
    }
    fn i(&mut self) -> Result<i64, JournalError> {
        get_i(&mut self.buf)
    }
    /// A flags varint with `bits` defined bits; any other set is damage.
    fn flags(&mut self, bits: u32) -> Result<u64, JournalError> {
        let f = self.u()?;
        if f >> bits != 0 {
            return Err(JournalError("flags"));
        }
        Ok(f)
    }

    fn len(&mut self) -> Result<usize, JournalError> {
        let n = self.u()?;
        // Every element takes at least a byte: a count beyond what is left is damage.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or(JournalError("count"))
    }
    fn str(&mut self) -> Result<String, JournalError> {
        let n = self.len()?;
        let s = std::str::from_utf8(&self.buf[..n]).map_err(|_| JournalError("id"))?;
        let s = s.to_owned();
        self.buf.advance(n);
        Ok(s)
    }
    fn bits(&mut self) -> Result<u128, JournalError> {
        Ok((u128::from(self.u()?) << 64) | u128::from(self.u()?))
    }
    fn time(&mut self, present: bool) -> Result<Option<DateTime<Utc>>, JournalError> {
        if !present {
            return Ok(None);
        }
        let t = self
            .base
            .checked_add(self.i()?)
            .ok_or(JournalError("time"))?;
        Ok(Some(
            DateTime::from_timestamp_micros(t).ok_or(JournalError("time"))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
        // 2000-01-01 .. 2100-01-01, to the microsecond.
        prop::option::of(
            (946_684_800_000_000i64..4_102_444_800_000_000)
                .prop_map(|t| DateTime::from_timestamp_micros(t).unwrap()),
        )
    }

    prop_compose! {
        fn seq_state()(
            high in any::<u64>(), window in any::<u128>(), repaired in any::<u128>(),
            started in any::<bool>(),
            times in (time(), time(), time(), time()),
            totals in prop::option::of((any::<u64>(), any::<u64>())),
            n in prop::array::uniform5(any::<u64>()),
            jump in (time(), any::<u64>()),
            jumped in (any::<u32>(), any::<u32>()),
        ) -> SeqState {
            SeqState {
                high, window, repaired, started,
                last_ts: times.0, high_ts: times.1, run_start: times.2, prev_run_start: times.3,
                totals,
                missing: n[0], gaps_total: n[1], repaired_total: n[2], resets_total: n[3],
                jumps_total: n[4],
                last_jump: jump.0.map(|t| (t, jump.1)),
                jumped,
            }
        }
    }

    prop_compose! {
        fn space_counts()(
            day in prop::option::of((-100_000i32..100_000).prop_map(|d| NaiveDate::from_epoch_days(d).unwrap())),
            n in prop::array::uniform7(any::<u64>()),
            minute in any::<i64>().prop_map(|m| m / 128),
            adjust in any::<i64>(), corrected in any::<i64>(),
            peak_at in time(), last_report in time(),
        ) -> SpaceCounts {
            SpaceCounts {
                day, entries: n[0], exits: n[1], base: n[2], min_in: n[3], min_out: n[4],
                closed_drift: n[5], peak: n[6], minute, adjust, corrected, peak_at, last_report,
            }
        }
    }

    prop_compose! {
        fn bucket()(
            minute in -30_000_000i64..30_000_000,
            e in any::<i64>(), x in any::<i64>(), c in any::<i64>(),
            occupancy in prop::option::of(any::<u64>()), peak in prop::option::of(any::<u64>()),
        ) -> (i64, MergedBucket) {
            (minute, MergedBucket { entries: e, exits: x, occupancy, peak, correction: c })
        }
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let device = (
            "[a-z0-9-]{1,12}",
            seq_state(),
            time(),
            prop::option::of(any::<bool>()),
        );
        (
            prop::collection::vec(device, 0..8),
            prop::collection::vec(("[a-z]{1,8}", space_counts()), 0..8),
            prop::collection::vec(("[a-z]{1,8}", bucket()), 0..8),
        )
            .prop_map(|(d, s, b)| Entry {
                devices: d
                    .into_iter()
                    .map(|(id, seq, last_received, online)| {
                        (
                            id,
                            DeviceState {
                                seq,
                                last_received,
                                online,
                            },
                        )
                    })
                    .collect(),
                spaces: s,
                buckets: b.into_iter().map(|(id, (m, b))| (id, m, b)).collect(),
            })
    }

    fn encoded(e: &Entry) -> BytesMut {
        let changes = Changes {
            devices: e
                .devices
                .iter()
                .map(|(id, d)| (id.as_str(), d.seq, d.last_received, d.online))
                .collect(),
            spaces: e.spaces.iter().map(|(id, s)| (id.as_str(), s)).collect(),
            buckets: e
                .buckets
                .iter()
                .map(|(id, m, b)| (id.as_str(), *m, *b))
                .collect(),
        };
        let mut buf = BytesMut::new();
        encode(&mut buf, &changes);
        buf
    }

    proptest! {
        /// Whatever a batch changed comes back exactly from its journal row.
        #[test]
        fn a_row_decodes_to_what_was_encoded(e in entry()) {
            prop_assert_eq!(decode(&encoded(&e)).unwrap(), e);
        }

        /// A damaged row is an error, never a panic or a wrong state.
        #[test]
        fn a_cut_or_damaged_row_is_refused(e in entry(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let body = encoded(&e);
            let at = cut.index(body.len());
            prop_assert!(decode(&body[..at]).is_err());
            let mut damaged = body.to_vec();
            damaged[at] ^= flip | 1;
            if let Ok(d) = decode(&damaged) {
                prop_assert_ne!(d, e);
            }
        }
    }

    #[test]
    fn a_healthy_counter_packs_small() {
        let t = DateTime::from_timestamp(1_790_000_000, 0);
        let seq = SeqState {
            high: 123_456,
            window: u128::MAX,
            started: true,
            last_ts: t,
            high_ts: t,
            ..SeqState::default()
        };
        let state = DeviceState {
            seq,
            last_received: t,
            online: Some(true),
        };
        let e = Entry {
            devices: (0..100)
                .map(|i| (format!("cam-{i:04}"), state.clone()))
                .collect(),
            ..Entry::default()
        };
        let body = encoded(&e);
        // 8 bytes of id, then about 20 for the state (23 columns).
        assert!(body.len() < 100 * 30, "{} bytes", body.len());
        assert_eq!(decode(&body).unwrap(), e);
    }

    #[test]
    fn folding_keeps_the_newest_state_and_merges_buckets() {
        let counts = |entries| SpaceCounts {
            entries,
            day: NaiveDate::from_ymd_opt(2026, 12, 5),
            ..SpaceCounts::default()
        };
        let b = |e, o| MergedBucket {
            entries: e,
            occupancy: Some(o),
            peak: Some(o),
            ..MergedBucket::default()
        };
        let rows = vec![
            Entry {
                spaces: vec![("a".into(), counts(5)), ("b".into(), counts(1))],
                buckets: vec![("a".into(), 10, b(5, 40))],
                ..Entry::default()
            },
            Entry {
                spaces: vec![("a".into(), counts(9))],
                buckets: vec![("a".into(), 10, b(4, 30)), ("a".into(), 11, b(1, 31))],
                ..Entry::default()
            },
        ];
        let f = fold(rows);
        assert_eq!(
            f.spaces,
            [("a".to_string(), counts(9)), ("b".to_string(), counts(1))]
        );
        assert_eq!(
            f.buckets[0],
            (
                "a".to_string(),
                10,
                MergedBucket {
                    entries: 9,
                    occupancy: Some(30),
                    peak: Some(40),
                    ..MergedBucket::default()
                }
            )
        );
        assert_eq!(f.buckets.len(), 2);
    }
}

//! Pure decoding of what devices send: topic → (space, device, kind), payload → count reports in
//! the space's frame (entries/exits, the device's mounting direction already applied). The native
//! contract and Milesight VS13x are here; the cameras' own formats are in `hikvision.rs` (ISAPI
//! people-counting events, XML) and `xovis.rs` (line-count push, JSON), each turning a time
//! window into a place in the device's sequence ([`window_seq`]).
//! Everything that can be wrong with input is a [`Reject`] with a bounded reason for `/metrics`.

use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::registry::{Device, Direction, PayloadFormat};

mod hikvision;
pub mod polled;
mod rfc3339;
mod xovis;

use rfc3339::Rfc3339;

/// Why an input was refused. The `as_str` names are the `reason` label of
/// `visitorflow_reports_rejected_total`, so the set is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error(
        "topic is not {{prefix}}/{{space}}/{{device}}/counts|status or {{prefix}}/{{space}}/hazard|tickets"
    )]
    BadTopic,
    #[error("device is not in the registry")]
    UnknownDevice,
    #[error("space is not in the registry")]
    UnknownSpace,
    #[error("topic's space does not match the device's space in the registry")]
    SpaceMismatch,
    #[error("payload larger than the configured maximum")]
    TooLarge,
    #[error("payload is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("payload is not valid XML: {0}")]
    MalformedXml(String),
    #[error("report does not match the contract: {0}")]
    InvalidReport(String),
    #[error("negative count")]
    NegativeCount,
    #[error("count above the configured per-report maximum")]
    AbsurdCount,
    #[error("timestamp too far in the future (device clock?)")]
    FutureTimestamp,
    #[error("timestamp older than the configured maximum age")]
    TooOld,
    #[error(
        "below the de-duplication window and older than raw retention: cannot tell a late report from a replay"
    )]
    SeqTooOld,
    #[error("array holds more reports than allowed")]
    TooManyReports,
}

impl Reject {
    pub const ALL: [Reject; 14] = [
        Reject::BadTopic,
        Reject::UnknownDevice,
        Reject::UnknownSpace,
        Reject::SpaceMismatch,
        Reject::TooLarge,
        Reject::MalformedJson(String::new()),
        Reject::MalformedXml(String::new()),
        Reject::InvalidReport(String::new()),
        Reject::NegativeCount,
        Reject::AbsurdCount,
        Reject::FutureTimestamp,
        Reject::TooOld,
        Reject::SeqTooOld,
        Reject::TooManyReports,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Reject::BadTopic => "bad_topic",
            Reject::UnknownDevice => "unknown_device",
            Reject::UnknownSpace => "unknown_space",
            Reject::SpaceMismatch => "space_mismatch",
            Reject::TooLarge => "too_large",
            Reject::MalformedJson(_) => "malformed_json",
            Reject::MalformedXml(_) => "malformed_xml",
            Reject::InvalidReport(_) => "invalid_report",
            Reject::NegativeCount => "negative_count",
            Reject::AbsurdCount => "absurd_count",
            Reject::FutureTimestamp => "future_timestamp",
            Reject::TooOld => "too_old",
            Reject::SeqTooOld => "seq_too_old",
            Reject::TooManyReports => "too_many_reports",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Counts,
    Status,
    /// `{prefix}/{space}/hazard`: an external hazard signal for a space (no device).
    Hazard,
    /// `{prefix}/{space}/tickets`: a ticketing system's bookings and slot totals (no device).
    Tickets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub space: &'a str,
    pub device: &'a str,
    pub kind: TopicKind,
}

/// Parses `{prefix}/{space}/{device}/{counts|status}` and `{prefix}/{space}/{hazard|tickets}`. Wildcards and empty segments are refused
/// so a topic can never address more than one device.
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Result<Topic<'a>, Reject> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(Reject::BadTopic)?;
    // One pass over the bytes: topics are short, and `str::split`'s searcher cost ~900
    // instructions a report (callgrind). `/`, `+` and `#` are ASCII, so the cuts are on
    // character boundaries.
    let mut parts = [""; 3];
    let (mut n, mut start) = (0, 0);
    for (i, b) in rest.bytes().enumerate() {
        match b {
            b'+' | b'#' => return Err(Reject::BadTopic),
            b'/' if n == 2 => return Err(Reject::BadTopic),
            b'/' => {
                parts[n] = &rest[start..i];
                (n, start) = (n + 1, i + 1);
            }
            _ => {}
        }
    }
    parts[n] = &rest[start..];
    let (space, device, kind) = match (n, parts) {
        (1, [space, "hazard", _]) => (space, "", TopicKind::Hazard),
        (1, [space, "tickets", _]) => (space, "", TopicKind::Tickets),
        (2, [space, device, "counts"]) => (space, device, TopicKind::Counts),
        (2, [space, device, "status"]) => (space, device, TopicKind::Status),
        _ => return Err(Reject::BadTopic),
    };
    let spacewide = matches!(kind, TopicKind::Hazard | TopicKind::Tickets);
    if space.is_empty() || (!spacewide && device.is_empty()) {
        return Err(Reject::BadTopic);
    }
    Ok(Topic {
        space,
        device,
        kind,
    })
}

/// One accepted-for-processing count report in the space's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountReport {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub entries: u32,
    pub exits: u32,
    pub period_s: Option<u32>,
    /// Cumulative totals in the space's frame, when the device sends them (used to repair gaps).
    pub total_entries: Option<u64>,
    pub total_exits: Option<u64>,
    /// The device stamped the report itself (else `ts` is the time it was received, which says
    /// nothing about its place in the device's sequence).
    pub ts_from_device: bool,
}

/// Limits a payload is checked against (the ingester builds them from its `[ingest]` section).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_future: TimeDelta,
    pub max_age: TimeDelta,
    pub max_count: u32,
    pub max_payload: usize,
    pub max_array: usize,
}

/// Largest cumulative total accepted: far above any counter's life, far below where `bigint` and
/// float rounding would bite.
const MAX_TOTAL: u64 = 1_000_000_000_000;
/// Longest reporting period accepted: one day.
const MAX_PERIOD_S: u64 = 86_400;

/// An optional whole-number field: absent, or an integer in `0..=max`; anything else refuses the
/// report naming the field (a negative total must not be taken for "no total").
fn whole(field: &str, v: Option<&serde_json::Number>, max: u64) -> Result<Option<u64>, Reject> {
    let Some(n) = v else { return Ok(None) };
    match n.as_u64() {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(Reject::InvalidReport(format!(
            "`{field}` must be a whole number from 0 to {max}, got {n}"
        ))),
    }
}

fn missing_pair(given: &str, absent: &str) -> Reject {
    Reject::InvalidReport(format!(
        "`{given}` without `{absent}`: totals come in pairs"
    ))
}

/// The native contract: `{"seq","ts","in","out","period_s"?,"total_in"?,"total_out"?}`.
/// Counts are read as i64 so a negative value gets its own reason instead of a type error.
#[derive(Deserialize)]
struct Native {
    seq: u64,
    #[serde(default)]
    ts: Option<Rfc3339>,
    #[serde(default, rename = "in")]
    entries: i64,
    #[serde(default, rename = "out")]
    exits: i64,
    #[serde(default)]
    period_s: Option<serde_json::Number>,
    #[serde(default)]
    total_in: Option<serde_json::Number>,
    #[serde(default)]
    total_out: Option<serde_json::Number>,
}

/// Milesight VS13x decoded uplink (lines 1–4), plus the `seq` (or LoRaWAN `fCnt`) and `ts` that
/// our contract needs for de-duplication.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Milesight {
    #[serde(alias = "fCnt")]
    seq: Option<u64>,
    #[serde(alias = "time", alias = "timestamp")]
    ts: Option<Rfc3339>,
    period_s: Option<u32>,
    line_1_period_in: Option<i64>,
    line_1_period_out: Option<i64>,
    line_1_total_in: Option<i64>,
    line_1_total_out: Option<i64>,
    line_2_period_in: Option<i64>,
    line_2_period_out: Option<i64>,
    line_2_total_in: Option<i64>,
    line_2_total_out: Option<i64>,
    line_3_period_in: Option<i64>,
    line_3_period_out: Option<i64>,
    line_3_total_in: Option<i64>,
    line_3_total_out: Option<i64>,
    line_4_period_in: Option<i64>,
    line_4_period_out: Option<i64>,
    line_4_total_in: Option<i64>,
    line_4_total_out: Option<i64>,
}

impl Milesight {
    fn line(&self, n: u8) -> [Option<i64>; 4] {
        match n {
            1 => [
                self.line_1_period_in,
                self.line_1_period_out,
                self.line_1_total_in,
                self.line_1_total_out,
            ],
            2 => [
                self.line_2_period_in,
                self.line_2_period_out,
                self.line_2_total_in,
                self.line_2_total_out,
            ],
            3 => [
                self.line_3_period_in,
                self.line_3_period_out,
                self.line_3_total_in,
                self.line_3_total_out,
            ],
            4 => [
                self.line_4_period_in,
                self.line_4_period_out,
                self.line_4_total_in,
                self.line_4_total_out,
            ],
            _ => [None; 4],
        }
    }
}

/// Decodes a count payload for `device`, appending one result per report (a body may be an array
/// of reports: one bad element does not cost the good ones). An error for the whole payload
/// (too large, not JSON) is returned instead.
pub fn decode_counts(
    device: &Device,
    payload: &[u8],
    received: DateTime<Utc>,
    limits: &Limits,
    out: &mut Vec<Result<CountReport, Reject>>,
) -> Result<(), Reject> {
    if payload.len() > limits.max_payload {
        return Err(Reject::TooLarge);
    }
    match device.format {
        PayloadFormat::HikvisionIsapi => {
            let raw = hikvision::decode(device, payload)?;
            out.push(finish(device, raw, received, limits));
            return Ok(());
        }
        PayloadFormat::Xovis => {
            let windows = xovis::decode(device, payload, limits)?;
            out.extend(
                windows
                    .into_iter()
                    .map(|r| r.and_then(|r| finish(device, r, received, limits))),
            );
            return Ok(());
        }
        PayloadFormat::AxisLiveSum
        | PayloadFormat::DahuaSummary
        | PayloadFormat::HikvisionCounting => {
            return Err(Reject::InvalidReport(
                "this device is polled (its registry `poll`), it pushes nothing".into(),
            ));
        }
        PayloadFormat::Native | PayloadFormat::MilesightVs13x => {}
    }
    // JSON is UTF-8 (RFC 8259). serde_json checks it only in the strings it decodes, so invalid
    // bytes in an ignored field would otherwise pass unnoticed. Checked once here for the whole
    // text, which is then parsed as a `str`: the slice reader would check each of a report's
    // ~14 strings again (~1,250 instructions a report).
    let text = std::str::from_utf8(payload).map_err(|e| Reject::MalformedJson(e.to_string()))?;
    if text.trim_ascii_start().starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| Reject::MalformedJson(e.to_string()))?;
        if items.len() > limits.max_array {
            return Err(Reject::TooManyReports);
        }
        for item in items {
            out.push(decode_one(device, item.get(), received, limits));
        }
        Ok(())
    } else {
        // Tell "not JSON" from "JSON but not a report" so the reason is precise.
        match decode_one(device, text, received, limits) {
            Err(Reject::InvalidReport(msg)) if serde_json::from_str::<&RawValue>(text).is_err() => {
                Err(Reject::MalformedJson(msg))
            }
            r => {
                out.push(r);
                Ok(())
            }
        }
    }
}

fn decode_one(
    device: &Device,
    text: &str,
    received: DateTime<Utc>,
    limits: &Limits,
) -> Result<CountReport, Reject> {
    let invalid = |e: serde_json::Error| Reject::InvalidReport(e.to_string());
    let (seq, ts, dev_in, dev_out, period_s, tot) = match device.format {
        PayloadFormat::Native => {
            let n: Native = serde_json::from_str(text).map_err(invalid)?;
            let total_in = whole("total_in", n.total_in.as_ref(), MAX_TOTAL)?;
            let total_out = whole("total_out", n.total_out.as_ref(), MAX_TOTAL)?;
            let tot = match (total_in, total_out) {
                (Some(i), Some(o)) => Some((i as i64, o as i64)),
                (None, None) => None,
                (Some(_), None) => return Err(missing_pair("total_in", "total_out")),
                (None, Some(_)) => return Err(missing_pair("total_out", "total_in")),
            };
            let period_s = whole("period_s", n.period_s.as_ref(), MAX_PERIOD_S)?;
            if period_s == Some(0) {
                return Err(Reject::InvalidReport(
                    "`period_s` must be at least 1 second".into(),
                ));
            }
            (
                n.seq,
                n.ts.map(|t| t.0),
                n.entries,
                n.exits,
                period_s.map(|p| p as u32),
                tot,
            )
        }
        PayloadFormat::MilesightVs13x => {
            let m: Milesight = serde_json::from_str(text).map_err(invalid)?;
            let seq = m
                .seq
                .ok_or_else(|| Reject::InvalidReport("missing field `seq` (or `fCnt`)".into()))?;
            let (mut e, mut x) = (0i64, 0i64);
            let mut tot = Some((0i64, 0i64));
            let mut any = false;
            for l in &device.lines {
                let [pi, po, ti, to] = m.line(l.line);
                for (name, v) in [("total_in", ti), ("total_out", to)] {
                    if v.is_some_and(|v| v < 0 || v as u64 > MAX_TOTAL) {
                        return Err(Reject::InvalidReport(format!(
                            "`line_{}_{name}` must be a whole number from 0 to {MAX_TOTAL}",
                            l.line
                        )));
                    }
                }
                any |= pi.is_some() || po.is_some();
                let (pi, po) = (pi.unwrap_or(0), po.unwrap_or(0));
                let (ti, to) = match l.direction {
                    Direction::Normal => (ti, to),
                    Direction::Reversed => (to, ti),
                };
                let (pe, px) = match l.direction {
                    Direction::Normal => (pi, po),
                    Direction::Reversed => (po, pi),
                };
                e = e.saturating_add(pe);
                x = x.saturating_add(px);
                tot = match (tot, ti, to) {
                    (Some((a, b)), Some(i), Some(o)) => {
                        Some((a.saturating_add(i), b.saturating_add(o)))
                    }
                    _ => None,
                };
            }
            if !any {
                return Err(Reject::InvalidReport(
                    "no period counts for the configured lines".into(),
                ));
            }
            // Lines carry their own direction, so the device-level direction is already applied.
            let (e, x, tot) = match device.direction {
                Direction::Normal => (e, x, tot),
                Direction::Reversed => (x, e, tot.map(|(a, b)| (b, a))),
            };
            if m.period_s
                .is_some_and(|p| p == 0 || u64::from(p) > MAX_PERIOD_S)
            {
                return Err(Reject::InvalidReport(format!(
                    "`period_s` must be a whole number from 1 to {MAX_PERIOD_S}"
                )));
            }
            (seq, m.ts.map(|t| t.0), e, x, m.period_s, tot)
        }
        // Decoded whole by `decode_counts` (or polled), never element by element.
        PayloadFormat::HikvisionIsapi
        | PayloadFormat::Xovis
        | PayloadFormat::AxisLiveSum
        | PayloadFormat::DahuaSummary
        | PayloadFormat::HikvisionCounting => {
            return Err(Reject::InvalidReport("not a JSON report format".into()));
        }
    };
    finish(
        device,
        Raw {
            seq,
            ts,
            entries: dev_in,
            exits: dev_out,
            period_s,
            totals: tot,
            // Native reports state direction in the device frame; Milesight lines were mapped.
            device_frame: device.format == PayloadFormat::Native,
        },
        received,
        limits,
    )
}

/// One report as a format read it, before the checks every format shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw {
    pub seq: u64,
    pub ts: Option<DateTime<FixedOffset>>,
    pub entries: i64,
    pub exits: i64,
    pub period_s: Option<u32>,
    pub totals: Option<(i64, i64)>,
    /// Counts as the device sees them: its `direction` is still to be applied.
    pub device_frame: bool,
}

/// The checks every format shares (range, counts, time) and the device's direction.
fn finish(
    device: &Device,
    raw: Raw,
    received: DateTime<Utc>,
    limits: &Limits,
) -> Result<CountReport, Reject> {
    let Raw {
        seq,
        ts,
        entries: dev_in,
        exits: dev_out,
        period_s,
        totals: tot,
        device_frame,
    } = raw;
    if seq > i64::MAX as u64 {
        return Err(Reject::InvalidReport("seq above 2^63 - 1".into()));
    }
    if dev_in < 0 || dev_out < 0 || tot.is_some_and(|(a, b)| a < 0 || b < 0) {
        return Err(Reject::NegativeCount);
    }
    let max = i64::from(limits.max_count);
    if dev_in > max || dev_out > max {
        return Err(Reject::AbsurdCount);
    }
    // PostgreSQL keeps microseconds: truncating here keeps the live state and the stored state
    // identical, so a reloaded state judges a redelivery exactly as the original run did.
    let ts_from_device = ts.is_some();
    let ts = ts
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(received)
        .trunc_subsecs(6);
    if ts - received > limits.max_future {
        return Err(Reject::FutureTimestamp);
    }
    if received - ts > limits.max_age {
        return Err(Reject::TooOld);
    }
    let (entries, exits, tot) = match (device_frame, device.direction) {
        (true, Direction::Reversed) => (dev_out, dev_in, tot.map(|(a, b)| (b, a))),
        _ => (dev_in, dev_out, tot),
    };
    Ok(CountReport {
        seq,
        ts_from_device,
        ts,
        entries: entries as u32,
        exits: exits as u32,
        period_s,
        total_entries: tot.map(|t| t.0 as u64),
        total_exits: tot.map(|t| t.1 as u64),
    })
}

/// A time window as a place in the device's sequence: its end in units of its length, so
/// consecutive windows are consecutive reports, a resend of a window is the same report, and a
/// window that never arrived is a missing one.
pub(crate) fn window_seq(
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
) -> Result<(u64, u32), Reject> {
    let len = (end - start).num_seconds();
    if len <= 0 || len as u64 > MAX_PERIOD_S || end.timestamp() <= 0 {
        return Err(Reject::InvalidReport(format!(
            "window {start} – {end}: the end must follow the start by 1 s to 1 day"
        )));
    }
    Ok(((end.timestamp() / len) as u64, len as u32))
}

/// An external hazard signal: `{"kind": "flash_flood", "severity": "critical", "message": "…",
/// "until": "…", "active": true}`; `active: false` clears the hazard of that kind.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HazardSignal {
    pub kind: String,
    #[serde(default = "critical")]
    pub severity: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub until: Option<DateTime<FixedOffset>>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn critical() -> String {
    "critical".into()
}

fn yes() -> bool {
    true
}

pub fn decode_hazard(payload: &[u8]) -> Result<HazardSignal, Reject> {
    let h: HazardSignal =
        serde_json::from_slice(payload).map_err(|e| Reject::InvalidReport(e.to_string()))?;
    let kind_ok = !h.kind.is_empty()
        && h.kind.len() <= 40
        && h.kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !kind_ok
        || !["info", "warning", "major", "critical"].contains(&h.severity.as_str())
        || h.message.len() > 2000
    {
        return Err(Reject::InvalidReport("hazard needs kind (a–z 0–9 _), severity info|warning|major|critical, message ≤ 2000 bytes".into()));
    }
    Ok(h)
}

/// Device status (`{"online": bool}`), retained and used as the MQTT last will.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
}

pub fn decode_status(payload: &[u8]) -> Result<Status, Reject> {
    serde_json::from_slice(payload).map_err(|e| Reject::InvalidReport(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, IngestConfig};
    use crate::registry::Registry;
    use proptest::prelude::*;

    /// The shared one-area fixture (a gate, a reversed camera, a two-line Milesight VS133).
    const REG: &str = include_str!("../tests/data/one-area.toml");

    fn reg() -> Registry {
        Config::from_toml(REG).unwrap().registry().unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T10:20:00+08:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn decode(dev: &str, payload: &str) -> Result<Vec<Result<CountReport, Reject>>, Reject> {
        let r = reg();
        let d = r.device(r.device_idx(dev).unwrap());
        let mut out = Vec::new();
        decode_counts(
            d,
            payload.as_bytes(),
            now(),
            &Limits::from(&IngestConfig::default()),
            &mut out,
        )?;
        Ok(out)
    }

    fn one(dev: &str, payload: &str) -> Result<CountReport, Reject> {
        let mut v = decode(dev, payload)?;
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    #[test]
    fn topic_grammar() {
        let t = parse_topic("vf", "vf/area/gate/counts").unwrap();
        assert_eq!(
            (t.space, t.device, t.kind),
            ("area", "gate", TopicKind::Counts)
        );
        assert_eq!(
            parse_topic("vf", "vf/area/gate/status").unwrap().kind,
            TopicKind::Status
        );
        for bad in [
            "vf/area/gate",
            "vf/area/gate/counts/x",
            "xx/area/gate/counts",
            "vf//gate/counts",
            "vf/+/gate/counts",
            "vf/area/#/counts",
            "vf/area/gate/other",
            "vfx/area/gate/counts",
        ] {
            assert_eq!(parse_topic("vf", bad), Err(Reject::BadTopic), "{bad}");
        }
    }

    /// The grammar as first written, with `str::split`: the byte scanner must agree with it.
    fn topic_by_split<'a>(prefix: &str, topic: &'a str) -> Result<Topic<'a>, Reject> {
        let rest = topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(Reject::BadTopic)?;
        let mut parts = rest.split('/');
        let (space, device, kind) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(space), Some("hazard"), None, None) => (space, "", TopicKind::Hazard),
            (Some(space), Some("tickets"), None, None) => (space, "", TopicKind::Tickets),
            (Some(space), Some(device), Some("counts"), None) => (space, device, TopicKind::Counts),
            (Some(space), Some(device), Some("status"), None) => (space, device, TopicKind::Status),
            _ => return Err(Reject::BadTopic),
        };
        let ok = |s: &str| !s.is_empty() && !s.contains(['+', '#']);
        let spacewide = matches!(kind, TopicKind::Hazard | TopicKind::Tickets);
        if !ok(space) || (!spacewide && !ok(device)) {
            return Err(Reject::BadTopic);
        }
        Ok(Topic {
            space,
            device,
            kind,
        })
    }

    proptest! {
        #[test]
        fn topic_scanner_agrees_with_split(
            prefixed in any::<bool>(),
            segs in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        "", "vf", "counts", "status", "hazard", "tickets", "+", "#", "區", "a+b",
                    ]).prop_map(String::from),
                    "[a-z0-9#+/é]{0,6}",
                ],
                0..6,
            ),
        ) {
            let topic = if prefixed { format!("vf/{}", segs.join("/")) } else { segs.join("/") };
            prop_assert_eq!(parse_topic("vf", &topic), topic_by_split("vf", &topic));
        }
    }

    #[test]
    fn native_report_with_offset_timestamp_is_stored_in_utc() {
        let r = one("gate", r#"{"seq": 1042, "ts": "2026-05-01T10:15:00+08:00", "in": 3, "out": 1, "period_s": 60}"#).unwrap();
        assert_eq!(r.seq, 1042);
        assert_eq!(
            r.ts,
            DateTime::parse_from_rfc3339("2026-05-01T02:15:00Z").unwrap()
        );
        assert_eq!((r.entries, r.exits, r.period_s), (3, 1, Some(60)));
    }

    #[test]
    fn single_passage_and_missing_timestamp() {
        let r = one("gate", r#"{"seq": 7, "in": 1}"#).unwrap();
        assert_eq!((r.entries, r.exits, r.ts), (1, 0, now()));
    }

    #[test]
    fn reversed_device_swaps_directions_and_totals() {
        let r = one("backwards", r#"{"seq":1,"ts":"2026-05-01T10:15:00+08:00","in":4,"out":9,"total_in":40,"total_out":90}"#).unwrap();
        assert_eq!(
            (r.entries, r.exits, r.total_entries, r.total_exits),
            (9, 4, Some(90), Some(40))
        );
    }

    #[test]
    fn array_keeps_good_reports_next_to_bad_ones() {
        let v = decode(
            "gate",
            r#"[{"seq":1,"in":2},{"seq":2,"in":-1},{"seq":"x"},{"seq":3,"out":4}]"#,
        )
        .unwrap();
        assert_eq!(v.len(), 4);
        assert!(v[0].is_ok() && v[3].is_ok());
        assert_eq!(v[1], Err(Reject::NegativeCount));
        assert!(matches!(v[2], Err(Reject::InvalidReport(_))));
    }

    #[test]
    fn milesight_lines_with_their_own_directions() {
        let r = one(
            "vs133",
            r#"{"fCnt": 12, "line_1_total_in":72,"line_1_total_out":200,"line_1_period_in":5,"line_1_period_out":7,
                "line_2_total_in":10,"line_2_total_out":3,"line_2_period_in":2,"line_2_period_out":1, "line_3_period_in": 99}"#,
        )
        .unwrap();
        assert_eq!(r.seq, 12);
        // line 1 as is (5 in, 7 out); line 2 reversed (its 2 "in" are exits).
        assert_eq!((r.entries, r.exits), (5 + 1, 7 + 2));
        assert_eq!(
            (r.total_entries, r.total_exits),
            (Some(72 + 3), Some(200 + 10))
        );
        assert!(matches!(
            one("vs133", r#"{"line_1_period_in":5}"#),
            Err(Reject::InvalidReport(_))
        ));
    }

    #[test]
    fn rejections_have_precise_reasons() {
        let cases: &[(&str, Reject)] = &[
            (r#"{"seq":1,"in":-3}"#, Reject::NegativeCount),
            (r#"{"seq":1,"in":10001}"#, Reject::AbsurdCount),
            (
                r#"{"seq":1,"in":1,"ts":"2026-05-01T11:20:00+08:00"}"#,
                Reject::FutureTimestamp,
            ),
            (
                r#"{"seq":1,"in":1,"ts":"2025-05-01T11:20:00+08:00"}"#,
                Reject::TooOld,
            ),
        ];
        for (p, want) in cases {
            assert_eq!(&one("gate", p).unwrap_err(), want, "{p}");
        }
        // Every optional field is held to the contract, and the refusal names it: a negative
        // total must not pass for "no total".
        for (p, field) in [
            (
                r#"{"seq":1,"in":1,"total_in":-1,"total_out":0}"#,
                "total_in",
            ),
            (r#"{"seq":1,"in":1,"total_in":-1}"#, "total_in"),
            (
                r#"{"seq":1,"in":1,"total_in":5,"total_out":2.5}"#,
                "total_out",
            ),
            (
                r#"{"seq":1,"in":1,"total_in":1e20,"total_out":0}"#,
                "total_in",
            ),
            (r#"{"seq":1,"in":1,"total_in":5}"#, "total_in"),
            (r#"{"seq":1,"in":1,"total_out":5}"#, "total_out"),
            (r#"{"seq":1,"in":1,"period_s":0}"#, "period_s"),
            (r#"{"seq":1,"in":1,"period_s":-60}"#, "period_s"),
            (r#"{"seq":1,"in":1,"period_s":60.5}"#, "period_s"),
            (r#"{"seq":1,"in":1,"period_s":86401}"#, "period_s"),
        ] {
            match one("gate", p) {
                Err(Reject::InvalidReport(msg)) => {
                    assert!(msg.contains(&format!("`{field}`")), "{p}: {msg}")
                }
                other => panic!("{p}: {other:?}"),
            }
        }
        let r = one(
            "gate",
            r#"{"seq":1,"in":1,"total_in":0,"total_out":0,"period_s":86400}"#,
        )
        .unwrap();
        assert_eq!((r.total_entries, r.period_s), (Some(0), Some(86400)));
        for p in [
            r#"{"seq":1,"in":1,"in":2}"#,
            r#"{"in":1}"#,
            r#"{"seq":1,"in":"3"}"#,
            r#"{"seq":1,"in":1.5}"#,
            r#"{"seq":-1}"#,
            r#"{"seq":1,"ts":"yesterday"}"#,
            "3",
            r#"{"seq":18446744073709551615}"#,
        ] {
            assert!(
                matches!(one("gate", p), Err(Reject::InvalidReport(_))),
                "{p}"
            );
        }
        for p in ["{nope", "", "\u{0}", "[1,"] {
            assert!(
                matches!(decode("gate", p), Err(Reject::MalformedJson(_))),
                "{p:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        // Deep nesting is refused by the parser's recursion limit, never by a stack overflow.
        match decode("gate", &deep) {
            Err(Reject::MalformedJson(_)) => {}
            Ok(v) => assert!(
                v.iter()
                    .all(|r| matches!(r, Err(Reject::InvalidReport(_) | Reject::MalformedJson(_))))
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode("gate", "{\"seq\":1,\"in\":1,\"x\":\"\u{fffd}\"}"),
            Ok(v) if v[0].is_ok()
        ));
        let huge = format!(r#"{{"seq":1,"pad":"{}"}}"#, "x".repeat(300 * 1024));
        assert_eq!(decode("gate", &huge), Err(Reject::TooLarge));
        assert!(matches!(
            decode_counts(
                reg().device(reg().device_idx("gate").unwrap()),
                b"\xff\xfe",
                now(),
                &Limits::from(&IngestConfig::default()),
                &mut Vec::new()
            ),
            Err(Reject::MalformedJson(_))
        ));
        // Invalid UTF-8 is refused even inside a field the decoder would skip.
        assert!(matches!(
            decode_counts(
                reg().device(reg().device_idx("gate").unwrap()),
                b"{\"seq\":1,\"in\":1,\"x\":\"\xff\"}",
                now(),
                &Limits::from(&IngestConfig::default()),
                &mut Vec::new()
            ),
            Err(Reject::MalformedJson(_))
        ));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder, and whatever it accepts is within limits.
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let r = reg();
            for dev in ["gate", "vs133"] {
                let d = r.device(r.device_idx(dev).unwrap());
                let mut out = Vec::new();
                if decode_counts(d, &bytes, now(), &Limits::from(&IngestConfig::default()), &mut out).is_ok() {
                    for rep in out.into_iter().flatten() {
                        prop_assert!(rep.entries <= 10_000 && rep.exits <= 10_000);
                    }
                }
            }
        }

        /// Well-formed reports round-trip whatever their field order and spacing.
        #[test]
        fn well_formed_reports_decode(seq in 0u64..1u64 << 62, e in 0u32..10_000, x in 0u32..10_000, secs in 0i64..3600) {
            let ts = (now() - chrono::TimeDelta::seconds(secs)).to_rfc3339();
            let p = format!(r#"{{ "out": {x}, "ts": "{ts}", "seq": {seq}, "in": {e} }}"#);
            let r = one("gate", &p).unwrap();
            prop_assert_eq!((r.seq, r.entries, r.exits), (seq, e, x));
        }
    }
}

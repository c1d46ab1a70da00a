//! Pure decoding of what arrives from the broker: topic → (space, device, kind), payload → count
//! reports in the space's frame (entries/exits, the device's mounting direction already applied).
//! Everything that can be wrong with input is a [`Reject`] with a bounded reason for `/metrics`.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Direction, IngestConfig, PayloadFormat};
use crate::registry::Device;

/// Why an input was refused. The `as_str` names are the `reason` label of
/// `visitorflow_reports_rejected_total`, so the set is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("topic is not {{prefix}}/{{space}}/{{device}}/counts|status")]
    BadTopic,
    #[error("device is not in the registry")]
    UnknownDevice,
    #[error("topic's space does not match the device's space in the registry")]
    SpaceMismatch,
    #[error("payload larger than the configured maximum")]
    TooLarge,
    #[error("payload is not valid JSON: {0}")]
    MalformedJson(String),
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
    #[error("seq below the de-duplication window: cannot tell a late report from a replay")]
    SeqTooOld,
    #[error("array holds more reports than allowed")]
    TooManyReports,
}

impl Reject {
    pub const ALL: [Reject; 12] = [
        Reject::BadTopic,
        Reject::UnknownDevice,
        Reject::SpaceMismatch,
        Reject::TooLarge,
        Reject::MalformedJson(String::new()),
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
            Reject::SpaceMismatch => "space_mismatch",
            Reject::TooLarge => "too_large",
            Reject::MalformedJson(_) => "malformed_json",
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub space: &'a str,
    pub device: &'a str,
    pub kind: TopicKind,
}

/// Parses `{prefix}/{space}/{device}/{counts|status}`. Wildcards and empty segments are refused
/// so a topic can never address more than one device.
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Result<Topic<'a>, Reject> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(Reject::BadTopic)?;
    let mut parts = rest.split('/');
    let (Some(space), Some(device), Some(kind), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::BadTopic);
    };
    let kind = match kind {
        "counts" => TopicKind::Counts,
        "status" => TopicKind::Status,
        _ => return Err(Reject::BadTopic),
    };
    let ok = |s: &str| !s.is_empty() && !s.contains(['+', '#']);
    if !ok(space) || !ok(device) {
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
}

/// Limits a payload is checked against; from [`IngestConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_future: TimeDelta,
    pub max_age: TimeDelta,
    pub max_count: u32,
    pub max_payload: usize,
    pub max_array: usize,
}

impl From<&IngestConfig> for Limits {
    fn from(c: &IngestConfig) -> Self {
        Self {
            max_future: TimeDelta::seconds(c.max_future_skew_s),
            max_age: TimeDelta::days(c.max_age_days),
            max_count: c.max_count_per_report,
            max_payload: c.max_payload_bytes,
            max_array: 10_000,
        }
    }
}

/// The native contract: `{"seq","ts","in","out","period_s"?,"total_in"?,"total_out"?}`.
/// Counts are read as i64 so a negative value gets its own reason instead of a type error.
#[derive(Deserialize)]
struct Native {
    seq: u64,
    #[serde(default)]
    ts: Option<DateTime<FixedOffset>>,
    #[serde(default, rename = "in")]
    entries: i64,
    #[serde(default, rename = "out")]
    exits: i64,
    #[serde(default)]
    period_s: Option<u32>,
    #[serde(default)]
    total_in: Option<i64>,
    #[serde(default)]
    total_out: Option<i64>,
}

/// Milesight VS13x decoded uplink (lines 1–4), plus the `seq` (or LoRaWAN `fCnt`) and `ts` that
/// our contract needs for de-duplication.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Milesight {
    #[serde(alias = "fCnt")]
    seq: Option<u64>,
    #[serde(alias = "time", alias = "timestamp")]
    ts: Option<DateTime<FixedOffset>>,
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
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_slice(payload).map_err(|e| Reject::MalformedJson(e.to_string()))?;
        if items.len() > limits.max_array {
            return Err(Reject::TooManyReports);
        }
        for item in items {
            out.push(decode_one(device, item.get().as_bytes(), received, limits));
        }
        Ok(())
    } else {
        // Tell "not JSON" from "JSON but not a report" so the reason is precise.
        match decode_one(device, payload, received, limits) {
            Err(Reject::InvalidReport(msg))
                if serde_json::from_slice::<&RawValue>(payload).is_err() =>
            {
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
    bytes: &[u8],
    received: DateTime<Utc>,
    limits: &Limits,
) -> Result<CountReport, Reject> {
    let invalid = |e: serde_json::Error| Reject::InvalidReport(e.to_string());
    let (seq, ts, dev_in, dev_out, period_s, tot) = match device.format {
        PayloadFormat::Native => {
            let n: Native = serde_json::from_slice(bytes).map_err(invalid)?;
            let tot = match (n.total_in, n.total_out) {
                (Some(i), Some(o)) => Some((i, o)),
                _ => None,
            };
            (n.seq, n.ts, n.entries, n.exits, n.period_s, tot)
        }
        PayloadFormat::MilesightVs13x => {
            let m: Milesight = serde_json::from_slice(bytes).map_err(invalid)?;
            let seq = m
                .seq
                .ok_or_else(|| Reject::InvalidReport("missing field `seq` (or `fCnt`)".into()))?;
            let (mut e, mut x) = (0i64, 0i64);
            let mut tot = Some((0i64, 0i64));
            let mut any = false;
            for l in &device.lines {
                let [pi, po, ti, to] = m.line(l.line);
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
            (seq, m.ts, e, x, m.period_s, tot)
        }
    };
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
    let ts = ts.map(|t| t.with_timezone(&Utc)).unwrap_or(received);
    if ts - received > limits.max_future {
        return Err(Reject::FutureTimestamp);
    }
    if received - ts > limits.max_age {
        return Err(Reject::TooOld);
    }
    // Native reports state direction in the device frame; Milesight lines were mapped above.
    let (entries, exits, tot) = match (device.format, device.direction) {
        (PayloadFormat::Native, Direction::Reversed) => (dev_out, dev_in, tot.map(|(a, b)| (b, a))),
        _ => (dev_in, dev_out, tot),
    };
    Ok(CountReport {
        seq,
        ts,
        entries: entries as u32,
        exits: exits as u32,
        period_s,
        total_entries: tot.map(|t| t.0 as u64),
        total_exits: tot.map(|t| t.1 as u64),
    })
}

/// Device status (`{"online": bool}`), retained and used as the MQTT last will.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
}

pub fn decode_status(payload: &[u8]) -> Result<Status, Reject> {
    serde_json::from_slice(payload).map_err(|e| Reject::InvalidReport(e.to_string()))
}

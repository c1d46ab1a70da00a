//! What a device puts on the wire (pure): topics, the native count report, the Milesight VS13x
//! decoded uplink, a Hikvision ISAPI people-counting event (`timeRange`), a Xovis line-count
//! push, retained status payloads, and each device's running `seq` and cumulative totals.
//! This is where a flow of people becomes a device's view of it: a `reversed` device reports
//! leaving as `in`, and a Milesight line counts reversed when exactly one of the device's and the
//! line's `direction` is `reversed`.

use std::fmt::Display;

use chrono::{DateTime, SecondsFormat, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::traffic::Flow;
use crate::registry::Device;
use crate::registry::{Direction, PayloadFormat};

/// Retained on `…/status` when a device starts.
pub const ONLINE: &[u8] = br#"{"online":true}"#;
/// The device's last will, and what it publishes when it stops cleanly.
pub const OFFLINE: &[u8] = br#"{"online":false}"#;

/// `{prefix}/{space}/{device}/counts`
pub fn counts_topic(prefix: &str, space: &str, device: &str) -> String {
    format!("{prefix}/{space}/{device}/counts")
}

/// `{prefix}/{space}/{device}/status`
pub fn status_topic(prefix: &str, space: &str, device: &str) -> String {
    format!("{prefix}/{space}/{device}/status")
}

/// RFC 3339 with the instant's own offset (`2026-05-01T10:15:00+08:00`), fractions only when set.
pub fn rfc3339<Tz: TimeZone>(ts: &DateTime<Tz>) -> String
where
    Tz::Offset: Display,
{
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// One count report in the native format; a message body is one of these or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeReport {
    pub seq: u64,
    pub ts: String,
    #[serde(rename = "in")]
    pub in_count: u32,
    #[serde(rename = "out")]
    pub out_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_out: Option<u64>,
}

/// A device's running state: the next `seq` (from 1) and its cumulative counters as reported.
#[derive(Debug, Clone)]
pub struct DeviceCounter {
    seq: u64,
    total_in: u64,
    total_out: u64,
    /// Milesight lines 1–4: cumulative (in, out) as the device's uint32 registers, which wrap.
    line_totals: [(u32, u32); 4],
}

impl Default for DeviceCounter {
    fn default() -> Self {
        Self {
            seq: 1,
            total_in: 0,
            total_out: 0,
            line_totals: [(0, 0); 4],
        }
    }
}

impl DeviceCounter {
    /// The `seq` the next report will carry.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Cumulative (`in`, `out`) as reported, after direction swaps, summed over lines.
    pub fn totals(&self) -> (u64, u64) {
        (self.total_in, self.total_out)
    }

    /// Encodes `flow` through `device` during the `period_s` seconds ending at `ts` as the device
    /// publishes it, and advances `seq` and the totals.
    pub fn encode<Tz: TimeZone>(
        &mut self,
        device: &Device,
        flow: Flow,
        ts: &DateTime<Tz>,
        period_s: u32,
    ) -> Result<Vec<u8>, serde_json::Error>
    where
        Tz::Offset: Display,
    {
        let device_reversed = device.direction == Direction::Reversed;
        let body = match device.format {
            PayloadFormat::Native => {
                let (i, o) = self.count(flow, device_reversed);
                serde_json::to_vec(&NativeReport {
                    seq: self.seq,
                    ts: rfc3339(ts),
                    in_count: i,
                    out_count: o,
                    period_s: Some(period_s),
                    total_in: Some(self.total_in),
                    total_out: Some(self.total_out),
                })?
            }
            PayloadFormat::MilesightVs13x => {
                let default_line = [crate::registry::LineConfig {
                    line: 1,
                    direction: Direction::Normal,
                }];
                let lines = if device.lines.is_empty() {
                    &default_line[..]
                } else {
                    &device.lines[..]
                };
                let mut body = Map::new();
                for (k, line) in lines.iter().enumerate() {
                    let share = Flow {
                        entered: share_of(flow.entered, k, lines.len()),
                        left: share_of(flow.left, k, lines.len()),
                    };
                    let reversed = device_reversed != (line.direction == Direction::Reversed);
                    let (i, o) = oriented(share, reversed);
                    self.total_in += u64::from(i);
                    self.total_out += u64::from(o);
                    let slot = usize::from(line.line.clamp(1, 4) - 1);
                    let t = &mut self.line_totals[slot];
                    t.0 = t.0.wrapping_add(i);
                    t.1 = t.1.wrapping_add(o);
                    let n = line.line;
                    body.insert(format!("line_{n}_total_in"), t.0.into());
                    body.insert(format!("line_{n}_total_out"), t.1.into());
                    body.insert(format!("line_{n}_period_in"), i.into());
                    body.insert(format!("line_{n}_period_out"), o.into());
                }
                // Our gateway adds these to the decoded uplink.
                body.insert("seq".into(), self.seq.into());
                body.insert("ts".into(), Value::String(rfc3339(ts)));
                serde_json::to_vec(&body)?
            }
            PayloadFormat::HikvisionIsapi => {
                let line_reversed = device
                    .lines
                    .first()
                    .is_some_and(|l| l.direction == Direction::Reversed);
                let (i, o) = self.count(flow, device_reversed != line_reversed);
                let start = rfc3339(&(ts.clone() - chrono::TimeDelta::seconds(period_s.into())));
                let region = device
                    .lines
                    .first()
                    .map(|l| format!("<regionsID>{}</regionsID>", l.line))
                    .unwrap_or_default();
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\n<channelID>{}</channelID>\n<dateTime>{end}</dateTime>\n<eventType>PeopleCounting</eventType>\n<eventState>active</eventState>\n<peopleCounting>\n<statisticalMethods>timeRange</statisticalMethods>\n<TimeRange>\n<startTime>{start}</startTime>\n<endTime>{end}</endTime>\n</TimeRange>\n<enter>{i}</enter>\n<exit>{o}</exit>\n{region}</peopleCounting>\n</EventNotificationAlert>\n",
                    device.channel.unwrap_or(1),
                    end = rfc3339(ts),
                )
                .into_bytes()
            }
            // What a poll of the device would answer: its running totals.
            PayloadFormat::AxisLiveSum => {
                self.count(flow, device_reversed);
                serde_json::to_vec(&serde_json::json!({
                    "serial": device.id.as_str(), "name": device.id.as_str(),
                    "timestamp": ts.format("%Y%m%d%H%M%S").to_string(),
                    "in": self.total_in, "out": self.total_out,
                }))?
            }
            PayloadFormat::DahuaSummary => {
                self.count(flow, device_reversed);
                format!(
                    "summary.Channel=0\nsummary.EnteredSubtotal.Total={}\nsummary.ExitedSubtotal.Total={}\nsummary.RuleName=NumberStat\nsummary.UTC={}\n",
                    self.total_in,
                    self.total_out,
                    ts.timestamp()
                )
                .into_bytes()
            }
            PayloadFormat::HikvisionCounting => {
                self.count(flow, device_reversed);
                let day = ts.format("%Y-%m-%d");
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CountingStatisticsResult xmlns=\"http://www.hikvision.com/ver20/XMLSchema\" version=\"2.0\">\n<responseStatus>OK</responseStatus>\n<matchList>\n<matchElement>\n<timeSpan>\n<startTime>{day}T00:00:00</startTime>\n<endTime>{day}T23:59:59</endTime>\n</timeSpan>\n<enterCount>{}</enterCount>\n<exitCount>{}</exitCount>\n</matchElement>\n</matchList>\n</CountingStatisticsResult>\n",
                    self.total_in, self.total_out
                )
                .into_bytes()
            }
            PayloadFormat::Xovis => {
                let (i, o) = self.count(flow, device_reversed);
                // The first element the device counts, forward = in unless that line is reversed.
                let (id, reversed_line) = device
                    .lines
                    .first()
                    .map_or((0, false), |l| (l.line, l.direction == Direction::Reversed));
                let (fw, bw) = if reversed_line { (o, i) } else { (i, o) };
                let from = rfc3339(&(ts.clone() - chrono::TimeDelta::seconds(period_s.into())));
                serde_json::to_vec(&serde_json::json!({
                    "content": {"element": [{
                        "element-id": id, "element-name": device.id.as_str(), "data-type": "LINE",
                        "measurement": [{"from": from, "to": rfc3339(ts),
                            "value": [{"value": fw, "label": "fw"}, {"value": bw, "label": "bw"}]}],
                    }]},
                    "sensor-info": {"serial-number": device.id.as_str()},
                }))?
            }
        };
        self.seq += 1;
        Ok(body)
    }
}

impl DeviceCounter {
    /// `flow` as the device sees it, added to the totals.
    fn count(&mut self, flow: Flow, reversed: bool) -> (u32, u32) {
        let (i, o) = oriented(flow, reversed);
        self.total_in += u64::from(i);
        self.total_out += u64::from(o);
        (i, o)
    }
}

fn oriented(flow: Flow, reversed: bool) -> (u32, u32) {
    if reversed {
        (flow.left, flow.entered)
    } else {
        (flow.entered, flow.left)
    }
}

/// Line `k` of `lines`' part of `n`: an even split, the remainder on the first lines.
fn share_of(n: u32, k: usize, lines: usize) -> u32 {
    let lines = lines as u32;
    n / lines + u32::from((k as u32) < n % lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testutil::registry;
    use chrono::TimeZone;

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    /// What the cameras' own formats put on the wire is what the service's decoders read back:
    /// the flow in the space's frame, consecutive ticks as consecutive reports.
    #[test]
    fn camera_formats_decode_to_the_flow_they_encode() {
        use crate::config::{Config, IngestConfig};
        use crate::decode::{Limits, decode_counts};
        let reg = Config::from_toml(include_str!("../../tests/data/cameras.toml"))
            .unwrap()
            .registry()
            .unwrap();
        let limits = Limits {
            max_age: chrono::TimeDelta::days(36_500),
            ..Limits::from(&IngestConfig::default())
        };
        for id in ["hik", "hik-region-2", "xovis"] {
            let dev = reg.device(reg.device_idx(id).unwrap());
            let mut c = DeviceCounter::default();
            let mut seqs = Vec::new();
            for (k, (entered, left)) in [(5, 2), (0, 0), (9, 4)].into_iter().enumerate() {
                let ts = reg
                    .tz
                    .with_ymd_and_hms(2026, 5, 1, 10, 15 + k as u32, 0)
                    .unwrap();
                let body = c.encode(dev, Flow { entered, left }, &ts, 60).unwrap();
                let mut out = Vec::new();
                decode_counts(dev, &body, ts.to_utc(), &limits, &mut out).unwrap();
                let r = out.pop().unwrap().unwrap();
                assert_eq!(
                    (r.entries, r.exits),
                    (entered, left),
                    "{id}: {}",
                    String::from_utf8_lossy(&body)
                );
                seqs.push(r.seq);
            }
            assert_eq!(seqs[1], seqs[0] + 1, "{id}");
            assert_eq!(seqs[2], seqs[0] + 2, "{id}");
        }
    }

    #[test]
    fn native_reports_carry_seq_totals_and_local_offset() {
        let reg = registry();
        let dev = reg.device(reg.device_idx("canyon-g1").unwrap());
        let ts = reg.tz.with_ymd_and_hms(2026, 5, 1, 10, 15, 0).unwrap();
        let mut c = DeviceCounter::default();
        let a = c
            .encode(
                dev,
                Flow {
                    entered: 3,
                    left: 1,
                },
                &ts,
                60,
            )
            .unwrap();
        let b = c
            .encode(
                dev,
                Flow {
                    entered: 0,
                    left: 2,
                },
                &ts,
                60,
            )
            .unwrap();
        let a: NativeReport = serde_json::from_slice(&a).unwrap();
        let b: NativeReport = serde_json::from_slice(&b).unwrap();
        assert_eq!(a.ts, "2026-05-01T10:15:00+08:00");
        assert_eq!((a.seq, a.in_count, a.out_count), (1, 3, 1));
        assert_eq!((b.seq, b.total_in, b.total_out), (2, Some(3), Some(3)));
        assert_eq!(b.period_s, Some(60));
        assert_eq!(c.next_seq(), 3);
    }

    #[test]
    fn reversed_devices_report_leaving_as_in() {
        let reg = registry();
        let dev = reg.device(reg.device_idx("canyon-g2").unwrap());
        let ts = reg.tz.with_ymd_and_hms(2026, 5, 1, 10, 15, 0).unwrap();
        let mut c = DeviceCounter::default();
        let r: NativeReport = serde_json::from_slice(
            &c.encode(
                dev,
                Flow {
                    entered: 5,
                    left: 2,
                },
                &ts,
                60,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!((r.in_count, r.out_count), (2, 5));
    }

    #[test]
    fn milesight_lines_split_the_flow_and_reversed_lines_swap() {
        let reg = registry();
        // Lines 1 (normal) and 3 (reversed).
        let dev = reg.device(reg.device_idx("canyon-cam").unwrap());
        let ts = reg.tz.with_ymd_and_hms(2026, 5, 1, 10, 15, 0).unwrap();
        let mut c = DeviceCounter::default();
        c.encode(
            dev,
            Flow {
                entered: 7,
                left: 4,
            },
            &ts,
            60,
        )
        .unwrap();
        let v = json(
            &c.encode(
                dev,
                Flow {
                    entered: 3,
                    left: 0,
                },
                &ts,
                60,
            )
            .unwrap(),
        );
        assert_eq!(v["seq"], 2);
        assert_eq!(v["ts"], "2026-05-01T10:15:00+08:00");
        // Tick 1: line 1 takes 4 in / 2 out, line 3 takes 3 / 2 and reports them swapped.
        // Tick 2: line 1 takes 2 in, line 3 takes 1 (reported as out).
        assert_eq!(v["line_1_period_in"], 2);
        assert_eq!(v["line_1_period_out"], 0);
        assert_eq!(v["line_3_period_in"], 0);
        assert_eq!(v["line_3_period_out"], 1);
        assert_eq!(v["line_1_total_in"], 6);
        assert_eq!(v["line_1_total_out"], 2);
        assert_eq!(v["line_3_total_in"], 2);
        assert_eq!(v["line_3_total_out"], 4);
        assert!(v.get("line_2_total_in").is_none());
        // Un-swapping line 3 recovers the flow exactly.
        let n = |k: &str| v[k].as_u64().unwrap();
        assert_eq!(n("line_1_total_in") + n("line_3_total_out"), 7 + 3);
        assert_eq!(n("line_1_total_out") + n("line_3_total_in"), 4);
        assert_eq!(c.totals(), (6 + 2, 2 + 4));
    }

    #[test]
    fn topics_follow_the_contract() {
        assert_eq!(counts_topic("vf", "a", "d"), "vf/a/d/counts");
        assert_eq!(status_topic("vf", "a", "d"), "vf/a/d/status");
        assert_eq!(json(ONLINE)["online"], true);
        assert_eq!(json(OFFLINE)["online"], false);
    }
}

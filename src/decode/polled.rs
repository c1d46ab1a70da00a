//! Devices that only answer requests, pure: what to ask ([`request_body`]: Hikvision's
//! `counting/search` is a POST of the day asked for), what an Axis People Counter
//! (`live-sum.json`), a Dahua camera (`videoStatServer.cgi?action=getSummary`) or a Hikvision
//! camera (`counting/search`: the day's hourly buckets, summed) answers, as running totals
//! ([`Reading`]), and the count report a poll makes of them ([`polled_report`]).
//! Fixtures and their sources: `tests/data/vendor/SOURCES.md`.
//!
//! Neither device numbers its answers, so the poll's window is the sequence (its end in units
//! of the poll interval, as for pushed windows), the window's counts are the totals' growth since
//! the previous poll, and the totals ride along: a missed poll is a missing report that the next
//! one's totals repair, as for any device sending totals. A total that went down is a counter
//! reset (Axis counts per day): the new count since the reset is the window's.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{CountReport, Limits, Raw, Reject, finish};
use crate::registry::{Device, PayloadFormat};

/// A device's running totals (in, out) as one poll read them, in the device's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub total_in: u64,
    pub total_out: u64,
}

#[derive(Deserialize)]
struct CountingResult {
    #[serde(rename = "matchList", default)]
    list: Option<MatchList>,
}

#[derive(Deserialize)]
struct MatchList {
    #[serde(rename = "matchElement", default)]
    elements: Vec<MatchElement>,
}

#[derive(Deserialize)]
struct MatchElement {
    #[serde(rename = "enterCount", default)]
    enter: u64,
    #[serde(rename = "exitCount", default)]
    exit: u64,
}

/// The body of the poll's request, for formats asked with a POST (Hikvision: the statistics of
/// `day`, the camera's local day, by hour); `None`: a GET.
pub fn request_body(format: PayloadFormat, day: chrono::NaiveDate) -> Option<String> {
    (format == PayloadFormat::HikvisionCounting).then(|| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CountingStatisticsDescription>\n<reportType>daily</reportType>\n<timeSpanList>\n<timeSpan>\n<startTime>{day}T00:00:00</startTime>\n<endTime>{day}T23:59:59</endTime>\n</timeSpan>\n</timeSpanList>\n</CountingStatisticsDescription>\n"
        )
    })
}

#[derive(Deserialize)]
struct AxisLiveSum {
    #[serde(rename = "in")]
    total_in: u64,
    #[serde(rename = "out")]
    total_out: u64,
}

/// The answer of a poll of `device` in its format.
pub fn read(device: &Device, body: &[u8]) -> Result<Reading, Reject> {
    match device.format {
        PayloadFormat::AxisLiveSum => {
            let a: AxisLiveSum = serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    Reject::InvalidReport(format!("not an Axis live-sum answer: {e}"))
                } else {
                    Reject::MalformedJson(e.to_string())
                }
            })?;
            Ok(Reading {
                total_in: a.total_in,
                total_out: a.total_out,
            })
        }
        PayloadFormat::DahuaSummary => {
            let text = std::str::from_utf8(body)
                .map_err(|e| Reject::InvalidReport(format!("not text: {e}")))?;
            let field = |key: &str| -> Result<u64, Reject> {
                let v = text
                    .lines()
                    .filter_map(|l| l.trim().split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim())
                    .ok_or_else(|| Reject::InvalidReport(format!("no {key} in the answer")))?;
                v.parse()
                    .map_err(|_| Reject::InvalidReport(format!("{key}={v:?}: a whole number")))
            };
            Ok(Reading {
                total_in: field("summary.EnteredSubtotal.Total")?,
                total_out: field("summary.ExitedSubtotal.Total")?,
            })
        }
        PayloadFormat::HikvisionCounting => {
            let text =
                std::str::from_utf8(body).map_err(|e| Reject::MalformedXml(e.to_string()))?;
            let r: CountingResult = quick_xml::de::from_str(text).map_err(|e| match e {
                quick_xml::DeError::InvalidXml(_) | quick_xml::DeError::UnexpectedEof => {
                    Reject::MalformedXml(e.to_string())
                }
                e => Reject::InvalidReport(format!("not counting statistics: {e}")),
            })?;
            let elements = r.list.map(|l| l.elements).unwrap_or_default();
            Ok(Reading {
                total_in: elements
                    .iter()
                    .map(|e| e.enter)
                    .fold(0, u64::saturating_add),
                total_out: elements.iter().map(|e| e.exit).fold(0, u64::saturating_add),
            })
        }
        f => Err(Reject::InvalidReport(format!(
            "{f:?} devices are not polled"
        ))),
    }
}

/// How far a running total moved from `before` to `after`: the difference; across a 32-bit
/// counter's wrap (from near 2³² to near 0) the distance through it; after any other decrease (a
/// reset: Axis counts per day, Dahua's can be cleared) what was counted since the reset.
pub fn growth(before: u64, after: u64) -> u64 {
    const WRAP: u64 = 1 << 32;
    const NEAR: u64 = 1 << 24;
    if after >= before {
        after - before
    } else if (WRAP - NEAR..WRAP).contains(&before) && after < NEAR {
        WRAP - before + after
    } else {
        after
    }
}

/// The report of the poll ending window `seq` (of `period_s` seconds, ending at `end`): the
/// growth of the totals since `previous` (none: this poll only sets the baseline, and the totals
/// repair any windows missed since the device's last stored report).
pub fn polled_report(
    device: &Device,
    previous: Option<Reading>,
    now: Reading,
    seq: u64,
    period_s: u32,
    end: DateTime<Utc>,
    limits: &Limits,
) -> Result<CountReport, Reject> {
    let grown = |before: u64, after: u64| -> i64 {
        i64::try_from(growth(before, after)).unwrap_or(i64::MAX)
    };
    let (entries, exits) = match previous {
        Some(p) => (
            grown(p.total_in, now.total_in),
            grown(p.total_out, now.total_out),
        ),
        None => (0, 0),
    };
    let total = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    finish(
        device,
        Raw {
            seq,
            ts: Some(end.fixed_offset()),
            entries,
            exits,
            period_s: Some(period_s),
            totals: Some((total(now.total_in), total(now.total_out))),
            device_frame: true,
        },
        end,
        limits,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, IngestConfig};

    const REG: &str = include_str!("../../tests/data/cameras.toml");

    fn device(id: &str) -> Device {
        let reg = Config::from_toml(REG).unwrap().registry().unwrap();
        reg.device(reg.device_idx(id).unwrap()).clone()
    }

    #[test]
    fn the_documented_answers_read_as_running_totals() {
        let axis = include_str!("../../tests/data/vendor/axis-live-sum.json");
        assert_eq!(
            read(&device("axis"), axis.as_bytes()),
            Ok(Reading {
                total_in: 12,
                total_out: 318
            })
        );
        let dahua = include_str!("../../tests/data/vendor/dahua-getsummary.txt");
        assert_eq!(
            read(&device("dahua"), dahua.as_bytes()),
            Ok(Reading {
                total_in: 1,
                total_out: 10
            })
        );
        assert_eq!(
            read(&device("axis"), b"{oops").unwrap_err().as_str(),
            "malformed_json"
        );
        assert!(
            read(&device("dahua"), b"summary.Channel=0")
                .unwrap_err()
                .to_string()
                .contains("EnteredSubtotal")
        );
        assert!(
            read(
                &device("dahua"),
                dahua.replace("Total=1\n", "Total=x\n").as_bytes()
            )
            .is_err()
        );
    }

    #[test]
    fn a_poll_counts_the_growth_since_the_previous_and_carries_the_totals() {
        let d = device("axis");
        let limits = Limits::from(&IngestConfig::default());
        let end = Utc::now();
        let r = |prev, now, seq| polled_report(&d, prev, now, seq, 60, end, &limits).unwrap();
        let at = |i, o| Reading {
            total_in: i,
            total_out: o,
        };
        let first = r(None, at(12, 318), 100);
        assert_eq!(
            (first.entries, first.exits, first.total_entries),
            (0, 0, Some(12))
        );
        let next = r(Some(at(12, 318)), at(20, 319), 101);
        assert_eq!((next.seq, next.entries, next.exits), (101, 8, 1));
        // Midnight: the camera's day starts again; what it counted since is this window's.
        let reset = r(Some(at(4000, 3990)), at(3, 0), 102);
        assert_eq!((reset.entries, reset.exits), (3, 0));
        // A 32-bit register wrapping: the distance through the wrap.
        let wrapped = r(Some(at(u64::from(u32::MAX) - 4, 7)), at(5, 9), 103);
        assert_eq!((wrapped.entries, wrapped.exits), (10, 2));
    }

    proptest::proptest! {
        #[test]
        fn growth_across_a_wrap_is_the_distance(
            before in 0u64..(1 << 32), step in 0u64..(1 << 20),
        ) {
            let after = (before + step) % (1 << 32);
            let g = growth(before, after);
            if before + step < (1 << 32) || before >= (1 << 32) - (1 << 24) {
                proptest::prop_assert_eq!(g, step);
            } else {
                proptest::prop_assert_eq!(g, after);
            }
        }
    }
}

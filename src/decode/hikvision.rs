//! Hikvision ISAPI people counting, as a camera pushes it to an HTTP listening host: an
//! `EventNotificationAlert` (XML) of `eventType` `PeopleCounting`. Fixtures and their sources:
//! `tests/data/vendor/SOURCES.md`.
//!
//! - `timeRange` statistics (周期统计) count `enter`/`exit` over `startTime`–`endTime`: one report,
//!   its window the sequence ([`super::window_seq`]), so a resend (`isDataRetransmission`, or a
//!   retry after our 503) is a duplicate and a window that never came is a missing report.
//! - `realTime` statistics carry the day's running totals at the moment of the event. They are
//!   refused with the reason: a running total without a sequence cannot be counted exactly once.
//! - The camera's channel must be the device's; with several counting regions, the device names
//!   the one it counts in `lines` (a region id), since each region is pushed as its own event.
//!
//! Either a bare XML body or `multipart/form-data` whose part holds the XML (newer firmware)
//! arrives here; the caller hands over the XML.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{Raw, Reject, window_seq};
use crate::registry::Device;

#[derive(Debug, Deserialize)]
struct Alert {
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(rename = "channelID", default)]
    channel: Option<u32>,
    #[serde(rename = "peopleCounting")]
    counting: Option<Counting>,
}

#[derive(Debug, Deserialize)]
struct Counting {
    #[serde(rename = "statisticalMethods")]
    method: String,
    #[serde(rename = "TimeRange", default)]
    range: Option<Range>,
    enter: i64,
    exit: i64,
    #[serde(rename = "regionsID", default)]
    region: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Range {
    #[serde(rename = "startTime")]
    start: DateTime<FixedOffset>,
    #[serde(rename = "endTime")]
    end: DateTime<FixedOffset>,
}

/// The XML of one event (a multipart body's part already taken out).
pub(super) fn decode(device: &Device, payload: &[u8]) -> Result<Raw, Reject> {
    let text = std::str::from_utf8(payload).map_err(|e| Reject::MalformedXml(e.to_string()))?;
    let alert: Alert =
        quick_xml::de::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| match e {
            quick_xml::DeError::InvalidXml(_) | quick_xml::DeError::UnexpectedEof => {
                Reject::MalformedXml(e.to_string())
            }
            e => Reject::InvalidReport(format!("not an ISAPI event: {e}")),
        })?;
    let invalid = |m: String| Err(Reject::InvalidReport(m));
    if !alert.event_type.eq_ignore_ascii_case("PeopleCounting") {
        return invalid(format!(
            "eventType {:?}: only PeopleCounting events carry counts",
            alert.event_type
        ));
    }
    let channel = alert.channel.unwrap_or(1);
    if channel != device.channel.unwrap_or(1) {
        return invalid(format!(
            "channel {channel} is not this device's ({})",
            device.channel.unwrap_or(1)
        ));
    }
    let Some(c) = alert.counting else {
        return invalid("no peopleCounting element".into());
    };
    let line = device.lines.first();
    let wanted = line.map(|l| u32::from(l.line));
    if c.region.is_some() && wanted.is_some() && c.region != wanted {
        return invalid(format!(
            "region {} is not this device's ({})",
            c.region.unwrap_or(0),
            wanted.unwrap_or(0)
        ));
    }
    if !c.method.eq_ignore_ascii_case("timeRange") {
        return invalid(format!(
            "statisticalMethods {:?}: running totals cannot be counted exactly once; set the camera's people counting upload to timeRange (周期统计)",
            c.method
        ));
    }
    let Some(range) = c.range else {
        return invalid("timeRange statistics without TimeRange".into());
    };
    let (seq, period_s) = window_seq(range.start, range.end)?;
    // The region's own mounting, then the device's (in `finish`).
    let (entries, exits) = match line.map(|l| l.direction) {
        Some(crate::registry::Direction::Reversed) => (c.exit, c.enter),
        _ => (c.enter, c.exit),
    };
    Ok(Raw {
        seq,
        ts: Some(range.end),
        entries,
        exits,
        period_s: Some(period_s),
        totals: None,
        device_frame: true,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use crate::config::{Config, IngestConfig};
    use crate::decode::{CountReport, Limits, Reject, decode_counts};
    use crate::registry::Registry;

    const REG: &str = include_str!("../../tests/data/cameras.toml");
    const TIME_RANGE: &str = include_str!("../../tests/data/vendor/hikvision-timerange.xml");
    const TIME_RANGE_REGION: &str =
        include_str!("../../tests/data/vendor/hikvision-timerange-region.xml");
    const REAL_TIME: &str = include_str!("../../tests/data/vendor/hikvision-realtime.xml");
    const REAL_TIME_V2: &str =
        include_str!("../../tests/data/vendor/hikvision-realtime-isapi20.xml");

    fn decode(
        device: &str,
        payload: &str,
        at: &str,
    ) -> Result<Vec<Result<CountReport, Reject>>, Reject> {
        let reg: Registry = Config::from_toml(REG).unwrap().registry().unwrap();
        let d = reg.device(reg.device_idx(device).unwrap());
        let received: DateTime<Utc> = DateTime::parse_from_rfc3339(at).unwrap().to_utc();
        let limits = Limits {
            max_age: chrono::TimeDelta::days(36_500),
            ..Limits::from(&IngestConfig::default())
        };
        let mut out = Vec::new();
        decode_counts(d, payload.as_bytes(), received, &limits, &mut out)?;
        Ok(out)
    }

    fn one(device: &str, payload: &str, at: &str) -> Result<CountReport, Reject> {
        let mut v = decode(device, payload, at)?;
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    #[test]
    fn a_time_range_event_is_one_window_of_the_sequence() {
        let r = one("hik", TIME_RANGE, "2020-04-19T19:35:01+02:00").unwrap();
        let end = DateTime::parse_from_rfc3339("2020-04-19T19:35:00+02:00").unwrap();
        assert_eq!(r.ts, end.to_utc());
        assert_eq!((r.entries, r.exits, r.period_s), (0, 0, Some(120)));
        assert_eq!(r.seq, (end.timestamp() / 120) as u64);
        // The next window is the next report: consecutive seqs, no gap.
        let next = TIME_RANGE
            .replace("19:33:00", "19:35:00")
            .replace(
                "<endTime>2020-04-19T19:35:00",
                "<endTime>2020-04-19T19:37:00",
            )
            .replace("<enter>0</enter>", "<enter>6</enter>");
        let n = one("hik", &next, "2020-04-19T19:37:01+02:00").unwrap();
        assert_eq!((n.seq, n.entries), (r.seq + 1, 6));
        // CRLF line ends and a region and child counts as captured.
        let r = one("hik", TIME_RANGE_REGION, "2021-10-12T19:15:05+08:00").unwrap();
        assert_eq!((r.entries, r.exits, r.period_s), (0, 1, Some(900)));
    }

    #[test]
    fn the_region_and_channel_must_be_the_devices_and_its_direction_applies() {
        let region2 = TIME_RANGE_REGION
            .replace("<regionsID>1</regionsID>", "<regionsID>2</regionsID>")
            .replace("<channelID>1</channelID>", "<channelID>2</channelID>");
        let r = one("hik-region-2", &region2, "2021-10-12T19:15:05+08:00").unwrap();
        // Reversed: the camera's exit is an entry.
        assert_eq!((r.entries, r.exits), (1, 0));
        let e = one(
            "hik-region-2",
            TIME_RANGE_REGION,
            "2021-10-12T19:15:05+08:00",
        )
        .unwrap_err();
        assert!(e.to_string().contains("channel 1"), "{e}");
        let other = region2.replace("<regionsID>2</regionsID>", "<regionsID>3</regionsID>");
        let e = one("hik-region-2", &other, "2021-10-12T19:15:05+08:00").unwrap_err();
        assert!(e.to_string().contains("region 3"), "{e}");
    }

    #[test]
    fn running_totals_and_other_events_are_refused_with_the_reason() {
        for (xml, at) in [
            (REAL_TIME, "2021-06-22T16:36:20+08:00"),
            (REAL_TIME_V2, "2024-07-08T12:27:30+08:00"),
        ] {
            let e = one("hik", xml, at).unwrap_err();
            assert_eq!(e.as_str(), "invalid_report");
            assert!(e.to_string().contains("timeRange"), "{e}");
        }
        let motion = TIME_RANGE.replace("PeopleCounting", "VMD");
        assert!(
            one("hik", &motion, "2020-04-19T19:35:01+02:00")
                .unwrap_err()
                .to_string()
                .contains("VMD")
        );
        assert_eq!(
            decode(
                "hik",
                "<EventNotificationAlert><oops",
                "2020-04-19T19:35:01+02:00"
            )
            .unwrap_err()
            .as_str(),
            "malformed_xml"
        );
        let backwards = TIME_RANGE.replace(
            "<startTime>2020-04-19T19:33:00",
            "<startTime>2020-04-19T19:36:00",
        );
        assert!(one("hik", &backwards, "2020-04-19T19:35:01+02:00").is_err());
        let negative = TIME_RANGE.replace("<enter>0</enter>", "<enter>-3</enter>");
        assert_eq!(
            one("hik", &negative, "2020-04-19T19:35:01+02:00").unwrap_err(),
            Reject::NegativeCount
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode("hik", &text, "2020-04-19T19:35:01+02:00");
        }

        #[test]
        fn never_panics_on_mangled_events(cut in 0usize..700, junk in "[<>/a-zA-Z0-9 -]{0,12}") {
            let mut s = TIME_RANGE.to_owned();
            let at = cut.min(s.len());
            let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s.insert_str(at, &junk);
            let _ = decode("hik", &s, "2020-04-19T19:35:01+02:00");
        }
    }
}

//! Xovis line-count push (JSON, "Line count data"): per counting element (a line) and measurement
//! window `from`–`to`, `fw` (forward) and `bw` (backward) counts. A push may carry several windows
//! and elements; each window becomes one report summing the device's elements (`lines`: element
//! ids with their direction; default every element, forward = in), its window the sequence
//! ([`super::window_seq`]): a resent window is a duplicate. Fixture and sources:
//! `tests/data/vendor/SOURCES.md`.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer};

use super::{Limits, Raw, Reject, window_seq};
use crate::registry::{Device, Direction};

#[derive(Debug, Deserialize)]
struct Push {
    content: Content,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    element: Vec<Element>,
}

#[derive(Debug, Deserialize)]
struct Element {
    #[serde(rename = "element-id")]
    id: u32,
    #[serde(default)]
    measurement: Vec<Measurement>,
}

#[derive(Debug, Deserialize)]
struct Measurement {
    #[serde(deserialize_with = "xovis_time")]
    from: DateTime<FixedOffset>,
    #[serde(deserialize_with = "xovis_time")]
    to: DateTime<FixedOffset>,
    #[serde(default)]
    value: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Value {
    value: i64,
    label: String,
}

/// RFC 3339, or the sensor's colon-less offset (`2026-05-01T10:14:00+0800`).
fn xovis_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map_err(|e| serde::de::Error::custom(format!("time {s:?}: {e}")))
}

/// Per window (`from`, `to`): (in, out) in the space's frame, or the first problem met.
type Windows = BTreeMap<(DateTime<FixedOffset>, DateTime<FixedOffset>), Result<(i64, i64), Reject>>;

/// One result per window of the push (a bad window does not cost the others); `Err` for the
/// whole payload.
pub(super) fn decode(
    device: &Device,
    payload: &[u8],
    limits: &Limits,
) -> Result<Vec<Result<Raw, Reject>>, Reject> {
    let push: Push = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            Reject::InvalidReport(format!("not a Xovis line-count push: {e}"))
        } else {
            Reject::MalformedJson(e.to_string())
        }
    })?;
    let direction = |id: u32| -> Option<Direction> {
        if device.lines.is_empty() {
            return Some(Direction::Normal);
        }
        device
            .lines
            .iter()
            .find(|l| u32::from(l.line) == id)
            .map(|l| l.direction)
    };
    let mut windows: Windows = BTreeMap::new();
    let mut counted = false;
    for el in &push.content.element {
        let Some(dir) = direction(el.id) else {
            continue;
        };
        counted = true;
        for m in &el.measurement {
            let mut fw_bw = (0i64, 0i64);
            let mut bad = None;
            for v in &m.value {
                if v.value < 0 {
                    bad = Some(Reject::NegativeCount);
                }
                match v.label.as_str() {
                    "fw" => fw_bw.0 = fw_bw.0.saturating_add(v.value),
                    "bw" => fw_bw.1 = fw_bw.1.saturating_add(v.value),
                    other => {
                        bad = Some(Reject::InvalidReport(format!(
                            "value label {other:?}: fw or bw"
                        )))
                    }
                }
            }
            let (i, o) = match dir {
                Direction::Normal => fw_bw,
                Direction::Reversed => (fw_bw.1, fw_bw.0),
            };
            let slot = windows.entry((m.from, m.to)).or_insert(Ok((0, 0)));
            *slot = match (slot.clone(), bad) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(b)) => Err(b),
                (Ok((a, b)), None) => Ok((a.saturating_add(i), b.saturating_add(o))),
            };
        }
    }
    if !counted {
        return Err(Reject::InvalidReport(
            "none of the device's elements (lines) in the push".into(),
        ));
    }
    if windows.len() > limits.max_array {
        return Err(Reject::TooManyReports);
    }
    Ok(windows
        .into_iter()
        .map(|((from, to), counts)| {
            let (entries, exits) = counts?;
            let (seq, period_s) = window_seq(from, to)?;
            Ok(Raw {
                seq,
                ts: Some(to),
                entries,
                exits,
                period_s: Some(period_s),
                totals: None,
                // Elements carry their own direction; the device's applies on top.
                device_frame: true,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use proptest::prelude::*;

    use crate::config::{Config, IngestConfig};
    use crate::decode::{CountReport, Limits, Reject, decode_counts};

    const REG: &str = include_str!("../../tests/data/cameras.toml");
    const PUSH: &str = include_str!("../../tests/data/vendor/xovis-line-count.json");

    fn decode(payload: &str) -> Result<Vec<Result<CountReport, Reject>>, Reject> {
        let reg = Config::from_toml(REG).unwrap().registry().unwrap();
        let d = reg.device(reg.device_idx("xovis").unwrap());
        let received = DateTime::parse_from_rfc3339("2026-05-01T10:15:05+08:00")
            .unwrap()
            .to_utc();
        let mut out = Vec::new();
        decode_counts(
            d,
            payload.as_bytes(),
            received,
            &Limits::from(&IngestConfig::default()),
            &mut out,
        )?;
        Ok(out)
    }

    #[test]
    fn each_window_is_one_report_summing_the_devices_elements() {
        let r: Vec<CountReport> = decode(PUSH)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), 2);
        // Element 0 forward = in; element 1 is mounted reversed (its bw is in).
        assert_eq!((r[0].entries, r[0].exits), (7, 3));
        assert_eq!((r[1].entries, r[1].exits), (7, 5));
        assert_eq!(
            r[1].seq,
            r[0].seq + 1,
            "consecutive minutes, consecutive reports"
        );
        assert_eq!(r[0].period_s, Some(60));
        let end = DateTime::parse_from_rfc3339("2026-05-01T10:15:00+08:00").unwrap();
        assert_eq!(r[1].ts, end.to_utc());
    }

    #[test]
    fn bad_pushes_are_refused_with_the_reason() {
        assert_eq!(decode("{not json").unwrap_err().as_str(), "malformed_json");
        assert_eq!(
            decode("{\"content\": 3}").unwrap_err().as_str(),
            "invalid_report"
        );
        let none = PUSH
            .replace("\"element-id\": 0", "\"element-id\": 7")
            .replace("\"element-id\": 1", "\"element-id\": 8");
        assert!(
            decode(&none)
                .unwrap_err()
                .to_string()
                .contains("none of the device's elements")
        );
        let label = PUSH.replacen("\"label\": \"bw\"", "\"label\": \"sideways\"", 1);
        let r = decode(&label).unwrap();
        assert!(
            r[0].is_err() && r[1].is_ok(),
            "one bad window leaves the others"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn counts_survive_any_values(fw in 0i64..20_000, bw in -5i64..20_000) {
            let p = PUSH.replacen(
                r#"[{"value": 7, "label": "fw"}, {"value": 2, "label": "bw"}]"#,
                &format!(r#"[{{"value": {fw}, "label": "fw"}}, {{"value": {bw}, "label": "bw"}}]"#),
                1,
            );
            let r = decode(&p).unwrap();
            if bw < 0 {
                prop_assert!(r[0].is_err());
            } else if fw > 10_000 || bw + 1 > 10_000 {
                prop_assert!(r[0].is_err());
            } else {
                prop_assert_eq!(r[0].as_ref().unwrap().entries as i64, fw);
            }
        }
    }
}

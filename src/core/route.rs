//! The router: what one MQTT message is, decided without I/O. It parses the topic, resolves the
//! space or device in the registry, checks that a device publishes under its own space, and
//! decodes the payload. Refusals come back as values ([`Routed::Rejected`], or `Err` items among
//! the decoded reports) for the ingest shell to log and count; nothing here logs or counts.

use chrono::{DateTime, Utc};

use crate::decode::{self, CountReport, HazardSignal, Limits, Reject, TopicKind};
use crate::ids::{DeviceIdx, SpaceIdx};
use crate::registry::Registry;

/// What a message turned out to be.
#[derive(Debug, PartialEq)]
pub enum Routed<'t> {
    /// A hazard signal for a space.
    Hazard {
        space: SpaceIdx,
        signal: HazardSignal,
    },
    /// A ticketing message for a space; the payload is the caller's to decode (the reservation
    /// model sits above this layer).
    Tickets { space: SpaceIdx },
    /// A device's online/offline status.
    Status { device: DeviceIdx, online: bool },
    /// A device's count reports, decoded into the caller's buffer: each item is a report or the
    /// reason that one was refused (the others stand).
    Counts { device: DeviceIdx },
    /// The whole message is refused.
    Rejected(Rejected<'t>),
}

/// A refused message: why, and which device and topic it came on (for the log line).
#[derive(Debug, PartialEq)]
pub struct Rejected<'t> {
    pub reason: Reject,
    /// The topic's device segment, when the topic had one.
    pub device: Option<&'t str>,
    pub topic: &'t str,
}

/// Routing needs the registry, the topic prefix and the decoder's limits.
pub struct Router<'a> {
    pub registry: &'a Registry,
    pub prefix: &'a str,
    pub limits: &'a Limits,
}

impl Router<'_> {
    /// Routes one message received at `received`. Count reports are decoded into `reports`
    /// (cleared first; a reused buffer keeps the hot path free of allocations).
    pub fn route<'t>(
        &self,
        topic: &'t str,
        payload: &[u8],
        received: DateTime<Utc>,
        reports: &mut Vec<Result<CountReport, Reject>>,
    ) -> Routed<'t> {
        let reject = |reason, device| {
            Routed::Rejected(Rejected {
                reason,
                device,
                topic,
            })
        };
        let parsed = match decode::parse_topic(self.prefix, topic) {
            Ok(t) => t,
            Err(r) => return reject(r, None),
        };
        if parsed.kind == TopicKind::Hazard {
            let Some(space) = self.registry.space_idx(parsed.space) else {
                return reject(Reject::UnknownSpace, None);
            };
            return match decode::decode_hazard(payload) {
                Ok(signal) => Routed::Hazard { space, signal },
                Err(r) => reject(r, None),
            };
        }
        if parsed.kind == TopicKind::Tickets {
            return match self.registry.space_idx(parsed.space) {
                None => reject(Reject::UnknownSpace, None),
                Some(_) if payload.len() > self.limits.max_payload => {
                    reject(Reject::TooLarge, None)
                }
                Some(space) => Routed::Tickets { space },
            };
        }
        let name = Some(parsed.device);
        let Some(device) = self.registry.device_idx(parsed.device) else {
            return reject(Reject::UnknownDevice, name);
        };
        let d = self.registry.device(device);
        if self.registry.space(d.space).id.as_str() != parsed.space {
            return reject(Reject::SpaceMismatch, name);
        }
        match parsed.kind {
            TopicKind::Status => match decode::decode_status(payload) {
                Ok(s) => Routed::Status {
                    device,
                    online: s.online,
                },
                Err(r) => reject(r, name),
            },
            TopicKind::Counts | TopicKind::Hazard | TopicKind::Tickets => {
                reports.clear();
                match decode::decode_counts(d, payload, received, self.limits, reports) {
                    Ok(()) => Routed::Counts { device },
                    Err(r) => reject(r, name),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ingest::IngestConfig;

    const REG: &str = include_str!("../../tests/data/one-area.toml");

    fn route(topic: &str, payload: &str) -> (String, Vec<Result<CountReport, Reject>>) {
        let reg = Config::from_toml(REG).unwrap().registry().unwrap();
        let limits = Limits::from(&IngestConfig::default());
        let router = Router {
            registry: &reg,
            prefix: "vf",
            limits: &limits,
        };
        let received = DateTime::parse_from_rfc3339("2026-05-01T10:20:00+08:00")
            .unwrap()
            .to_utc();
        let mut reports = Vec::new();
        let routed = router.route(topic, payload.as_bytes(), received, &mut reports);
        (format!("{routed:?}"), reports)
    }

    fn rejected(topic: &str, payload: &str) -> String {
        let (r, _) = route(topic, payload);
        assert!(r.starts_with("Rejected"), "{r}");
        r
    }

    const REPORT: &str = r#"{"seq":1,"ts":"2026-05-01T10:19:00+08:00","in":3,"out":1}"#;

    #[test]
    fn counts_of_a_known_device_are_decoded() {
        let (r, reports) = route("vf/area/gate/counts", REPORT);
        assert!(r.starts_with("Counts"), "{r}");
        assert_eq!(reports.len(), 1);
        let report = reports[0].as_ref().unwrap();
        assert_eq!((report.seq, report.entries, report.exits), (1, 3, 1));
    }

    #[test]
    fn refusals_name_their_reason_and_device() {
        assert!(rejected("other/area/gate/counts", REPORT).contains("device: None"));
        let r = rejected("vf/area/nobody/counts", REPORT);
        assert!(
            r.contains("UnknownDevice") && r.contains("Some(\"nobody\")"),
            "{r}"
        );
        let r = rejected("vf/county/gate/counts", REPORT);
        assert!(
            r.contains("SpaceMismatch") && r.contains("Some(\"gate\")"),
            "{r}"
        );
        assert!(rejected("vf/area/gate/counts", "{not json").contains("Some(\"gate\")"));
        let huge = format!("[{}]", vec![REPORT; 20_000].join(","));
        assert!(rejected("vf/area/gate/counts", &huge).contains("Rejected"));
        assert!(rejected("vf/nowhere/hazard", r#"{"kind":"storm"}"#).contains("UnknownSpace"));
        assert!(rejected("vf/nowhere/tickets", "{}").contains("UnknownSpace"));
        assert!(route("vf/area/tickets", "{}").0.starts_with("Tickets"));
    }

    #[test]
    fn one_bad_report_in_an_array_leaves_the_others() {
        let bad = r#"{"seq":2,"ts":"2026-05-01T10:19:30+08:00","in":-1,"out":0}"#;
        let (r, reports) = route("vf/area/gate/counts", &format!("[{REPORT},{bad}]"));
        assert!(r.starts_with("Counts"), "{r}");
        assert!(reports[0].is_ok());
        assert!(reports[1].is_err());
    }

    #[test]
    fn status_messages_carry_online() {
        let (r, _) = route("vf/area/gate/status", r#"{"online":false}"#);
        assert!(
            r.starts_with("Status") && r.contains("online: false"),
            "{r}"
        );
    }
}

//! What a receiver's reply means: Delivered, Retry (with its `Retry-After`) or Fail, from the
//! status, the headers and, for the robots, the body. Pure: the time is given.

use std::time::{Duration, SystemTime};

use http::header::{LOCATION, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use url::Url;

use super::{Outcome, redacted_url};
use crate::retry::MAX_RETRY_AFTER;
use crate::webhook::format::Format;

/// DingTalk and WeCom answer HTTP 200 with `{"errcode": N, "errmsg": "…"}`.
#[derive(Deserialize)]
struct RobotReply {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// Robot error codes worth retrying: rate limits and "system busy" (-1, both robots).
fn robot_retryable(format: Format, errcode: i64) -> bool {
    match format {
        // 130101: sending too fast (20 messages a minute per robot).
        Format::DingTalk => matches!(errcode, -1 | 130101),
        // 45009: API frequency limit (20 messages a minute per robot).
        Format::WeCom => matches!(errcode, -1 | 45009),
        Format::Json | Format::Alertmanager | Format::Ticketing => false,
    }
}

/// What a reply means for the outbox. `body` is `None` when it could not be read.
pub(super) fn classify(
    format: Format,
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    latency: Duration,
    now: SystemTime,
) -> Outcome {
    let code = status.as_u16();
    let said = || body.map(excerpt).unwrap_or_default();
    if status.is_success() {
        let robot = match format {
            Format::DingTalk => "dingtalk",
            Format::WeCom => "wecom",
            Format::Json | Format::Alertmanager | Format::Ticketing => {
                return Outcome::Delivered {
                    status: code,
                    latency,
                };
            }
        };
        let Some(body) = body else {
            return Outcome::Retry {
                after: None,
                reason: format!("{robot}: HTTP {code} but the reply was lost"),
            };
        };
        return match serde_json::from_slice::<RobotReply>(body) {
            Ok(r) if r.errcode == 0 => Outcome::Delivered {
                status: code,
                latency,
            },
            Ok(r) if robot_retryable(format, r.errcode) => Outcome::Retry {
                after: None,
                reason: format!("{robot} errcode {}: {}", r.errcode, r.errmsg),
            },
            Ok(r) => Outcome::Fail {
                reason: format!("{robot} errcode {}: {}", r.errcode, r.errmsg),
            },
            // Not a robot at this URL (a portal page, a wrong endpoint): retrying will not help.
            Err(_) => Outcome::Fail {
                reason: format!("{robot}: HTTP {code} without an errcode: {}", said()),
            },
        };
    }
    match code {
        429 | 503 => Outcome::Retry {
            after: retry_after(headers, now),
            reason: format!("HTTP {code}: {}", said()),
        },
        408 | 500..=599 => Outcome::Retry {
            after: None,
            reason: format!("HTTP {code}: {}", said()),
        },
        300..=399 => {
            let to = headers
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Url::parse(l).ok())
                .map(|u| redacted_url(&u))
                .unwrap_or_default();
            Outcome::Fail {
                reason: format!("HTTP {code} redirect {to} (redirects are not followed)"),
            }
        }
        _ => Outcome::Fail {
            reason: format!("HTTP {code}: {}", said()),
        },
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`]; a date already past
/// means now.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// The first 200 characters of a reply, on one line.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        out.push('…');
    }
    out
}

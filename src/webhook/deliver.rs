//! One delivery attempt over HTTP, and what the caller should do next: [`Deliverer::deliver_once`]
//! returns Delivered, Retry (with the receiver's `Retry-After` when it gave one) or Fail
//! (permanent). Also the retry delay ([`backoff`]) and the SSRF guard ([`check_url`]).
//!
//! Retrying, persisting and counting attempts belong to the outbox: this module holds no state
//! between attempts. Every attempt of one event carries the same `Idempotency-Key` and
//! `webhook-id` (the event's `delivery_id`) so receivers can drop duplicates, and a fresh
//! timestamp and signature.
//!
//! The SSRF guard works twice: [`check_url`] refuses bad schemes, `localhost` and literal
//! addresses before anything is sent, and the HTTP client used for targets without
//! `allow_private_network` resolves names through a resolver that refuses the same address
//! ranges, so a name that resolves (or re-resolves, DNS rebinding) to an internal address is
//! never connected to. Redirects are not followed: a 3xx could point anywhere.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use url::{Host, Url};

use super::format::{Format, Language, RenderOptions, render};
use super::model::AlertEvent;
use super::{Secret, sign};

/// Where and how to deliver: built from a [`super::SubscriptionConfig`] by its `target()`.
#[derive(Clone)]
pub struct Target {
    /// The subscription's id (Alertmanager's `receiver`).
    pub id: String,
    pub url: Url,
    pub format: Format,
    pub secret: Option<Secret>,
    /// Extra headers; ours (content type, idempotency, signature) win over them.
    pub headers: HeaderMap,
    pub language: Language,
    pub allow_private_network: bool,
}

impl Target {
    /// A target with no secret, no extra headers, Chinese text, public addresses only.
    pub fn new(id: impl Into<String>, url: Url, format: Format) -> Self {
        Self {
            id: id.into(),
            url,
            format,
            secret: None,
            headers: HeaderMap::new(),
            language: Language::Zh,
            allow_private_network: false,
        }
    }
}

/// Robot URLs carry their credential in the query (`access_token=`, `key=`): never printed.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("id", &self.id)
            .field("url", &redacted_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("headers", &self.headers)
            .field("language", &self.language)
            .field("allow_private_network", &self.allow_private_network)
            .finish()
    }
}

/// The URL without its query (robot keys live there), for logs and error messages.
pub fn redacted_url(url: &Url) -> String {
    let mut u = url.clone();
    let had_query = u.query().is_some();
    u.set_query(None);
    let _ = u.set_password(None);
    if had_query {
        format!("{u}?***")
    } else {
        u.to_string()
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Whole request, connection to last byte of the reply.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// visitorflow's public base URL, given to the formats.
    pub external_url: Option<String>,
    /// An outbound HTTP(S) proxy, when the server reaches the internet only through one. The
    /// environment's proxy variables are ignored. Through a proxy, the proxy resolves names:
    /// the resolved-address check then cannot run (literal addresses are still refused).
    pub proxy: Option<Url>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            external_url: None,
            proxy: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The HTTP status, when a reply came (also for Retry and Fail).
    pub http_status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: u16,
        latency: Duration,
    },
    /// Try again: after `after` when the receiver said so, else after [`backoff`].
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Do not try again: the request itself is wrong (4xx, refused URL, robot error).
    Fail {
        reason: String,
    },
}

/// The receiver's `Retry-After` is obeyed up to this; beyond it a misconfigured receiver would
/// park an alert for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Only this much of a reply is read (robot replies are a few dozen bytes).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Sends alert events; cheap to share (clone the `Arc` around it or pass `&`).
pub struct Deliverer {
    /// Resolves through [`GuardedResolver`]: for targets that must be public.
    public: reqwest::Client,
    /// The system resolver: for targets with `allow_private_network`.
    private: reqwest::Client,
    opts: DeliveryOptions,
}

impl Deliverer {
    pub fn new(opts: DeliveryOptions) -> Result<Self, DeliverError> {
        Ok(Self {
            public: client(&opts, true)?,
            private: client(&opts, false)?,
            opts,
        })
    }

    /// One attempt to deliver `event` to `target`. Never panics and never returns an error: every
    /// failure is an [`Outcome`] the outbox can store.
    pub async fn deliver_once(&self, target: &Target, event: &AlertEvent) -> Attempt {
        if let Err(e) = check_url(&target.url, target.allow_private_network) {
            return fail(format!("refused URL: {e}"));
        }
        self.send(target, event).await
    }

    /// One attempt to POST a body that is not an alert (the daily report pushed upstream) to
    /// `target`: the same URL guard, `Idempotency-Key` and `webhook-id` (`delivery_id`, the same
    /// on every retry), signature by the target's format, reply classification and outcomes as
    /// [`Self::deliver_once`].
    pub async fn post_once(
        &self,
        target: &Target,
        delivery_id: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Attempt {
        if let Err(e) = check_url(&target.url, target.allow_private_network) {
            return fail(format!("refused URL: {e}"));
        }
        self.post(target, delivery_id, content_type, body).await
    }

    /// [`Self::deliver_once`] after the literal-URL check.
    async fn send(&self, target: &Target, event: &AlertEvent) -> Attempt {
        let opts = RenderOptions {
            language: target.language,
            external_url: self.opts.external_url.clone(),
            receiver: target.id.clone(),
        };
        let rendered = render(target.format, event, &opts);
        self.post(
            target,
            &event.delivery_id,
            rendered.content_type,
            rendered.body,
        )
        .await
    }

    /// Signs and sends `body`, and classifies the reply.
    async fn post(
        &self,
        target: &Target,
        delivery_id: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Attempt {
        let mut headers = target.headers.clone();
        let Ok(content_type) = HeaderValue::from_str(content_type) else {
            return fail(format!(
                "content type {content_type:?} is not a header value"
            ));
        };
        headers.insert(CONTENT_TYPE, content_type);
        let Ok(idempotency_key) = HeaderValue::from_str(delivery_id) else {
            return fail("delivery_id cannot be sent as a header (visible ASCII only)".into());
        };
        headers.insert("idempotency-key", idempotency_key);
        let mut url = target.url.clone();
        match target.format {
            Format::Json | Format::Alertmanager => {
                let now = sign::unix_now();
                if let Err(e) = sign::standard_headers(
                    &mut headers,
                    target.secret.as_ref(),
                    delivery_id,
                    now,
                    &body,
                ) {
                    return fail(format!("cannot sign: {e}"));
                }
            }
            Format::DingTalk => {
                if let Some(secret) = &target.secret {
                    url = sign::dingtalk_signed_url(&url, secret, unix_now_ms());
                }
            }
            Format::WeCom => {}
        }

        let client = if target.allow_private_network {
            &self.private
        } else {
            &self.public
        };
        let started = Instant::now();
        let reply = client
            .post(url)
            .headers(headers)
            .timeout(self.opts.timeout)
            .body(body)
            .send()
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return self.request_error(e),
        };
        let status = reply.status();
        let reply_headers = reply.headers().clone();
        let body = read_capped(reply, MAX_REPLY_BYTES).await.ok();
        let outcome = classify(
            target.format,
            status,
            &reply_headers,
            body.as_deref(),
            started.elapsed(),
            SystemTime::now(),
        );
        Attempt {
            outcome,
            http_status: Some(status.as_u16()),
        }
    }

    fn request_error(&self, e: reqwest::Error) -> Attempt {
        // Without the URL: robot URLs carry their key.
        let e = e.without_url();
        let outcome = if let Some(refused) = find_refusal(&e) {
            Outcome::Fail {
                reason: format!("refused address: {refused}"),
            }
        } else if e.is_timeout() {
            Outcome::Retry {
                after: None,
                reason: format!("no reply within {:?}", self.opts.timeout),
            }
        } else if e.is_builder() {
            Outcome::Fail {
                reason: format!("cannot build the request: {}", chain(&e)),
            }
        } else if e.is_connect() {
            Outcome::Retry {
                after: None,
                reason: format!("cannot connect: {}", chain(&e)),
            }
        } else {
            Outcome::Retry {
                after: None,
                reason: format!("request failed: {}", chain(&e)),
            }
        };
        Attempt {
            outcome,
            http_status: None,
        }
    }
}

fn client(opts: &DeliveryOptions, guarded: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("visitorflow/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(p) = &opts.proxy {
        b = b.proxy(reqwest::Proxy::all(p.as_str())?);
    }
    if guarded {
        b = b.dns_resolver(Arc::new(GuardedResolver));
    }
    b.build()
}

fn fail(reason: String) -> Attempt {
    Attempt {
        outcome: Outcome::Fail { reason },
        http_status: None,
    }
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn read_capped(mut reply: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = reply.chunk().await? {
        let room = cap - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= cap {
            break;
        }
    }
    Ok(buf)
}

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
        Format::Json | Format::Alertmanager => false,
    }
}

/// What a reply means for the outbox. `body` is `None` when it could not be read.
fn classify(
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
            Format::Json | Format::Alertmanager => {
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
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// An error and its sources, `a: b: c` (reqwest's own message leaves the causes out).
fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.ends_with(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

/// The guard's refusal, if that is why the request failed (it travels inside reqwest's error).
fn find_refusal<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a UrlError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(u) = c.downcast_ref::<UrlError>() {
            return Some(u);
        }
        cur = c.source();
    }
    None
}

/// Delay before retry number `attempt` (0 for the first retry): `base · 2^attempt`, capped at
/// `max` (the ceiling), less a random part of up to `jitter_fraction` of it. 1.0 is "full
/// jitter" (uniform in [0, ceiling)), 0.5 "equal jitter" (in [ceiling/2, ceiling)), 0 none.
/// Jitter spreads the retries of many alerts that failed together (a receiver's outage).
pub fn backoff(
    attempt: u32,
    base: Duration,
    max: Duration,
    jitter_fraction: f64,
    rng: &mut impl Rng,
) -> Duration {
    let ceiling = backoff_ceiling(attempt, base, max);
    let f = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    let u: f64 = rng.random();
    Duration::try_from_secs_f64(ceiling.as_secs_f64() * (1.0 - f * u))
        .unwrap_or(ceiling)
        .min(ceiling)
}

/// `min(max, base · 2^attempt)`, saturating: non-decreasing in `attempt`.
pub fn backoff_ceiling(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(Duration::MAX).min(max)
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Parse(#[from] url::ParseError),
    #[error("scheme {0}: only http and https are delivered to")]
    UnsupportedScheme(String),
    #[error("the URL has no host")]
    MissingHost,
    #[error("{0} is this machine (set allow_private_network to deliver to it)")]
    LocalName(String),
    #[error("{host} is {addr}, a {why} address (set allow_private_network to deliver to it)")]
    Forbidden {
        host: String,
        addr: IpAddr,
        why: &'static str,
    },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// The guard on the URL alone: http or https, a host, and unless `allow_private`, neither
/// `localhost` nor a literal loopback, private, link-local (cloud metadata at 169.254.169.254),
/// shared, multicast or reserved address. Names are checked when resolved (see
/// [`check_url_resolved`] and the delivery client).
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), UrlError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::UnsupportedScheme(other.to_owned())),
    }
    let host = url.host().ok_or(UrlError::MissingHost)?;
    if allow_private {
        return Ok(());
    }
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(UrlError::LocalName(d));
            }
            Ok(())
        }
        Host::Ipv4(ip) => check_ip(&ip.to_string(), IpAddr::V4(ip)),
        Host::Ipv6(ip) => check_ip(&ip.to_string(), IpAddr::V6(ip)),
    }
}

/// [`check_url`], then resolves the host and checks every address it has (for validating a
/// configuration at start-up; delivery checks again at each connection).
pub async fn check_url_resolved(
    url: &Url,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlError> {
    check_url(url, allow_private)?;
    let port = url.port_or_known_default().unwrap_or(0);
    match url.host().ok_or(UrlError::MissingHost)? {
        Host::Domain(d) => resolve_checked(d, port, allow_private).await,
        Host::Ipv4(ip) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Host::Ipv6(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
    }
}

async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| UrlError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(UrlError::NoAddress(host.to_owned()));
    }
    if !allow_private {
        // All or nothing: one internal address among public ones is still a way in.
        for a in &addrs {
            check_ip(host, a.ip())?;
        }
    }
    Ok(addrs)
}

fn check_ip(host: &str, addr: IpAddr) -> Result<(), UrlError> {
    match forbidden(addr) {
        Some(why) => Err(UrlError::Forbidden {
            host: host.to_owned(),
            addr,
            why,
        }),
        None => Ok(()),
    }
}

/// Why `addr` must not be delivered to from a public-only target, or `None` if it may.
pub fn forbidden(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        Some("this-network (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if s[..6] == [0; 6] {
        Some("IPv4-compatible (deprecated)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local (private)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the IPv4 address inside is the real destination.
        forbidden_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x2002 {
        // 6to4: likewise.
        forbidden_v4(embedded(s[1], s[2]))
    } else {
        None
    }
}

/// reqwest resolver for public-only targets: the system resolver, then [`forbidden`] on every
/// address, at each connection.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, false).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::model::tests::orange;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn ssrf_guard_on_literals() {
        for bad in [
            "http://127.0.0.1/",
            "http://127.8.9.10:8080/x",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:a00:1::]/",
            // The URL parser turns these spellings into 127.0.0.1, and the guard sees that.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://localhost./",
            "http://api.localhost/",
        ] {
            let u = url(bad);
            assert!(check_url(&u, false).is_err(), "{bad} must be refused");
            assert!(
                check_url(&u, true).is_ok(),
                "{bad} allowed with allow_private"
            );
        }
        for scheme in [
            "file:///etc/passwd",
            "ftp://example.org/",
            "gopher://example.org/",
        ] {
            assert!(
                matches!(
                    check_url(&url(scheme), true),
                    Err(UrlError::UnsupportedScheme(_))
                ),
                "{scheme} refused even with allow_private"
            );
        }
        for good in [
            "https://203.0.113.10/hook",
            "http://203.0.113.10:8080/",
            "https://[2001:db8::10]/",
            "https://hooks.example.org/x?key=1",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
        ] {
            assert!(
                check_url(&url(good), false).is_ok(),
                "{good} must be accepted"
            );
        }
        let e = check_url(&url("http://169.254.169.254/"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is 169.254.169.254, a link-local address \
             (set allow_private_network to deliver to it)"
        );
    }

    #[tokio::test]
    async fn ssrf_guard_on_resolved_addresses() {
        // No DNS here: localhost is in /etc/hosts, literals need no lookup.
        let refused = check_url_resolved(&url("http://127.0.0.1:9/"), false).await;
        assert!(matches!(refused, Err(UrlError::Forbidden { .. })));
        let ok = check_url_resolved(&url("http://localhost:9/"), true)
            .await
            .unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        let lit = check_url_resolved(&url("https://203.0.113.10/"), false)
            .await
            .unwrap();
        assert_eq!(lit, [SocketAddr::from(([203, 0, 113, 10], 443))]);
        // The resolver itself, as reqwest calls it.
        let err = GuardedResolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost resolves to loopback: refused");
        assert!(matches!(
            find_refusal(err.as_ref()),
            Some(UrlError::Forbidden { .. })
        ));
    }

    #[tokio::test]
    async fn guarded_client_never_connects_to_a_name_that_resolves_inside() {
        // A listener that must see no connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = Deliverer::new(DeliveryOptions::default()).unwrap();
        // `send` skips the literal check, so only the resolver stands in the way.
        let target = Target::new("t", url(&format!("http://localhost:{port}/")), Format::Json);
        let a = d.send(&target, &orange()).await;
        match a.outcome {
            Outcome::Fail { reason } => assert!(reason.starts_with("refused address"), "{reason}"),
            other => panic!("expected Fail, got {other:?}"),
        }
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "no connection was made");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn classify_statuses() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_600_000);
        let lat = Duration::from_millis(12);
        let c = |code: u16, h: &HeaderMap| {
            classify(
                Format::Json,
                StatusCode::from_u16(code).unwrap(),
                h,
                Some(b"nope"),
                lat,
                now,
            )
        };
        let none = HeaderMap::new();
        assert_eq!(
            c(200, &none),
            Outcome::Delivered {
                status: 200,
                latency: lat
            }
        );
        assert_eq!(
            c(204, &none),
            Outcome::Delivered {
                status: 204,
                latency: lat
            }
        );
        let secs = headers(&[("retry-after", "2")]);
        assert!(
            matches!(c(503, &secs), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let dated = headers(&[("retry-after", &date)]);
        assert!(
            matches!(c(429, &dated), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(90))
        );
        let past = headers(&[(
            "retry-after",
            &httpdate::fmt_http_date(now - Duration::from_secs(5)),
        )]);
        assert!(matches!(
            c(429, &past),
            Outcome::Retry {
                after: Some(Duration::ZERO),
                ..
            }
        ));
        let huge = headers(&[("retry-after", "99999999")]);
        assert!(matches!(
            c(503, &huge),
            Outcome::Retry {
                after: Some(MAX_RETRY_AFTER),
                ..
            }
        ));
        let junk = headers(&[("retry-after", "soon")]);
        assert!(matches!(c(503, &junk), Outcome::Retry { after: None, .. }));
        assert!(matches!(c(429, &none), Outcome::Retry { after: None, .. }));
        for code in [408, 500, 502, 504] {
            assert!(
                matches!(c(code, &secs), Outcome::Retry { after: None, .. }),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 410, 413, 422] {
            assert!(matches!(c(code, &none), Outcome::Fail { .. }), "{code}");
        }
        let Outcome::Fail { reason } = c(400, &none) else {
            unreachable!()
        };
        assert_eq!(reason, "HTTP 400: nope");
        let redirect = headers(&[("location", "http://169.254.169.254/x?token=1")]);
        let Outcome::Fail { reason } = c(302, &redirect) else {
            panic!("3xx must fail")
        };
        assert_eq!(
            reason,
            "HTTP 302 redirect http://169.254.169.254/x?*** (redirects are not followed)"
        );
    }

    #[test]
    fn classify_robot_replies() {
        let now = SystemTime::now();
        let lat = Duration::from_millis(1);
        let c = |format, body: &[u8]| {
            classify(
                format,
                StatusCode::OK,
                &HeaderMap::new(),
                Some(body),
                lat,
                now,
            )
        };
        let ok = br#"{"errcode":0,"errmsg":"ok"}"#;
        assert!(matches!(
            c(Format::DingTalk, ok),
            Outcome::Delivered { status: 200, .. }
        ));
        assert!(matches!(c(Format::WeCom, ok), Outcome::Delivered { .. }));
        let slow = br#"{"errcode":130101,"errmsg":"send too fast"}"#;
        assert!(matches!(c(Format::DingTalk, slow), Outcome::Retry { .. }));
        let freq = br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#;
        assert!(matches!(c(Format::WeCom, freq), Outcome::Retry { .. }));
        // Each robot's code is its own.
        assert!(matches!(c(Format::DingTalk, freq), Outcome::Fail { .. }));
        let busy = br#"{"errcode":-1,"errmsg":"system busy"}"#;
        assert!(matches!(c(Format::WeCom, busy), Outcome::Retry { .. }));
        let sign = br#"{"errcode":310000,"errmsg":"sign not match"}"#;
        assert_eq!(
            c(Format::DingTalk, sign),
            Outcome::Fail {
                reason: "dingtalk errcode 310000: sign not match".into()
            }
        );
        assert!(matches!(
            c(Format::DingTalk, b"<html>portal</html>"),
            Outcome::Fail { .. }
        ));
        // A JSON receiver's 200 body means nothing.
        assert!(matches!(c(Format::Json, sign), Outcome::Delivered { .. }));
        let lost = classify(
            Format::WeCom,
            StatusCode::OK,
            &HeaderMap::new(),
            None,
            lat,
            now,
        );
        assert!(matches!(lost, Outcome::Retry { .. }));
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(b"  bad\n request \n"), "bad request");
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn redaction() {
        let u = url("https://robot.example/send?key=abc-123");
        assert_eq!(redacted_url(&u), "https://robot.example/send?***");
        assert_eq!(
            redacted_url(&url("https://u:pw@e.org/x")),
            "https://u@e.org/x"
        );
        let mut t = Target::new("w", u, Format::WeCom);
        t.secret = Some(Secret::new("s3cr3t"));
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("abc-123") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn backoff_examples() {
        let mut rng = StdRng::seed_from_u64(7);
        let s = Duration::from_secs;
        assert_eq!(backoff(0, s(1), s(60), 0.0, &mut rng), s(1));
        assert_eq!(backoff(3, s(1), s(60), 0.0, &mut rng), s(8));
        assert_eq!(backoff(10, s(1), s(60), 0.0, &mut rng), s(60));
        assert_eq!(
            backoff_ceiling(u32::MAX, s(1), Duration::MAX),
            s(u64::from(u32::MAX))
        );
        assert_eq!(
            backoff_ceiling(40, Duration::MAX, Duration::MAX),
            Duration::MAX
        );
        let d = backoff(64, Duration::MAX, Duration::MAX, 0.3, &mut rng);
        assert!(d <= Duration::MAX);
        assert_eq!(backoff(2, s(1), s(60), f64::NAN, &mut rng), s(4));
    }

    proptest::proptest! {
        #[test]
        fn backoff_is_bounded_with_a_non_decreasing_ceiling(
            attempt in 0u32..80,
            base_ms in 1u64..10_000,
            max_ms in 1u64..10_000_000,
            jitter in 0.0f64..=1.0,
            seed: u64,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = Duration::from_millis(max_ms);
            let mut rng = StdRng::seed_from_u64(seed);
            let ceiling = backoff_ceiling(attempt, base, max);
            let next = backoff_ceiling(attempt + 1, base, max);
            proptest::prop_assert!(ceiling <= next);
            proptest::prop_assert!(ceiling <= max);
            let d = backoff(attempt, base, max, jitter, &mut rng);
            proptest::prop_assert!(d <= ceiling);
            // Equal jitter keeps at least half, full jitter may go to zero.
            let floor = ceiling.as_secs_f64() * (1.0 - jitter);
            proptest::prop_assert!(d.as_secs_f64() + 1e-6 >= floor, "{d:?} < {floor}");
        }
    }
}

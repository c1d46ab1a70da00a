//! One delivery attempt over HTTP, and what the caller should do next: [`Deliverer::deliver_once`]
//! returns Delivered, Retry (with the receiver's `Retry-After` when it gave one) or Fail
//! (permanent), which [`Outcome::into_response`] hands to the retry policy
//! ([`crate::retry::RetryPolicy::next_step`]).
//!
//! Retrying, persisting and counting attempts belong to the outbox: this module holds no state
//! between attempts. Every attempt of one event carries the same `Idempotency-Key` and
//! `webhook-id` (the event's `delivery_id`) so receivers can drop duplicates, and a fresh
//! timestamp and signature.
//!
//! - `reply`: what a reply means (status, `Retry-After`, robot error codes). Pure.
//! - `guard`: the SSRF guard, on the URL ([`check_url`]) and on every resolved address (the
//!   HTTP client for targets without `allow_private_network` resolves through it). Redirects are
//!   not followed: a 3xx could point anywhere.
//! - here: the target, the HTTP client and one attempt.

mod guard;
mod reply;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use url::Url;

use super::format::{Format, Language, RenderOptions, render};
use super::model::AlertEvent;
use super::{Secret, sign};
use crate::retry::Response;
use guard::{GuardedResolver, find_refusal};
use reply::classify;

pub use guard::{UrlError, check_url, check_url_resolved, forbidden};
pub use reply::retry_after;

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
    /// Try again: after `after` when the receiver said so, else when the retry policy says.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Do not try again: the request itself is wrong (4xx, refused URL, robot error).
    Fail {
        reason: String,
    },
}

impl Outcome {
    /// The outcome as the retry policy sees it: a delivery keeps its status and latency, a
    /// failure its reason.
    pub fn into_response(self) -> Response<(u16, Duration), String> {
        match self {
            Outcome::Delivered { status, latency } => Response::Delivered((status, latency)),
            Outcome::Retry { after, reason } => Response::Transient {
                retry_after: after,
                failure: reason,
            },
            Outcome::Fail { reason } => Response::Permanent(reason),
        }
    }
}

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
            Format::Json | Format::Alertmanager | Format::Ticketing => {
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

#[cfg(test)]
mod tests;

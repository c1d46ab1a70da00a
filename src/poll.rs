//! The poller: devices that only answer requests (Axis People Counter `live-sum`, Dahua
//! `getSummary`, Hikvision `counting/search`) are asked for their running totals at the end of every window of
//! `poll.interval_s`, and each answer becomes a report ([`crate::decode::polled`]) handed to the
//! ingester that counts the device, as an HTTP push is. A thin shell: one task per device, the
//! reading and the report are the pure part.
//!
//! Exactly once: a report is sent again, unchanged, until the ingester answers that it is stored
//! (a duplicate if it was), and the next report is made only then — from the reading it was made
//! of. The first answer after a start only sets the baseline and sends nothing: the gap it leaves
//! makes the next report's totals repair what grew since the device's last stored report. A device that does not answer is asked again at the next window, then less often (up to
//! 16 windows apart): its silence shows as the silent-counter alarm, and the totals of its next
//! answer repair the windows in between.
//!
//! In a partitioned deployment only the instance holding the device's partition asks it; a
//! standby's poller idles until its instance takes the partition over.
//!
//! Only the configured URL's host is ever asked: redirects are not followed, so a device cannot
//! send the poller elsewhere. Credentials go only where a device challenges for them, Digest
//! (what IP cameras ask) or Basic.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::decode::polled::{self, Reading};
use crate::decode::{CountReport, Limits, Reject};
use crate::ingest::{Push, PushBody, PushIntake};
use crate::registry::{Device, PollConfig};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::telemetry as t;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("cannot read the password file {0}: {1}")]
    PasswordFile(String, std::io::Error),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One polled device's loop, until `shutdown`.
pub struct Poller {
    device: Device,
    /// The county's time zone: the day a Hikvision camera is asked for.
    tz: chrono_tz::Tz,
    poll: PollConfig,
    password: Option<String>,
    client: reqwest::Client,
    intake: Arc<PushIntake>,
    limits: Limits,
}

impl Poller {
    pub fn new(
        device: Device,
        tz: chrono_tz::Tz,
        intake: Arc<PushIntake>,
        limits: Limits,
    ) -> Option<Result<Self, PollError>> {
        let poll = device.poll.as_deref()?.clone();
        Some(Self::build(device, tz, poll, intake, limits))
    }

    fn build(
        device: Device,
        tz: chrono_tz::Tz,
        poll: PollConfig,
        intake: Arc<PushIntake>,
        limits: Limits,
    ) -> Result<Self, PollError> {
        let password = match &poll.password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| PollError::PasswordFile(f.display().to_string(), e))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => poll.password.clone(),
        };
        let interval = Duration::from_secs(u64::from(poll.interval_s.max(1)));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(interval.min(Duration::from_secs(10)))
            .build()?;
        Ok(Self {
            device,
            tz,
            poll,
            password,
            client,
            intake,
            limits,
        })
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        let interval = i64::from(self.poll.interval_s.max(1));
        let mut backoff = Backoff::new(
            Duration::from_secs(interval as u64),
            Duration::from_secs(16 * interval as u64),
        );
        let mut previous: Option<Reading> = None;
        // A report made but not yet confirmed stored, with the reading it was made of.
        let mut unconfirmed: Option<(CountReport, Reading)> = None;
        let mut pause = Duration::ZERO;
        loop {
            let end = next_window_end(
                Utc::now() + chrono::TimeDelta::from_std(pause).unwrap_or_default(),
                interval,
            );
            let wait = (end - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => return,
            }
            if !self.intake.serving(self.device.id.as_str()) {
                // Standing by for the device's partition: another instance asks the device. What
                // this one knew is dropped; should it take over, its first answer is a baseline
                // and the totals repair from the other's last stored report.
                previous = None;
                unconfirmed = None;
                pause = Duration::ZERO;
                continue;
            }
            if let Some((report, reading)) = unconfirmed.take() {
                if self.hand_over(report).await {
                    previous = Some(reading);
                } else {
                    unconfirmed = Some((report, reading));
                    pause = Duration::ZERO;
                    continue;
                }
            }
            let reading = match self.ask().await {
                Ok(r) => r,
                Err(why) => {
                    pause = backoff.failed();
                    let outcome = if matches!(why, Asked::Refused(_)) {
                        "refused"
                    } else {
                        "unreachable"
                    };
                    metrics::counter!(t::POLLS, "format" => format!("{:?}", self.device.format), "outcome" => outcome).increment(1);
                    if let Asked::Refused(r) = &why {
                        metrics::counter!(t::REPORTS_REJECTED, "reason" => r.as_str()).increment(1);
                    }
                    tracing::warn!(device = %self.device.id, url = %self.poll.url, error = %why, "poll failed");
                    continue;
                }
            };
            backoff.reset();
            pause = Duration::ZERO;
            metrics::counter!(t::POLLS, "format" => format!("{:?}", self.device.format), "outcome" => "ok").increment(1);
            let seq = (end.timestamp() / interval) as u64;
            if previous.is_none() {
                // The first answer after a start is the baseline, and its window is left out on
                // purpose: the next report then follows a gap, which the totals repair with
                // whatever grew since the device's last stored report (before a restart).
                previous = Some(reading);
                continue;
            }
            match polled::polled_report(
                &self.device,
                previous,
                reading,
                seq,
                interval as u32,
                end,
                &self.limits,
            ) {
                Ok(report) => {
                    if self.hand_over(report).await {
                        previous = Some(reading);
                    } else {
                        unconfirmed = Some((report, reading));
                    }
                }
                Err(r) => {
                    metrics::counter!(t::REPORTS_REJECTED, "reason" => r.as_str()).increment(1);
                    tracing::warn!(device = %self.device.id, reason = r.as_str(), error = %r, "polled report refused");
                    // The baseline moves on: the refused growth (an absurd jump) is not counted.
                    previous = Some(reading);
                }
            }
        }
    }

    /// Asks the device for its totals: without credentials first, then as it challenges (HTTP
    /// Digest, or Basic), so a password never crosses the network in the clear unasked.
    async fn ask(&self) -> Result<Reading, Asked> {
        let day = Utc::now().with_timezone(&self.tz).date_naive();
        let body = polled::request_body(self.device.format, day);
        let unreachable = |e: reqwest::Error| Asked::Unreachable(e.to_string());
        let mut res = self
            .request(body.as_deref(), None)
            .send()
            .await
            .map_err(unreachable)?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED
            && let Some(auth) = self.answer_challenge(&res, body.as_deref())?
        {
            res = self
                .request(body.as_deref(), Some(auth))
                .send()
                .await
                .map_err(unreachable)?;
        }
        let status = res.status();
        if !status.is_success() {
            return Err(Asked::Unreachable(format!("answered {status}")));
        }
        let bytes = res.bytes().await.map_err(unreachable)?;
        if bytes.len() > self.limits.max_payload {
            return Err(Asked::Refused(Reject::TooLarge));
        }
        polled::read(&self.device, &bytes).map_err(Asked::Refused)
    }

    fn request(&self, body: Option<&str>, auth: Option<String>) -> reqwest::RequestBuilder {
        let mut req = match body {
            Some(b) => self
                .client
                .post(&self.poll.url)
                .header(reqwest::header::CONTENT_TYPE, "application/xml")
                .body(b.to_owned()),
            None => self.client.get(&self.poll.url),
        };
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        req
    }

    /// The `Authorization` answering a 401's challenge with the device's credentials (`None`
    /// without credentials or a challenge).
    fn answer_challenge(
        &self,
        res: &reqwest::Response,
        body: Option<&str>,
    ) -> Result<Option<String>, Asked> {
        let Some(user) = &self.poll.username else {
            return Ok(None);
        };
        let password = self.password.as_deref().unwrap_or_default();
        let Some(challenge) = res
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        if challenge
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("digest")
        {
            let mut prompt = digest_auth::parse(challenge)
                .map_err(|e| Asked::Unreachable(format!("bad Digest challenge: {e}")))?;
            let url = res.url();
            let uri = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let method = if body.is_some() {
                digest_auth::HttpMethod::POST
            } else {
                digest_auth::HttpMethod::GET
            };
            let ctx = digest_auth::AuthContext::new_with_method(
                user.as_str(),
                password,
                uri,
                body.map(str::as_bytes),
                method,
            );
            let answer = prompt
                .respond(&ctx)
                .map_err(|e| Asked::Unreachable(format!("Digest: {e}")))?;
            return Ok(Some(answer.to_header_string()));
        }
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Some(format!("Basic {basic}")))
    }

    /// Hands `report` to the device's ingester; true once it is stored (or was already).
    async fn hand_over(&self, report: CountReport) -> bool {
        let Some(tx) = self.intake.sender(self.device.id.as_str()) else {
            return false;
        };
        let (done, answer) = oneshot::channel();
        let push = Push {
            device: self.device.id.to_string(),
            body: PushBody::Reports(vec![report]),
            received: Utc::now(),
            done,
        };
        if tx.send(push).await.is_err() {
            return false;
        }
        let wait =
            Duration::from_secs(u64::from(self.poll.interval_s.max(1))).max(Duration::from_secs(5));
        matches!(tokio::time::timeout(wait, answer).await, Ok(Ok(Ok(_))))
    }
}

/// Why a poll gave no reading.
#[derive(Debug)]
enum Asked {
    Unreachable(String),
    Refused(Reject),
}

impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asked::Unreachable(e) => write!(f, "unreachable: {e}"),
            Asked::Refused(r) => write!(f, "{}: {r}", r.as_str()),
        }
    }
}

/// The end of the window of `interval_s` seconds that `now` falls in (a window boundary
/// itself ends the window before it, so two polls never share a window).
fn next_window_end(now: DateTime<Utc>, interval_s: i64) -> DateTime<Utc> {
    let s = now.timestamp();
    let end = (s.div_euclid(interval_s) + 1) * interval_s;
    DateTime::from_timestamp(end, 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_on_multiples_of_the_interval() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(next_window_end(t(1_000_000_001), 60), t(1_000_000_020));
        assert_eq!(next_window_end(t(1_000_000_020), 60), t(1_000_000_080));
        assert_eq!(next_window_end(t(119), 1), t(120));
    }
}

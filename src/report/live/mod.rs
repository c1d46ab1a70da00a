//! The live feed to the provincial monitoring platform: `[live_feed]` and the worker that sends
//! it. Every `interval_s` (wall-clock aligned, [`period`]) each scenic area's live figures
//! ([`body`]) are POSTed, signed, to the platform; and at once whenever an area's level changes
//! to red or a hazard closes it.
//!
//! **On the report push's machinery.** A push is recorded with its exact body before its first
//! attempt and every attempt goes through [`super::deliver::Channel`] — the webhooks' sender and
//! signature, the one [`crate::retry::RetryPolicy`] (`[alerting]` backoff, `max_attempts`), the
//! same attempt record and row mapping as the daily report's. The rows live in a sibling table,
//! `live_feed` (`migrations/V9__live_feed.sql`), not in `report_push`: a period is an instant
//! where a report is a local day (different unique keys), there are 288 a day where the report
//! has one (they are pruned after `keep_days`; the daily pushes are kept), and a backlog of
//! periods must never sit in the queue the daily report is claimed from.
//!
//! **Once per period.** A period's delivery id is derived from its boundary
//! (`live-2026-10-02T04:05:00Z`) and unique in the table; the schedule goes on from the latest
//! period recorded, so a restart or a second instance neither repeats nor re-numbers one. The
//! body is captured from the live view when the period is taken on (at its boundary, or as soon
//! after as the instance runs) and never rebuilt: retries and catch-up resend the figures as
//! they were — what a monitoring platform's time series needs. A boundary at which no instance
//! was sending has no figures: it is recorded as `skipped` (listed by the API, counted), never
//! back-filled with later figures.
//!
//! **Catch-up without flooding** ([`period::Pace`]). While the platform fails, only the latest
//! period is attempted (on its backoff); the others wait, at most `catch_up_periods` of them —
//! an older one is given up as a dead letter. The first delivery proves the platform back: the
//! waiting periods then go oldest first at most `catch_up_per_s` a second, and a new period or
//! an immediate push goes ahead of them at once.
//!
//! **Immediate pushes.** The alerting loop records transitions and wakes this worker through
//! [`Live::alerts_recorded`]; the worker reads the recorded transitions (`alert_transitions`)
//! that are a change to red or a closure of a scenic area, and pushes each once
//! (`live-event-{area}-{transition}`) with that area's figures. No import of `alerting`: the
//! transitions table is the interface.
//!
//! **One sender.** The worker sends only while this instance's alerting loop leads
//! ([`Live::evaluating`]): the leader has the rules' levels, and two senders would double every
//! period. Claims with a lease (`FOR UPDATE SKIP LOCKED`) keep even a brief overlap at a
//! failover to one attempt at a time; a receiver de-duplicates on the delivery id.

pub mod body;
mod config;
pub mod period;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::Pool;

use super::deliver::Channel;
use crate::live::Live;
use crate::registry::Registry;
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use crate::store::live_feed::{self as db, Claim, NewBody};
use crate::store::reports::PushOutcome;
use crate::telemetry::events::{self, InternalEvent, LiveFeedGap, LiveFeedPush, LiveTrigger};
use crate::webhook::deliver::redacted_url;
use body::{EventInfo, Trigger, View};
pub use config::{LiveFeedConfig, LiveFeedConfigError, LivePlan};
use period::{After, Pace, Pick};

/// Longest sleep between rounds (a missed wake-up costs at most this).
const POLL: Duration = Duration::from_secs(30);
/// How often settled rows older than `keep_days` are deleted.
const PRUNE_EVERY: TimeDelta = TimeDelta::hours(1);
/// How soon to look again for an evaluation an immediate push waits for.
const EVALUATION_WAIT: Duration = Duration::from_millis(20);
/// Transitions read per round.
const EVENTS_PER_ROUND: i64 = 100;

/// The live feed worker.
pub struct Feeder {
    pub plan: LivePlan,
    pub registry: Arc<Registry>,
    pub live: Arc<Live>,
    pub pool: Pool,
    /// The plan's target, the retry policy with the plan's `max_attempts`, the `live_feed` table.
    pub channel: Channel,
    /// An attempt's time-out (the deliverer's): a claim lasts longer.
    pub timeout: Duration,
}

/// What the worker keeps between rounds.
struct State {
    pace: Pace,
    /// The last transition looked at for immediate pushes (`None`: read from the table).
    cursor: Option<i64>,
    /// Transitions older than this are not pushed at once (the periods carry them).
    events_since: DateTime<Utc>,
    pruned: Option<DateTime<Utc>>,
}

impl Feeder {
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(
            url = %redacted_url(&self.plan.target.url),
            interval_s = self.plan.interval_s,
            "live feed scheduled"
        );
        let mut state = State {
            pace: Pace::new(self.plan.catch_up_per_s),
            cursor: None,
            events_since: Utc::now(),
            pruned: None,
        };
        let mut sending = false;
        loop {
            if !self.live.evaluating() {
                if sending {
                    tracing::info!("live feed: alerting runs elsewhere; standing by");
                    sending = false;
                }
                state.pace.reset();
                state.cursor = None;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = shutdown.recv() => return,
                }
            }
            if !sending {
                sending = true;
                // Transitions from before this instance led are the periods' business.
                state.events_since = Utc::now() - self.plan.interval();
            }
            let wait = match self.round(&mut state).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "live feed: will try again");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.live.alerts_recorded() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    /// Takes on what is due at the clock's time, attempts what may go now, and says how long to
    /// sleep.
    async fn round(&self, state: &mut State) -> Result<Duration, StoreError> {
        let interval = self.plan.interval();
        let mut client = self.pool.get().await?;
        let started = Utc::now();
        self.take_on_periods(&client, started).await?;
        let deferred = self.plan.events && self.take_on_events(&client, state, started).await?;
        let lease = (self.timeout + Duration::from_secs(30)).as_secs_f64();
        loop {
            let now = Utc::now();
            // A boundary passed while sending: take the new period on first.
            if period::floor(now, interval) > period::floor(started, interval) {
                return Ok(Duration::ZERO);
            }
            let mut claimed = None;
            for &pick in state.pace.order(now) {
                if let Some(p) = db::claim(&**client, claim_of(pick), lease).await? {
                    claimed = Some((pick, p));
                    break;
                }
            }
            let Some((pick, p)) = claimed else { break };
            let delivery = p.delivery_id.clone();
            let a = self.channel.attempt(&mut client, p).await?;
            let reason = a.error.as_deref();
            LiveFeedPush {
                trigger: if pick == Pick::Event {
                    LiveTrigger::Event
                } else {
                    LiveTrigger::Period
                },
                delivery: &delivery,
                attempts: a.attempts,
                http_status: a.http_status,
                outcome: match a.outcome {
                    PushOutcome::Delivered => events::PushOutcome::Delivered,
                    PushOutcome::Retry(in_s) => events::PushOutcome::Retried { in_s, reason },
                    PushOutcome::Dead => events::PushOutcome::Dead { reason },
                },
            }
            .emit();
            if state.pace.attempted(pick, a.delivered(), now) == After::ReleaseBacklog {
                let waiting = db::release_backlog(&**client).await?;
                if waiting > 0 {
                    tracing::info!(
                        waiting,
                        "live feed: the platform answers again; catching up"
                    );
                }
            }
        }
        if state.pruned.is_none_or(|at| started - at >= PRUNE_EVERY) {
            let days = i32::try_from(self.plan.keep_days).unwrap_or(i32::MAX);
            let removed = db::prune(&**client, days).await?;
            if removed > 0 {
                tracing::info!(removed, "live feed: settled deliveries pruned");
            }
            state.pruned = Some(started);
        }
        let q = db::queue(&**client).await?;
        metrics::gauge!(crate::telemetry::LIVE_FEED_WAITING).set(q.waiting as f64);
        let backlog = state
            .pace
            .backlog_from()
            .and_then(|from| q.backlog_due.map(|due| from.map_or(due, |f| f.max(due))));
        let next = [
            Some(period::next_after(Utc::now(), interval)),
            q.event_due,
            q.newest_due,
            backlog,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(Utc::now);
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Ok(if deferred {
            wait.min(EVALUATION_WAIT)
        } else {
            wait.min(POLL)
        })
    }

    /// Records the current period with the live view's figures (and the boundaries missed since
    /// the last one as skipped), then gives up what waits beyond the catch-up bound.
    async fn take_on_periods(
        &self,
        client: &tokio_postgres::Client,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let bound = self.plan.catch_up_periods;
        let last = db::last_period(client).await?;
        let plan = period::take_on(now, last, self.plan.interval(), bound);
        if !plan.skipped.is_empty() || plan.skipped_beyond > 0 {
            let ids: Vec<String> = plan
                .skipped
                .iter()
                .map(|&p| period::delivery_id(p))
                .collect();
            db::insert_skipped(
                client,
                &plan.skipped,
                &ids,
                "no instance was sending at the boundary",
            )
            .await?;
            LiveFeedGap {
                outcome: "skipped",
                periods: plan.skipped.len() as u64 + plan.skipped_beyond,
                first: ids.first().map(String::as_str),
                last: ids.last().map(String::as_str),
                reason: "no instance was sending at the boundary: no figures to send",
            }
            .emit();
        }
        if let Some(start) = plan.current {
            let id = period::delivery_id(start);
            let bytes = self.capture(Trigger::Period, id.clone(), start, now);
            let recorded = db::insert_period(
                client,
                &NewBody {
                    delivery_id: &id,
                    period_start: start,
                    content_type: body::CONTENT_TYPE,
                    body: &bytes,
                },
            )
            .await?;
            if recorded.is_some() {
                tracing::debug!(delivery = %id, bytes = bytes.len(), "live feed period taken on");
            }
        }
        let given_up = db::give_up(
            client,
            i64::from(bound),
            "given up: more than catch_up_periods periods waiting for the platform",
        )
        .await?;
        LiveFeedGap {
            outcome: "given_up",
            periods: given_up.len() as u64,
            first: given_up.first().map(String::as_str),
            last: given_up.last().map(String::as_str),
            reason: "more than catch_up_periods periods waiting: the oldest are dead letters",
        }
        .emit();
        Ok(())
    }

    /// Records an immediate push for each new change to red or closure of a scenic area; true
    /// when one waits for its evaluation to be published.
    async fn take_on_events(
        &self,
        client: &tokio_postgres::Client,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let cursor = match state.cursor {
            Some(c) => c,
            None => db::last_event(client).await?.unwrap_or(0),
        };
        let areas: Vec<String> = body::scenic_areas(&self.registry)
            .map(|s| self.registry.space(s).id.to_string())
            .collect();
        let found =
            db::red_or_closed(client, cursor, state.events_since, &areas, EVENTS_PER_ROUND).await?;
        let mut last = cursor;
        let mut deferred = false;
        for t in found {
            // The alerting loop records a transition before it publishes the evaluation that
            // made it: the push waits for that evaluation, never carrying an older one.
            let evaluated = self
                .registry
                .space_idx(&t.space)
                .and_then(|s| self.live.status(s))
                .is_some_and(|st| st.at >= t.at);
            if !evaluated {
                deferred = true;
                break;
            }
            let id = period::event_delivery_id(&t.space, t.transition_id);
            let start = period::floor(t.at, self.plan.interval());
            let info = EventInfo {
                kind: if t.kind.starts_with("hazard.") {
                    "closed"
                } else {
                    "red"
                },
                area: t.space.clone(),
                alert_kind: t.kind.clone(),
                transition_id: t.transition_id,
                at: t.at,
            };
            let bytes = self.capture(Trigger::Event(info), id.clone(), start, now);
            let recorded = db::insert_event(
                client,
                &t.space,
                t.transition_id,
                &NewBody {
                    delivery_id: &id,
                    period_start: start,
                    content_type: body::CONTENT_TYPE,
                    body: &bytes,
                },
            )
            .await?;
            if recorded.is_some() {
                tracing::info!(delivery = %id, area = %t.space, kind = %t.kind, "live feed: immediate push");
            }
            last = t.transition_id;
        }
        state.cursor = Some(last);
        Ok(deferred)
    }

    /// The body of a push from the live view as it stands.
    fn capture(
        &self,
        trigger: Trigger,
        delivery_id: String,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<u8> {
        let spaces = self.live.spaces();
        let statuses = self.live.statuses();
        let live = &self.live;
        let tickets = |s| live.tickets(s);
        let view = View {
            registry: &self.registry,
            spaces: &spaces,
            statuses: &statuses,
            tickets: &tickets,
        };
        body::render(&body::body(
            &view,
            trigger,
            delivery_id,
            start,
            self.plan.interval_s,
            now,
        ))
    }
}

fn claim_of(pick: Pick) -> Claim {
    match pick {
        Pick::Event => Claim::Event,
        Pick::Newest => Claim::Newest,
        Pick::Backlog => Claim::Backlog,
    }
}

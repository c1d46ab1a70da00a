//! The live feed's record (`live_feed`, `live_feed_attempts`): periods and immediate pushes taken
//! on with their bodies, the claims of the worker that sends them, and the list the API shows.
//! Rows claimed for an attempt are [`DuePush`] and attempts are recorded by
//! [`super::reports::record_attempt`] with [`sql::LIVE_FEED`], as the daily report's are. SQL text
//! is in [`super::sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Client, GenericClient};

use super::reports::DuePush;
use super::row::{from_row, query_as, query_one_as, query_opt_as, query_opt_scalar, query_scalar};
use super::{StoreError, sql};

/// The latest period taken on, delivered or not.
pub async fn last_period(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    query_scalar(client, sql::LIVE_LAST_PERIOD, &[]).await
}

/// A body to record before its first attempt.
pub struct NewBody<'a> {
    pub delivery_id: &'a str,
    pub period_start: DateTime<Utc>,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Records a period; `None` when it was already taken on.
pub async fn insert_period(
    client: &impl GenericClient,
    b: &NewBody<'_>,
) -> Result<Option<i64>, StoreError> {
    query_opt_scalar(
        client,
        sql::LIVE_INSERT_PERIOD,
        &[&b.period_start, &b.delivery_id, &b.content_type, &b.body],
    )
    .await
}

/// Records boundaries nobody was running at as `skipped`, with `why`; returns how many were new.
pub async fn insert_skipped(
    client: &impl GenericClient,
    starts: &[DateTime<Utc>],
    delivery_ids: &[String],
    why: &str,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(sql::LIVE_INSERT_SKIPPED, &[&starts, &delivery_ids, &why])
        .await?)
}

/// Gives up every waiting period but the `keep` newest, as dead letters with `why`; returns
/// their delivery ids.
pub async fn give_up(
    client: &impl GenericClient,
    keep: i64,
    why: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(sql::LIVE_GIVE_UP, &[&keep, &why])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Records an immediate push of `space` announcing `transition_id`; `None` when already taken on.
pub async fn insert_event(
    client: &impl GenericClient,
    space: &str,
    transition_id: i64,
    b: &NewBody<'_>,
) -> Result<Option<i64>, StoreError> {
    query_opt_scalar(
        client,
        sql::LIVE_INSERT_EVENT,
        &[
            &b.period_start,
            &space,
            &transition_id,
            &b.delivery_id,
            &b.content_type,
            &b.body,
        ],
    )
    .await
}

/// The latest transition an immediate push announced.
pub async fn last_event(client: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    query_scalar(client, sql::LIVE_LAST_EVENT, &[]).await
}

/// A recorded alert transition that is a change to red or a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedOrClosed {
    pub transition_id: i64,
    pub space: String,
    /// The alert's kind key: `instant_level`, `daily_level`, `hazard.{kind}`.
    pub kind: String,
    pub at: DateTime<Utc>,
}
from_row!(RedOrClosed {
    transition_id,
    space = "space_id",
    kind,
    at,
});

/// Changes to red and closures of `areas` after transition `after`, not before `since`, oldest
/// first, at most `limit`.
pub async fn red_or_closed(
    client: &impl GenericClient,
    after: i64,
    since: DateTime<Utc>,
    areas: &[String],
    limit: i64,
) -> Result<Vec<RedOrClosed>, StoreError> {
    query_as(
        client,
        sql::LIVE_RED_OR_CLOSED,
        &[&after, &since, &areas, &limit],
    )
    .await
}

/// Which row to claim for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The oldest due immediate push.
    Event,
    /// The latest period taken on, while it waits and is due.
    Newest,
    /// The oldest due waiting period before the latest.
    Backlog,
}

/// Claims a row of `which` class for `lease_s` seconds.
pub async fn claim(
    client: &impl GenericClient,
    which: Claim,
    lease_s: f64,
) -> Result<Option<DuePush>, StoreError> {
    let stmt = match which {
        Claim::Event => sql::LIVE_CLAIM_EVENT,
        Claim::Newest => sql::LIVE_CLAIM_NEWEST,
        Claim::Backlog => sql::LIVE_CLAIM_BACKLOG,
    };
    query_opt_as(client, stmt, &[&lease_s]).await
}

/// Makes every waiting period due now (the receiver answered again).
pub async fn release_backlog(client: &impl GenericClient) -> Result<u64, StoreError> {
    Ok(client.execute(sql::LIVE_RELEASE_BACKLOG, &[]).await?)
}

/// What waits, and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queue {
    pub event_due: Option<DateTime<Utc>>,
    pub newest_due: Option<DateTime<Utc>>,
    pub backlog_due: Option<DateTime<Utc>>,
    /// Periods waiting (the newest included).
    pub waiting: i64,
}
from_row!(Queue {
    event_due,
    newest_due,
    backlog_due,
    waiting,
});

pub async fn queue(client: &impl GenericClient) -> Result<Queue, StoreError> {
    query_one_as(client, sql::LIVE_QUEUE, &[]).await
}

/// A delivery as `GET /api/v1/live-feed/deliveries` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveFeedRow {
    pub id: i64,
    /// `period` or `event`.
    pub trigger: String,
    pub period_start: DateTime<Utc>,
    /// Events: the area and the alert transition announced.
    pub space: Option<String>,
    pub transition_id: Option<i64>,
    pub delivery_id: String,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}
from_row!(LiveFeedRow {
    id,
    trigger,
    period_start,
    space = "space_id",
    transition_id,
    delivery_id,
    status,
    attempts,
    created_at,
    last_attempt_at,
    delivered_at,
    last_status,
    last_error,
});

pub async fn list(
    client: &Client,
    status: Option<&str>,
    trigger: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<LiveFeedRow>, StoreError> {
    query_as(
        client,
        sql::LIVE_LIST,
        &[&status, &trigger, &limit, &offset],
    )
    .await
}

/// Deletes settled rows older than `keep_days`; returns how many.
pub async fn prune(client: &impl GenericClient, keep_days: i32) -> Result<u64, StoreError> {
    Ok(client.execute(sql::LIVE_PRUNE, &[&keep_days]).await?)
}

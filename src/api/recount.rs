//! Head counts by hand: `POST /api/v1/spaces/{id}/recount` ("inside now: N, reason", operator of
//! the space or admin) and `GET /api/v1/spaces/{id}/recounts`. The request is recorded as pending
//! (with its audit entry) and the local ingester woken: it applies the count in its next batch —
//! occupancy continues from N, the difference is kept as a correction of the minute, for the space
//! and its ancestors. The POST waits briefly for that and answers with what was applied (200), or
//! with the pending record (202).

use super::extract::{ApiJson, ApiQuery, DbConn};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::spaces::find_space;
use super::{ApiError, AppState, ErrorBody, page};
use crate::store::StoreError;
use crate::store::controls as audit_db;
use crate::store::recounts::{self as db, NewRecount, Recount};

/// The largest head count accepted.
pub const MAX_INSIDE: i64 = 10_000_000;
/// The longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// How long the POST waits for the ingester to apply the count…
const WAIT: Duration = Duration::from_secs(3);
/// …looking this often…
const POLL: Duration = Duration::from_millis(50);
/// …after which the audit entry of the applied count is still written if it is applied within
/// this time of the request (looked for once a second).
const FOLLOW: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecountBody {
    /// People inside now, counted by hand: a whole number 0–10,000,000.
    #[schema(value_type = i64, minimum = 0, maximum = 10_000_000)]
    inside: serde_json::Number,
    /// Why (a closing sweep, a count at the gate): required, at most 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    reason: String,
}

/// The head count and its trimmed reason, or why not (422).
pub(super) fn validate(
    inside: &serde_json::Number,
    reason: &str,
) -> Result<(i64, String), ApiError> {
    let inside = inside
        .as_i64()
        .filter(|n| (0..=MAX_INSIDE).contains(n))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "`inside` must be a whole number from 0 to {MAX_INSIDE}"
            ))
        })?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::Unprocessable("`reason` is required".into()));
    }
    if reason.chars().count() > MAX_REASON_CHARS || reason.contains('\0') {
        return Err(ApiError::Unprocessable(format!(
            "`reason` must be at most {MAX_REASON_CHARS} characters, without NUL characters"
        )));
    }
    Ok((inside, reason.to_owned()))
}

/// Records a head count on a space ("inside now: N") as the caller (operator of the space, or
/// admin). Occupancy continues from N; the difference is kept as a visible correction (series,
/// daily report, audit log), added to the space's ancestors as well.
#[utoipa::path(post, path = "/api/v1/spaces/{id}/recount", tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    request_body = RecountBody,
    responses((status = 200, description = "Applied: `before` is the occupancy shown just before, `delta` the correction", body = Recount),
        (status = 202, description = "Recorded, not applied yet (the ingester applies it with its next batch): see `GET /api/v1/spaces/{id}/recounts`", body = Recount),
        (status = 403, description = "Not the caller's space", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody)))]
pub async fn recount(
    State(st): State<AppState>,
    mut client: DbConn,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RecountBody>,
) -> Result<Response, ApiError> {
    // 404 before 403: space ids are no secret.
    let s = find_space(&st, &id)?;
    caller.operate(&st.registry, s)?;
    let space = st.registry.space(s).id.as_str();
    let (inside, reason) = validate(&b.inside, &b.reason)?;
    let rec = db::insert(
        &mut client,
        &NewRecount {
            space,
            inside,
            reason: &reason,
            by: &caller.id,
        },
    )
    .await?;
    drop(client);
    st.live.request_recount();
    // The follower outlives this request (a client that hangs up does not lose the audit entry of
    // the applied count).
    let (tx, rx) = oneshot::channel();
    tokio::spawn(follow(st.pool.clone(), rec.id, caller.id.to_string(), tx));
    let rec = match tokio::time::timeout(WAIT, rx).await {
        Ok(Ok(applied)) => applied,
        _ => {
            let client = st.pool.get().await.map_err(StoreError::from)?;
            db::get(&**client, rec.id).await?.unwrap_or(rec)
        }
    };
    let status = if rec.applied() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(rec)).into_response())
}

/// Watches a pending head count: once applied, records what it changed in the audit log (action
/// `recount_applied`) and hands it to `tx`. Every [`POLL`] for [`WAIT`], then once a second until
/// [`FOLLOW`].
async fn follow(pool: Pool, id: i64, actor: String, tx: oneshot::Sender<Recount>) {
    let start = Instant::now();
    loop {
        let every = if start.elapsed() < WAIT {
            POLL
        } else {
            Duration::from_secs(1)
        };
        tokio::time::sleep(every).await;
        if start.elapsed() > FOLLOW {
            tracing::debug!(
                recount = id,
                "head count not applied yet; no longer followed"
            );
            return;
        }
        let found = match pool.get().await {
            Ok(client) => db::get(&**client, id).await,
            Err(e) => Err(StoreError::from(e)),
        };
        match found {
            Ok(Some(rec)) if rec.applied() => {
                let written = match pool.get().await {
                    Ok(client) => {
                        audit_db::audit(
                            &**client,
                            &actor,
                            "recount_applied",
                            &rec.space,
                            &db::applied_details(&rec),
                        )
                        .await
                    }
                    Err(e) => Err(StoreError::from(e)),
                };
                if let Err(e) = written {
                    tracing::warn!(recount = id, error = %e, "audit entry of an applied head count failed");
                }
                let _ = tx.send(rec);
                return;
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(recount = id, error = %e, "looking for an applied head count")
            }
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecountsQuery {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecountPage {
    pub space: String,
    /// Newest first.
    pub recounts: Vec<Recount>,
    pub limit: i64,
    pub offset: i64,
}

/// A space's head counts by hand, newest first: pending ones, and what each applied one changed.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/recounts", tag = "spaces",
    params(("id" = String, Path, description = "Space id"), RecountsQuery),
    responses((status = 200, description = "The space's head counts", body = RecountPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    client: DbConn,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RecountsQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let s = find_space(&st, &id)?;
    let space = st.registry.space(s).id.to_string();
    let recounts = db::list(&*client, &space, limit, offset).await?;
    Ok(Json(RecountPage {
        space,
        recounts,
        limit,
        offset,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: serde_json::Value) -> serde_json::Number {
        match v {
            serde_json::Value::Number(n) => n,
            other => panic!("{other}"),
        }
    }

    fn reason_of(e: ApiError) -> String {
        match e {
            ApiError::Unprocessable(r) => r,
            other => panic!("want 422, got {other:?}"),
        }
    }

    #[test]
    fn a_head_count_is_a_whole_number_within_bounds() {
        assert_eq!(
            validate(&n(serde_json::json!(0)), "closing sweep").unwrap(),
            (0, "closing sweep".into())
        );
        assert_eq!(
            validate(&n(serde_json::json!(MAX_INSIDE)), " gate ").unwrap(),
            (MAX_INSIDE, "gate".into())
        );
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(MAX_INSIDE + 1),
            serde_json::json!(12.5),
            serde_json::json!(3.0),
            serde_json::json!(u64::MAX),
            serde_json::json!(1e300),
        ] {
            let r = reason_of(validate(&n(bad.clone()), "x").unwrap_err());
            assert!(r.contains("`inside`"), "{bad}: {r}");
        }
    }

    #[test]
    fn a_reason_is_required_and_bounded() {
        for blank in ["", "   ", "\n\t"] {
            let r = reason_of(validate(&n(serde_json::json!(5)), blank).unwrap_err());
            assert!(r.contains("required"), "{blank:?}: {r}");
        }
        // 500 characters (CJK: more bytes) pass, 501 do not; the count is after trimming.
        let ok = "清".repeat(MAX_REASON_CHARS);
        assert_eq!(
            validate(&n(serde_json::json!(5)), &format!("  {ok}  "))
                .unwrap()
                .1,
            ok
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let r = reason_of(validate(&n(serde_json::json!(5)), &long).unwrap_err());
        assert!(r.contains("500"), "{r}");
        let r = reason_of(validate(&n(serde_json::json!(5)), "a\0b").unwrap_err());
        assert!(r.contains("NUL"), "{r}");
    }

    #[test]
    fn the_body_refuses_unknown_fields_and_text_for_numbers() {
        let ok: RecountBody = serde_json::from_str(r#"{"inside": 12, "reason": "sweep"}"#).unwrap();
        assert_eq!(validate(&ok.inside, &ok.reason).unwrap().0, 12);
        assert!(serde_json::from_str::<RecountBody>(r#"{"inside": "12", "reason": "x"}"#).is_err());
        assert!(
            serde_json::from_str::<RecountBody>(r#"{"inside": 1, "reason": "x", "by": "me"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<RecountBody>(r#"{"reason": "x"}"#).is_err());
    }
}

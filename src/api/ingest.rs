//! Counts pushed over HTTP by devices that cannot publish MQTT (people-counting cameras pushing to
//! a "listening host"): `POST /ingest/{device}`. The device authenticates with its own secret
//! (HTTP Basic with its id as the user name, or a bearer token; the registry holds the secret's
//! SHA-256 as `http_sha256`). The body is the device's format as the registry names it; a
//! `multipart/form-data` body (newer Hikvision firmware) gives its first part. The answer is 200
//! only once the reports are committed ([`crate::ingest::push`]), so a camera retrying on anything
//! else gets each report counted exactly once.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody};
use crate::decode::Reject;
use crate::ingest::{Push, PushBody, PushRefusal};

/// How long a push waits for its batch to commit before the camera is told to retry.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, ToSchema)]
pub struct PushReply {
    device: String,
    /// Reports in the body; all but the refused were counted (or were duplicates of reports
    /// counted before).
    reports: usize,
    #[schema(value_type = Vec<Object>)]
    refused: Vec<PushRefusal>,
}

/// Takes a device's count report(s) in its registry format; answers once they are stored.
#[utoipa::path(post, path = "/ingest/{device}", tag = "ingest",
    params(("device" = String, Path, description = "Device id (the registry's)")),
    request_body(content = String, description = "The device's payload: native JSON, Milesight VS13x JSON, Hikvision ISAPI EventNotificationAlert XML (bare or multipart), Xovis line-count JSON"),
    responses((status = 200, description = "Stored (refused reports listed)", body = PushReply),
        (status = 401, description = "No or wrong device credentials", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Not the device's format; the reason names it", body = ErrorBody),
        (status = 503, description = "Not stored now (the database or ingester is reconnecting): retry", body = ErrorBody)))]
pub async fn push(
    State(st): State<AppState>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(idx) = st.registry.device_idx(&device) else {
        return Err(ApiError::NotFound(format!("no device {device:?}")));
    };
    let d = st.registry.device(idx);
    let Some(want) = d.http_sha256.as_deref() else {
        return Err(ApiError::Forbidden(format!(
            "device {device:?} has no http_sha256 in the registry: it cannot push over HTTP"
        )));
    };
    match secret(&headers, &device) {
        Some(s) if bool::from(super::auth::sha256(&s).ct_eq(want)) => {}
        _ => return Ok(challenge()),
    }
    let body = match multipart_part(&headers, &body).await {
        Ok(Some(part)) => part,
        Ok(None) => body,
        Err(reason) => return Err(ApiError::Unprocessable(reason)),
    };
    // A standby for the device's partition answers at once: the camera's retry (through a load
    // balancer) reaches the holder.
    let tx = match st.pushes.sender(&device) {
        Some(tx) if st.pushes.serving(&device) => tx,
        _ => {
            return Err(ApiError::Unavailable(
                "this instance does not hold the device's partition now".into(),
            ));
        }
    };
    let (done, answer) = tokio::sync::oneshot::channel();
    let push = Push {
        device: device.clone(),
        body: PushBody::Raw(body),
        received: Utc::now(),
        done,
    };
    let unavailable = || ApiError::Unavailable("not stored: retry".into());
    tx.send(push).await.map_err(|_| unavailable())?;
    let pushed = match tokio::time::timeout(COMMIT_WAIT, answer).await {
        Ok(Ok(Ok(p))) => p,
        Ok(Ok(Err(reject))) => return Err(refusal(&reject)),
        // The session ended before the commit (the batch rolled back), or it is slow.
        Ok(Err(_)) | Err(_) => return Err(unavailable()),
    };
    Ok(axum::Json(PushReply {
        device,
        reports: pushed.reports,
        refused: pushed.refused,
    })
    .into_response())
}

fn refusal(r: &Reject) -> ApiError {
    match r {
        Reject::TooLarge => ApiError::TooLarge,
        Reject::UnknownDevice => ApiError::NotFound(r.to_string()),
        r => ApiError::Unprocessable(format!("{}: {r}", r.as_str())),
    }
}

/// 401 asking for Basic credentials (what cameras answer to), bearer accepted too.
fn challenge() -> Response {
    let mut res = ApiError::Unauthorized(
        "device credentials required: HTTP Basic with the device id as user name, or a bearer token"
            .into(),
    )
    .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"visitorflow ingest\""),
    );
    res
}

/// The secret of `Authorization: Basic base64(device:secret)` or `Bearer secret`.
fn secret(headers: &HeaderMap, device: &str) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    (user == device).then(|| pass.to_owned())
}

/// The first part of a `multipart/form-data` body (multer reads it), `Ok(None)` when the body is
/// not multipart, `Err` with the reason when it claims to be and is not.
async fn multipart_part(headers: &HeaderMap, body: &Bytes) -> Result<Option<Bytes>, String> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    if !ct.to_ascii_lowercase().starts_with("multipart/") {
        return Ok(None);
    }
    let boundary = multer::parse_boundary(ct).map_err(|e| format!("multipart body: {e}"))?;
    let whole = body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(whole) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let bad = |e: multer::Error| format!("multipart body: {e}");
    match parts.next_field().await.map_err(bad)? {
        Some(field) => Ok(Some(field.bytes().await.map_err(bad)?)),
        None => Err("multipart body without a part".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_credentials_name_the_device() {
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("cam-1:s3cret");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(secret(&h, "cam-1").as_deref(), Some("s3cret"));
        assert_eq!(secret(&h, "cam-2"), None, "another device's user name");
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert_eq!(secret(&h, "cam-1").as_deref(), Some("tok"));
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(secret(&h, "cam-1"), None);
    }

    #[tokio::test]
    async fn a_multipart_body_gives_its_first_part() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=boundary".parse().unwrap(),
        );
        let body = Bytes::from_static(
            b"--boundary\r\nContent-Disposition: form-data; name=\"PeopleCounting\"\r\nContent-Type: application/xml\r\nContent-Length: 5\r\n\r\n<a/>x\r\n--boundary--\r\n",
        );
        assert_eq!(
            multipart_part(&h, &body).await.unwrap().unwrap().as_ref(),
            b"<a/>x"
        );
        assert!(
            multipart_part(&h, &Bytes::from_static(b"garbage"))
                .await
                .is_err()
        );
        h.insert(header::CONTENT_TYPE, "application/xml".parse().unwrap());
        assert!(multipart_part(&h, &body).await.unwrap().is_none());
    }
}

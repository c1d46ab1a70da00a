//! Signatures, pure: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
//! for the Json and Alertmanager formats, sign and verify; and DingTalk's robot signing, which
//! moves into the URL's query. The clock is a parameter so that tests pin it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use url::Url;

use super::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How far a receiver lets `webhook-timestamp` stray from its clock (Standard Webhooks, Stripe).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Standard Webhooks' prefix for a base64 secret.
const WHSEC_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("secret starts with whsec_ but the rest is not base64: {0}")]
    BadWhsec(base64::DecodeError),
    #[error("secret is empty")]
    Empty,
    #[error("delivery id cannot be sent as a header (visible ASCII only)")]
    BadId,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing or unreadable header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no v1 signature matches")]
    NoMatch,
    #[error(transparent)]
    Secret(#[from] SignError),
}

/// The HMAC key for a Standard Webhooks secret: `whsec_<base64>` is decoded (the form the
/// standard's libraries issue); anything else is used as its UTF-8 bytes.
pub fn signing_key(secret: &Secret) -> Result<Vec<u8>, SignError> {
    let s = secret.expose();
    let key = match s.strip_prefix(WHSEC_PREFIX) {
        Some(b64) => BASE64.decode(b64).map_err(SignError::BadWhsec)?,
        None => s.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(SignError::Empty);
    }
    Ok(key)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Adds `webhook-id` and `webhook-timestamp`, and `webhook-signature` when there is a secret.
/// Without a secret the first two still let a receiver de-duplicate.
pub fn standard_headers(
    headers: &mut HeaderMap,
    secret: Option<&Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<(), SignError> {
    let id_value = HeaderValue::from_str(id).map_err(|_| SignError::BadId)?;
    headers.insert(HEADER_ID, id_value);
    headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
    if let Some(secret) = secret {
        let sig = signature(&signing_key(secret)?, id, timestamp, body);
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(&sig).expect("base64 is a valid header value"),
        );
    }
    Ok(())
}

/// Checks a Standard Webhooks request against the clock now; see [`verify_at`].
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &Secret,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    verify_at(headers, body, secret, tolerance, unix_now())
}

/// Checks a Standard Webhooks request as of `now` (unix seconds): the timestamp within
/// `tolerance` either way (replays of old requests fail), and any one of the space-separated
/// `v1,` signatures matching (senders list several while rotating secrets). The comparison is
/// constant-time (`Mac::verify_slice`).
pub fn verify_at(
    headers: &HeaderMap,
    body: &[u8],
    secret: &Secret,
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = header(HEADER_ID)?;
    let timestamp: i64 = header(HEADER_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let signatures = header(HEADER_SIGNATURE)?;
    let skew = now.saturating_sub(timestamp);
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if skew.unsigned_abs() > tolerance.unsigned_abs() {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let expected = mac(&signing_key(secret)?, id, timestamp, body);
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|tag| expected.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// DingTalk's `sign`: `base64(HMAC-SHA256(key = secret, "{timestamp_ms}\n{secret}"))`, before
/// URL encoding ([`dingtalk_signed_url`] encodes it).
pub fn dingtalk_sign(secret: &Secret, timestamp_ms: i64) -> String {
    let s = secret.expose();
    let mut mac = HmacSha256::new_from_slice(s.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp_ms}\n{s}").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The robot URL with `timestamp` and `sign` appended as query parameters (form-encoded, so
/// base64's `+`, `/`, `=` travel as `%2B`, `%2F`, `%3D`). DingTalk refuses a timestamp more than
/// an hour off, so sign at each attempt.
pub fn dingtalk_signed_url(url: &Url, secret: &Secret, timestamp_ms: i64) -> Url {
    let mut signed = url.clone();
    let sign = dingtalk_sign(secret, timestamp_ms);
    signed
        .query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &sign);
    signed
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"a":1}"#;

    fn signed(secret: &Secret, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        standard_headers(&mut h, Some(secret), id, ts, body).unwrap();
        h
    }

    #[test]
    fn standard_webhooks_published_vector() {
        // The Standard Webhooks spec's own example; recomputed here with
        //   python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(
        //     base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        //     b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}",
        //     hashlib.sha256).digest()).decode())'
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = signing_key(&secret).unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn raw_secret_vector() {
        // printf '%s' 'evt-1.1777600000.{"a":1}' \
        //   | openssl dgst -sha256 -hmac county-bureau-secret -binary | base64
        let secret = Secret::new("county-bureau-secret");
        let h = signed(&secret, "evt-1", 1777600000, BODY);
        assert_eq!(h[HEADER_ID], "evt-1");
        assert_eq!(h[HEADER_TIMESTAMP], "1777600000");
        assert_eq!(
            h[HEADER_SIGNATURE],
            "v1,5VpuSgrK8440o/zvfrkFTjCJhGY0d25CM1yruaUvsLw="
        );
    }

    #[test]
    fn round_trip_and_tampering() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let ts = 1_777_600_000;
        let h = signed(&secret, "evt-1", ts, BODY);
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(verify_at(&h, BODY, &secret, tol, ts), Ok(()));
        assert_eq!(verify_at(&h, BODY, &secret, tol, ts + 299), Ok(()));
        assert_eq!(verify_at(&h, BODY, &secret, tol, ts - 299), Ok(()));

        assert_eq!(
            verify_at(&h, br#"{"a":2}"#, &secret, tol, ts),
            Err(VerifyError::NoMatch),
            "tampered body"
        );
        let mut forged_ts = h.clone();
        forged_ts.insert(HEADER_TIMESTAMP, HeaderValue::from(ts + 10));
        assert_eq!(
            verify_at(&forged_ts, BODY, &secret, tol, ts),
            Err(VerifyError::NoMatch)
        );
        let mut other_id = h.clone();
        other_id.insert(HEADER_ID, HeaderValue::from_static("evt-2"));
        assert_eq!(
            verify_at(&other_id, BODY, &secret, tol, ts),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_at(&h, BODY, &Secret::new("another"), tol, ts),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_at(&h, BODY, &secret, tol, ts + 301),
            Err(VerifyError::OutsideTolerance(301)),
            "replayed after five minutes"
        );
        assert_eq!(
            verify_at(&h, BODY, &secret, tol, ts - 301),
            Err(VerifyError::OutsideTolerance(-301)),
            "from the future"
        );
        // The real clock is far from 2026-05-01 in either direction only in tests: a fresh
        // signature verifies through `verify`.
        let now = unix_now();
        assert_eq!(
            verify(&signed(&secret, "x", now, BODY), BODY, &secret, tol),
            Ok(())
        );
    }

    #[test]
    fn several_signatures_any_may_match() {
        let old = Secret::new("old-secret");
        let new = Secret::new("new-secret");
        let ts = 1_777_600_000;
        let sig_old = signature(&signing_key(&old).unwrap(), "e", ts, BODY);
        let sig_new = signature(&signing_key(&new).unwrap(), "e", ts, BODY);
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, HeaderValue::from_static("e"));
        h.insert(HEADER_TIMESTAMP, HeaderValue::from(ts));
        let both = format!("v1a,ignored {sig_old} {sig_new}");
        h.insert(HEADER_SIGNATURE, HeaderValue::from_str(&both).unwrap());
        assert_eq!(verify_at(&h, BODY, &old, DEFAULT_TOLERANCE, ts), Ok(()));
        assert_eq!(verify_at(&h, BODY, &new, DEFAULT_TOLERANCE, ts), Ok(()));
        h.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_static("v1,!!notbase64 v2,AAAA"),
        );
        assert_eq!(
            verify_at(&h, BODY, &new, DEFAULT_TOLERANCE, ts),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn malformed_requests() {
        let secret = Secret::new("s");
        let ts = 1_777_600_000;
        let h = signed(&secret, "e", ts, BODY);
        for name in [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE] {
            let mut m = h.clone();
            m.remove(name);
            assert_eq!(
                verify_at(&m, BODY, &secret, DEFAULT_TOLERANCE, ts),
                Err(VerifyError::MissingHeader(name))
            );
        }
        let mut m = h.clone();
        m.insert(HEADER_TIMESTAMP, HeaderValue::from_static("yesterday"));
        assert_eq!(
            verify_at(&m, BODY, &secret, DEFAULT_TOLERANCE, ts),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn secrets() {
        assert!(matches!(
            signing_key(&Secret::new("whsec_not base64!")),
            Err(SignError::BadWhsec(_))
        ));
        assert_eq!(signing_key(&Secret::new("whsec_")), Err(SignError::Empty));
        assert_eq!(signing_key(&Secret::new("abc")).unwrap(), b"abc");
        assert_eq!(
            signing_key(&Secret::new("whsec_AAEC")).unwrap(),
            [0u8, 1, 2]
        );
        let mut h = HeaderMap::new();
        assert_eq!(
            standard_headers(&mut h, None, "bad\nid", 1, BODY),
            Err(SignError::BadId)
        );
        standard_headers(&mut h, None, "ok", 1, BODY).unwrap();
        assert!(
            h.get(HEADER_SIGNATURE).is_none(),
            "unsigned without a secret"
        );
        assert_eq!(h[HEADER_ID], "ok");
    }

    #[test]
    fn dingtalk_vector_and_url() {
        // printf '%s\n%s' 1777601700000 SECexample0123456789abcdef \
        //   | openssl dgst -sha256 -hmac SECexample0123456789abcdef -binary | base64
        let secret = Secret::new("SECexample0123456789abcdef");
        let ts = 1_777_601_700_000;
        assert_eq!(
            dingtalk_sign(&secret, ts),
            "emBTC4P9BXepCZXlC+R1pvOTch6H2n27Y306KXSeyQU="
        );

        let robot = Url::parse("https://oapi.example.com/robot/send?access_token=abc").unwrap();
        let url = dingtalk_signed_url(&robot, &secret, ts);
        // Python's urllib.parse.quote_plus of the signature above.
        assert_eq!(
            url.query(),
            Some(
                "access_token=abc&timestamp=1777601700000\
                 &sign=emBTC4P9BXepCZXlC%2BR1pvOTch6H2n27Y306KXSeyQU%3D"
            )
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[2].1, dingtalk_sign(&secret, ts), "decodes back");
    }
}

//! The call to Ory's `GET /sessions/whoami` and what its answer means.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::credentials::{Credentials, X_SESSION_TOKEN};

/// Bounds the whole call, answer body included: a hanging Ory delays an authenticated request by
/// at most this, then it goes on anonymous. No retries: the next request (or the next cache
/// miss) is the retry. The session cache also relies on it: no answer is stored later than this
/// after its request was sent.
pub const WHOAMI_TIMEOUT: Duration = Duration::from_secs(5);

/// An active session as Ory described it.
#[derive(Debug)]
pub struct ActiveSession {
    pub identity_id: String,
    pub expires_at: Option<SystemTime>,
    /// The whoami body exactly as Ory sent it; becomes the JWT's `session` claim.
    pub raw: Box<RawValue>,
}

/// The outcome of one whoami call.
#[derive(Debug)]
pub enum Whoami {
    Active(ActiveSession),
    /// 401/403 or `active: false`: an ordinary anonymous visitor.
    Anonymous,
}

/// Ory could not say: unreachable, 5xx, timeout, or an answer that is not a session.
#[derive(Debug, thiserror::Error)]
pub enum WhoamiError {
    #[error("whoami: {0}")]
    Send(String),
    #[error("whoami answered {0}")]
    Status(u16),
    #[error("whoami answer is not a session: {0}")]
    Body(String),
    #[error("whoami did not finish within {}s", WHOAMI_TIMEOUT.as_secs())]
    Timeout,
}

#[derive(Deserialize)]
struct View {
    #[serde(default)]
    active: bool,
    expires_at: Option<String>,
    identity: Option<IdentityView>,
}

#[derive(Deserialize)]
struct IdentityView {
    id: String,
}

/// Asks Ory about these credentials, within [`WHOAMI_TIMEOUT`].
pub async fn call(
    client: &awc::Client,
    url: &str,
    creds: &Credentials,
) -> Result<Whoami, WhoamiError> {
    // awc's own request timeout stops at the answer's head; a body that trickles would not be
    // bounded by it.
    tokio::time::timeout(WHOAMI_TIMEOUT, exchange(client, url, creds))
        .await
        .unwrap_or(Err(WhoamiError::Timeout))
}

async fn exchange(
    client: &awc::Client,
    url: &str,
    creds: &Credentials,
) -> Result<Whoami, WhoamiError> {
    let mut req = client
        .get(url)
        .insert_header((header::ACCEPT, HeaderValue::from_static("application/json")));
    if let Some(c) = &creds.cookie {
        req = req.insert_header((header::COOKIE, c.as_str()));
    }
    if let Some(t) = &creds.session_token {
        req = req.insert_header((X_SESSION_TOKEN, t.clone()));
    }
    if let Some(a) = &creds.authorization {
        req = req.insert_header((header::AUTHORIZATION, a.clone()));
    }
    let mut res = req
        .send()
        .await
        .map_err(|e| WhoamiError::Send(e.to_string()))?;
    let status = res.status().as_u16();
    match status {
        200 => {}
        401 | 403 => return Ok(Whoami::Anonymous),
        s => return Err(WhoamiError::Status(s)),
    }
    let body = res
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| WhoamiError::Body(e.to_string()))?;
    parse(&body)
}

pub fn parse(body: &[u8]) -> Result<Whoami, WhoamiError> {
    let view: View = serde_json::from_slice(body).map_err(|e| WhoamiError::Body(e.to_string()))?;
    if !view.active {
        return Ok(Whoami::Anonymous);
    }
    let identity_id = view
        .identity
        .map(|i| i.id)
        .ok_or_else(|| WhoamiError::Body("active session without identity.id".into()))?;
    // Unparsable: no expiry of its own; the cache ttl and the token ttl still bound it.
    let expires_at = view.expires_at.as_deref().and_then(parse_rfc3339);
    if expires_at.is_some_and(|t| t <= SystemTime::now()) {
        return Ok(Whoami::Anonymous);
    }
    let raw: Box<RawValue> =
        serde_json::from_slice(body).map_err(|e| WhoamiError::Body(e.to_string()))?;
    Ok(Whoami::Active(ActiveSession {
        identity_id,
        expires_at,
        raw,
    }))
}

/// RFC 3339 with `Z` or a numeric offset (`+02:00`), fractional seconds allowed, any year
/// (Go's zero time `0001-01-01T00:00:00Z` is long past, not unparsable).
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t: jiff::Timestamp = s.trim().parse().ok()?;
    SystemTime::try_from(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ory_session_example() {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/session-example.json")).unwrap();
        v["expires_at"] = "2999-01-01T00:00:00.123456Z".into();
        let body = serde_json::to_vec(&v).unwrap();
        let Whoami::Active(s) = parse(&body).unwrap() else {
            panic!("not active")
        };
        assert_eq!(s.identity_id, "18aafd3e-b00c-4b19-81c8-351e38705126");
        assert_eq!(s.raw.get().as_bytes(), &body[..]);
    }

    #[test]
    fn expires_at_with_offsets() {
        let z = parse_rfc3339("2030-01-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2030-01-01T14:00:00+02:00"), Some(z));
        assert_eq!(
            parse_rfc3339("2030-01-01T10:30:00.5-01:30").unwrap(),
            z + std::time::Duration::from_millis(500)
        );
        assert_eq!(
            parse_rfc3339("2030-01-01T12:00:00.123456Z").unwrap(),
            z + std::time::Duration::from_micros(123_456)
        );
        assert_eq!(parse_rfc3339("soon"), None);
        let body =
            br#"{"active":true,"expires_at":"2999-01-01T00:00:00+05:00","identity":{"id":"x"}}"#;
        assert!(matches!(parse(body).unwrap(), Whoami::Active(_)));
        let odd = br#"{"active":true,"expires_at":"tomorrow","identity":{"id":"x"}}"#;
        assert!(matches!(
            parse(odd).unwrap(),
            Whoami::Active(ActiveSession {
                expires_at: None,
                ..
            })
        ));
    }

    #[test]
    fn expires_at_before_1970_is_expired_and_bad_offsets_are_unparsable() {
        // Go's zero time and other pre-1970 instants are in the past: the session is over.
        for past in ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59.5+00:00"] {
            assert!(
                parse_rfc3339(past).is_some_and(|t| t < std::time::UNIX_EPOCH),
                "{past}"
            );
            let body =
                format!(r#"{{"active":true,"expires_at":"{past}","identity":{{"id":"x"}}}}"#);
            assert!(
                matches!(parse(body.as_bytes()).unwrap(), Whoami::Anonymous),
                "{past}"
            );
        }
        for bad in [
            "2030-01-01T12:00:00+02:60",
            "2030-01-01T12:00:00+2:00",
            "2030-01-01T12:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn inactive_or_expired_is_anonymous_and_garbage_is_an_error() {
        assert!(matches!(
            parse(br#"{"active":false}"#).unwrap(),
            Whoami::Anonymous
        ));
        let expired =
            br#"{"active":true,"expires_at":"2001-01-01T00:00:00Z","identity":{"id":"x"}}"#;
        assert!(matches!(parse(expired).unwrap(), Whoami::Anonymous));
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"active":true}"#).is_err());
    }
}

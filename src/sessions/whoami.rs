//! The call to Ory's `GET /sessions/whoami` and what its answer means.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::credentials::{Credentials, X_SESSION_TOKEN};
use crate::access::SessionFacts;

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
    /// What the access rules decide on (assurance level, addresses), read once per answer.
    pub facts: Arc<SessionFacts>,
    /// The whoami body exactly as Ory sent it; becomes the JWT's `session` claim.
    pub raw: Box<RawValue>,
}

/// The outcome of one whoami call that Ory (or whatever answers at its address) answered.
#[derive(Debug)]
pub enum Whoami {
    Active(ActiveSession),
    /// 401/403, `active: false`, or a session already expired: an ordinary anonymous visitor.
    Anonymous,
    /// 403 `session_aal2_required`: a session that Ory shows only at `aal2` (its whoami's
    /// `required_aal` is `highest_available` and the identity has a second factor). The access
    /// rules send it to the step-up; to the app it is anonymous.
    Aal2Required,
    /// An answer about these credentials that is neither a session nor a plain "no": they get
    /// no session, and it says nothing about Ory's health (see [`Rejection`]).
    Rejected(Rejection),
}

/// Why an answer was neither a session nor an ordinary "no". A client chooses its own
/// credentials, so it can make Ory, or a proxy in front of Ory, answer any of these: each one
/// concerns that client's credentials only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A 4xx other than 401, 403 and 429 (400, 404, 422, 431 for an oversized cookie, …).
    Status(u16),
    /// 429: Ory asks to slow down; remembered only briefly.
    Throttled,
    /// A 200 that is not a session (HTML, JSON without an identity, over 1 MiB), or another
    /// status that is neither a 4xx nor a 5xx (a redirect).
    NotASession(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Status(s) => write!(f, "whoami answered {s}"),
            Rejection::Throttled => f.write_str("whoami answered 429"),
            Rejection::NotASession(why) => write!(f, "whoami answer is not a session: {why}"),
        }
    }
}

/// Ory did not answer: unreachable, 5xx, timeout, or a body cut off. Only these count toward
/// the outage breaker.
#[derive(Debug, thiserror::Error)]
pub enum WhoamiError {
    #[error("whoami: {0}")]
    Send(String),
    #[error("whoami answered {0}")]
    Status(u16),
    #[error("whoami answer body: {0}")]
    Body(String),
    #[error("whoami did not finish within {}s", WHOAMI_TIMEOUT.as_secs())]
    Timeout,
}

/// Whether Ory answers a whoami that carries no credential at all, within [`WHOAMI_TIMEOUT`]:
/// the outage breaker's own check, which no client can make fail. Any status below 500 (a
/// 401, typically) is an answer; the body is not read.
pub async fn ory_answers(client: &awc::Client, url: &str) -> Result<(), WhoamiError> {
    let ask = async {
        let res = client
            .get(url)
            .insert_header((header::ACCEPT, HeaderValue::from_static("application/json")))
            .send()
            .await
            .map_err(|e| WhoamiError::Send(e.to_string()))?;
        match res.status().as_u16() {
            s @ 500.. => Err(WhoamiError::Status(s)),
            _ => Ok(()),
        }
    };
    tokio::time::timeout(WHOAMI_TIMEOUT, ask)
        .await
        .unwrap_or(Err(WhoamiError::Timeout))
}

/// The largest whoami body read; a larger one is not a session.
const MAX_WHOAMI_BODY: usize = 1 << 20;

#[derive(Deserialize)]
struct View {
    #[serde(default)]
    active: bool,
    expires_at: Option<String>,
    identity: Option<IdentityView>,
    /// Values of any other type are no level (never `aal2`), not a broken answer.
    #[serde(default)]
    authenticator_assurance_level: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IdentityView {
    id: String,
    /// Any shape: a list of addresses as Kratos sends them, or anything else (no address).
    #[serde(default)]
    verifiable_addresses: Option<serde_json::Value>,
}

impl IdentityView {
    /// The facts the access rules read: the values of the addresses marked `verified` (by
    /// email: `allow_emails` globs are over addresses). `traits.email` is not one of them: it
    /// is what the user typed, verified or not.
    fn facts(&self, aal: Option<&serde_json::Value>) -> SessionFacts {
        let verified = self
            .verifiable_addresses
            .as_ref()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("verified").and_then(serde_json::Value::as_bool) == Some(true))
            .filter(|a| a.get("via").and_then(serde_json::Value::as_str) == Some("email"))
            .filter_map(|a| a.get("value").and_then(serde_json::Value::as_str));
        SessionFacts::new(aal.and_then(serde_json::Value::as_str), verified)
    }
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
        401 => return Ok(Whoami::Anonymous),
        403 => return Ok(forbidden(&mut res).await),
        429 => return Ok(Whoami::Rejected(Rejection::Throttled)),
        // About the connection or a gateway, not the credentials (an unprompted 408 from a
        // server closing an idle pooled connection, a misdirected request, early data, a
        // client-closed request): Ory did not answer about them, so nothing is remembered.
        408 | 421 | 425 | 499 => return Err(WhoamiError::Status(status)),
        500..=599 => return Err(WhoamiError::Status(status)),
        400..=499 => return Ok(Whoami::Rejected(Rejection::Status(status))),
        s => {
            return Ok(Whoami::Rejected(Rejection::NotASession(format!(
                "status {s}"
            ))))
        }
    }
    match res.body().limit(MAX_WHOAMI_BODY).await {
        Ok(body) => Ok(parse(&body)),
        Err(awc::error::PayloadError::Overflow) => Ok(Whoami::Rejected(Rejection::NotASession(
            format!("a body over {MAX_WHOAMI_BODY} bytes"),
        ))),
        // Cut off or broken on the way: Ory did not finish answering.
        Err(e) => Err(WhoamiError::Body(e.to_string())),
    }
}

/// The largest 403 body read for its error id.
const MAX_FORBIDDEN_BODY: usize = 64 << 10;

/// A 403 is "no session", unless its body says the session needs a second factor first.
/// A body that cannot be read or parsed is the plain "no".
async fn forbidden<S>(res: &mut awc::ClientResponse<S>) -> Whoami
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorId,
    }
    #[derive(Deserialize)]
    struct ErrorId {
        id: Option<String>,
    }
    let Ok(body) = res.body().limit(MAX_FORBIDDEN_BODY).await else {
        return Whoami::Anonymous;
    };
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) if e.error.id.as_deref() == Some("session_aal2_required") => Whoami::Aal2Required,
        _ => Whoami::Anonymous,
    }
}

/// What a whoami 200 body says about the session.
pub fn parse(body: &[u8]) -> Whoami {
    let not_a_session = |why: String| Whoami::Rejected(Rejection::NotASession(why));
    let view: View = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return not_a_session(e.to_string()),
    };
    if !view.active {
        return Whoami::Anonymous;
    }
    let Some(identity) = view.identity else {
        return not_a_session("an active session without identity.id".into());
    };
    let facts = Arc::new(identity.facts(view.authenticator_assurance_level.as_ref()));
    let identity_id = identity.id;
    // Unparsable: no expiry of its own; the cache ttl and the token ttl still bound it.
    let expires_at = view.expires_at.as_deref().and_then(parse_rfc3339);
    if expires_at.is_some_and(|t| t <= SystemTime::now()) {
        return Whoami::Anonymous;
    }
    // Parsed once already, so this cannot fail; kept total all the same.
    match serde_json::from_slice::<Box<RawValue>>(body) {
        Ok(raw) => Whoami::Active(ActiveSession {
            identity_id,
            expires_at,
            facts,
            raw,
        }),
        Err(e) => not_a_session(e.to_string()),
    }
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
        let Whoami::Active(s) = parse(&body) else {
            panic!("not active")
        };
        assert_eq!(s.identity_id, "18aafd3e-b00c-4b19-81c8-351e38705126");
        assert_eq!(s.raw.get().as_bytes(), &body[..]);
        assert_eq!(
            *s.facts,
            SessionFacts::new(Some("aal1"), ["foo@example.org"])
        );
    }

    #[test]
    fn session_facts_are_read_leniently() {
        let facts = |body: &str| match parse(body.as_bytes()) {
            Whoami::Active(s) => s.facts,
            other => panic!("{other:?}"),
        };
        let f = facts(
            r#"{"active":true,"authenticator_assurance_level":"aal2","identity":{"id":"x",
            "traits":{"email":"boss@example.org"},
            "verifiable_addresses":[
              {"value":"ada@work.example","verified":true,"via":"email"},
              {"value":"eve@unverified.example","verified":false,"via":"email"},
              {"value":"+4912345","verified":true,"via":"sms"},
              {"value":"no-via@example.org","verified":true},
              {"value":"odd-via@example.org","verified":true,"via":"carrier-pigeon"},
              {"value":"string@example.org","verified":"true","via":"email"}]}}"#,
        );
        assert!(f.aal2);
        assert_eq!(
            &*f.emails,
            [Box::<str>::from("ada@work.example")],
            "the verified email address only: not traits.email, the unverified one, the phone, \
             one without via or with another, or one whose verified is not JSON true"
        );
        // Odd shapes are no facts, not a broken session.
        let f = facts(
            r#"{"active":true,"authenticator_assurance_level":2,"identity":{"id":"x",
            "traits":{"email":["a@b"]},"verifiable_addresses":{"x":1}}}"#,
        );
        assert!(!f.aal2 && f.emails.is_empty());
        let f = facts(r#"{"active":true,"identity":{"id":"x","traits":null}}"#);
        assert_eq!(*f, SessionFacts::default());
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
        assert!(matches!(parse(body), Whoami::Active(_)));
        let odd = br#"{"active":true,"expires_at":"tomorrow","identity":{"id":"x"}}"#;
        assert!(matches!(
            parse(odd),
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
                matches!(parse(body.as_bytes()), Whoami::Anonymous),
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
    fn inactive_or_expired_is_anonymous_and_garbage_is_not_a_session() {
        assert!(matches!(parse(br#"{"active":false}"#), Whoami::Anonymous));
        let expired =
            br#"{"active":true,"expires_at":"2001-01-01T00:00:00Z","identity":{"id":"x"}}"#;
        assert!(matches!(parse(expired), Whoami::Anonymous));
        for garbage in [
            &b"<html>"[..],
            br#"{"active":true}"#,
            br#"{"active":true,"identity":{"id":7}}"#,
            b"",
            b"null",
        ] {
            assert!(
                matches!(parse(garbage), Whoami::Rejected(Rejection::NotASession(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}

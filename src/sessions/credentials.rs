//! Which parts of a request identify a session (docs/behaviour.md, "Sessions and the JWT"): the
//! cookies named in `[session].cookie_names`, `X-Session-Token`, `Authorization`. Only those are
//! sent to whoami and hashed into the cache key, so CSRF and app cookies neither fragment the cache
//! nor reach Ory's session check.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};

use crate::config::settings::SessionLive;

/// The cache key: SHA-256 over the credentials, so neither tokens nor a cheap collision sit
/// in the cache's key space.
pub type CredentialKey = [u8; 32];

#[derive(Debug, Clone)]
pub struct Credentials {
    pub key: CredentialKey,
    /// `name=value; name=value` of the session cookies only.
    pub cookie: Option<String>,
    pub session_token: Option<HeaderValue>,
    pub authorization: Option<HeaderValue>,
}

/// A typed name: looking a header up by `&str` parses (and, for a non-standard name, copies)
/// the name on every request.
pub const X_SESSION_TOKEN: HeaderName = HeaderName::from_static("x-session-token");

/// `None` when the request carries no credential at all (no whoami for it).
pub fn extract(headers: &HeaderMap, session: &SessionLive) -> Option<Credentials> {
    let mut cookie = String::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(v) = value.to_str() else { continue };
        for pair in v.split(';') {
            let pair = pair.trim();
            let name = pair.split('=').next().unwrap_or("").trim();
            if !name.is_empty() && session.is_session_cookie(name) {
                if !cookie.is_empty() {
                    cookie.push_str("; ");
                }
                cookie.push_str(pair);
            }
        }
    }
    let session_token = headers.get(&X_SESSION_TOKEN).cloned();
    let authorization = headers.get(header::AUTHORIZATION).cloned();
    if cookie.is_empty() && session_token.is_none() && authorization.is_none() {
        return None;
    }
    Some(Credentials {
        key: key_of(
            cookie.as_bytes(),
            session_token.as_ref().map_or(&[][..], |v| v.as_bytes()),
            authorization.as_ref().map_or(&[][..], |v| v.as_bytes()),
        ),
        cookie: (!cookie.is_empty()).then_some(cookie),
        session_token,
        authorization,
    })
}

fn key_of(cookie: &[u8], session_token: &[u8], authorization: &[u8]) -> CredentialKey {
    let mut h = Sha256::new();
    for part in [cookie, session_token, authorization] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The keys under which a session token alone is cached: sent as `X-Session-Token` or as a
/// bearer token. For an API logout, which names the token in its body. A token sent together
/// with other credentials is cached under a key this cannot know; it expires with `cache_ttl`.
pub fn session_token_keys(token: &str) -> [CredentialKey; 3] {
    [
        key_of(b"", token.as_bytes(), b""),
        key_of(b"", b"", format!("Bearer {token}").as_bytes()),
        key_of(b"", b"", format!("bearer {token}").as_bytes()),
    ]
}

/// Whether a `Set-Cookie` value sets or deletes one of the session cookies: a login, a logout
/// or an assurance-level step-up seen through the proxy. Either way the cached answer for the
/// request's credentials is stale.
pub fn touches_session_cookie(set_cookie: &str, session: &SessionLive) -> bool {
    set_cookie
        .split(';')
        .next()
        .and_then(|nv| nv.split_once('='))
        .is_some_and(|(name, _)| session.is_session_cookie(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn session() -> SessionLive {
        SessionLive {
            cookie_names: vec!["ory_session_*".into(), "ory_kratos_session".into()],
            cache_ttl: std::time::Duration::from_secs(10),
            cache_max_entries: 10,
        }
    }

    #[test]
    fn no_credentials_no_lookup() {
        assert!(extract(
            &headers(&[("cookie", "csrf_token_x=1; theme=dark")]),
            &session()
        )
        .is_none());
        assert!(extract(&headers(&[]), &session()).is_none());
    }

    #[test]
    fn only_session_cookies_are_kept_and_keyed() {
        let a = extract(
            &headers(&[("cookie", "csrf_token_x=1; ory_kratos_session=abc")]),
            &session(),
        )
        .unwrap();
        let b = extract(
            &headers(&[("cookie", "ory_kratos_session=abc; csrf_token_x=2")]),
            &session(),
        )
        .unwrap();
        assert_eq!(a.cookie.as_deref(), Some("ory_kratos_session=abc"));
        assert_eq!(a.key, b.key, "CSRF cookies must not fragment the cache");
        let c = extract(
            &headers(&[("cookie", "ory_kratos_session=abd")]),
            &session(),
        )
        .unwrap();
        assert_ne!(a.key, c.key);
    }

    #[test]
    fn token_and_authorization_are_credentials() {
        let t = extract(&headers(&[("x-session-token", "t")]), &session()).unwrap();
        let a = extract(&headers(&[("authorization", "t")]), &session()).unwrap();
        assert_ne!(
            t.key, a.key,
            "the same bytes in different headers are different credentials"
        );
    }

    #[test]
    fn session_cookie_changes_are_detected() {
        let s = session();
        assert!(touches_session_cookie(
            "ory_kratos_session=; Path=/; Max-Age=0",
            &s
        ));
        assert!(touches_session_cookie(
            "ory_session_abc=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            &s
        ));
        assert!(touches_session_cookie(
            "ory_kratos_session=new; Max-Age=3600",
            &s
        ));
        assert!(!touches_session_cookie("csrf_token_1=; Max-Age=0", &s));
        assert!(!touches_session_cookie("garbage", &s));
    }
}

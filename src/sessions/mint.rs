//! Minting the session JWT (README, "How the app verifies the JWT"): ES256, `kid` header, claims
//! `iss`, `sub`, `iat`, `nbf`, `exp` (iat + ttl, never past the session's expiry), `jti`, `session`
//! (the whoami JSON as Ory sent it), `aud` when configured.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;

use super::whoami::ActiveSession;
use crate::access::SessionFacts;
use crate::config::Live;
use crate::keys::KeyRing;

/// A signed token ready to put in `Authorization`, with what else the request path needs of
/// the session: taken together once per token, not per request.
#[derive(Debug)]
pub struct Minted {
    pub header: HeaderValue,
    pub iat: u64,
    pub exp: u64,
    /// The live settings it was minted under: a reload of `[jwt]` (or of the identity
    /// headers) makes it stale.
    pub live: Arc<Live>,
    /// What the access rules decide on.
    pub facts: Arc<SessionFacts>,
    /// The identity headers (`[access].identity_headers`) of the session.
    pub identity: Box<[(HeaderName, HeaderValue)]>,
}

impl Minted {
    /// Reused while at least half its lifetime remains, under the same settings.
    pub fn reusable(&self, now: u64, live: &Arc<Live>) -> bool {
        Arc::ptr_eq(&self.live, live)
            && now.saturating_add((self.exp - self.iat) / 2) <= self.exp
            && now < self.exp
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience<'a>>,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    session: &'a RawValue,
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("the session has expired")]
    Expired,
    #[error("signing the JWT: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("the JWT is not a valid header value")]
    Header,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn mint(
    session: &ActiveSession,
    ring: &KeyRing,
    live: &Arc<Live>,
) -> Result<Minted, MintError> {
    let iat = unix_now();
    let mut exp = iat + live.jwt.ttl.as_secs().max(1);
    if let Some(t) = session.expires_at {
        let session_exp = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        exp = exp.min(session_exp);
    }
    if exp <= iat {
        return Err(MintError::Expired);
    }
    let aud = match live.jwt.audience.as_slice() {
        [] => None,
        [one] => Some(Audience::One(one)),
        many => Some(Audience::Many(many)),
    };
    let claims = Claims {
        iss: &live.jwt.issuer,
        sub: &session.identity_id,
        aud,
        iat,
        nbf: iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        session: &session.raw,
    };
    let token = jsonwebtoken::encode(&ring.signing.header, &claims, &ring.signing.key)?;
    let header =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| MintError::Header)?;
    Ok(Minted {
        header,
        iat,
        exp,
        live: live.clone(),
        facts: session.facts.clone(),
        identity: live.access.identity.values(session.raw.get()).into(),
    })
}

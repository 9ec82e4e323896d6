//! How the demo app checks the proxy's `Authorization: Bearer <JWT>`: the README's Rust example
//! plus the JWKS cache a real app needs (fetch once, refetch when a token names an unknown key).

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Refetches triggered by unknown key ids are at most this frequent, so that tokens with made-up
/// `kid`s cannot turn every request into a JWKS download. The proxy publishes a new key well
/// before it signs with it, so a real token never waits for this.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token has no `kid` header")]
    NoKid,
    #[error("no key with id {0:?} in the JWKS")]
    UnknownKid(String),
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(String),
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// The keys fetched last, and when.
struct Cache {
    keys: JwkSet,
    fetched: Option<Instant>,
}

/// Verifies the proxy's ES256 tokens against its JWKS. Shared by all workers; the cache lock is
/// never held across an await.
pub struct JwtVerifier {
    jwks_url: String,
    issuer: String,
    cache: RwLock<Cache>,
}

impl JwtVerifier {
    /// `jwks_url` is the proxy's `/.ory/jwks.json`; `issuer` the expected `iss` (the Ory URL
    /// unless the proxy's `[jwt].issuer` says otherwise).
    pub fn new(jwks_url: impl Into<String>, issuer: impl Into<String>) -> JwtVerifier {
        JwtVerifier {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            cache: RwLock::new(Cache {
                keys: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
        }
    }

    /// Checks an `Authorization` header value and returns the token's claims.
    pub async fn verify(
        &self,
        client: &awc::Client,
        authorization: &str,
    ) -> Result<Value, VerifyError> {
        let token = authorization
            .strip_prefix("Bearer ")
            .ok_or(VerifyError::NotBearer)?;
        let kid = decode_header(token)?.kid.ok_or(VerifyError::NoKid)?;
        let jwk = match self.cached_key(&kid) {
            Some(jwk) => jwk,
            None => {
                self.refetch(client).await?;
                self.cached_key(&kid)
                    .ok_or_else(|| VerifyError::UnknownKid(kid.clone()))?
            }
        };
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_nbf = true;
        let key = DecodingKey::from_jwk(&jwk)?;
        Ok(decode::<Value>(token, &key, &validation)?.claims)
    }

    fn cached_key(&self, kid: &str) -> Option<Jwk> {
        // A poisoned lock only means another request panicked mid-update of two plain fields;
        // the data is still usable.
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.keys.find(kid).cloned()
    }

    /// Downloads the JWKS unless that happened less than [`MIN_REFETCH_INTERVAL`] ago.
    async fn refetch(&self, client: &awc::Client) -> Result<(), VerifyError> {
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if cache
                .fetched
                .is_some_and(|at| at.elapsed() < MIN_REFETCH_INTERVAL)
            {
                return Ok(());
            }
        }
        let mut res = client
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| VerifyError::Fetch(e.to_string()))?;
        if !res.status().is_success() {
            return Err(VerifyError::Fetch(format!("HTTP {}", res.status())));
        }
        let keys: JwkSet = res
            .json()
            .await
            .map_err(|e| VerifyError::Fetch(e.to_string()))?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        *cache = Cache {
            keys,
            fetched: Some(Instant::now()),
        };
        Ok(())
    }
}

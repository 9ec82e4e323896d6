//! What the key actor publishes and how it is configured: the [`KeyRing`] readers take, and the
//! keys file's settings. A leaf that the actor and its handle share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::error::KeyError;
use super::jwk::{EcKey, JwksJson};

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub header: Header,
    pub key: EncodingKey,
}

/// What readers see: the signing key and the public JWKS, pre-serialised.
pub struct KeyRing {
    pub signing: Arc<SigningKey>,
    pub jwks: Bytes,
    /// Every kid in the JWKS, signing key first.
    pub kids: Vec<String>,
}

/// The keys file and how it is used (`[jwt] keys_file`, `keys_file_read_only`).
#[derive(Debug, Clone)]
pub struct KeysFile {
    pub path: PathBuf,
    /// Followed, never written: a missing file is an error, `SIGUSR1` does not rotate.
    pub read_only: bool,
    /// Watch its directory with OS notifications too (`watch = "auto"`), not only poll it.
    pub notify: bool,
}

/// How long a SIGUSR1 rotation publishes the new key before signing with it: half the token
/// lifetime, at most 30 s (the JWKS' `Cache-Control: max-age`), so verifiers that cached the
/// JWKS just before the rotation have refetched it when the first new token arrives.
pub fn signal_publish_ahead(token_lifetime: Duration) -> Duration {
    (token_lifetime / 2).min(Duration::from_secs(30))
}

pub(super) fn build_ring(signing: &EcKey, extra_public: &[&EcKey]) -> Result<KeyRing, KeyError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(signing.kid.clone());
    header.typ = Some("JWT".into());
    let mut keys = vec![signing.public_jwk()];
    keys.extend(extra_public.iter().map(|k| k.public_jwk()));
    let kids = keys.iter().map(|k| k.kid.clone()).collect();
    let jwks = serde_json::to_vec(&JwksJson { keys })?;
    Ok(KeyRing {
        signing: Arc::new(SigningKey {
            kid: signing.kid.clone(),
            header,
            key: signing.encoding_key()?,
        }),
        jwks: Bytes::from(jwks),
        kids,
    })
}

//! P-256 key material and its JWK form: generation, the RFC 7638 thumbprint used as `kid`,
//! and the `keys_file` format (a JWKS whose entries carry the private `d`).
//!
//! Every heap copy of private key material made here (`d` as text and as bytes, the keys
//! file's bytes) is zeroized when dropped, as p256 does for its own `SecretKey` and JWKs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::EncodingKey;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use p256::SecretKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// One signing key with everything derived from it once.
#[derive(Clone)]
pub struct EcKey {
    secret: SecretKey,
    pub kid: String,
    pub x: String,
    pub y: String,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A JWK as written to the JWKS endpoint (`d` absent) or to the keys file (`d` present).
/// `Debug` is written by hand so that the private part never reaches a log.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwkJson {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub x: String,
    pub y: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<SecretD>,
    /// Keys file only: the key signs from this Unix time on (published before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_from: Option<u64>,
    /// Keys file only: a verify-only key leaves the JWKS at this Unix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
}

impl std::fmt::Debug for JwkJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkJson")
            .field("kid", &self.kid)
            .field("d", &self.d.as_ref().map(|_| "<redacted>"))
            .field("sign_from", &self.sign_from)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// The private `d` (base64url), zeroized on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretD(Zeroizing<String>);

impl SecretD {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretD {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretD {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretD {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SecretD, D::Error> {
        // The String is wrapped as soon as it exists; serde_json builds it in one allocation
        // (base64url has nothing to unescape).
        String::deserialize(d).map(|text| SecretD(Zeroizing::new(text)))
    }
}

/// `{"keys":[...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwksJson {
    pub keys: Vec<JwkJson>,
}

impl JwksJson {
    /// The keys file's text (pretty JSON). Its size is measured first so that the buffer is
    /// allocated once: a growing `Vec` would free copies of `d` on the way without zeroizing.
    pub fn to_file_bytes(&self) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
        let mut counter = ByteCounter(0);
        serde_json::to_writer_pretty(&mut counter, self)?;
        let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
        serde_json::to_writer_pretty(&mut *out, self)?;
        Ok(out)
    }
}

/// A writer that only counts.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwkError {
    #[error("key {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("cannot encode the key as PKCS#8: {0}")]
    Pkcs8(String),
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, base64url.
pub fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

impl EcKey {
    pub fn generate() -> EcKey {
        EcKey::from_secret(SecretKey::random(
            &mut p256::elliptic_curve::rand_core::OsRng,
        ))
    }

    fn from_secret(secret: SecretKey) -> EcKey {
        let point = secret.public_key().to_encoded_point(false);
        let x = point.x().map(|c| B64.encode(c)).unwrap_or_default();
        let y = point.y().map(|c| B64.encode(c)).unwrap_or_default();
        EcKey {
            kid: thumbprint(&x, &y),
            secret,
            x,
            y,
        }
    }

    /// The signing key for jsonwebtoken.
    pub fn encoding_key(&self) -> Result<EncodingKey, JwkError> {
        let der = self
            .secret
            .to_pkcs8_der()
            .map_err(|e| JwkError::Pkcs8(e.to_string()))?;
        Ok(EncodingKey::from_ec_der(der.as_bytes()))
    }

    pub fn public_jwk(&self) -> JwkJson {
        JwkJson {
            kty: "EC".into(),
            crv: "P-256".into(),
            alg: "ES256".into(),
            use_: "sig".into(),
            kid: self.kid.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            d: None,
            sign_from: None,
            retire_at: None,
        }
    }

    pub fn private_jwk(&self) -> JwkJson {
        let bytes = Zeroizing::new(self.secret.to_bytes());
        JwkJson {
            d: Some(SecretD(Zeroizing::new(B64.encode(&bytes[..])))),
            ..self.public_jwk()
        }
    }

    /// Reads a private JWK from the keys file; the public part must match `d`.
    pub fn from_private_jwk(index: usize, j: &JwkJson) -> Result<EcKey, JwkError> {
        let bad = |message: String| JwkError::Invalid { index, message };
        if j.kty != "EC" || j.crv != "P-256" {
            return Err(bad(format!(
                "kty {:?}/crv {:?}: only EC P-256 (ES256) keys are supported",
                j.kty, j.crv
            )));
        }
        let d =
            j.d.as_ref()
                .ok_or_else(|| bad("no private part `d`".into()))?;
        let bytes = Zeroizing::new(
            B64.decode(d.expose())
                .map_err(|e| bad(format!("`d` is not base64url: {e}")))?,
        );
        let secret = SecretKey::from_slice(&bytes)
            .map_err(|_| bad("`d` is not a P-256 private key".into()))?;
        let key = EcKey::from_secret(secret);
        if key.x != j.x || key.y != j.y {
            return Err(bad("`x`/`y` do not belong to `d`".into()));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_shape_and_round_trip() {
        let k = EcKey::generate();
        assert_eq!(k.kid.len(), 43, "sha256 base64url without padding");
        assert_eq!(k.kid, thumbprint(&k.x, &k.y));
        let back = EcKey::from_private_jwk(0, &k.private_jwk()).unwrap();
        assert_eq!(back.kid, k.kid);
        assert!(k.public_jwk().d.is_none());
    }

    #[test]
    fn mismatched_public_part_is_rejected() {
        let mut j = EcKey::generate().private_jwk();
        j.x = EcKey::generate().x;
        assert!(EcKey::from_private_jwk(0, &j).is_err());
        let mut j = EcKey::generate().private_jwk();
        j.d = None;
        assert!(EcKey::from_private_jwk(0, &j).is_err());
    }

    #[test]
    fn signs_and_verifies_with_the_published_jwk() {
        let k = EcKey::generate();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(k.kid.clone());
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&h, &claims, &k.encoding_key().unwrap()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(k.public_jwk()).unwrap()).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &v).unwrap();
    }
}

//! `[jwt]`: the token minted for a request with an active Ory session.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{text, value, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSection {
    /// Lifetime of a minted token, at least `1s`.
    pub ttl: Option<String>,
    /// JWKS with the private signing keys, created if missing (mode 0600); `""` = a fresh key
    /// at every start.
    pub keys_file: Option<String>,
    /// Follow `keys_file` without ever creating or writing it (it is rotated offline with
    /// `ory-proxy keys rotate`, e.g. a Kubernetes Secret).
    pub keys_file_read_only: Option<bool>,
    /// The `iss` claim; `""` = the Ory URL.
    pub issuer: Option<String>,
    /// The `aud` claim; `[]` = none.
    pub audience: Option<Vec<String>>,
}

/// The keys of `[jwt]` a reload applies without a restart (`keys_file` and
/// `keys_file_read_only` are chosen once; the file itself is followed).
pub const LIVE: &[&str] = &["ttl", "issuer", "audience"];

/// `[jwt]` as the request path reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtLive {
    pub ttl: Duration,
    pub issuer: String,
    pub audience: Vec<String>,
}

impl JwtSection {
    pub fn defaults() -> Self {
        JwtSection {
            ttl: Some("1m".into()),
            keys_file: Some(String::new()),
            keys_file_read_only: Some(false),
            issuer: Some(String::new()),
            audience: Some(Vec::new()),
        }
    }

    /// `ory_base` is the running Ory URL, the default issuer.
    pub fn live(&self, c: &Check<'_>, ory_base: &str) -> Result<JwtLive, ConfigError> {
        let ttl = c.duration("ttl", text(&self.ttl))?;
        if ttl < Duration::from_secs(1) {
            return Err(c.err("ttl", "must be at least 1s"));
        }
        let issuer = match text(&self.issuer) {
            "" => ory_base.to_string(),
            s => s.to_string(),
        };
        c.show("issuer", issuer.clone());
        Ok(JwtLive {
            ttl,
            issuer,
            audience: value(&self.audience),
        })
    }

    pub fn keys_file(&self) -> Option<PathBuf> {
        Some(text(&self.keys_file))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// `keys_file_read_only`; an error without a `keys_file` to follow.
    pub fn keys_file_read_only(&self, c: &Check<'_>) -> Result<bool, ConfigError> {
        let read_only = value(&self.keys_file_read_only);
        if read_only && self.keys_file().is_none() {
            return Err(c.err(
                "keys_file_read_only",
                "needs a keys_file to follow (make one with `ory-proxy keys generate --out FILE`)",
            ));
        }
        Ok(read_only)
    }
}

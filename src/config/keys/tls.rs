//! `[tls]`: HTTPS on the listening port, from a PEM certificate chain and its private key.
//!
//! The two paths are read at start (a listener cannot turn from http to https while it runs);
//! the files behind them are watched, and a renewed pair is served without a restart (see
//! [`crate::watcher`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{text, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, the server's certificate first; with `key_file`, the port
    /// serves HTTPS (HTTP/1.1 and HTTP/2). `""` = plain HTTP.
    pub cert_file: Option<String>,
    /// PEM private key of that certificate: PKCS#8, SEC1 (EC) or PKCS#1 (RSA).
    pub key_file: Option<String>,
}

/// The keys of `[tls]` a reload applies without a restart: none (the files themselves are
/// followed, the paths are not).
pub const LIVE: &[&str] = &[];

/// The certificate and key files of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsSection {
    pub fn defaults() -> Self {
        TlsSection {
            cert_file: Some(String::new()),
            key_file: Some(String::new()),
        }
    }

    /// Both files, or neither: half a pair is an error, named where the half given came from.
    pub fn fixed(&self, c: &Check<'_>) -> Result<Option<TlsFiles>, ConfigError> {
        let half = |given: &str, missing: &str| {
            c.err(
                given,
                format!(
                    "is set but tls.{missing} is not: HTTPS needs both (--tls-cert and --tls-key, or cert_file and key_file in [tls]); set neither for plain HTTP"
                ),
            )
        };
        match (text(&self.cert_file), text(&self.key_file)) {
            ("", "") => Ok(None),
            ("", _) => Err(half("key_file", "cert_file")),
            (_, "") => Err(half("cert_file", "key_file")),
            (cert, key) => Ok(Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::error::Origin;

    fn fixed(cert: &str, key: &str) -> Result<Option<TlsFiles>, ConfigError> {
        let origin = |_: &str| Origin::Default;
        let effective = RefCell::default();
        let c = Check::new(&origin, &effective);
        TlsSection {
            cert_file: Some(cert.into()),
            key_file: Some(key.into()),
        }
        .fixed(&c.section("tls"))
    }

    #[test]
    fn both_files_or_neither() {
        assert_eq!(fixed("", "").unwrap(), None);
        assert_eq!(
            fixed("c.pem", " k.pem ").unwrap(),
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        let e = fixed("c.pem", "").unwrap_err().to_string();
        assert!(
            e.contains("`tls.cert_file`: is set but tls.key_file is not")
                && e.contains("--tls-key")
                && e.contains("neither"),
            "{e}"
        );
        let e = fixed("", "k.pem").unwrap_err().to_string();
        assert!(
            e.contains("`tls.key_file`: is set but tls.cert_file"),
            "{e}"
        );
    }
}

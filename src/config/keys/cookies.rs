//! `[cookies]`: how Ory's cookies are scoped when they pass to the browser.

use serde::{Deserialize, Serialize};

use crate::config::check::{text, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookiesSection {
    /// `Domain=` for Ory's cookies, e.g. `example.org`; `""` = host-only on the publish host.
    pub domain: Option<String>,
}

/// The keys of `[cookies]` a reload applies without a restart.
pub const LIVE: &[&str] = &["domain"];

/// `[cookies]` as the request path reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CookiesLive {
    /// Lowercase, without a leading dot; `None` = host-only cookies.
    pub domain: Option<String>,
}

impl CookiesSection {
    pub fn defaults() -> Self {
        CookiesSection {
            domain: Some(String::new()),
        }
    }

    pub fn live(&self, c: &Check<'_>) -> Result<CookiesLive, ConfigError> {
        let d = text(&self.domain)
            .trim_start_matches('.')
            .to_ascii_lowercase();
        let domain = if d.is_empty() {
            None
        } else if d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            Some(d)
        } else {
            return Err(c.err(
                "domain",
                format!("{d:?} is not a domain (no scheme, port or path: e.g. example.org)"),
            ));
        };
        c.show("domain", domain.clone().unwrap_or_default());
        Ok(CookiesLive { domain })
    }
}

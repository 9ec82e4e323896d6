//! `[session]`: which cookies carry an Ory session, and how long a whoami answer is reused.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{text, value, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// Cookies that carry an Ory session; a trailing `*` matches by prefix.
    pub cookie_names: Option<Vec<String>>,
    /// How long a whoami answer is reused for the same credential; `"0s"` = never.
    pub cache_ttl: Option<String>,
    /// Bound of the session cache, at least 1.
    pub cache_max_entries: Option<u64>,
}

/// The keys of `[session]` a reload applies without a restart.
pub const LIVE: &[&str] = &["cookie_names", "cache_ttl", "cache_max_entries"];

/// `[session]` as the request path reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLive {
    /// Cookie names that carry a session; an entry ending in `*` matches by prefix.
    pub cookie_names: Vec<String>,
    pub cache_ttl: Duration,
    pub cache_max_entries: u64,
}

impl SessionLive {
    pub fn is_session_cookie(&self, name: &str) -> bool {
        self.cookie_names.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => n == name,
        })
    }
}

impl SessionSection {
    pub fn defaults() -> Self {
        SessionSection {
            cookie_names: Some(vec!["ory_session_*".into(), "ory_kratos_session".into()]),
            cache_ttl: Some("10s".into()),
            cache_max_entries: Some(100_000),
        }
    }

    pub fn live(&self, c: &Check<'_>) -> Result<SessionLive, ConfigError> {
        let cookie_names: Vec<String> = value(&self.cookie_names)
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if cookie_names
            .iter()
            .any(|n| n.contains([';', '=', ' ', ',']))
        {
            return Err(c.err(
                "cookie_names",
                "cookie names cannot contain ; = , or spaces",
            ));
        }
        let cache_max_entries = value(&self.cache_max_entries);
        if cache_max_entries == 0 {
            return Err(c.err("cache_max_entries", "must be at least 1"));
        }
        Ok(SessionLive {
            cookie_names,
            cache_ttl: c.duration("cache_ttl", text(&self.cache_ttl))?,
            cache_max_entries,
        })
    }
}

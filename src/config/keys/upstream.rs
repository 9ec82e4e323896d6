//! `[upstream]`: how the proxy talks to the app and to Ory.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{text, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// TCP connect (and TLS handshake) timeout for the app and for Ory.
    pub connect_timeout: Option<String>,
    /// From sending a request until the upstream's response head arrives; past it: 504.
    pub response_timeout: Option<String>,
}

/// The keys of `[upstream]` a reload applies without a restart: none, the client is built once.
pub const LIVE: &[&str] = &[];

/// `[upstream]` as the running proxy uses it (fixed at start).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFixed {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl UpstreamSection {
    pub fn defaults() -> Self {
        UpstreamSection {
            connect_timeout: Some("5s".into()),
            response_timeout: Some("60s".into()),
        }
    }

    pub fn fixed(&self, c: &Check<'_>) -> Result<UpstreamFixed, ConfigError> {
        Ok(UpstreamFixed {
            connect_timeout: c.duration("connect_timeout", text(&self.connect_timeout))?,
            response_timeout: c.duration("response_timeout", text(&self.response_timeout))?,
        })
    }
}

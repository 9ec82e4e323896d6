//! `[cors]`: which other origins may call the proxy from a browser, with credentials.

use serde::{Deserialize, Serialize};

use crate::config::check::{value, Check};
use crate::config::cors_policy::{normalize_origin, CorsPolicy};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    /// Origins allowed to call the proxy cross-origin with credentials, on top of the publish
    /// URL's origin; one `*` per entry (`https://*.example.org`).
    pub allowed_origins: Option<Vec<String>>,
    /// Request headers allowed on top of the basic set; `*` = any.
    pub additional_headers: Option<Vec<String>>,
}

/// The keys of `[cors]` a reload applies without a restart.
pub const LIVE: &[&str] = &["allowed_origins", "additional_headers"];

impl CorsSection {
    pub fn defaults() -> Self {
        CorsSection {
            allowed_origins: Some(Vec::new()),
            additional_headers: Some(Vec::new()),
        }
    }

    /// The policy for a proxy published at `publish_origin`; `dev` echoes any origin when
    /// none is configured.
    pub fn policy(
        &self,
        c: &Check<'_>,
        publish_origin: &str,
        dev: bool,
    ) -> Result<CorsPolicy, ConfigError> {
        let mut origins = Vec::new();
        for o in value(&self.allowed_origins) {
            if o.trim().is_empty() {
                continue;
            }
            origins.push(normalize_origin(&o).map_err(|m| c.err("allowed_origins", m))?);
        }
        let headers = value(&self.additional_headers);
        for h in &headers {
            let h = h.trim();
            if h != "*" && actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(c.err("additional_headers", format!("{h:?} is not a header name")));
            }
        }
        c.show("allowed_origins", origins.clone());
        Ok(CorsPolicy::new(publish_origin, &origins, &headers, dev))
    }
}

//! `[redirects]`: where Ory's default ("welcome") redirects go.

use serde::{Deserialize, Serialize};

use crate::config::check::{text, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectsSection {
    /// Where Ory's default "welcome" redirects go: an http(s) URL or a path like `/dashboard`;
    /// `""` = the publish URL.
    pub default_redirect_url: Option<String>,
}

/// The keys of `[redirects]` a reload applies without a restart.
pub const LIVE: &[&str] = &["default_redirect_url"];

/// `[redirects]` as the request path reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectsLive {
    /// The configured URL or path, or the publish URL.
    pub default_redirect_url: String,
}

impl RedirectsSection {
    pub fn defaults() -> Self {
        RedirectsSection {
            default_redirect_url: Some(String::new()),
        }
    }

    /// `publish_url` is the running publish URL, the default target.
    pub fn live(
        &self,
        c: &Check<'_>,
        publish_url: &url::Url,
    ) -> Result<RedirectsLive, ConfigError> {
        const KEY: &str = "default_redirect_url";
        let url = match text(&self.default_redirect_url) {
            "" => publish_url.as_str().trim_end_matches('/').to_string(),
            rel if rel.starts_with('/') && !rel.starts_with("//") => rel.to_string(),
            abs => c
                .http_url(KEY, abs)
                .map(|u| {
                    // Keep the user's spelling apart from normalization of an empty path.
                    if abs.ends_with('/') || u.path() != "/" {
                        u.to_string()
                    } else {
                        u.as_str().trim_end_matches('/').to_string()
                    }
                })
                .map_err(|_| {
                    c.err(
                        KEY,
                        format!("{abs:?} must be an http(s) URL or a path starting with /"),
                    )
                })?,
        };
        c.show(KEY, url.clone());
        Ok(RedirectsLive {
            default_redirect_url: url,
        })
    }
}

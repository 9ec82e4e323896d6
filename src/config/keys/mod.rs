//! The key tree: every key that `proxy.toml`, an `ORY_PROXY_*` variable or a flag can set is
//! declared here once, as a field with its doc comment. Each section's file holds its keys,
//! their defaults, which of them reload live, their checks and their typed form; the top-level
//! keys are below and are checked in [`super::settings`].
//!
//! A [`Tree`] is one layer (defaults, the file, the environment, the flags): a key left `None`
//! is not set by that layer. Layering merges them into one tree where every key is set.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never passes for a default.

pub mod access;
pub mod cookies;
pub mod cors;
pub mod jwt;
pub mod limits;
pub mod redirects;
pub mod session;
pub mod tls;
pub mod upstream;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use access::AccessSection;
use cookies::CookiesSection;
use cors::CorsSection;
use jwt::JwtSection;
use limits::LimitsSection;
use redirects::RedirectsSection;
use session::SessionSection;
use tls::TlsSection;
use upstream::UpstreamSection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// The app behind the proxy, `scheme://host[:port]`; required, here or as the first
    /// argument.
    pub application_url: Option<String>,
    /// The URL users open, no path, query or fragment; `""` = `http://localhost:<port>`
    /// (`https://` with `[tls]`).
    pub publish_url: Option<String>,
    /// Listen port on all interfaces; 0 = any free port.
    pub port: Option<u16>,
    /// Ory's public URL given directly (self-hosted Kratos, a local emulator). Exactly one of
    /// `sdk_url` and `project`.
    pub sdk_url: Option<String>,
    /// Ory Network project slug: Ory is `https://<slug>.projects.oryapis.com`.
    pub project: Option<String>,
    /// Local development: with no allowed origins, any CORS origin is echoed; browsers get
    /// proxy errors as pages with a hint.
    pub dev: Option<bool>,
    /// No session lookups, no JWT, no JWKS.
    pub no_jwt: Option<bool>,
    /// Send the app `Host: <application host>` instead of the browser's `Host`.
    pub rewrite_host: Option<bool>,
    /// CIDRs (or IPs) of proxies in front of this one whose `X-Forwarded-*`/`Forwarded`
    /// headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Extra PEM CA certificates to trust for https upstreams; `""` = none.
    pub ca_file: Option<String>,
    /// How edits of the config file are noticed: `auto`, `poll` or `off`.
    pub watch: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<String>,
    /// `text` (`[time LEVEL target] message`) or `json` (one object per line).
    pub log_format: Option<String>,
    /// Address of a separate listener serving Prometheus metrics at `/metrics`; `""` = none.
    pub metrics_listen: Option<String>,
    /// Client request headers never sent to the app, in any spelling; a trailing `*` matches
    /// by prefix. Setting it replaces the default list; `[]` strips none.
    pub strip_request_headers: Option<Vec<String>>,
    /// From SIGTERM, how long readiness answers 503 while everything else is served as usual,
    /// before the listener closes and requests in flight finish. `"0s"` = close at once.
    pub shutdown_delay: Option<String>,
    #[serde(default)]
    pub cookies: CookiesSection,
    #[serde(default)]
    pub cors: CorsSection,
    #[serde(default)]
    pub redirects: RedirectsSection,
    #[serde(default)]
    pub jwt: JwtSection,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default)]
    pub upstream: UpstreamSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub access: AccessSection,
    #[serde(default)]
    pub tls: TlsSection,
}

/// The top-level keys a reload applies without a restart.
const LIVE: &[&str] = &["log_level", "log_format", "strip_request_headers"];

/// Each section with the keys of it that reload live.
const SECTIONS: &[(&str, &[&str])] = &[
    ("cookies", cookies::LIVE),
    ("cors", cors::LIVE),
    ("redirects", redirects::LIVE),
    ("jwt", jwt::LIVE),
    ("session", session::LIVE),
    ("upstream", upstream::LIVE),
    ("limits", limits::LIVE),
    ("access", access::LIVE),
    ("tls", tls::LIVE),
];

/// Whether a reload applies the dotted `key` to new requests; every other key needs a restart.
pub fn is_live(key: &str) -> bool {
    match key.split_once('.') {
        None => LIVE.contains(&key),
        Some((section, name)) => SECTIONS
            .iter()
            .any(|(s, live)| *s == section && live.contains(&name)),
    }
}

impl Tree {
    /// The built-in defaults: every key set. Keys without a real default (the URLs) are `""`.
    pub fn defaults() -> Tree {
        let empty = || Some(String::new());
        Tree {
            application_url: empty(),
            publish_url: empty(),
            port: Some(4000),
            sdk_url: empty(),
            project: empty(),
            dev: Some(false),
            no_jwt: Some(false),
            rewrite_host: Some(false),
            trusted_proxies: Some(Vec::new()),
            ca_file: empty(),
            watch: Some("auto".into()),
            log_level: Some("info".into()),
            log_format: Some("text".into()),
            metrics_listen: empty(),
            strip_request_headers: Some(crate::header_names::HeaderList::default_list()),
            shutdown_delay: Some("0s".into()),
            cookies: CookiesSection::defaults(),
            cors: CorsSection::defaults(),
            redirects: RedirectsSection::defaults(),
            jwt: JwtSection::defaults(),
            session: SessionSection::defaults(),
            upstream: UpstreamSection::defaults(),
            limits: LimitsSection::defaults(),
            access: AccessSection::defaults(),
            tls: TlsSection::defaults(),
        }
    }

    /// This layer as a TOML table, in declaration order; keys left `None` are absent.
    pub fn to_table(&self) -> Result<toml::Table, ConfigError> {
        toml::Table::try_from(self).map_err(|e| ConfigError::Rule(format!("configuration: {e}")))
    }

    /// A layer from a table of the tree's shape: unknown keys and wrong types are errors.
    pub fn from_table(table: toml::Table) -> Result<Tree, toml::de::Error> {
        toml::Value::Table(table).try_into()
    }

    /// Whether `value` fits the tree's type for the dotted `key` (the error says why not).
    pub fn check_value(key: &str, value: &toml::Value) -> Result<(), String> {
        let mut t = toml::Table::new();
        super::dotted::insert(&mut t, key, value.clone());
        Tree::from_table(t)
            .map(drop)
            .map_err(|e| e.message().trim().to_string())
    }

    /// Every dotted key of the tree, in declaration order.
    pub fn keys() -> Vec<String> {
        Tree::defaults()
            .to_table()
            .map(|t| {
                super::dotted::leaves(&t)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_set_every_key_and_round_trip() {
        let t = Tree::defaults().to_table().unwrap();
        let keys = Tree::keys();
        assert_eq!(keys.len(), super::super::dotted::leaves(&t).len());
        assert!(keys.contains(&"jwt.ttl".to_string()));
        assert_eq!(Tree::from_table(t).unwrap(), Tree::defaults());
        // An empty layer sets nothing.
        let empty = Tree::default().to_table().unwrap();
        assert!(super::super::dotted::leaves(&empty).is_empty());
    }

    #[test]
    fn live_keys_are_keys_of_the_tree() {
        let keys = Tree::keys();
        for (section, live) in SECTIONS {
            for name in *live {
                let key = format!("{section}.{name}");
                assert!(keys.contains(&key), "{key} is declared live but is no key");
            }
        }
        for key in LIVE {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
        assert!(is_live("jwt.ttl") && is_live("log_level"));
        assert!(!is_live("jwt.keys_file") && !is_live("port") && !is_live("jwt"));
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let t: toml::Table = "jwt = { ttl = \"1m\", tll = \"2m\" }".parse().unwrap();
        assert!(Tree::from_table(t).is_err());
        let t: toml::Table = "prot = 1".parse().unwrap();
        assert!(Tree::from_table(t).is_err());
    }
}

//! Stage one of loading `proxy.toml`: the raw file shape.
//!
//! Parsed with `toml` directly (before the `config` crate layers it) because only the TOML
//! parser knows spans: a typo, an unknown key or a wrong type is reported with its line and
//! its dotted key, which is what a user editing the file of a running daemon needs.

use std::path::Path;

use serde::Deserialize;

use super::error::ConfigError;

/// Every key `proxy.toml` may hold. All optional: absent keys fall through to defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub application_url: Option<String>,
    pub publish_url: Option<String>,
    pub port: Option<u16>,
    pub sdk_url: Option<String>,
    pub project: Option<String>,
    pub dev: Option<bool>,
    pub no_jwt: Option<bool>,
    pub rewrite_host: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub ca_file: Option<String>,
    pub watch: Option<String>,
    pub log_level: Option<String>,
    pub metrics_listen: Option<String>,
    pub strip_request_headers: Option<Vec<String>>,
    pub cookies: Option<CookiesSection>,
    pub cors: Option<CorsSection>,
    pub redirects: Option<RedirectsSection>,
    pub jwt: Option<JwtSection>,
    pub session: Option<SessionSection>,
    pub upstream: Option<UpstreamSection>,
    pub limits: Option<LimitsSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookiesSection {
    pub domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    pub allowed_origins: Option<Vec<String>>,
    pub additional_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectsSection {
    pub default_redirect_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSection {
    pub ttl: Option<String>,
    pub keys_file: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub cookie_names: Option<Vec<String>>,
    pub cache_ttl: Option<String>,
    pub cache_max_entries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub body_idle_timeout: Option<String>,
    pub rewrite_budget: Option<String>,
}

/// Parses the file text; errors carry file, line and dotted key.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let line = line_of_offset(text, offset);
        let key = key_at_line(text, line)
            .or_else(|| unknown_field_name(e.message()))
            .unwrap_or_else(|| "?".to_string());
        ConfigError::File {
            path: path.to_path_buf(),
            line,
            key,
            message: e.message().trim().to_string(),
        }
    })
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

/// The dotted key defined on `line` (1-based): `[table]` headers above it give the prefix.
pub fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if let Some(t) = l.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = t.trim().to_string();
            if i + 1 == line {
                return Some(table);
            }
            continue;
        }
        if i + 1 == line {
            let key = l.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('#') {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    None
}

/// The line (1-based) on which a dotted key is defined, for errors found after parsing.
pub fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|&n| key_at_line(text, n).as_deref() == Some(dotted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_reported_with_line_and_key() {
        let text = "port = 4000\n\n[cors]\nallowed_origin = []\n";
        let err = parse(Path::new("proxy.toml"), text).unwrap_err();
        let ConfigError::File { line, key, .. } = err else {
            panic!("wrong error {err:?}")
        };
        assert_eq!(line, 4);
        assert_eq!(key, "cors.allowed_origin");
    }

    #[test]
    fn wrong_type_is_reported_with_line() {
        let text = "dev = false\nport = \"x\"\n";
        let err = parse(Path::new("p.toml"), text).unwrap_err().to_string();
        assert!(err.starts_with("p.toml:2: `port`"), "{err}");
    }

    #[test]
    fn bad_toml_syntax_is_an_error() {
        assert!(parse(Path::new("p.toml"), "port = = 3").is_err());
    }

    #[test]
    fn line_of_key_finds_nested_keys() {
        let text = "a = 1\n[redirects]\n# c\ndefault_redirect_url = \"x\"\n";
        assert_eq!(line_of_key(text, "redirects.default_redirect_url"), Some(4));
        assert_eq!(line_of_key(text, "a"), Some(1));
        assert_eq!(line_of_key(text, "b"), None);
    }
}

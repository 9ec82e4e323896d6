//! What every section's validation shares: the error that names where a bad value came from
//! (file and line, env var or flag), URL and duration checks, and the record of each key's
//! effective value (normalized, or derived from other keys) that `--check-config` prints.

use std::cell::RefCell;
use std::time::Duration;

use url::Url;

use super::dotted;
use super::error::{ConfigError, Origin};

/// The longest duration any setting accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Effective values that differ from what the layers say: a URL in its normalized form, a
/// default derived from other keys. Keyed by dotted key.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub values: Vec<(String, toml::Value)>,
    /// A remark printed beside a key (e.g. where a project slug puts Ory).
    pub notes: Vec<(String, String)>,
}

/// A validation context scoped to one section of the tree (`""` = the top level).
#[derive(Clone, Copy)]
pub struct Check<'a> {
    origin: &'a dyn Fn(&str) -> Origin,
    scope: &'static str,
    effective: &'a RefCell<Effective>,
}

impl<'a> Check<'a> {
    pub fn new(origin: &'a dyn Fn(&str) -> Origin, effective: &'a RefCell<Effective>) -> Self {
        Check {
            origin,
            scope: "",
            effective,
        }
    }

    /// The same context for the keys of `[section]`.
    pub fn section(&self, section: &'static str) -> Check<'a> {
        Check {
            scope: section,
            ..*self
        }
    }

    /// The dotted key of `name` in this scope.
    pub fn key(&self, name: &str) -> String {
        dotted::join(self.scope, name)
    }

    /// An invalid value of `name`, naming where it was given.
    pub fn err(&self, name: &str, message: impl Into<String>) -> ConfigError {
        let key = self.key(name);
        ConfigError::Invalid {
            origin: (self.origin)(&key),
            key,
            message: message.into(),
        }
    }

    /// An invalid part of `name`'s value: a rule of a list, an entry of a map. The error names
    /// `name` and, when the file gave it, the line of `part` (`0.paths`: the first rule's paths).
    pub fn err_at(&self, name: &str, part: &str, message: impl Into<String>) -> ConfigError {
        let key = self.key(name);
        ConfigError::Invalid {
            origin: (self.origin)(&format!("{key}.{part}")),
            key,
            message: message.into(),
        }
    }

    /// Records the value `--check-config` shows for `name`.
    pub fn show(&self, name: &str, value: impl Into<toml::Value>) {
        let key = self.key(name);
        let mut e = self.effective.borrow_mut();
        e.values.retain(|(k, _)| *k != key);
        e.values.push((key, value.into()));
    }

    /// Records a remark `--check-config` prints beside `name`.
    pub fn note(&self, name: &str, text: impl Into<String>) {
        let key = self.key(name);
        self.effective.borrow_mut().notes.push((key, text.into()));
    }

    /// An absolute http(s) URL with a host and no credentials.
    pub fn http_url(&self, name: &str, raw: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(raw.trim()).map_err(|e| {
            self.err(
                name,
                format!("{raw:?} is not a URL ({e}); write it like http://localhost:3000"),
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(self.err(name, format!("{raw:?}: the scheme must be http or https")));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(self.err(name, format!("{raw:?} has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.err(
                name,
                format!("{raw:?}: credentials in URLs are not supported"),
            ));
        }
        Ok(url)
    }

    /// A URL that must be an origin: no path other than `/`, no query, no fragment. Shown as
    /// `scheme://host[:port]`.
    pub fn origin_url(&self, name: &str, raw: &str) -> Result<Url, ConfigError> {
        let url = self.http_url(name, raw)?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(self.err(
                name,
                format!(
                    "{raw:?} must not have a path, query or fragment (use scheme://host[:port])"
                ),
            ));
        }
        self.show(name, url.origin().ascii_serialization());
        Ok(url)
    }

    /// A duration of at most [`MAX_DURATION`]: larger ones are typos, and unbounded values
    /// would overflow time arithmetic later.
    pub fn duration(&self, name: &str, raw: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(raw.trim()).map_err(|e| {
            self.err(
                name,
                format!("{raw:?} is not a duration like \"10s\" or \"1m\" ({e})"),
            )
        })?;
        if d > MAX_DURATION {
            return Err(self.err(name, format!("{raw:?} is longer than the maximum of 24h")));
        }
        self.show(name, humantime::format_duration(d).to_string());
        Ok(d)
    }

    /// A size in bytes: a number, or one with a binary unit (`"512KiB"`, `"64MiB"`, `"1GiB"`).
    /// Shown in the largest unit that divides it.
    pub fn size(&self, name: &str, raw: &str) -> Result<u64, ConfigError> {
        let t = raw.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => 0,
        };
        let bytes = n
            .parse::<u64>()
            .ok()
            .filter(|_| scale != 0)
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(|| {
                self.err(
                    name,
                    format!(
                        "{raw:?} is not a size like \"64MiB\", \"512KiB\" or a number of bytes"
                    ),
                )
            })?;
        self.show(name, size_text(bytes));
        Ok(bytes)
    }
}

/// A byte count in the largest binary unit that divides it, as `proxy.toml` takes it.
fn size_text(n: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n != 0 && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

/// The value of a leaf of the merged tree. Every key has a default, so `None` cannot happen
/// after layering; it reads as the type's empty value rather than a panic.
pub fn value<T: Clone + Default>(leaf: &Option<T>) -> T {
    leaf.clone().unwrap_or_default()
}

/// A string leaf, trimmed (`""` when unset).
pub fn text(leaf: &Option<String>) -> &str {
    leaf.as_deref().unwrap_or_default().trim()
}

//! The environment layer: every key of the tree can be set as `ORY_PROXY_<SECTION>__<KEY>`
//! (top-level keys: `ORY_PROXY_<KEY>`), lists comma-separated, typed like the key's default.
//! The names `ory proxy` and containers use (`PORT`, `ORY_SDK_URL`, …) work too, below the
//! `ORY_PROXY_` name of the same key. No key is named here but those older names.

use toml::Value;

use super::dotted;
use super::error::{ConfigError, Origin};
use super::keys::Tree;

/// Reads one environment variable; a function so tests can layer without touching the process.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The prefix of every key's own environment variable.
pub const ENV_PREFIX: &str = "ORY_PROXY_";

/// Other names a key is read from, after its `ORY_PROXY_` name, first found wins.
const ENV_ALIASES: &[(&str, &[&str])] = &[
    ("project", &["ORY_PROJECT_SLUG", "ORY_PROJECT"]),
    ("sdk_url", &["ORY_SDK_URL", "ORY_KRATOS_URL"]),
    ("port", &["PORT"]),
    ("ca_file", &["SSL_CERT_FILE"]),
];

/// `ORY_PROXY_` variables that are not keys.
const ENV_NOT_KEYS: &[&str] = &["ORY_PROXY_CONFIG"];

/// The environment variable of a dotted key: `jwt.ttl` → `ORY_PROXY_JWT__TTL`.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

pub fn first_env(
    env: &EnvLookup,
    names: impl IntoIterator<Item = String>,
) -> Option<(String, String)> {
    names
        .into_iter()
        .find_map(|n| env(&n).filter(|v| !v.is_empty()).map(|v| (n, v)))
}

/// An environment value typed like the key's default: lists split on commas, maps written
/// `Name=value,Name=value`.
fn typed(raw: &str, like: &Value) -> Result<Value, String> {
    match like {
        Value::Table(_) => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_string(), Value::from(v.trim())))
                }
                _ => Err(format!(
                    "{pair:?} is not `Name=value` (entries separated by commas)"
                )),
            })
            .collect::<Result<toml::Table, String>>()
            .map(Value::Table),
        Value::Array(_) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect(),
        )),
        Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not a whole number")),
        Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true.into()),
            "false" | "0" | "no" | "off" => Ok(false.into()),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        _ => Ok(Value::from(raw)),
    }
}

/// The keys the environment sets, with the variable that set each.
pub fn env_layer(env: &EnvLookup) -> Result<Vec<(String, Value, Origin)>, ConfigError> {
    let defaults = Tree::defaults().to_table()?;
    let mut layer = Vec::new();
    for (key, default) in dotted::leaves(&defaults) {
        let aliases = ENV_ALIASES
            .iter()
            .filter(|(k, _)| *k == key)
            .flat_map(|(_, names)| names.iter().map(|n| n.to_string()));
        let Some((name, raw)) = first_env(env, std::iter::once(env_name(&key)).chain(aliases))
        else {
            continue;
        };
        let origin = Origin::Env(name);
        let value = typed(&raw, default).map_err(|message| ConfigError::Invalid {
            key: key.clone(),
            origin: origin.clone(),
            message,
        })?;
        Tree::check_value(&key, &value).map_err(|message| ConfigError::Invalid {
            message: if is_list_of_tables(&key) {
                "a list of tables cannot be written in one variable; set it in proxy.toml".into()
            } else {
                message
            },
            key: key.clone(),
            origin: origin.clone(),
        })?;
        layer.push((key, value, origin));
    }
    Ok(layer)
}

/// Whether `key` holds a list of tables (`access.rules`) rather than of strings.
fn is_list_of_tables(key: &str) -> bool {
    let of = |v: Value| Tree::check_value(key, &Value::Array(vec![v])).is_ok();
    of(Value::Table(toml::Table::new())) && !of(Value::from("x"))
}

/// `ORY_PROXY_` variables among `names` that are no key's (a typo would otherwise be ignored).
pub fn unknown_env_vars<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let keys: Vec<String> = Tree::keys().iter().map(|k| env_name(k)).collect();
    names
        .into_iter()
        .filter(|n| n.starts_with(ENV_PREFIX))
        .filter(|n| !ENV_NOT_KEYS.contains(n) && !keys.iter().any(|k| k == n))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::Cli;
    use crate::config::file;
    use crate::config::layers::layer;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> Box<EnvLookup> {
        Box::new(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    fn file(text: &str) -> Option<file::FileLayer> {
        Some(file::parse(Path::new("proxy.toml"), text).unwrap())
    }

    #[test]
    fn every_key_has_an_env_var_and_lists_split_on_commas() {
        let l = layer(
            &Cli::default(),
            &*env_of(&[
                ("ORY_PROXY_JWT__TTL", "5m"),
                (
                    "ORY_PROXY_CORS__ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("ORY_PROXY_DEV", "true"),
                ("ORY_PROXY_SESSION__CACHE_MAX_ENTRIES", "7"),
                ("ORY_PROXY_CONFIG", "elsewhere.toml"),
            ]),
            file("[jwt]\nttl = \"2m\"\n"),
        )
        .unwrap();
        assert_eq!(l.merged.jwt.ttl.as_deref(), Some("5m"));
        assert_eq!(
            l.merged.cors.allowed_origins,
            Some(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert_eq!(l.merged.dev, Some(true));
        assert_eq!(l.merged.session.cache_max_entries, Some(7));
        assert_eq!(
            l.origin_of("jwt.ttl"),
            Origin::Env("ORY_PROXY_JWT__TTL".into())
        );
        // Every key's variable name maps back to it; the config path is none of them.
        for key in Tree::keys() {
            assert_ne!(env_name(&key), "ORY_PROXY_CONFIG");
        }
        assert_eq!(
            unknown_env_vars([
                "ORY_PROXY_JWT_TTL",
                "ORY_PROXY_JWT__TTL",
                "ORY_PROXY_CONFIG",
                "PATH"
            ]),
            ["ORY_PROXY_JWT_TTL"]
        );
    }

    #[test]
    fn maps_are_name_value_pairs_and_lists_of_tables_stay_in_the_file() {
        let env = env_of(&[(
            "ORY_PROXY_ACCESS__IDENTITY_HEADERS",
            "X-Forwarded-Email=identity.traits.email, X-Forwarded-User = identity.id",
        )]);
        let l = layer(&Cli::default(), &*env, None).unwrap();
        let h = l.merged.access.identity_headers.clone().unwrap();
        assert_eq!(h["X-Forwarded-Email"], "identity.traits.email");
        assert_eq!(h["X-Forwarded-User"], "identity.id");
        assert_eq!(
            l.origin_of("access.identity_headers.X-Forwarded-User"),
            Origin::Env("ORY_PROXY_ACCESS__IDENTITY_HEADERS".into())
        );
        let env = env_of(&[("ORY_PROXY_ACCESS__IDENTITY_HEADERS", "X-User")]);
        let e = layer(&Cli::default(), &*env, None).unwrap_err().to_string();
        assert!(e.contains("Name=value"), "{e}");
        let env = env_of(&[("ORY_PROXY_ACCESS__RULES", "/admin")]);
        let e = layer(&Cli::default(), &*env, None).unwrap_err().to_string();
        assert!(
            e.starts_with("env ORY_PROXY_ACCESS__RULES: `access.rules`")
                && e.contains("proxy.toml"),
            "{e}"
        );
        let env = env_of(&[("ORY_PROXY_ACCESS__DEFAULT", "session")]);
        let l = layer(&Cli::default(), &*env, None).unwrap();
        assert_eq!(l.merged.access.default.as_deref(), Some("session"));
    }

    #[test]
    fn the_own_name_beats_the_old_one() {
        let env = env_of(&[("PORT", "6000"), ("ORY_PROXY_PORT", "6001")]);
        let l = layer(&Cli::default(), &*env, None).unwrap();
        assert_eq!(l.merged.port, Some(6001));
        assert_eq!(l.origin_of("port"), Origin::Env("ORY_PROXY_PORT".into()));
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        for (pairs, needle) in [
            (&[("PORT", "http")][..], "env PORT: `port`"),
            (
                &[("ORY_PROXY_PORT", "70000")][..],
                "env ORY_PROXY_PORT: `port`",
            ),
            (&[("ORY_PROXY_NO_JWT", "maybe")][..], "env ORY_PROXY_NO_JWT"),
        ] {
            let env: Box<EnvLookup> = Box::new(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            });
            let err = layer(&Cli::default(), &*env, None).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{err}");
        }
    }
}

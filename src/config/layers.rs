//! Layering: built-in defaults < `proxy.toml` < environment < command-line flags, each a layer
//! of the one key [`Tree`], merged with the `config` crate. Keys set by env or flags are
//! *pinned*: a later file edit of such a key changes nothing, and the watcher says so.
//!
//! Every key can be set from the environment as `ORY_PROXY_<SECTION>__<KEY>` (top-level keys:
//! `ORY_PROXY_<KEY>`); lists are comma-separated. The names `ory proxy` and containers use
//! (`PORT`, `ORY_SDK_URL`, …) work too, below the `ORY_PROXY_` name of the same key.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::dotted;
use super::error::{ConfigError, Origin};
use super::file::FileLayer;
use super::keys::Tree;
use crate::cli::Cli;

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

/// A layer above the file: the keys it sets and who set each.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub table: Table,
    origins: Vec<(String, Origin)>,
}

impl Layer {
    fn set(&mut self, key: &str, value: Value, origin: Origin) {
        dotted::insert(&mut self.table, key, value);
        self.origins.retain(|(k, _)| k != key);
        self.origins.push((key.to_string(), origin));
    }

    fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.iter().find(|(k, _)| k == key).map(|(_, o)| o)
    }

    /// Who set `key` to a non-empty string in this layer.
    fn set_nonempty(&self, key: &str) -> Option<Origin> {
        dotted::get(&self.table, key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .and(self.origin(key).cloned())
    }
}

/// The result of layering: the merged tree plus the layers that explain it.
#[derive(Debug, Clone)]
pub struct Layered {
    /// Every key set: defaults, overridden layer by layer.
    pub merged: Tree,
    pub file: Option<FileLayer>,
    pub env: Layer,
    pub flags: Layer,
    /// Env-only values that are not keys.
    pub api_key: Option<String>,
}

impl Layered {
    /// Where the effective value of `key` came from.
    pub fn origin_of(&self, key: &str) -> Origin {
        if let Some(o) = self.flags.origin(key).or_else(|| self.env.origin(key)) {
            return o.clone();
        }
        if let Some(f) = &self.file {
            if let Some(line) = f.line_of(key) {
                return Origin::File {
                    path: f.path.clone(),
                    line: Some(line),
                };
            }
        }
        Origin::Default
    }

    /// Keys pinned by env or flags, with who pinned them (a flag over a variable).
    pub fn pinned(&self) -> Vec<(String, Origin)> {
        let mut out: Vec<(String, Origin)> = Vec::new();
        for (k, o) in self.env.origins.iter().chain(&self.flags.origins) {
            out.retain(|(key, _)| key != k);
            out.push((k.clone(), o.clone()));
        }
        out
    }
}

fn first_env(env: &EnvLookup, names: impl IntoIterator<Item = String>) -> Option<(String, String)> {
    names
        .into_iter()
        .find_map(|n| env(&n).filter(|v| !v.is_empty()).map(|v| (n, v)))
}

/// The config file path: `-c` > `ORY_PROXY_CONFIG` > `./proxy.toml` when it exists.
/// The bool says whether the file must exist (it must when named explicitly).
pub fn config_path(cli: &Cli, env: &EnvLookup) -> Option<(PathBuf, bool)> {
    if let Some(p) = &cli.config {
        return Some((p.clone(), true));
    }
    if let Some((_, p)) = first_env(env, ["ORY_PROXY_CONFIG".to_string()]) {
        return Some((PathBuf::from(p), true));
    }
    let default = PathBuf::from("proxy.toml");
    default.exists().then_some((default, false))
}

/// Reads the file's text. `Ok(None)` when there is no file to read.
pub fn read_file(path: &Path, required: bool) -> Result<Option<String>, ConfigError> {
    // `ory proxy -c` names the Go CLI's own JSON config (~/.ory-cloud.json); a command line
    // copied from it would otherwise end in a TOML syntax error about a JSON file.
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return Err(ConfigError::Rule(format!(
            "-c {}: ory-proxy's -c names a proxy.toml, not the Ory CLI's JSON config (drop it; --project or --sdk-url says where Ory is)",
            path.display()
        )));
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Checks one value against the tree's type for `key`, so an error names its variable or flag.
fn check_one(key: &str, value: &Value, origin: &Origin) -> Result<(), ConfigError> {
    let mut t = Table::new();
    dotted::insert(&mut t, key, value.clone());
    Tree::from_table(t)
        .map(drop)
        .map_err(|e| ConfigError::Invalid {
            key: key.to_string(),
            origin: origin.clone(),
            message: e.message().trim().to_string(),
        })
}

/// An environment value typed like the key's default: lists split on commas.
fn typed(raw: &str, like: &Value) -> Result<Value, String> {
    match like {
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

fn env_layer(env: &EnvLookup) -> Result<Layer, ConfigError> {
    let defaults = Tree::defaults().to_table()?;
    let mut layer = Layer::default();
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
        check_one(&key, &value, &origin)?;
        layer.set(&key, value, origin);
    }
    Ok(layer)
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

fn flag_layer(cli: &Cli) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for (key, flag, value) in cli.key_flags() {
        let origin = Origin::Flag(flag);
        check_one(key, &value, &origin)?;
        layer.set(key, value, origin);
    }
    Ok(layer)
}

/// The Ory upstream comes from the highest layer that names one; naming both in one layer is
/// an error. A `--project` flag therefore replaces an `sdk_url` from the file, as a user would
/// expect, instead of failing: the layer that names one clears the other.
fn one_ory_upstream(
    flags: &mut Layer,
    env: &mut Layer,
    file: Option<&FileLayer>,
) -> Result<(), ConfigError> {
    for layer in [flags, env] {
        match (layer.set_nonempty("project"), layer.set_nonempty("sdk_url")) {
            (Some(a), Some(b)) => {
                return Err(ConfigError::Rule(format!(
                    "both an Ory project ({a}) and an Ory SDK URL ({b}) are set; set exactly one: \
                     --project / ORY_PROJECT_SLUG / ORY_PROJECT, or --sdk-url / ORY_SDK_URL / ORY_KRATOS_URL"
                )))
            }
            (Some(origin), None) => {
                layer.set("sdk_url", "".into(), origin);
                return Ok(());
            }
            (None, Some(origin)) => {
                layer.set("project", "".into(), origin);
                return Ok(());
            }
            (None, None) => {}
        }
    }
    if let Some(f) = file {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        if set(&f.tree.project) && set(&f.tree.sdk_url) {
            return Err(ConfigError::Rule(
                "proxy.toml sets both `project` and `sdk_url`; set exactly one".into(),
            ));
        }
    }
    Ok(())
}

/// One layer as a source for the `config` crate. Not `config::Config::try_from`: its
/// serializer drops empty lists, so `audience = []` in the file would not override a default.
#[derive(Debug, Clone)]
struct TableSource(Table);

impl config::Source for TableSource {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), config_value(v)))
            .collect())
    }
}

fn config_value(v: &Value) -> config::Value {
    use config::ValueKind;
    let kind = match v {
        Value::String(s) => ValueKind::String(s.clone()),
        Value::Integer(i) => ValueKind::I64(*i),
        Value::Float(f) => ValueKind::Float(*f),
        Value::Boolean(b) => ValueKind::Boolean(*b),
        Value::Datetime(d) => ValueKind::String(d.to_string()),
        Value::Array(a) => ValueKind::Array(a.iter().map(config_value).collect()),
        Value::Table(t) => ValueKind::Table(
            t.iter()
                .map(|(k, v)| (k.clone(), config_value(v)))
                .collect(),
        ),
    };
    config::Value::new(None, kind)
}

/// Merges layers, lowest first, with the `config` crate.
fn merge(layers: &[&Table]) -> Result<Tree, ConfigError> {
    let rule = |e: config::ConfigError| ConfigError::Rule(format!("configuration: {e}"));
    let mut builder = config::Config::builder();
    for t in layers {
        builder = builder.add_source(TableSource((*t).clone()));
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(rule)
}

/// Layers defaults, the file, env and flags into [`Layered`].
pub fn layer(cli: &Cli, env: &EnvLookup, file: Option<FileLayer>) -> Result<Layered, ConfigError> {
    let mut env_layer = env_layer(env)?;
    let mut flags = flag_layer(cli)?;
    one_ory_upstream(&mut flags, &mut env_layer, file.as_ref())?;
    let defaults = Tree::defaults().to_table()?;
    let none = Table::new();
    let file_table = file.as_ref().map_or(&none, |f| &f.table);
    let merged = merge(&[&defaults, file_table, &env_layer.table, &flags.table])?;
    Ok(Layered {
        merged,
        file,
        env: env_layer,
        flags,
        api_key: first_env(env, ["ORY_PROJECT_API_KEY".to_string()]).map(|(_, v)| v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file;
    use clap::Parser;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> Box<EnvLookup> {
        Box::new(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    fn file(text: &str) -> Option<FileLayer> {
        Some(file::parse(Path::new("proxy.toml"), text).unwrap())
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let cli = Cli::parse_from(["ory-proxy", "--port", "7000", "http://app"]);
        let l = layer(
            &cli,
            &*env_of(&[("PORT", "6000"), ("ORY_SDK_URL", "http://env-ory")]),
            file("port = 5000\nsdk_url = \"http://file-ory\"\n[cookies]\ndomain = \"f.example\"\n"),
        )
        .unwrap();
        assert_eq!(l.merged.port, Some(7000));
        assert_eq!(l.merged.sdk_url.as_deref(), Some("http://env-ory"));
        assert_eq!(l.merged.cookies.domain.as_deref(), Some("f.example"));
        assert_eq!(l.merged.jwt.ttl.as_deref(), Some("1m"));
        assert_eq!(l.origin_of("port"), Origin::Flag("--port"));
        assert_eq!(l.origin_of("sdk_url"), Origin::Env("ORY_SDK_URL".into()));
        assert!(matches!(
            l.origin_of("cookies.domain"),
            Origin::File { line: Some(4), .. }
        ));
        assert_eq!(l.origin_of("jwt.ttl"), Origin::Default);
        let pinned: Vec<_> = l.pinned().into_iter().map(|(k, _)| k).collect();
        assert!(
            pinned.iter().any(|k| k == "port") && pinned.iter().any(|k| k == "application_url")
        );
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

    #[test]
    fn project_flag_replaces_file_sdk_url() {
        let cli = Cli::parse_from(["ory-proxy", "--project", "slug", "http://app"]);
        let l = layer(&cli, &*env_of(&[]), file("sdk_url = \"http://k\"\n")).unwrap();
        assert_eq!(l.merged.project.as_deref(), Some("slug"));
        assert_eq!(l.merged.sdk_url.as_deref(), Some(""));
    }

    #[test]
    fn project_and_sdk_url_in_one_layer_is_an_error() {
        let cli = Cli::parse_from(["ory-proxy", "--project", "s", "--sdk-url", "http://k", "x"]);
        let err = layer(&cli, &*env_of(&[]), None).unwrap_err().to_string();
        assert!(
            err.contains("--project") && err.contains("ORY_SDK_URL"),
            "{err}"
        );
        let env = env_of(&[("ORY_PROJECT", "s"), ("ORY_KRATOS_URL", "http://k")]);
        assert!(layer(&Cli::parse_from(["ory-proxy", "x"]), &*env, None).is_err());
        let both = file("project = \"s\"\nsdk_url = \"http://k\"\n");
        assert!(layer(&Cli::default(), &*env_of(&[]), both).is_err());
    }

    #[test]
    fn comma_separated_and_repeated_origins_merge() {
        let cli = Cli::parse_from([
            "ory-proxy",
            "--allowed-cors-origins",
            "https://a.example,https://b.example",
            "--allowed-cors-origins",
            "https://c.example",
            "http://app",
        ]);
        let l = layer(&cli, &*env_of(&[]), None).unwrap();
        assert_eq!(l.merged.cors.allowed_origins.map(|o| o.len()), Some(3));
    }
}

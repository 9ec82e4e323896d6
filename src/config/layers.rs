//! Layering: built-in defaults < `proxy.toml` < environment < command-line flags, each a layer
//! of the one key [`Tree`], merged with the `config` crate. Keys set by env or flags are
//! *pinned*: a later file edit of such a key changes nothing, and the watcher says so.
//!
//! The environment layer is read by [`super::env`].

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::dotted;
pub use super::env::EnvLookup;
use super::env::{env_layer, first_env};
use super::error::{ConfigError, Origin};
use super::file::FileLayer;
use super::keys::Tree;
use crate::cli::Cli;
use crate::file_read;

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
    /// Where the effective value of `key` came from. A part of a value (`access.rules.0.paths`,
    /// a rule's paths) came from where the closest enclosing part did, up to the key itself
    /// (never a section: a key the file does not set is not the file's).
    pub fn origin_of(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some(o) = self.origin_exact(k) {
                return o;
            }
            match k.rsplit_once('.') {
                Some((parent, _)) if parent.contains('.') => k = parent,
                _ => return Origin::Default,
            }
        }
    }

    fn origin_exact(&self, key: &str) -> Option<Origin> {
        if let Some(o) = self.flags.origin(key).or_else(|| self.env.origin(key)) {
            return Some(o.clone());
        }
        let f = self.file.as_ref()?;
        f.line_of(key).map(|line| Origin::File {
            path: f.path.clone(),
            line: Some(line),
        })
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
    // A pipe is taken here, at start-up only: `-c <(cat proxy.toml)`. Reloads read through
    // the watcher, regular files only.
    // Refused when someone else could have written it, as on every reload.
    let read = file_read::read_config(path, file_read::Accept::RegularOrPipe)
        .and_then(file_read::into_text);
    match read {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.is_not_found() && !required => Ok(None),
        Err(e) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source: match e {
                file_read::ReadError::Io(io) => io,
                other => std::io::Error::other(other),
            },
        }),
    }
}

fn flag_layer(cli: &Cli) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for (key, flag, value) in cli.key_flags() {
        let origin = Origin::Flag(flag);
        Tree::check_value(key, &value).map_err(|message| ConfigError::Invalid {
            key: key.to_string(),
            origin: origin.clone(),
            message,
        })?;
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

/// The `config` crate merges tables key by key; a map value (`access.identity_headers`) is one
/// value, which the highest layer that sets it replaces whole, as a list is.
fn whole_maps(merged: Tree, layers: &[&Table]) -> Result<Tree, ConfigError> {
    let mut maps = layers
        .iter()
        .flat_map(|t| dotted::leaves(t))
        .filter(|(_, v)| v.is_table())
        .peekable();
    if maps.peek().is_none() {
        return Ok(merged);
    }
    let mut table = merged.to_table()?;
    for (key, value) in maps {
        dotted::insert(&mut table, &key, value.clone());
    }
    Tree::from_table(table).map_err(|e| ConfigError::Rule(format!("configuration: {e}")))
}

/// Layers defaults, the file, env and flags into [`Layered`].
pub fn layer(
    cli: &Cli,
    lookup: &EnvLookup,
    file: Option<FileLayer>,
) -> Result<Layered, ConfigError> {
    let mut env = Layer::default();
    for (key, value, origin) in env_layer(lookup)? {
        env.set(&key, value, origin);
    }
    let mut flags = flag_layer(cli)?;
    one_ory_upstream(&mut flags, &mut env, file.as_ref())?;
    let defaults = Tree::defaults().to_table()?;
    let none = Table::new();
    let file_table = file.as_ref().map_or(&none, |f| &f.table);
    let layers = [&defaults, file_table, &env.table, &flags.table];
    let merged = whole_maps(merge(&layers)?, &layers)?;
    Ok(Layered {
        merged,
        file,
        env,
        flags,
        api_key: first_env(lookup, ["ORY_PROJECT_API_KEY".to_string()]).map(|(_, v)| v),
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

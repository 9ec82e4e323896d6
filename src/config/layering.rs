//! Stage two: layering. Built-in defaults < `proxy.toml` < environment < command-line flags,
//! merged with the `config` crate. Keys set by env or flags are *pinned*: a later file edit of
//! such a key changes nothing, and the watcher says so.

use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat, Value};
use serde::Deserialize;

use super::error::{ConfigError, Origin};
use super::file::{self, FileConfig};
use crate::cli::Cli;
use crate::file_read;

/// Reads one environment variable; a function so tests can layer without touching the process.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The merged, not yet validated settings. Every key has its default here.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Raw {
    pub application_url: String,
    pub publish_url: String,
    pub port: u16,
    pub sdk_url: String,
    pub project: String,
    pub dev: bool,
    pub no_jwt: bool,
    pub rewrite_host: bool,
    pub trusted_proxies: Vec<String>,
    pub ca_file: String,
    pub watch: String,
    pub log_level: String,
    pub metrics_listen: String,
    pub strip_request_headers: Vec<String>,
    pub cookies: RawCookies,
    pub cors: RawCors,
    pub redirects: RawRedirects,
    pub jwt: RawJwt,
    pub session: RawSession,
    pub upstream: RawUpstream,
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawCookies {
    pub domain: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawCors {
    pub allowed_origins: Vec<String>,
    pub additional_headers: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawRedirects {
    pub default_redirect_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawJwt {
    pub ttl: String,
    pub keys_file: String,
    pub issuer: String,
    pub audience: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawSession {
    pub cookie_names: Vec<String>,
    pub cache_ttl: String,
    pub cache_max_entries: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawUpstream {
    pub connect_timeout: String,
    pub response_timeout: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawLimits {
    pub body_idle_timeout: String,
    pub rewrite_budget: String,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            body_idle_timeout: "30s".into(),
            rewrite_budget: "64MiB".into(),
        }
    }
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            application_url: String::new(),
            publish_url: String::new(),
            port: 4000,
            sdk_url: String::new(),
            project: String::new(),
            dev: false,
            no_jwt: false,
            rewrite_host: false,
            trusted_proxies: Vec::new(),
            ca_file: String::new(),
            watch: "auto".into(),
            log_level: "info".into(),
            metrics_listen: String::new(),
            strip_request_headers: crate::proxy::client_headers::HeaderList::default_list(),
            cookies: RawCookies::default(),
            cors: RawCors::default(),
            redirects: RawRedirects::default(),
            jwt: RawJwt::default(),
            session: RawSession::default(),
            upstream: RawUpstream::default(),
            limits: RawLimits::default(),
        }
    }
}

impl Default for RawJwt {
    fn default() -> Self {
        RawJwt {
            ttl: "1m".into(),
            keys_file: String::new(),
            issuer: String::new(),
            audience: Vec::new(),
        }
    }
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            cookie_names: vec!["ory_session_*".into(), "ory_kratos_session".into()],
            cache_ttl: "10s".into(),
            cache_max_entries: 100_000,
        }
    }
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: "5s".into(),
            response_timeout: "60s".into(),
        }
    }
}

/// One value given by env or a flag, in the order it is applied (env first, flags last).
#[derive(Debug, Clone)]
pub struct Override {
    pub key: &'static str,
    pub value: Value,
    pub origin: Origin,
}

/// The result of layering: merged values plus the facts needed to explain them.
#[derive(Debug, Clone)]
pub struct Layered {
    pub raw: Raw,
    pub overrides: Vec<Override>,
    /// The config file and its text, when one was read.
    pub file: Option<(PathBuf, String)>,
    /// Env-only values that are not settings keys.
    pub api_key: Option<String>,
}

impl Layered {
    /// Where the effective value of `key` came from.
    pub fn origin_of(&self, key: &str) -> Origin {
        if let Some(o) = self.overrides.iter().rev().find(|o| o.key == key) {
            return o.origin.clone();
        }
        if let Some((path, text)) = &self.file {
            if let Some(line) = file::line_of_key(text, key) {
                return Origin::File {
                    path: path.clone(),
                    line: Some(line),
                };
            }
        }
        Origin::Default
    }

    /// Keys pinned by env or flags, with who pinned them.
    pub fn pinned(&self) -> Vec<(&'static str, Origin)> {
        let mut out: Vec<(&'static str, Origin)> = Vec::new();
        for o in &self.overrides {
            out.retain(|(k, _)| *k != o.key);
            out.push((o.key, o.origin.clone()));
        }
        out
    }
}

fn first_env(env: &EnvLookup, names: &[&'static str]) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
}

/// The config file path: `-c` > `ORY_PROXY_CONFIG` > `./proxy.toml` when it exists.
/// The bool says whether the file must exist (it must when named explicitly).
pub fn config_path(cli: &Cli, env: &EnvLookup) -> Option<(PathBuf, bool)> {
    if let Some(p) = &cli.config {
        return Some((p.clone(), true));
    }
    if let Some((_, p)) = first_env(env, &["ORY_PROXY_CONFIG"]) {
        return Some((PathBuf::from(p), true));
    }
    let default = PathBuf::from("proxy.toml");
    default.exists().then_some((default, false))
}

/// Reads and parses the file (stage one). `Ok(None)` when there is no file to read.
pub fn read_file(path: &Path, required: bool) -> Result<Option<(FileConfig, String)>, ConfigError> {
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
    // A pipe is taken here, at start-up only: `-c <(cat proxy.toml)`.
    let read = file_read::read_text(
        path,
        file_read::MAX_FILE_BYTES,
        file_read::Accept::RegularOrPipe,
    );
    match read {
        Ok(text) => Ok(Some((file::parse(path, &text)?, text))),
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

fn env_overrides(env: &EnvLookup) -> Result<Vec<Override>, ConfigError> {
    let mut out = Vec::new();
    if let Some((name, v)) = first_env(env, &["ORY_PROJECT_SLUG", "ORY_PROJECT"]) {
        out.push(Override {
            key: "project",
            value: v.into(),
            origin: Origin::Env(name),
        });
    }
    if let Some((name, v)) = first_env(env, &["ORY_SDK_URL", "ORY_KRATOS_URL"]) {
        out.push(Override {
            key: "sdk_url",
            value: v.into(),
            origin: Origin::Env(name),
        });
    }
    if let Some((name, v)) = first_env(env, &["PORT"]) {
        let port: u16 = v.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "port".into(),
            origin: Origin::Env(name),
            message: format!("{v:?} is not a port number (0-65535)"),
        })?;
        out.push(Override {
            key: "port",
            value: i64::from(port).into(),
            origin: Origin::Env(name),
        });
    }
    if let Some((name, v)) = first_env(env, &["SSL_CERT_FILE"]) {
        out.push(Override {
            key: "ca_file",
            value: v.into(),
            origin: Origin::Env(name),
        });
    }
    Ok(out)
}

fn flag_overrides(cli: &Cli) -> Vec<Override> {
    let mut out = Vec::new();
    let mut push = |key: &'static str, flag: &'static str, value: Value| {
        out.push(Override {
            key,
            value,
            origin: Origin::Flag(flag),
        })
    };
    if let Some(v) = &cli.application_url {
        push("application_url", "APPLICATION_URL", v.clone().into());
    }
    if let Some(v) = &cli.publish_url {
        push("publish_url", "PUBLISH_URL", v.clone().into());
    }
    if let Some(v) = &cli.project {
        push("project", "--project", v.clone().into());
    }
    if let Some(v) = &cli.sdk_url {
        push("sdk_url", "--sdk-url", v.clone().into());
    }
    if let Some(v) = cli.port {
        push("port", "--port", i64::from(v).into());
    }
    if cli.dev {
        push("dev", "--dev", true.into());
    }
    if cli.no_jwt {
        push("no_jwt", "--no-jwt", true.into());
    }
    if cli.rewrite_host {
        push("rewrite_host", "--rewrite-host", true.into());
    }
    if cli.debug {
        push("log_level", "--debug", "debug".into());
    }
    if let Some(v) = &cli.metrics_listen {
        push("metrics_listen", "--metrics-listen", v.clone().into());
    }
    if let Some(v) = &cli.cookie_domain {
        push("cookies.domain", "--cookie-domain", v.clone().into());
    }
    if !cli.allowed_cors_origins.is_empty() {
        push(
            "cors.allowed_origins",
            "--allowed-cors-origins",
            cli.allowed_cors_origins.clone().into(),
        );
    }
    if !cli.additional_cors_headers.is_empty() {
        push(
            "cors.additional_headers",
            "--additional-cors-headers",
            cli.additional_cors_headers.clone().into(),
        );
    }
    if let Some(v) = &cli.default_redirect_url {
        push(
            "redirects.default_redirect_url",
            "--default-redirect-url",
            v.clone().into(),
        );
    }
    out
}

/// The Ory upstream comes from the highest layer that names one; naming both in one layer is
/// an error. A `--project` flag therefore replaces an `sdk_url` from the file, as a user
/// would expect, instead of failing.
fn upstream_overrides(
    overrides: &mut Vec<Override>,
    file: Option<&FileConfig>,
) -> Result<(), ConfigError> {
    let in_layer = |pred: &dyn Fn(&Origin) -> bool| {
        let p = overrides
            .iter()
            .rev()
            .find(|o| o.key == "project" && pred(&o.origin));
        let s = overrides
            .iter()
            .rev()
            .find(|o| o.key == "sdk_url" && pred(&o.origin));
        (p.map(|o| o.origin.clone()), s.map(|o| o.origin.clone()))
    };
    let is_flag = |o: &Origin| matches!(o, Origin::Flag(_));
    let is_env = |o: &Origin| matches!(o, Origin::Env(_));
    let both = |a: Origin, b: Origin| {
        ConfigError::Rule(format!(
            "both an Ory project ({a}) and an Ory SDK URL ({b}) are set; set exactly one: \
             --project / ORY_PROJECT_SLUG / ORY_PROJECT, or --sdk-url / ORY_SDK_URL / ORY_KRATOS_URL"
        ))
    };
    for layer in [&is_flag as &dyn Fn(&Origin) -> bool, &is_env] {
        match in_layer(layer) {
            (Some(a), Some(b)) => return Err(both(a, b)),
            (Some(origin), None) => {
                overrides.push(Override {
                    key: "sdk_url",
                    value: "".into(),
                    origin,
                });
                return Ok(());
            }
            (None, Some(origin)) => {
                overrides.push(Override {
                    key: "project",
                    value: "".into(),
                    origin,
                });
                return Ok(());
            }
            (None, None) => {}
        }
    }
    if let Some(f) = file {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if set(&f.project) && set(&f.sdk_url) {
            return Err(ConfigError::Rule(
                "proxy.toml sets both `project` and `sdk_url`; set exactly one".into(),
            ));
        }
    }
    Ok(())
}

/// Layers defaults, file text, env and flags into [`Layered`].
pub fn layer(
    cli: &Cli,
    env: &EnvLookup,
    file: Option<(PathBuf, FileConfig, String)>,
) -> Result<Layered, ConfigError> {
    let mut overrides = env_overrides(env)?;
    overrides.extend(flag_overrides(cli));
    upstream_overrides(&mut overrides, file.as_ref().map(|(_, f, _)| f))?;

    let mut builder = Config::builder();
    if let Some((_, _, text)) = &file {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    let rule = |e: config::ConfigError| ConfigError::Rule(format!("configuration: {e}"));
    for o in &overrides {
        builder = builder.set_override(o.key, o.value.clone()).map_err(rule)?;
    }
    let raw: Raw = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(rule)?;
    Ok(Layered {
        raw,
        overrides,
        file: file.map(|(p, _, t)| (p, t)),
        api_key: first_env(env, &["ORY_PROJECT_API_KEY"]).map(|(_, v)| v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> Box<EnvLookup> {
        Box::new(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    fn file(text: &str) -> Option<(PathBuf, FileConfig, String)> {
        let p = PathBuf::from("proxy.toml");
        let f = file::parse(&p, text).unwrap();
        Some((p, f, text.to_string()))
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
        assert_eq!(l.raw.port, 7000);
        assert_eq!(l.raw.sdk_url, "http://env-ory");
        assert_eq!(l.raw.cookies.domain, "f.example");
        assert_eq!(l.raw.jwt.ttl, "1m");
        assert_eq!(l.origin_of("port"), Origin::Flag("--port"));
        assert_eq!(l.origin_of("sdk_url"), Origin::Env("ORY_SDK_URL"));
        assert!(matches!(
            l.origin_of("cookies.domain"),
            Origin::File { line: Some(4), .. }
        ));
        let pinned: Vec<_> = l.pinned().into_iter().map(|(k, _)| k).collect();
        assert!(pinned.contains(&"port") && pinned.contains(&"application_url"));
    }

    #[test]
    fn project_flag_replaces_file_sdk_url() {
        let cli = Cli::parse_from(["ory-proxy", "--project", "slug", "http://app"]);
        let l = layer(&cli, &*env_of(&[]), file("sdk_url = \"http://k\"\n")).unwrap();
        assert_eq!(l.raw.project, "slug");
        assert_eq!(l.raw.sdk_url, "");
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
    }

    #[test]
    fn bad_port_env_names_the_variable() {
        let err = layer(&Cli::default(), &*env_of(&[("PORT", "http")]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("env PORT"), "{err}");
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
        assert_eq!(l.raw.cors.allowed_origins.len(), 3);
    }
}

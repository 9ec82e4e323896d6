//! Configuration: one key tree ([`keys`]), layered (defaults < `proxy.toml` < env < flags),
//! validated, and the live settings snapshot that the request path reads without locks.
//!
//! Loading runs in three stages: [`file`] parses the TOML once, with spans (unknown keys and
//! types, with lines), [`env`] reads `ORY_PROXY_*` and the older names, [`layers`] merges the
//! layers with the `config` crate, and [`settings`]
//! validates into typed [`Fixed`] and [`Live`] settings. Start-up and every reload run the
//! same [`Loader`]. [`print`] shows the result for `--check-config`.

pub mod check;
pub mod cors_policy;
pub mod dotted;
pub mod env;
pub mod error;
pub mod file;
pub mod keys;
pub mod layers;
pub mod log_format;
pub mod print;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use check::Effective;
pub use cors_policy::CorsPolicy;
pub use error::{ConfigError, Origin};
pub use keys::Tree;
pub use layers::{EnvLookup, Layered};
pub use log_format::LogFormat;
pub use settings::{Fixed, Live, OrySource, Settings, WatchMode};

use crate::cli::Cli;

/// Everything needed to (re)load the settings: the flags and the environment as they were at
/// start, and where the file is.
#[derive(Clone)]
pub struct Loader {
    cli: Cli,
    env: Arc<EnvLookup>,
    path: Option<(PathBuf, bool)>,
    bound_port: Option<u16>,
}

/// A successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub layered: Layered,
    /// What `--check-config` shows where it differs from the merged tree.
    pub effective: Effective,
}

impl Loader {
    pub fn new(cli: Cli, env: Arc<EnvLookup>) -> Self {
        let path = layers::config_path(&cli, &*env);
        Loader {
            cli,
            env,
            path,
            bound_port: None,
        }
    }

    /// A loader over the process environment, captured once. Warns about `ORY_PROXY_*`
    /// variables that name no key.
    pub fn from_process(cli: Cli) -> Self {
        // `vars_os`: a variable that is not UTF-8 (any process may set one) is skipped, where
        // `vars` would panic.
        let vars: std::collections::HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        for name in env::unknown_env_vars(vars.keys().map(String::as_str)) {
            log::warn!("{name} is not a setting and is ignored (see config/proxy.toml for the keys; `jwt.ttl` is ORY_PROXY_JWT__TTL)");
        }
        Loader::new(cli, Arc::new(move |k: &str| vars.get(k).cloned()))
    }

    /// The config file, if one is in use (named, or `./proxy.toml` found at start).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_ref().map(|(p, _)| p.as_path())
    }

    /// Called once the listener is bound, so that a default publish URL names the real port.
    pub fn set_bound_port(&mut self, port: u16) {
        self.bound_port = Some(port);
    }

    /// Reads the file (if any) and runs the three stages.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let text = match &self.path {
            Some((p, required)) => layers::read_file(p, *required)?,
            None => None,
        };
        self.load_text(text.as_deref())
    }

    /// Runs the stages over file text already read (the watcher hashes it first).
    pub fn load_text(&self, text: Option<&str>) -> Result<Loaded, ConfigError> {
        let file = match (&self.path, text) {
            (Some((p, _)), Some(t)) => Some(file::parse(p, t)?),
            _ => None,
        };
        let layered = layers::layer(&self.cli, &*self.env, file)?;
        self.validate(layered)
    }

    /// Validates a layered tree (e.g. one a reload put together) as start-up does.
    pub fn validate(&self, layered: Layered) -> Result<Loaded, ConfigError> {
        let (settings, effective) = settings::validate(&layered, self.bound_port)?;
        Ok(Loaded {
            settings,
            layered,
            effective,
        })
    }
}

/// The swappable live settings. Readers take one `Arc` per request ([`LiveSettings::snapshot`])
/// so a request runs start to end on one consistent version even if a reload lands meanwhile.
#[derive(Clone)]
pub struct LiveSettings(Arc<ArcSwap<Live>>);

impl LiveSettings {
    pub fn new(live: Arc<Live>) -> Self {
        LiveSettings(Arc::new(ArcSwap::new(live)))
    }

    pub fn snapshot(&self) -> Arc<Live> {
        self.0.load_full()
    }

    pub fn store(&self, live: Arc<Live>) {
        self.0.store(live)
    }
}

/// Set when `RUST_LOG` owns the log filter: then neither `--debug` nor `log_level` change it.
static LEVEL_OWNED_BY_ENV: AtomicBool = AtomicBool::new(false);

/// Records that `RUST_LOG` decides the log level (called once by logger set-up).
pub fn log_level_owned_by_env() {
    LEVEL_OWNED_BY_ENV.store(true, Ordering::Relaxed);
}

/// Applies a configured log level, unless `RUST_LOG` owns it.
pub fn apply_log_level(level: log::LevelFilter) {
    if !LEVEL_OWNED_BY_ENV.load(Ordering::Relaxed) {
        log::set_max_level(level);
    }
}

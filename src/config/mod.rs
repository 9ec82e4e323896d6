//! Configuration: layering (defaults < `proxy.toml` < env < flags), validation, and the live
//! settings snapshot that the request path reads without locks.
//!
//! Loading runs in three stages: [`file`] parses the TOML with spans (unknown keys and types,
//! with lines), [`layering`] merges the sources with the `config` crate, and [`settings`]
//! validates into typed [`Fixed`] and [`Live`] settings. Start-up and every reload run the
//! same [`Loader::load`].

pub mod cors_policy;
pub mod error;
pub mod file;
pub mod layering;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use cors_policy::CorsPolicy;
pub use error::{ConfigError, Origin};
pub use layering::{EnvLookup, Layered};
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
}

impl Loader {
    pub fn new(cli: Cli, env: Arc<EnvLookup>) -> Self {
        let path = layering::config_path(&cli, &*env);
        Loader {
            cli,
            env,
            path,
            bound_port: None,
        }
    }

    /// A loader over the process environment, captured once.
    pub fn from_process(cli: Cli) -> Self {
        let vars: std::collections::HashMap<String, String> = std::env::vars().collect();
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
            Some((p, required)) => layering::read_file(p, *required)?.map(|(_, t)| t),
            None => None,
        };
        self.load_text(text)
    }

    /// Runs the stages over file text already read (the watcher hashes it first).
    pub fn load_text(&self, text: Option<String>) -> Result<Loaded, ConfigError> {
        let file = match (&self.path, text) {
            (Some((p, _)), Some(t)) => Some((p.clone(), file::parse(p, &t)?, t)),
            _ => None,
        };
        let layered = layering::layer(&self.cli, &*self.env, file)?;
        let settings = settings::validate(&layered, self.bound_port)?;
        Ok(Loaded { settings, layered })
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

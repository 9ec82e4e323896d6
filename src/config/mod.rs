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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

/// The log target of the per-request access line.
pub const ACCESS_LOG_TARGET: &str = "ory_proxy::access";

/// What `RUST_LOG`'s filter says of the access log, fixed at logger set-up:
/// [`FILTER_UNKNOWN`] until then (or when another logger was installed, as the demo does).
static ACCESS_LOG_FILTER: AtomicU8 = AtomicU8::new(FILTER_UNKNOWN);
const FILTER_UNKNOWN: u8 = 0;
const FILTER_OFF: u8 = 1;
const FILTER_ON: u8 = 2;

/// Records what the proxy's own logger's filter says of the access log (called once by the
/// logger set-up, when its logger is the one installed).
pub fn set_access_log_filter(on: bool) {
    let v = if on { FILTER_ON } else { FILTER_OFF };
    ACCESS_LOG_FILTER.store(v, Ordering::Relaxed);
}

/// Whether an access line would be logged now: what `log::log_enabled!` answers for the access
/// log's target, without walking the filter's directives on every request (it showed in
/// profiles): the filter's answer is fixed at start, the level is live.
pub fn access_log_enabled() -> bool {
    access_log_decision(
        log::STATIC_MAX_LEVEL.min(log::max_level()),
        ACCESS_LOG_FILTER.load(Ordering::Relaxed),
        || log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info),
    )
}

/// [`access_log_enabled`] for a level and a filter state; `ask` is the logger itself.
fn access_log_decision(level: log::LevelFilter, filter: u8, ask: impl FnOnce() -> bool) -> bool {
    level >= log::LevelFilter::Info
        && match filter {
            FILTER_ON => true,
            FILTER_OFF => false,
            _ => ask(),
        }
}

/// Applies a configured log level, unless `RUST_LOG` owns it.
pub fn apply_log_level(level: log::LevelFilter) {
    if !LEVEL_OWNED_BY_ENV.load(Ordering::Relaxed) {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::{access_log_decision, FILTER_OFF, FILTER_ON, FILTER_UNKNOWN};
    use log::LevelFilter;

    #[test]
    fn the_access_log_follows_the_live_level_and_the_filter_fixed_at_start() {
        let never = || panic!("the filter is known: the logger is not asked");
        assert!(access_log_decision(LevelFilter::Info, FILTER_ON, never));
        assert!(access_log_decision(LevelFilter::Debug, FILTER_ON, never));
        assert!(!access_log_decision(LevelFilter::Warn, FILTER_ON, never));
        assert!(!access_log_decision(LevelFilter::Info, FILTER_OFF, never));
        // Another logger installed (the demo's): it is asked.
        assert!(access_log_decision(
            LevelFilter::Info,
            FILTER_UNKNOWN,
            || true
        ));
        assert!(!access_log_decision(
            LevelFilter::Info,
            FILTER_UNKNOWN,
            || false
        ));
        assert!(!access_log_decision(
            LevelFilter::Off,
            FILTER_UNKNOWN,
            || true
        ));
    }
}

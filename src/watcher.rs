//! The config watcher actor: hot reload of `proxy.toml` (SPEC §3).
//!
//! It owns the file watch on the config file's *directory*, the hash and text of the file as
//! last read, and the only right to swap [`LiveSettings`]. Everything reaches it as a message:
//! debounced filesystem events (from notify's own thread), poll ticks (`watch = "poll"`, or
//! when OS notifications are unavailable), `SIGHUP`, and [`WatcherHandle::reload_now`]. A
//! reload re-reads the file, skips it if its SHA-256 is unchanged, validates it with the same
//! [`Loader`] as start-up, and then:
//! - swaps the live settings in one atomic store when a live key changed, with one info line
//!   naming the changed keys (requests hold one snapshot each, so none sees a mix);
//! - warns about changed keys that need a restart and does not apply them;
//! - warns about file edits of keys pinned by a flag or env var;
//! - on an invalid file logs one error (file, line, key) and keeps the running settings;
//! - on a deleted file warns once and keeps the running settings;
//! - reads regular files only, off the runtime and bounded in size (see
//!   [`crate::file_read`]): a FIFO put at the path is an error, not a hang. A config given as
//!   a pipe (`-c <(cat proxy.toml)`) was read once at start and is not watched.
//!
//! Why the directory and not the file: editors and Kubernetes replace the file (rename over
//! it, swap a `..data` symlink), and a watch on the old inode goes quiet after the first save.
//! Why the access-event filter: the reload's own read of the file is an event too, and would
//! otherwise schedule the next reload, forever.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::settings::{self, JwtLive, SessionLive};
use crate::config::{
    ConfigError, CorsPolicy, Fixed, Live, LiveSettings, Loader, Origin, WatchMode,
};
use crate::file_read::{self, Accept, FileContent, ReadError};
use crate::metrics::{self, Metrics};

/// Quiet time before a burst of filesystem events becomes one reload. Editors write in a few
/// steps within milliseconds; 150 ms merges them and still applies an edit well within 2 s.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How often `watch = "poll"` reads the file.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long a missing or empty file may stay so before it counts: vim's save renames the file
/// away before writing the new one, and truncate-then-write has an empty moment. Neither should
/// log a deletion or apply an empty configuration.
pub const SETTLE: Duration = Duration::from_millis(400);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no config file is in use; nothing to watch")]
    NoConfigFile,
    #[error("config path {0} does not name a file")]
    NotAFile(PathBuf),
    #[error("the config watcher has stopped")]
    Stopped,
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file's content is what was read last time: nothing to do.
    Unchanged,
    /// The file was read and validated.
    Loaded {
        /// Live keys whose new values now serve requests (empty: no live key changed).
        applied: Vec<&'static str>,
        /// Keys that changed but need a restart; not applied.
        needs_restart: Vec<&'static str>,
        /// Keys the file changed but a flag or env var pins; ignored.
        pinned: Vec<&'static str>,
    },
    /// The file is invalid; the running settings stay. Holds the error line.
    Invalid(String),
    /// The file does not exist; the running settings stay.
    Missing,
    /// The file exists but cannot be read; the running settings stay.
    Unreadable(String),
    /// The file is empty or missing right now; it is looked at again after [`SETTLE`].
    Settling,
}

enum Command {
    Reload(oneshot::Sender<ReloadOutcome>),
}

/// A handle to the watcher actor. The actor stops when the last handle is dropped.
#[derive(Clone)]
pub struct WatcherHandle {
    commands: mpsc::Sender<Command>,
    version: watch::Receiver<u64>,
}

impl WatcherHandle {
    /// Starts the actor on the current tokio runtime. `fixed` and `live` are the running
    /// proxy's; `loader` must be the one it started with (same flags, env and bound port), so a
    /// reload validates exactly like start-up did.
    pub fn spawn(
        loader: Loader,
        fixed: Arc<Fixed>,
        live: LiveSettings,
        metrics: Arc<Metrics>,
    ) -> Result<WatcherHandle, WatchError> {
        let path = loader.path().ok_or(WatchError::NoConfigFile)?.to_path_buf();
        let file_name = path
            .file_name()
            .ok_or_else(|| WatchError::NotAFile(path.clone()))?
            .to_os_string();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Capacity 1 is enough: a queued event already means "read the file again".
        let (fs_tx, fs_rx) = mpsc::channel(1);
        // A pipe (`-c <(cat proxy.toml)`) was read once at start and has nothing more to give.
        // (A file missing right now is watched as usual: it may come back.)
        let one_shot = std::fs::metadata(&path).is_ok_and(|m| !m.is_file());
        let fs = if one_shot {
            log::info!(
                "{} is not a regular file (a pipe?): read once at start and not watched; restart to change the settings",
                path.display()
            );
            FsWatch::None
        } else {
            start_fs_watch(fixed.watch, &dir, &file_name, fs_tx.clone())
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (version_tx, version_rx) = watch::channel(0);
        let mut actor = Actor {
            loader,
            path,
            live,
            running_fixed: fixed,
            one_shot,
            last_text: None,
            last_hash: None,
            last_fixed: None,
            broken: false,
            missing: false,
            unreadable: None,
            settle_at: None,
            version: version_tx,
            fs,
            _fs_tx: fs_tx,
            metrics,
        };
        // The baseline read happens here, synchronously: in the task it could come after an
        // early edit and pass that edit off as the start state (and with `watch = "off"`
        // apply an edit nobody asked to reload). The watch is already on, so an edit made
        // since start-up's read is either in this read or in an event. It cannot block: a
        // FIFO is refused at open (see `file_read`). Not for a pipe, which start-up emptied.
        if !one_shot {
            let read = file_read::read(&actor.path, file_read::MAX_FILE_BYTES, Accept::Regular);
            actor.apply(read, Trigger::Start);
        }
        // Also before returning: until the handler is installed, SIGHUP terminates the process.
        let hangup = Hangup::new();
        tokio::spawn(actor.run(cmd_rx, fs_rx, hangup));
        Ok(WatcherHandle {
            commands: cmd_tx,
            version: version_rx,
        })
    }

    /// Re-reads the file now (like `SIGHUP`), even if its content looks unchanged.
    pub async fn reload_now(&self) -> Result<ReloadOutcome, WatchError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload(tx))
            .await
            .map_err(|_| WatchError::Stopped)?;
        rx.await.map_err(|_| WatchError::Stopped)
    }

    /// Bumps on every reload that changed the live settings.
    pub fn version(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }
}

/// How edits are noticed; dropping it stops notify's thread.
enum FsWatch {
    /// OS notifications on the directory, debounced.
    Notify {
        _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    },
    /// The actor reads and hashes the file every [`POLL_INTERVAL`].
    ///
    /// Not notify's `PollWatcher`: in notify 8.2 it compares modification times in whole
    /// seconds, so a second save within the same second is never seen (a test here caught
    /// that); its `compare_contents` would hash every file in the directory on every poll (on
    /// the network filesystems this mode exists for), or, pointed at the file itself, log a
    /// walkdir warning on every poll while the file is missing. One small file read per
    /// interval has none of these problems.
    Poll,
    /// `watch = "off"`, or nothing worked: SIGHUP and [`WatcherHandle::reload_now`] only.
    None,
}

fn start_fs_watch(mode: WatchMode, dir: &Path, file_name: &OsStr, tx: mpsc::Sender<()>) -> FsWatch {
    match mode {
        WatchMode::Off => return FsWatch::None,
        WatchMode::Poll => return FsWatch::Poll,
        WatchMode::Auto => {}
    }
    let f = EventFilter {
        dir: dir.to_path_buf(),
        file_name: file_name.to_os_string(),
    };
    let handler = move |res: DebounceEventResult| match res {
        Ok(events) => {
            if events
                .iter()
                .any(|e| f.wants(&e.event.kind, &e.event.paths))
            {
                // Full means a reload is already queued, which will read this change too.
                let _ = tx.try_send(());
            }
        }
        Err(errors) => {
            for e in errors {
                log::warn!("watching {}: {e}", f.dir.display());
            }
        }
    };
    match new_debouncer(DEBOUNCE, None, handler)
        .and_then(|mut d| d.watch(dir, RecursiveMode::NonRecursive).map(|()| d))
    {
        Ok(d) => FsWatch::Notify { _debouncer: d },
        Err(e) => {
            // E.g. the inotify watch limit: polling still works.
            log::warn!(
                "cannot watch {} with OS notifications ({e}); polling every {} ms instead",
                dir.display(),
                POLL_INTERVAL.as_millis()
            );
            FsWatch::Poll
        }
    }
}

/// Decides, on notify's thread, whether an event may have changed what the config path reads.
#[derive(Clone)]
struct EventFilter {
    dir: PathBuf,
    file_name: OsString,
}

impl EventFilter {
    fn wants(&self, kind: &EventKind, paths: &[PathBuf]) -> bool {
        if !is_change(kind) {
            return false;
        }
        let names = watched_names(&self.dir, &self.file_name);
        let hit = paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|w| w == n)));
        if hit {
            log::debug!("config watch: {kind:?} {paths:?}");
        }
        hit
    }
}

/// Whether an event kind can mean new content. Opening, reading and closing after a read are
/// not changes, and the reload's own read produces exactly those.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The names in `dir` whose change can change what `dir/file_name` reads: the file itself and,
/// when it is a symlink, the first component of each link target inside `dir` (Kubernetes:
/// `proxy.toml -> ..data/proxy.toml`, and the swap replaces `..data`). Computed per event, so a
/// chain that changes is followed.
fn watched_names(dir: &Path, file_name: &OsStr) -> Vec<OsString> {
    let mut names = vec![file_name.to_os_string()];
    let mut current = dir.join(file_name);
    // A bound, because links may form a loop.
    for _ in 0..8 {
        let Ok(target) = std::fs::read_link(&current) else {
            break;
        };
        let next = match current.parent() {
            Some(parent) => parent.join(&target),
            None => target,
        };
        if let Ok(rest) = next.strip_prefix(dir) {
            if let Some(Component::Normal(first)) = rest.components().next() {
                if !names.iter().any(|n| n == first) {
                    names.push(first.to_os_string());
                }
            }
        }
        current = next;
    }
    names
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The first read, right after start: establishes the baseline.
    Start,
    /// A filesystem event.
    FileEvent,
    /// A poll tick (`watch = "poll"`): like an event, but unchanged content is the usual case.
    Poll,
    /// The settle timer after a missing or empty file.
    Settled,
    /// `SIGHUP` or [`WatcherHandle::reload_now`]: read and validate even if unchanged.
    Manual,
}

struct Actor {
    loader: Loader,
    path: PathBuf,
    live: LiveSettings,
    /// The fixed settings the server runs with; a reload never changes them.
    running_fixed: Arc<Fixed>,
    /// The config path is a pipe, read once at start: nothing to read again.
    one_shot: bool,
    /// The text of the last file that loaded, for telling which pinned keys an edit touched.
    last_text: Option<String>,
    /// Hash of the last text read, valid or not, so a repeated event for the same bad content
    /// does not log the same error again.
    last_hash: Option<[u8; 32]>,
    /// The fixed part of the last load, so a pending restart-only change is reported once.
    last_fixed: Option<Arc<Fixed>>,
    /// The last read was invalid; the next good one says so.
    broken: bool,
    /// A deletion has been reported.
    missing: bool,
    /// The read error last reported, if the file is unreadable.
    unreadable: Option<String>,
    settle_at: Option<Instant>,
    version: watch::Sender<u64>,
    fs: FsWatch,
    /// Keeps the event channel open when there is no filesystem watch.
    _fs_tx: mpsc::Sender<()>,
    metrics: Arc<Metrics>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut fs_events: mpsc::Receiver<()>,
        mut hangup: Hangup,
    ) {
        let mut poll = matches!(self.fs, FsWatch::Poll).then(|| {
            let mut i = tokio::time::interval(POLL_INTERVAL);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            let settle_at = self.settle_at;
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload(reply)) => {
                        let outcome = self.reload(Trigger::Manual).await;
                        let _ = reply.send(outcome);
                    }
                    // Every handle is gone: the proxy is shutting down.
                    None => break,
                },
                Some(()) = fs_events.recv() => {
                    self.reload(Trigger::FileEvent).await;
                }
                () = hangup.recv() => {
                    log::info!("SIGHUP: reloading {}", self.path.display());
                    self.reload(Trigger::Manual).await;
                }
                () = sleep_until(settle_at) => {
                    self.reload(Trigger::Settled).await;
                }
                () = tick(&mut poll) => {
                    self.reload(Trigger::Poll).await;
                }
            }
        }
    }

    /// Reads the file off the runtime (a read must never hold up signals or requests), then
    /// applies it.
    async fn reload(&mut self, trigger: Trigger) -> ReloadOutcome {
        if self.one_shot {
            log::info!(
                "{} was read once at start (not a regular file); restart to change the settings",
                self.path.display()
            );
            return ReloadOutcome::Unchanged;
        }
        let read = file_read::read_off_runtime(self.path.clone(), file_read::MAX_FILE_BYTES).await;
        self.apply(read, trigger)
    }

    fn apply(&mut self, read: Result<FileContent, ReadError>, trigger: Trigger) -> ReloadOutcome {
        let path = self.path.display().to_string();
        let text =
            match read.and_then(|c| String::from_utf8(c.bytes).map_err(|_| ReadError::NotText)) {
                Ok(t) => t,
                Err(e) if e.is_not_found() => return self.missing(trigger),
                Err(e) => {
                    let e = e.to_string();
                    // Once per distinct error: polling would repeat it twice a second.
                    if self.unreadable.as_deref() != Some(e.as_str()) {
                        log::error!("cannot read {path}: {e}; keeping the running settings");
                        self.count(trigger, metrics::ReloadOutcome::Rejected);
                        self.unreadable = Some(e.clone());
                    }
                    return ReloadOutcome::Unreadable(e);
                }
            };
        self.unreadable = None;
        let was_missing = std::mem::take(&mut self.missing);
        if text.trim().is_empty()
            && !matches!(trigger, Trigger::Start | Trigger::Settled | Trigger::Manual)
            && self
                .last_text
                .as_deref()
                .is_none_or(|t| !t.trim().is_empty())
        {
            // Not pushed back by further events: the file gets SETTLE, not more.
            self.settle_at
                .get_or_insert_with(|| Instant::now() + SETTLE);
            return ReloadOutcome::Settling;
        }
        self.settle_at = None;

        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.last_hash == Some(hash) && trigger != Trigger::Manual {
            if was_missing {
                log::info!("{path} is back, unchanged");
            } else if trigger != Trigger::Poll {
                log::debug!("{path}: content unchanged");
            }
            return ReloadOutcome::Unchanged;
        }
        self.last_hash = Some(hash);

        let loaded = match self.loader.load_text(Some(text.clone())) {
            Ok(l) => l,
            Err(e) => return self.invalid(&e, trigger),
        };
        let new_fixed = loaded.settings.fixed.clone();
        let needs_restart = fixed_changes(&self.running_fixed, &new_fixed);
        let new_live = if needs_restart.is_empty() {
            loaded.settings.live.clone()
        } else {
            match settings::live_for(&loaded.layered, &self.running_fixed) {
                Ok(l) => Arc::new(l),
                Err(e) => return self.invalid(&e, trigger),
            }
        };

        if !needs_restart.is_empty() && self.last_fixed.as_deref() != Some(&*new_fixed) {
            log::warn!(
                "{path}: {} changed but need{} a restart; not applied, the running values stay",
                needs_restart.join(", "),
                if needs_restart.len() == 1 { "s" } else { "" },
            );
        }
        self.last_fixed = Some(new_fixed);

        let pinned = match &self.last_text {
            // The first read has nothing to compare with: a pinned key in the file at start
            // is not an edit.
            Some(prev) => pinned_edits(prev, &text, &loaded.layered.pinned()),
            None => Vec::new(),
        };
        for (key, origin) in &pinned {
            log::warn!("{key} is pinned by {origin}; the file's value is ignored");
        }
        self.last_text = Some(text);

        let current = self.live.snapshot();
        let applied = live_changes(&current, &new_live);
        if applied.is_empty() {
            if std::mem::take(&mut self.broken) {
                log::info!("{path} is valid again; no setting changed");
            } else if trigger == Trigger::Manual {
                log::info!("reloaded {path}: no setting changed");
            } else {
                log::debug!("reloaded {path}: no live setting changed");
            }
        } else {
            self.broken = false;
            let (old_level, new_level) = (current.log_level, new_live.log_level);
            self.live.store(new_live);
            // Log at the more verbose of the two levels, so the line that announces a quieter
            // level is not itself silenced by it.
            crate::config::apply_log_level(old_level.max(new_level));
            log::info!("reloaded {path}: {}", applied.join(", "));
            crate::config::apply_log_level(new_level);
            self.version.send_modify(|v| *v += 1);
        }
        self.count(
            trigger,
            if applied.is_empty() {
                metrics::ReloadOutcome::Unchanged
            } else {
                metrics::ReloadOutcome::Applied
            },
        );
        ReloadOutcome::Loaded {
            applied,
            needs_restart,
            pinned: pinned.into_iter().map(|(k, _)| k).collect(),
        }
    }

    /// Counts a reload for the metrics; start-up's baseline read is not one.
    fn count(&self, trigger: Trigger, outcome: metrics::ReloadOutcome) {
        if trigger != Trigger::Start {
            self.metrics.reload(outcome);
        }
    }

    fn invalid(&mut self, e: &ConfigError, trigger: Trigger) -> ReloadOutcome {
        let line = e.to_string();
        let path = self.path.display().to_string();
        // File errors already start with `file:line`; rule errors name no file.
        if line.contains(&path) {
            log::error!("{line}; keeping the running settings");
        } else {
            log::error!("{path}: {line}; keeping the running settings");
        }
        self.broken = true;
        self.count(trigger, metrics::ReloadOutcome::Rejected);
        ReloadOutcome::Invalid(line)
    }

    fn missing(&mut self, trigger: Trigger) -> ReloadOutcome {
        if self.missing {
            return ReloadOutcome::Missing;
        }
        if matches!(trigger, Trigger::FileEvent | Trigger::Poll) {
            // Not pushed back by further events: the file gets SETTLE, not more.
            self.settle_at
                .get_or_insert_with(|| Instant::now() + SETTLE);
            return ReloadOutcome::Settling;
        }
        self.settle_at = None;
        self.missing = true;
        self.count(trigger, metrics::ReloadOutcome::Rejected);
        log::warn!(
            "{} is gone; keeping the running settings until it is back",
            self.path.display()
        );
        ReloadOutcome::Missing
    }
}

async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `SIGHUP`, where there is such a thing.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| {
                    log::warn!("cannot listen for SIGHUP ({e}); reload by editing the file")
                })
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            Hangup {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            if s.recv().await.is_some() {
                return;
            }
            // The signal stream ended; never fire again.
            self.signal = None;
        }
        std::future::pending().await
    }
}

/// The restart-only keys whose values differ. Destructured in full so that a new field in
/// [`Fixed`] does not compile until it is classified here.
fn fixed_changes(a: &Fixed, b: &Fixed) -> Vec<&'static str> {
    let Fixed {
        application_url,
        app_origin: _,
        publish_url,
        publish_origin: _,
        port,
        ory_url,
        ory_base: _,
        ory_source,
        dev,
        no_jwt,
        rewrite_host,
        trusted_proxies,
        ca_file,
        keys_file,
        watch,
        metrics_listen,
        connect_timeout,
        response_timeout,
        body_idle_timeout,
        rewrite_budget,
        // From the environment only, which a reload does not read again.
        api_key: _,
    } = a;
    let mut out = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            out.push(key);
        }
    };
    check(*application_url != b.application_url, "application_url");
    // Unset, the publish URL follows the port; then only the port is the user's change.
    let follows_port = |f: &Fixed| {
        f.publish_url.as_str().trim_end_matches('/') == format!("http://localhost:{}", f.port)
    };
    check(
        *publish_url != b.publish_url && !(follows_port(a) && follows_port(b)),
        "publish_url",
    );
    check(*port != b.port, "port");
    if *ory_url != b.ory_url || *ory_source != b.ory_source {
        use crate::config::OrySource;
        let either = |f: fn(&OrySource) -> bool| f(ory_source) || f(&b.ory_source);
        check(either(|s| matches!(s, OrySource::Project(_))), "project");
        check(either(|s| matches!(s, OrySource::SdkUrl)), "sdk_url");
    }
    check(*dev != b.dev, "dev");
    check(*no_jwt != b.no_jwt, "no_jwt");
    check(*rewrite_host != b.rewrite_host, "rewrite_host");
    check(*trusted_proxies != b.trusted_proxies, "trusted_proxies");
    check(*ca_file != b.ca_file, "ca_file");
    check(*keys_file != b.keys_file, "jwt.keys_file");
    check(*watch != b.watch, "watch");
    check(*metrics_listen != b.metrics_listen, "metrics_listen");
    check(
        *connect_timeout != b.connect_timeout,
        "upstream.connect_timeout",
    );
    check(
        *response_timeout != b.response_timeout,
        "upstream.response_timeout",
    );
    check(
        *body_idle_timeout != b.body_idle_timeout,
        "limits.body_idle_timeout",
    );
    check(*rewrite_budget != b.rewrite_budget, "limits.rewrite_budget");
    out
}

/// The live keys whose values differ, named as in `proxy.toml`. Destructured in full for the
/// same reason as [`fixed_changes`].
fn live_changes(a: &Live, b: &Live) -> Vec<&'static str> {
    let Live {
        cookie_domain,
        cors,
        default_redirect_url,
        jwt,
        session,
        log_level,
        strip_request_headers,
    } = a;
    let CorsPolicy {
        any_origin,
        exact,
        wildcards,
        headers,
        any_header,
    } = cors;
    let JwtLive {
        ttl,
        issuer,
        audience,
    } = jwt;
    let SessionLive {
        cookie_names,
        cache_ttl,
        cache_max_entries,
    } = session;
    let mut out = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            out.push(key);
        }
    };
    check(*cookie_domain != b.cookie_domain, "cookies.domain");
    check(
        (any_origin, exact, wildcards) != (&b.cors.any_origin, &b.cors.exact, &b.cors.wildcards),
        "cors.allowed_origins",
    );
    check(
        (headers, any_header) != (&b.cors.headers, &b.cors.any_header),
        "cors.additional_headers",
    );
    check(
        *default_redirect_url != b.default_redirect_url,
        "redirects.default_redirect_url",
    );
    check(*ttl != b.jwt.ttl, "jwt.ttl");
    check(*issuer != b.jwt.issuer, "jwt.issuer");
    check(*audience != b.jwt.audience, "jwt.audience");
    check(
        *cookie_names != b.session.cookie_names,
        "session.cookie_names",
    );
    check(*cache_ttl != b.session.cache_ttl, "session.cache_ttl");
    check(
        *cache_max_entries != b.session.cache_max_entries,
        "session.cache_max_entries",
    );
    check(*log_level != b.log_level, "log_level");
    check(
        *strip_request_headers != b.strip_request_headers,
        "strip_request_headers",
    );
    out
}

/// Pinned keys whose value in the file differs between `prev` and `next` (and is set in
/// `next`): edits that the flag or env var silently overrides unless someone says so.
fn pinned_edits(
    prev: &str,
    next: &str,
    pinned: &[(&'static str, Origin)],
) -> Vec<(&'static str, Origin)> {
    let parse = |t: &str| toml::from_str::<toml::Table>(t).ok();
    let (prev, next) = (parse(prev), parse(next));
    let Some(next) = next else {
        return Vec::new();
    };
    pinned
        .iter()
        .filter(|(key, _)| {
            let new = lookup(&next, key);
            new.is_some() && new != prev.as_ref().and_then(|p| lookup(p, key))
        })
        .cloned()
        .collect()
}

/// A dotted key (`cookies.domain`) in a TOML table.
fn lookup<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let mut parts = dotted.split('.');
    let first = table.get(parts.next()?)?;
    parts.try_fold(first, |v, k| v.get(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};

    const BASE: &str =
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:1\"\n";

    fn loader(path: &Path, args: &[&str]) -> Loader {
        let mut a = vec!["ory-proxy", "-c", path.to_str().unwrap()];
        a.extend_from_slice(args);
        Loader::new(Cli::parse_from(a), Arc::new(|_: &str| None))
    }

    #[test]
    fn own_reads_are_not_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }

    #[test]
    fn filter_matches_the_file_and_its_symlink_chain_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("v1")).unwrap();
        std::fs::write(d.join("v1/proxy.toml"), BASE).unwrap();
        std::os::unix::fs::symlink("v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/proxy.toml", d.join("proxy.toml")).unwrap();
        let names = watched_names(d, OsStr::new("proxy.toml"));
        assert_eq!(
            names,
            vec![OsString::from("proxy.toml"), OsString::from("..data")]
        );

        let f = EventFilter {
            dir: d.to_path_buf(),
            file_name: "proxy.toml".into(),
        };
        let create = EventKind::Create(CreateKind::Any);
        assert!(f.wants(&create, &[d.join("..data_tmp"), d.join("..data")]));
        assert!(f.wants(&create, &[d.join("proxy.toml")]));
        assert!(!f.wants(&create, &[d.join("other.toml")]));
        assert!(!f.wants(&create, &[d.join("..data_tmp")]));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!f.wants(&open, &[d.join("proxy.toml")]));
    }

    #[test]
    fn diffs_name_keys_as_in_the_file() {
        let p = PathBuf::from("/nonexistent/proxy.toml");
        let l = loader(&p, &[]);
        let a = l.load_text(Some(BASE.into())).unwrap().settings;
        let b_loaded = l
            .load_text(Some(format!(
                "{BASE}port = 5000\nlog_level = \"debug\"\n[cookies]\ndomain = \"x.example\"\n[cors]\nallowed_origins = [\"https://a.example\"]\n[jwt]\nttl = \"2m\"\n"
            )))
            .unwrap();
        let b = &b_loaded.settings;
        assert_eq!(fixed_changes(&a.fixed, &b.fixed), vec!["port"]);
        // The live part as a reload computes it: against the running fixed settings, so the
        // publish URL that follows the port does not leak into the redirect or CORS.
        let b_live = settings::live_for(&b_loaded.layered, &a.fixed).unwrap();
        assert_eq!(
            live_changes(&a.live, &b_live),
            vec![
                "cookies.domain",
                "cors.allowed_origins",
                "jwt.ttl",
                "log_level"
            ]
        );
        assert!(live_changes(&a.live, &a.live).is_empty());
        let c = l
            .load_text(Some(
                "application_url = \"http://127.0.0.1:3000\"\nproject = \"slug\"\n".into(),
            ))
            .unwrap()
            .settings;
        assert_eq!(
            fixed_changes(&a.fixed, &c.fixed),
            vec!["project", "sdk_url"]
        );
    }

    #[test]
    fn pinned_edits_compare_the_files_raw_values() {
        let pinned = vec![("cookies.domain", Origin::Flag("--cookie-domain"))];
        let a = "[cookies]\ndomain = \"a.example\"\n";
        let b = "[cookies]\ndomain = \"b.example\"\n";
        assert_eq!(pinned_edits(a, b, &pinned).len(), 1);
        assert!(pinned_edits(a, a, &pinned).is_empty());
        assert!(pinned_edits(a, "", &pinned).is_empty());
        assert_eq!(pinned_edits("", b, &pinned).len(), 1);
    }

    async fn changed(rx: &mut watch::Receiver<u64>) {
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("no reload within 5 s")
            .unwrap();
    }

    #[tokio::test]
    async fn actor_applies_file_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, BASE).unwrap();
        let l = loader(&path, &[]);
        let s = l.load().unwrap().settings;
        let live = LiveSettings::new(s.live.clone());
        let h = WatcherHandle::spawn(l, s.fixed.clone(), live.clone(), Default::default()).unwrap();
        let mut version = h.version();
        // Baseline first, so that the edit below can only arrive as a filesystem event.
        h.reload_now().await.unwrap();
        std::fs::write(
            &path,
            format!("{BASE}[redirects]\ndefault_redirect_url = \"/next\"\n"),
        )
        .unwrap();
        changed(&mut version).await;
        assert_eq!(live.snapshot().default_redirect_url, "/next");
    }

    /// With `watch = "off"` only explicit reloads run, so each outcome is deterministic.
    #[tokio::test]
    async fn manual_reloads_report_invalid_pinned_restart_and_missing() {
        let base = format!("{BASE}watch = \"off\"\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, &base).unwrap();
        let l = loader(&path, &["--cookie-domain", "pinned.example"]);
        let s = l.load().unwrap().settings;
        let live = LiveSettings::new(s.live.clone());
        let h = WatcherHandle::spawn(l, s.fixed.clone(), live.clone(), Default::default()).unwrap();
        let mut version = h.version();
        // The actor's first read is its baseline; let it happen before the first edit.
        let out = h.reload_now().await.unwrap();
        assert!(matches!(out, ReloadOutcome::Loaded { ref applied, .. } if applied.is_empty()));

        std::fs::write(
            &path,
            format!("{base}[redirects]\ndefault_redirect_url = \"/next\"\n"),
        )
        .unwrap();
        let out = h.reload_now().await.unwrap();
        assert_eq!(
            out,
            ReloadOutcome::Loaded {
                applied: vec!["redirects.default_redirect_url"],
                needs_restart: vec![],
                pinned: vec![],
            }
        );
        assert!(version.has_changed().unwrap());
        version.mark_unchanged();

        // Invalid: reported with file and line, nothing changes.
        std::fs::write(
            &path,
            format!("{base}[redirects]\ndefault_redirect_url = 3\n"),
        )
        .unwrap();
        let out = h.reload_now().await.unwrap();
        assert!(
            matches!(&out, ReloadOutcome::Invalid(e) if e.contains("proxy.toml:5")),
            "{out:?}"
        );
        assert_eq!(live.snapshot().default_redirect_url, "/next");

        // Pinned and restart-only keys: reported, not applied.
        std::fs::write(
            &path,
            format!("{base}dev = true\n[redirects]\ndefault_redirect_url = \"/next\"\n[cookies]\ndomain = \"file.example\"\n"),
        )
        .unwrap();
        let out = h.reload_now().await.unwrap();
        assert_eq!(
            out,
            ReloadOutcome::Loaded {
                applied: vec![],
                needs_restart: vec!["dev"],
                pinned: vec!["cookies.domain"],
            }
        );
        let snap = live.snapshot();
        assert_eq!(snap.cookie_domain.as_deref(), Some("pinned.example"));
        // `dev` must not leak into the live CORS policy through the new fixed settings.
        assert!(!snap.cors.any_origin);
        assert!(!version.has_changed().unwrap());

        std::fs::remove_file(&path).unwrap();
        assert_eq!(h.reload_now().await.unwrap(), ReloadOutcome::Missing);
        assert_eq!(live.snapshot().default_redirect_url, "/next");
    }
}

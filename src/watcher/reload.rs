//! The watcher actor's state machine: one reload per trigger (file event, poll tick, settle
//! timer, `SIGHUP`, [`super::WatcherHandle::reload_now`]). A reload reads the file, skips it if
//! its SHA-256 is unchanged, settles a missing or empty file before believing it, validates it
//! with the start-up [`Loader`], and applies the live keys that changed ([`super::diff`]).

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use toml::Table;

use super::diff;
use super::fs::{sleep_until, tick, FsWatch, Hangup};
use super::messages::{Command, ReloadOutcome, POLL_INTERVAL, SETTLE};
use crate::config::{ConfigError, Fixed, Live, LiveSettings, Loaded, Loader, Tree};
use crate::file_read::{self, FileContent, ReadError};
use crate::metrics::{self, Metrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The first read, right after start: establishes the baseline.
    Start,
    /// A filesystem event.
    FileEvent,
    /// A poll tick (`watch = "poll"`): like an event, but unchanged content is the usual case.
    Poll,
    /// The settle timer after a missing or empty file.
    Settled,
    /// `SIGHUP` or [`super::WatcherHandle::reload_now`]: read and validate even if unchanged.
    Manual,
}

impl Trigger {
    /// A change noticed on its own (an event or a poll), as opposed to a read someone asked
    /// for or the settle timer: an empty or missing file then gets [`SETTLE`] before it counts.
    fn is_automatic(self) -> bool {
        matches!(self, Trigger::FileEvent | Trigger::Poll)
    }
}

pub(super) struct Actor {
    pub(super) loader: Loader,
    pub(super) path: PathBuf,
    pub(super) live: LiveSettings,
    /// The fixed settings the server runs with; a reload never changes them.
    pub(super) running_fixed: Arc<Fixed>,
    /// The config path is a pipe, read once at start: nothing to read again.
    pub(super) one_shot: bool,
    /// The merged tree the server started with: the restart-only values that run.
    pub(super) running: Table,
    /// The merged tree whose live values serve requests now.
    pub(super) serving: Table,
    /// The file layer of the last file that loaded, for telling which pinned keys an edit
    /// touched.
    pub(super) last_file: Option<Table>,
    /// Whether the last file that loaded was empty (then an empty file is no surprise).
    pub(super) last_empty: bool,
    /// Hash of the last text read, valid or not, so a repeated event for the same bad content
    /// does not log the same error again.
    pub(super) last_hash: Option<[u8; 32]>,
    /// The fixed part of the last load, so a pending restart-only change is reported once.
    pub(super) last_fixed: Option<Arc<Fixed>>,
    /// The last read was invalid; the next good one says so.
    pub(super) broken: bool,
    /// A deletion has been reported.
    pub(super) missing: bool,
    /// The read error last reported, if the file is unreadable.
    pub(super) unreadable: Option<String>,
    pub(super) settle_at: Option<Instant>,
    pub(super) version: watch::Sender<u64>,
    pub(super) fs: FsWatch,
    /// Keeps the event channel open when there is no filesystem watch.
    pub(super) _fs_tx: mpsc::Sender<()>,
    pub(super) metrics: Arc<Metrics>,
}

impl Actor {
    pub(super) async fn run(
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
        let read = file_read::read_config_off_runtime(self.path.clone()).await;
        self.load_read(read, trigger)
    }

    /// Loads what a read gave, if it is new.
    pub(super) fn load_read(
        &mut self,
        read: Result<FileContent, ReadError>,
        trigger: Trigger,
    ) -> ReloadOutcome {
        match self.text(read, trigger) {
            Ok(text) => self.load(&text, trigger),
            Err(outcome) => outcome,
        }
    }

    /// The text of a read; `Err` is the outcome when there is nothing (new) to load.
    fn text(
        &mut self,
        read: Result<FileContent, ReadError>,
        trigger: Trigger,
    ) -> Result<String, ReloadOutcome> {
        let path = self.path.display().to_string();
        let text = match read.and_then(file_read::into_text) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(self.missing(trigger)),
            Err(e) => {
                let e = e.to_string();
                // Once per distinct error: polling would repeat it twice a second.
                if self.unreadable.as_deref() != Some(e.as_str()) {
                    log::error!("cannot read {path}: {e}; keeping the running settings");
                    self.count(trigger, metrics::ReloadOutcome::Rejected);
                    self.unreadable = Some(e.clone());
                }
                return Err(ReloadOutcome::Unreadable(e));
            }
        };
        self.unreadable = None;
        let was_missing = std::mem::take(&mut self.missing);
        if text.trim().is_empty() && trigger.is_automatic() && !self.last_empty {
            return Err(self.settle());
        }
        self.settle_at = None;

        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.last_hash == Some(hash) && trigger != Trigger::Manual {
            if was_missing {
                log::info!("{path} is back, unchanged");
            } else if trigger != Trigger::Poll {
                log::debug!("{path}: content unchanged");
            }
            return Err(ReloadOutcome::Unchanged);
        }
        self.last_hash = Some(hash);
        Ok(text)
    }

    /// Validates `text` like start-up and applies what may change without a restart.
    fn load(&mut self, text: &str, trigger: Trigger) -> ReloadOutcome {
        let loaded = match self.loader.load_text(Some(text)) {
            Ok(l) => l,
            Err(e) => return self.invalid(&e, trigger),
        };
        let (next, live) = match self.next_live(&loaded) {
            Ok(v) => v,
            Err(e) => return self.invalid(&e, trigger),
        };
        let needs_restart = self.needs_restart(&loaded, &next);
        let pinned = self.pinned(&loaded);
        self.last_empty = text.trim().is_empty();

        let applied = if *live == *self.live.snapshot() {
            Vec::new()
        } else {
            diff::live_changes(&self.serving, &next)
        };
        if applied.is_empty() {
            self.unchanged(trigger);
        } else {
            self.apply(live, &applied);
            self.serving = next;
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
            pinned,
        }
    }

    /// The new merged tree, and the live settings it gives next to the running restart-only
    /// values.
    fn next_live(&self, loaded: &Loaded) -> Result<(Table, Arc<Live>), ConfigError> {
        let next = loaded.layered.merged.to_table()?;
        if diff::restart_only_changes(&self.running, &next).is_empty() {
            return Ok((next, loaded.settings.live.clone()));
        }
        let tree = Tree::from_table(diff::with_live_keys(&self.running, &next))
            .map_err(|e| ConfigError::Rule(format!("configuration: {e}")))?;
        let mut layered = loaded.layered.clone();
        layered.merged = tree;
        let live = self.loader.validate(layered)?.settings.live;
        Ok((next, live))
    }

    /// Restart-only keys the file changed, warned about once per pending state.
    fn needs_restart(&mut self, loaded: &Loaded, next: &Table) -> Vec<String> {
        let new_fixed = loaded.settings.fixed.clone();
        // A key spelled differently but meaning the same (a URL's trailing slash) is no change.
        let keys = if *new_fixed == *self.running_fixed {
            Vec::new()
        } else {
            diff::restart_only_changes(&self.running, next)
        };
        if !keys.is_empty() && self.last_fixed.as_deref() != Some(&*new_fixed) {
            log::warn!(
                "{}: {} changed but need{} a restart; not applied, the running values stay",
                self.path.display(),
                keys.join(", "),
                if keys.len() == 1 { "s" } else { "" },
            );
        }
        self.last_fixed = Some(new_fixed);
        keys
    }

    /// File edits of keys a flag or env var pins: warned about, ignored.
    fn pinned(&mut self, loaded: &Loaded) -> Vec<String> {
        let Some(file) = &loaded.layered.file else {
            return Vec::new();
        };
        let edits = match &self.last_file {
            // The first read has nothing to compare with: a pinned key in the file at start
            // is not an edit.
            Some(prev) => diff::pinned_edits(prev, &file.table, &loaded.layered.pinned()),
            None => Vec::new(),
        };
        for (key, origin) in &edits {
            log::warn!("{key} is pinned by {origin}; the file's value is ignored");
        }
        self.last_file = Some(file.table.clone());
        edits.into_iter().map(|(k, _)| k).collect()
    }

    fn unchanged(&mut self, trigger: Trigger) {
        let path = self.path.display();
        if std::mem::take(&mut self.broken) {
            log::info!("{path} is valid again; no setting changed");
        } else if trigger == Trigger::Manual {
            log::info!("reloaded {path}: no setting changed");
        } else {
            log::debug!("reloaded {path}: no live setting changed");
        }
    }

    /// Swaps the live settings in one store.
    fn apply(&mut self, live: Arc<Live>, applied: &[String]) {
        self.broken = false;
        let old_level = self.live.snapshot().log_level;
        let new_level = live.log_level;
        live.log_format.set_current();
        self.live.store(live);
        crate::config::apply_log_level(new_level);
        // At the more verbose of the two levels, so the line that announces a quieter level is
        // not itself silenced by it; and only once the new level holds, because whoever reads
        // the log may act on the line at once.
        if old_level.max(new_level) >= log::LevelFilter::Info {
            log::logger().log(
                &log::Record::builder()
                    .level(log::Level::Info)
                    .target(module_path!())
                    .module_path_static(Some(module_path!()))
                    .args(format_args!(
                        "reloaded {}: {}",
                        self.path.display(),
                        applied.join(", ")
                    ))
                    .build(),
            );
        }
        self.version.send_modify(|v| *v += 1);
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

    /// Looks again after [`SETTLE`]; not pushed back by further events: the file gets SETTLE,
    /// not more.
    fn settle(&mut self) -> ReloadOutcome {
        self.settle_at
            .get_or_insert_with(|| Instant::now() + SETTLE);
        ReloadOutcome::Settling
    }

    fn missing(&mut self, trigger: Trigger) -> ReloadOutcome {
        if self.missing {
            return ReloadOutcome::Missing;
        }
        if trigger.is_automatic() {
            return self.settle();
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

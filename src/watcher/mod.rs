//! The config watcher actor: hot reload of `proxy.toml`.
//!
//! It owns the file watch on the config file's *directory*, the hash of the file as last read,
//! and the only right to swap [`LiveSettings`]. Everything reaches it as a message: debounced
//! filesystem events (from notify's own thread), poll ticks (`watch = "poll"`, or when OS
//! notifications are unavailable), `SIGHUP`, and [`WatcherHandle::reload_now`]. A reload:
//! - swaps the live settings in one atomic store when a live key changed, with one info line
//!   naming the changed keys (requests hold one snapshot each, so none sees a mix);
//! - warns about changed keys that need a restart and does not apply them;
//! - warns about file edits of keys pinned by a flag or env var;
//! - on an invalid file logs one error (file, line, key) and keeps the running settings;
//! - on a deleted file warns once and keeps the running settings;
//! - reads regular files only, off the runtime and bounded in size (see
//!   [`crate::file_read`]): a FIFO put at the path is an error, not a hang; a file someone
//!   else could have written (see [`crate::strict_modes`]) is an error and changes nothing. A config given as
//!   a pipe (`-c <(cat proxy.toml)`) was read once at start and is not watched.
//!
//! [`fs`] holds the filesystem mechanics, [`reload`] the state machine, [`diff`] what changed,
//! and [`messages`] the timings and messages they share. [`certs`] is a second actor under the
//! same watch rules: it follows the TLS certificate and key files.

pub mod certs;
mod diff;
pub(crate) mod fs;
mod messages;
mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{LiveSettings, Loader, Settings};
use crate::file_read::{self, Accept};
use crate::metrics::Metrics;
use fs::{start_fs_watch, FsWatch, Hangup};
use messages::Command;
pub use messages::ReloadOutcome;
pub(crate) use messages::POLL_INTERVAL;
use reload::{Actor, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no config file is in use; nothing to watch")]
    NoConfigFile,
    #[error("config path {0} does not name a file")]
    NotAFile(PathBuf),
    #[error("the config watcher has stopped")]
    Stopped,
    #[error("the running configuration cannot be compared: {0}")]
    Tree(String),
}

/// A handle to the watcher actor. The actor stops when the last handle is dropped.
#[derive(Clone)]
pub struct WatcherHandle {
    commands: mpsc::Sender<Command>,
    version: watch::Receiver<u64>,
}

impl WatcherHandle {
    /// Starts the actor on the current tokio runtime. `settings` are those the proxy started
    /// with and `live` its live settings; `loader` must be the one it started with (same
    /// flags, env and bound port), so a reload validates exactly like start-up did.
    pub fn spawn(
        loader: Loader,
        settings: &Settings,
        live: LiveSettings,
        metrics: Arc<Metrics>,
    ) -> Result<WatcherHandle, WatchError> {
        let running = settings
            .tree
            .to_table()
            .map_err(|e| WatchError::Tree(e.to_string()))?;
        let path = loader.path().ok_or(WatchError::NoConfigFile)?.to_path_buf();
        let file_name = path
            .file_name()
            .ok_or_else(|| WatchError::NotAFile(path.clone()))?
            .to_os_string();
        let dir = crate::strict_modes::directory_of(&path).to_path_buf();
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
            start_fs_watch(settings.fixed.watch, &dir, &[file_name], fs_tx.clone())
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (version_tx, version_rx) = watch::channel(0);
        let mut actor = Actor {
            loader,
            path,
            live,
            running_fixed: settings.fixed.clone(),
            one_shot,
            serving: running.clone(),
            running,
            last_file: None,
            last_empty: false,
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
            let read = file_read::read_config(&actor.path, Accept::Regular);
            actor.load_read(read, Trigger::Start);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    const BASE: &str =
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:1\"\n";

    fn loader(path: &Path, args: &[&str]) -> Loader {
        let mut a = vec!["ory-proxy", "-c", path.to_str().unwrap()];
        a.extend_from_slice(args);
        Loader::new(Cli::parse_from(a), Arc::new(|_: &str| None))
    }

    async fn changed(rx: &mut watch::Receiver<u64>) {
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
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
        let h = WatcherHandle::spawn(l, &s, live.clone(), Default::default()).unwrap();
        let mut version = h.version();
        // Baseline first, so that the edit below can only arrive as a filesystem event.
        h.reload_now().await.unwrap();
        std::fs::write(
            &path,
            format!("{BASE}[redirects]\ndefault_redirect_url = \"/next\"\n"),
        )
        .unwrap();
        changed(&mut version).await;
        assert_eq!(live.snapshot().redirects.default_redirect_url, "/next");
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
        let h = WatcherHandle::spawn(l, &s, live.clone(), Default::default()).unwrap();
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
                applied: vec!["redirects.default_redirect_url".into()],
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
        assert_eq!(live.snapshot().redirects.default_redirect_url, "/next");

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
                needs_restart: vec!["dev".into()],
                pinned: vec!["cookies.domain".into()],
            }
        );
        let snap = live.snapshot();
        assert_eq!(snap.cookies.domain.as_deref(), Some("pinned.example"));
        // `dev` must not leak into the live CORS policy through the new fixed settings.
        assert!(!snap.cors.any_origin);
        assert!(!version.has_changed().unwrap());

        std::fs::remove_file(&path).unwrap();
        assert_eq!(h.reload_now().await.unwrap(), ReloadOutcome::Missing);
        assert_eq!(live.snapshot().redirects.default_redirect_url, "/next");
    }

    /// A key set by an `ORY_PROXY_` variable is pinned like one set by a flag, and a live key
    /// edited next to a restart-only one still applies without the restart-only value.
    #[tokio::test]
    async fn env_pins_and_restart_only_values_stay_out_of_the_live_settings() {
        let base = format!("{BASE}watch = \"off\"\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, format!("{base}[cookies]\ndomain = \"a.example\"\n")).unwrap();
        let env = |k: &str| (k == "ORY_PROXY_COOKIES__DOMAIN").then(|| "env.example".to_string());
        let cli = Cli::parse_from(["ory-proxy", "-c", path.to_str().unwrap()]);
        let l = Loader::new(cli, Arc::new(env));
        let s = l.load().unwrap().settings;
        let live = LiveSettings::new(s.live.clone());
        let h = WatcherHandle::spawn(l, &s, live.clone(), Default::default()).unwrap();
        h.reload_now().await.unwrap();

        // A new Ory URL needs a restart; the issuer follows the running one, not the new one.
        std::fs::write(
            &path,
            format!(
                "{}[cookies]\ndomain = \"b.example\"\n[jwt]\nttl = \"2m\"\n",
                base.replace("127.0.0.1:1", "127.0.0.1:2")
            ),
        )
        .unwrap();
        let out = h.reload_now().await.unwrap();
        assert_eq!(
            out,
            ReloadOutcome::Loaded {
                applied: vec!["jwt.ttl".into()],
                needs_restart: vec!["sdk_url".into()],
                pinned: vec!["cookies.domain".into()],
            }
        );
        let snap = live.snapshot();
        assert_eq!(snap.cookies.domain.as_deref(), Some("env.example"));
        assert_eq!(snap.jwt.issuer, "http://127.0.0.1:1");
        assert_eq!(snap.jwt.ttl, std::time::Duration::from_secs(120));
    }
}

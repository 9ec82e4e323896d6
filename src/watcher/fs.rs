//! Filesystem mechanics of the watcher: OS notifications on the config file's directory
//! (debounced), polling where those never arrive, symlink chains (Kubernetes' `..data` swap),
//! and `SIGHUP`. Each reports "read the file again"; what a reload does is in
//! [`super::reload`]. The key actor follows the JWT keys file with the same directory watch.
//!
//! Why the directory and not the file: editors and Kubernetes replace the file (rename over
//! it, swap a `..data` symlink), and a watch on the old inode goes quiet after the first save.
//! Why the access-event filter: the reload's own read of the file is an event too, and would
//! otherwise schedule the next reload, forever.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::messages::{DEBOUNCE, POLL_INTERVAL};
use crate::config::WatchMode;

/// How edits are noticed; dropping it stops notify's thread.
pub(crate) enum FsWatch {
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

/// Watches `dir` for changes of what `file_names` (names in `dir`) read.
pub(crate) fn start_fs_watch(
    mode: WatchMode,
    dir: &Path,
    file_names: &[OsString],
    tx: mpsc::Sender<()>,
) -> FsWatch {
    match mode {
        WatchMode::Off => return FsWatch::None,
        WatchMode::Poll => return FsWatch::Poll,
        WatchMode::Auto => {}
    }
    let f = EventFilter {
        dir: dir.to_path_buf(),
        file_names: file_names.to_vec(),
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

/// Decides, on notify's thread, whether an event may have changed what a watched path reads.
#[derive(Clone)]
pub(super) struct EventFilter {
    pub(super) dir: PathBuf,
    pub(super) file_names: Vec<OsString>,
}

impl EventFilter {
    pub(super) fn wants(&self, kind: &EventKind, paths: &[PathBuf]) -> bool {
        if !is_change(kind) {
            return false;
        }
        let names: Vec<OsString> = self
            .file_names
            .iter()
            .flat_map(|n| watched_names(&self.dir, n))
            .collect();
        let hit = paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|w| w == n)));
        if hit {
            log::debug!("file watch: {kind:?} {paths:?}");
        }
        hit
    }
}

/// Whether an event kind can mean new content. Opening, reading and closing after a read are
/// not changes, and the reload's own read produces exactly those.
pub(super) fn is_change(kind: &EventKind) -> bool {
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
pub(super) fn watched_names(dir: &Path, file_name: &OsStr) -> Vec<OsString> {
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

pub(super) async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `SIGHUP`, where there is such a thing.
pub(super) struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    pub(super) fn new() -> Self {
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

    pub(super) async fn recv(&mut self) {
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
#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};

    const BASE: &str =
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:1\"\n";

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
            file_names: vec!["proxy.toml".into()],
        };
        let create = EventKind::Create(CreateKind::Any);
        assert!(f.wants(&create, &[d.join("..data_tmp"), d.join("..data")]));
        assert!(f.wants(&create, &[d.join("proxy.toml")]));
        assert!(!f.wants(&create, &[d.join("other.toml")]));
        assert!(!f.wants(&create, &[d.join("..data_tmp")]));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!f.wants(&open, &[d.join("proxy.toml")]));
    }
}

//! The certificate watcher actor: follows the listener's TLS certificate and key files and
//! swaps the pair that new handshakes get ([`LiveCertificate`]), the only writer of it.
//!
//! It watches the files' directories under the rules of the config watch ([`super::fs`]):
//! Kubernetes' `..data` symlink swaps (cert-manager), certbot's renewals (new files in
//! `archive/`, its `live/` links re-pointed one by one), editors' renames; polling with
//! `watch = "poll"`; only `SIGHUP` with `watch = "off"`. A change is noticed by the files'
//! identity (device, inode, size, modification and change times, through the links), so a poll
//! costs two `stat`s, and an event that changed nothing reads nothing.
//!
//! A pair that loads and differs from the one served replaces it (one info line with its
//! fingerprint); open connections keep the keys they agreed on. A pair that does not load or
//! does not match (a key of another certificate) keeps the running one and logs one error —
//! once per distinct error, not once per event or poll. Because certbot re-points its links one
//! at a time, a broken pair noticed on its own is looked at again after [`SETTLE`] before it
//! counts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::fs::{sleep_until, start_fs_watch, tick, FsWatch, Hangup};
use super::messages::{POLL_INTERVAL, SETTLE};
use crate::config::settings::TlsFiles;
use crate::config::WatchMode;
use crate::file_read;
use crate::tls::{pair, LiveCertificate};

/// What one look at the files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertOutcome {
    /// The files are as last looked at, or hold the pair already served.
    Unchanged,
    /// A new pair serves new handshakes; its certificate's SHA-256 fingerprint.
    Renewed(String),
    /// The files do not give a usable pair: the running one stays. The error.
    Kept(String),
    /// A broken pair noticed on its own: looked at again after [`SETTLE`].
    Settling,
}

/// A handle to the actor; it stops when the last handle is dropped.
#[derive(Clone)]
pub struct CertWatcher {
    commands: mpsc::Sender<oneshot::Sender<CertOutcome>>,
}

impl CertWatcher {
    /// Starts the actor on the current tokio runtime. `live` holds the pair loaded at start
    /// from `files`.
    pub fn spawn(files: TlsFiles, mode: WatchMode, live: LiveCertificate) -> CertWatcher {
        // Capacity 1: a queued event already means "look again".
        let (fs_tx, fs_rx) = mpsc::channel(1);
        let watches = directories(&files)
            .into_iter()
            .map(|(dir, names)| start_fs_watch(mode, &dir, &names, fs_tx.clone()))
            .collect::<Vec<_>>();
        let poll =
            matches!(mode, WatchMode::Poll) || watches.iter().any(|w| matches!(w, FsWatch::Poll));
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let actor = Actor {
            files,
            live,
            last_seen: None,
            error: None,
            settle_at: None,
            _watches: watches,
            _fs_tx: fs_tx,
        };
        // Installed before returning: until then SIGHUP would end the process.
        let hangup = Hangup::new();
        tokio::spawn(actor.run(cmd_rx, fs_rx, hangup, poll));
        CertWatcher { commands: cmd_tx }
    }

    /// Reads the files now (like `SIGHUP`); `None` once the actor has stopped.
    pub async fn reload_now(&self) -> Option<CertOutcome> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// The directories to watch, each with the names in it that lead to one of the files.
fn directories(files: &TlsFiles) -> Vec<(PathBuf, Vec<OsString>)> {
    let mut dirs: Vec<(PathBuf, Vec<OsString>)> = Vec::new();
    for path in [&files.cert, &files.key] {
        let dir = crate::strict_modes::directory_of(path).to_path_buf();
        let Some(name) = path.file_name().map(OsString::from) else {
            continue;
        };
        match dirs.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, names)) if names.contains(&name) => {}
            Some((_, names)) => names.push(name),
            None => dirs.push((dir, vec![name])),
        }
    }
    dirs
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Right after start: a renewal between start-up's read and the watch is caught here.
    Start,
    Event,
    Poll,
    Settled,
    /// `SIGHUP` or [`CertWatcher::reload_now`]: read even if the files look the same.
    Manual,
}

/// A file's identity as `stat` sees it through its links; `None` when it cannot be seen.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Some((
            m.dev(),
            m.ino(),
            m.len(),
            ns(m.mtime(), m.mtime_nsec()),
            ns(m.ctime(), m.ctime_nsec()),
        ))
    }
    #[cfg(not(unix))]
    {
        let modified = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some((0, 0, m.len(), modified.as_nanos() as i64, 0))
    }
}

struct Actor {
    files: TlsFiles,
    live: LiveCertificate,
    /// The files' identities at the last look that counted (a load or a reported error).
    last_seen: Option<(Stamp, Stamp)>,
    /// The error last reported, so the same one is not logged again.
    error: Option<String>,
    settle_at: Option<Instant>,
    _watches: Vec<FsWatch>,
    /// Keeps the event channel open when nothing watches.
    _fs_tx: mpsc::Sender<()>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<oneshot::Sender<CertOutcome>>,
        mut fs_events: mpsc::Receiver<()>,
        mut hangup: Hangup,
        poll: bool,
    ) {
        let mut poll = poll.then(|| {
            let mut i = tokio::time::interval(POLL_INTERVAL);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        self.look(Why::Start).await;
        loop {
            let settle_at = self.settle_at;
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(reply) => {
                        let outcome = self.look(Why::Manual).await;
                        let _ = reply.send(outcome);
                    }
                    None => break,
                },
                Some(()) = fs_events.recv() => {
                    self.look(Why::Event).await;
                }
                () = hangup.recv() => {
                    log::info!("SIGHUP: reading the TLS certificate and key again");
                    self.look(Why::Manual).await;
                }
                () = sleep_until(settle_at) => {
                    self.look(Why::Settled).await;
                }
                () = tick(&mut poll) => {
                    self.look(Why::Poll).await;
                }
            }
        }
    }

    /// Reads the pair if the files changed (or when asked to), and serves it if it is new.
    async fn look(&mut self, why: Why) -> CertOutcome {
        // Off the runtime as the read is: `stat` through a hung network mount blocks too.
        let files = self.files.clone();
        let Ok(seen) =
            file_read::off_runtime(move || (stamp(&files.cert), stamp(&files.key))).await
        else {
            // No thread to look with: the next event or poll looks again.
            return CertOutcome::Unchanged;
        };
        let automatic = matches!(why, Why::Event | Why::Poll);
        if automatic && self.last_seen == Some(seen) {
            return CertOutcome::Unchanged;
        }
        let files = self.files.clone();
        // Off the runtime: a hung network mount stalls this read, never signals or requests.
        let loaded = file_read::off_runtime(move || pair::load(&files)).await;
        let result = match loaded {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read the TLS files: {e}")),
        };
        match result {
            Ok(p) => {
                self.last_seen = Some(seen);
                self.settle_at = None;
                self.serve(p)
            }
            // Possibly half-way through a renewal: look again before believing it.
            Err(_) if automatic => {
                self.settle_at
                    .get_or_insert_with(|| Instant::now() + SETTLE);
                CertOutcome::Settling
            }
            Err(e) => {
                self.last_seen = Some(seen);
                self.settle_at = None;
                self.refuse(e, why)
            }
        }
    }

    fn serve(&mut self, p: pair::Pair) -> CertOutcome {
        let was_broken = self.error.take().is_some();
        if pair::chain_id(&p.certified) == pair::chain_id(&self.live.current()) {
            if was_broken {
                log::info!(
                    "the TLS certificate and key files are usable again; the certificate served is unchanged"
                );
            }
            return CertOutcome::Unchanged;
        }
        if p.key_readable_by_others {
            pair::warn_world_readable(&self.files.key);
        }
        self.live.store(p.certified);
        log::info!(
            "TLS: serving the renewed certificate from {} (SHA-256 {}) to new connections; open ones keep theirs",
            self.files.cert.display(),
            p.fingerprint
        );
        CertOutcome::Renewed(p.fingerprint)
    }

    fn refuse(&mut self, e: String, why: Why) -> CertOutcome {
        if self.error.as_deref() != Some(e.as_str()) || why == Why::Manual {
            log::error!("{e}; new connections keep getting the running certificate");
        }
        self.error = Some(e.clone());
        CertOutcome::Kept(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_one_directory_share_one_watch() {
        let files = |c: &str, k: &str| TlsFiles {
            cert: c.into(),
            key: k.into(),
        };
        let names = |n: &[&str]| n.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            directories(&files("/etc/tls/tls.crt", "/etc/tls/tls.key")),
            [(PathBuf::from("/etc/tls"), names(&["tls.crt", "tls.key"]))]
        );
        assert_eq!(
            directories(&files("both.pem", "both.pem")),
            [(PathBuf::from("."), names(&["both.pem"]))]
        );
        assert_eq!(
            directories(&files("live/cert.pem", "/keys/key.pem")),
            [
                (PathBuf::from("live"), names(&["cert.pem"])),
                (PathBuf::from("/keys"), names(&["key.pem"]))
            ]
        );
    }
}

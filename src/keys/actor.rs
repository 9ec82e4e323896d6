//! The key actor's task: holds the key set (as the keys file lists it, with each key's
//! schedule), publishes the [`KeyRing`] the schedule gives at each moment, follows the keys
//! file, and rotates on command or `SIGUSR1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::error::KeyError;
use super::file::{read_keys_file, stamp, write_keys_file, Stamp};
use super::jwk::EcKey;
use super::ring::{build_ring, signal_publish_ahead, KeyRing, KeysFile};
use super::schedule::{self, Plan, Scheduled};
use crate::file_read;

/// How often the keys file is checked for a new version, besides OS notifications: well
/// below the shortest publish-ahead of a rotation that matters (`ttl/2` for a 1 min ttl).
pub(super) const KEYS_FILE_POLL: Duration = Duration::from_secs(2);

pub(super) enum Cmd {
    Rotate {
        publish_ahead: Duration,
        done: oneshot::Sender<Result<String, KeyError>>,
    },
}

/// The keys file being followed.
pub(super) struct Followed {
    pub file: KeysFile,
    /// Identity of the file as last read or written.
    pub stamp: Option<Stamp>,
    /// "Look again" from the directory watch; `None` without OS notifications.
    pub changed: Option<mpsc::Receiver<()>>,
    /// How often to look without a notification.
    pub poll: Duration,
    /// Keeps the directory watch alive.
    pub _watch: crate::watcher::fs::FsWatch,
}

pub(super) struct KeyActor {
    pub followed: Option<Followed>,
    pub keys: Vec<Scheduled>,
    /// When this instance first published each key of `keys`.
    pub first_seen: HashMap<String, SystemTime>,
    /// Keys this instance published that the file no longer lists, and until when they stay
    /// (their tokens may still be in use).
    pub orphans: Vec<(EcKey, SystemTime)>,
    pub ring: Arc<ArcSwap<KeyRing>>,
    /// The live token lifetime.
    pub token_lifetime: Box<dyn Fn() -> Duration + Send>,
    /// Added to the token lifetime for how long a key stays after its last signature (clock
    /// differences between instances).
    pub margin: Duration,
    /// Registered in [`super::KeyHandle::start`], before the banner: a SIGUSR1 that arrived
    /// before the actor first ran would otherwise meet the default action and kill the process.
    #[cfg(unix)]
    pub usr1: Option<tokio::signal::unix::Signal>,
}

/// The plan for `keys` at `now`, for an instance that first saw them as `first_seen` says
/// (keys it has not seen yet: now).
pub(super) fn plan_for(
    keys: &[Scheduled],
    first_seen: &HashMap<String, SystemTime>,
    now: SystemTime,
    keep: Duration,
) -> Option<Plan> {
    let seen = |k: &EcKey| first_seen.get(&k.kid).copied().unwrap_or(now);
    schedule::plan(keys, now, keep, &seen)
}

/// Why a key set cannot be used.
pub(super) const NO_SIGNER: &str =
    "no key in it can sign now (each has a retire_at, or a sign_from still to come)";

impl KeyActor {
    fn keep(&self) -> Duration {
        (self.token_lifetime)() + self.margin
    }

    fn path(&self) -> Option<PathBuf> {
        self.followed.as_ref().map(|f| f.file.path.clone())
    }

    /// Publishes what the schedule says now; returns when it changes next.
    pub fn refresh(&mut self) -> Option<SystemTime> {
        let now = SystemTime::now();
        self.orphans.retain(|(_, until)| *until > now);
        let plan = plan_for(&self.keys, &self.first_seen, now, self.keep())?;
        let signer = &self.keys[plan.signer].key;
        let mut extra: Vec<&EcKey> = plan.published[1..]
            .iter()
            .map(|&i| &self.keys[i].key)
            .collect();
        for (k, _) in &self.orphans {
            if !self.keys.iter().any(|s| s.key.kid == k.kid) {
                extra.push(k);
            }
        }
        let current = self.ring.load();
        let same = current.kids.len() == extra.len() + 1
            && current.kids[0] == signer.kid
            && extra
                .iter()
                .zip(&current.kids[1..])
                .all(|(k, c)| k.kid == *c);
        if !same {
            match build_ring(signer, &extra) {
                Ok(ring) => {
                    if current.signing.kid != signer.kid {
                        log::info!("rotated the JWT signing key: new key id {}", signer.kid);
                    }
                    self.ring.store(Arc::new(ring));
                }
                Err(e) => log::error!("{e}"),
            }
        }
        let orphans_leave = self.orphans.iter().map(|(_, t)| *t).min();
        [plan.next_change, orphans_leave]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes `keys` as the key set (a new version of the file, or a rotation). Keys this
    /// instance published that `keys` lacks stay published for their tokens' lifetime.
    fn adopt(&mut self, keys: Vec<Scheduled>, reread: bool) -> Result<(), String> {
        let now = SystemTime::now();
        let keep = self.keep();
        let plan = plan_for(&keys, &self.first_seen, now, keep).ok_or(NO_SIGNER)?;
        let signer = &keys[plan.signer].key;
        if reread && !self.first_seen.contains_key(&signer.kid) {
            log::warn!(
                "JWT key {} from {} signs at once: it was not published here ahead of signing, so verifiers and instances that have not read the file yet may not know it (`ory-proxy keys rotate` publishes a new key ahead)",
                signer.kid,
                self.path().unwrap_or_default().display()
            );
        }
        let leaving = now.checked_add(keep).unwrap_or(now);
        for kid in &self.ring.load().kids {
            if keys.iter().any(|k| k.key.kid == *kid) {
                continue;
            }
            let known = self.keys.iter().map(|s| &s.key);
            if let Some(k) = known.into_iter().find(|k| k.kid == *kid) {
                self.orphans.push((k.clone(), leaving));
            }
        }
        self.first_seen
            .retain(|kid, _| keys.iter().any(|k| k.key.kid == *kid));
        for k in &keys {
            self.first_seen.entry(k.key.kid.clone()).or_insert(now);
        }
        self.orphans
            .retain(|(o, _)| !keys.iter().any(|k| k.key.kid == o.kid));
        self.keys = keys;
        Ok(())
    }

    /// Reads the keys file again if it changed (another instance's rotation, an operator's,
    /// a Secret updated by the kubelet) and adopts it. A file that cannot be used leaves the
    /// keys in use, with one error per version of the file.
    pub async fn sync_from_file(&mut self) {
        let Some(f) = self.followed.as_ref() else {
            return;
        };
        let path = f.file.path.clone();
        let last = f.stamp;
        // Off the runtime: this task shares its thread with signals and reloads, and a file
        // system call can hang (a network mount).
        let polled = file_read::off_runtime(move || {
            let now = stamp(&path);
            if now.is_none() || now == last {
                return (now, None);
            }
            (now, Some(read_keys_file(&path)))
        })
        .await;
        let (now_stamp, read) = match polled {
            Ok((now, Some(read))) => (now, read),
            Ok((_, None)) => return,
            Err(e) => {
                log::error!("cannot read the JWT keys file: {e}; keeping the keys in use");
                return;
            }
        };
        if let Some(f) = self.followed.as_mut() {
            f.stamp = now_stamp;
        }
        let adopted = match read {
            Ok(Some(keys)) => self.adopt(keys, true).map_err(|why| {
                format!(
                    "JWT keys file {}: {why}",
                    self.path().unwrap_or_default().display()
                )
            }),
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = adopted {
            log::error!("{e}; keeping the keys in use");
        }
    }

    /// A rotation: a new key, published now and signing after `publish_ahead`, written to the
    /// keys file first so that every instance following it publishes it too. Returns its kid.
    async fn rotate(&mut self, publish_ahead: Duration) -> Result<String, KeyError> {
        if let Some(f) = self.followed.as_ref().filter(|f| f.file.read_only) {
            return Err(KeyError::ReadOnly(f.file.path.clone()));
        }
        // Start from the shared file's latest state, or this write would undo another
        // instance's rotation.
        self.sync_from_file().await;
        let now = SystemTime::now();
        let keep = self.keep();
        let seen = |k: &EcKey| self.first_seen.get(&k.kid).copied().unwrap_or(now);
        let keys = schedule::rotated(self.keys.clone(), now, publish_ahead, keep, &seen);
        let (kid, sign_from) = (keys[0].key.kid.clone(), keys[0].sign_from);
        if let Some(f) = self.followed.as_mut() {
            write_keys_file(&f.file.path, &keys, false)?;
            f.stamp = stamp(&f.file.path);
        }
        self.adopt(keys, false).map_err(|message| KeyError::File {
            path: self.path().unwrap_or_default(),
            message,
        })?;
        // Published before the caller hears of it.
        self.refresh();
        let ahead = sign_from
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or_default();
        log::info!(
            "JWT key rotation: new key id {kid} published, signing with it in {}",
            humantime::format_duration(Duration::from_secs(ahead.as_secs()))
        );
        Ok(kid)
    }

    async fn on_usr1(&mut self) {
        if let Some(f) = self.followed.as_ref().filter(|f| f.file.read_only) {
            log::warn!(
                "SIGUSR1: the JWT keys file {} is read-only here (keys_file_read_only): rotate it where it is kept, with `ory-proxy keys rotate`, and every instance follows",
                f.file.path.display()
            );
            return;
        }
        let ahead = signal_publish_ahead((self.token_lifetime)());
        if let Err(e) = self.rotate(ahead).await {
            log::error!("key rotation failed: {e}");
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        #[cfg(unix)]
        let mut usr1 = self.usr1.take();
        let mut changed = self.followed.as_mut().and_then(|f| f.changed.take());
        loop {
            let next = self.refresh();
            let mut wait = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(3600));
            if let Some(f) = &self.followed {
                wait = wait.min(f.poll);
            }
            #[cfg(unix)]
            let usr1_recv = async {
                match usr1.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let usr1_recv = std::future::pending::<Option<()>>();
            let file_changed = async {
                match changed.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Rotate { publish_ahead, done }) => {
                        let r = self.rotate(publish_ahead).await;
                        let _ = done.send(r);
                    }
                    None => return,
                },
                Some(()) = usr1_recv => self.on_usr1().await,
                Some(()) = file_changed => self.sync_from_file().await,
                // The poll, and the moments the schedule changes.
                _ = tokio::time::sleep(wait) => self.sync_from_file().await,
            }
        }
    }
}

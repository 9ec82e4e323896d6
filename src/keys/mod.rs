//! The key actor: owns the ES256 signing keys, publishes the JWKS, rotates.
//!
//! The actor task ([`actor`]) is the only writer. Readers (the JWT minting on the request
//! path, the JWKS route) take an `Arc<KeyRing>` snapshot from an `ArcSwap`: no lock, no
//! mailbox hop. Which key signs and which are published at each moment follows one schedule
//! ([`schedule`]) that every instance sharing a keys file applies alike: a rotation publishes
//! the new public key first, signs with it from its `sign_from` on, and keeps the old public key
//! until every token it signed has expired. `SIGUSR1` asks for a rotation; with
//! `keys_file_read_only` the file is only followed, and rotated offline ([`command`]:
//! `ory-proxy keys rotate`).

mod actor;
pub mod command;
mod error;
mod file;
pub mod jwk;
mod ring;
mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use actor::{plan_for, Cmd, Followed, KeyActor, KEYS_FILE_POLL, NO_SIGNER};
pub use error::KeyError;
use file::{load, stamp};
use jwk::EcKey;
use ring::build_ring;
pub use ring::{signal_publish_ahead, KeyRing, KeysFile, SigningKey};
use schedule::Scheduled;

/// Cloneable handle to the key actor.
#[derive(Clone)]
pub struct KeyHandle {
    ring: Arc<ArcSwap<KeyRing>>,
    tx: mpsc::Sender<Cmd>,
}

/// How long a key stays published after its last signature, beyond the token lifetime: room
/// for the clocks of instances that share a keys file to differ.
pub const RETIRE_MARGIN: Duration = Duration::from_secs(5);

/// The ring the schedule gives for `keys` right now.
fn first_ring(keys: &[Scheduled], keep: Duration) -> Result<KeyRing, String> {
    let plan = plan_for(keys, &HashMap::new(), SystemTime::now(), keep).ok_or(NO_SIGNER)?;
    let extra: Vec<&EcKey> = plan.published[1..].iter().map(|&i| &keys[i].key).collect();
    build_ring(&keys[plan.signer].key, &extra).map_err(|e| e.to_string())
}

impl KeyHandle {
    /// Loads the keys file (creating it unless read-only) or makes a fresh key, publishes the
    /// JWKS and spawns the actor on the current runtime. `token_lifetime` reports the live JWT
    /// ttl (a key stays published that long, and [`RETIRE_MARGIN`], after its last signature).
    pub fn start(
        keys_file: Option<KeysFile>,
        token_lifetime: impl Fn() -> Duration + Send + 'static,
    ) -> Result<KeyHandle, KeyError> {
        KeyHandle::spawn(keys_file, token_lifetime, RETIRE_MARGIN)
    }

    fn spawn(
        keys_file: Option<KeysFile>,
        token_lifetime: impl Fn() -> Duration + Send + 'static,
        margin: Duration,
    ) -> Result<KeyHandle, KeyError> {
        let keys = match &keys_file {
            Some(f) => load(&f.path, !f.read_only)?,
            None => vec![Scheduled {
                key: EcKey::generate(),
                sign_from: None,
                retire_at: None,
            }],
        };
        let keep = token_lifetime() + margin;
        let ring = first_ring(&keys, keep).map_err(|message| KeyError::File {
            path: keys_file
                .as_ref()
                .map(|f| f.path.clone())
                .unwrap_or_default(),
            message,
        })?;
        let ring = Arc::new(ArcSwap::from_pointee(ring));
        let now = SystemTime::now();
        let (tx, rx) = mpsc::channel(8);
        let actor = KeyActor {
            followed: keys_file.map(follow),
            first_seen: keys.iter().map(|k| (k.key.kid.clone(), now)).collect(),
            keys,
            orphans: Vec::new(),
            ring: ring.clone(),
            token_lifetime: Box::new(token_lifetime),
            margin,
            #[cfg(unix)]
            usr1: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .ok(),
        };
        tokio::spawn(actor.run(rx));
        Ok(KeyHandle { ring, tx })
    }

    /// The current keys; cheap, lock-free.
    pub fn ring(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// Rotates: a new key, published now (and written to the keys file, so that every
    /// instance sharing it publishes it too), signing after `publish_ahead`; the old key stays
    /// published until its tokens have expired. Returns the new kid. An error with a read-only
    /// keys file.
    pub async fn rotate(&self, publish_ahead: Duration) -> Result<String, KeyError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Rotate {
                publish_ahead,
                done,
            })
            .await
            .map_err(|_| KeyError::Stopped)?;
        rx.await.map_err(|_| KeyError::Stopped)?
    }
}

/// Follows `file`: its stamp now, and a watch on its directory when asked for (a Kubernetes
/// `..data` swap is noticed like an edit of `proxy.toml`).
fn follow(file: KeysFile) -> Followed {
    use crate::config::WatchMode;
    use crate::watcher::fs::{start_fs_watch, FsWatch};
    let dir = crate::strict_modes::directory_of(&file.path).to_path_buf();
    let name = file
        .path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel(1);
    let mode = if file.notify {
        WatchMode::Auto
    } else {
        WatchMode::Off
    };
    let watch = start_fs_watch(mode, &dir, std::slice::from_ref(&name), tx);
    let (changed, poll) = match watch {
        FsWatch::Notify { .. } => (Some(rx), KEYS_FILE_POLL),
        // The watch failed (and said it polls every POLL_INTERVAL instead).
        FsWatch::Poll => (None, crate::watcher::POLL_INTERVAL),
        FsWatch::None => (None, KEYS_FILE_POLL),
    };
    Followed {
        stamp: stamp(&file.path),
        file,
        changed,
        poll,
        _watch: watch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;

    fn kids_in(ring: &KeyRing) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&ring.jwks).unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    fn shared(path: &Path) -> Option<KeysFile> {
        Some(KeysFile {
            path: path.to_path_buf(),
            read_only: false,
            notify: false,
        })
    }

    async fn until(what: &str, deadline: Instant, mut done: impl FnMut() -> bool) {
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn jwks_has_only_public_parts() {
        let h = KeyHandle::start(None, || Duration::from_secs(60)).unwrap();
        let ring = h.ring();
        let text = std::str::from_utf8(&ring.jwks).unwrap();
        assert!(!text.contains("\"d\""), "{text}");
        assert_eq!(kids_in(&ring), std::slice::from_ref(&ring.signing.kid));
    }

    #[tokio::test]
    async fn rotation_publishes_new_then_signs_with_it_then_retires_old() {
        // Keys stay 300 ms after their last signature.
        let h = KeyHandle::spawn(None, || Duration::from_millis(300), Duration::ZERO).unwrap();
        let old = h.ring().signing.kid.clone();
        let new = h.rotate(Duration::from_millis(500)).await.unwrap();
        assert_ne!(old, new);
        // Published at once, signing only from the next whole second after 500 ms.
        assert_eq!(h.ring().signing.kid, old);
        assert_eq!(kids_in(&h.ring()), [old.clone(), new.clone()]);
        let deadline = Instant::now() + Duration::from_secs(5);
        until("never signed with the new key", deadline, || {
            h.ring().signing.kid == new
        })
        .await;
        assert_eq!(kids_in(&h.ring()), [new.clone(), old.clone()]);
        until("old key never retired", deadline, || {
            kids_in(&h.ring()).len() == 1
        })
        .await;
        assert_eq!(kids_in(&h.ring()), [new]);
    }

    #[tokio::test]
    async fn keys_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let a = KeyHandle::start(shared(&path), || Duration::from_secs(60)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let b = KeyHandle::start(shared(&path), || Duration::from_secs(60)).unwrap();
        assert_eq!(a.ring().signing.kid, b.ring().signing.kid);
    }

    #[test]
    fn instances_creating_the_file_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let kids: Vec<String> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load(&p, true).unwrap()[0].key.kid.clone())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
    }

    #[tokio::test]
    async fn a_rotation_reaches_the_other_instances_sharing_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let a = KeyHandle::start(shared(&path), || Duration::from_secs(60)).unwrap();
        let b = KeyHandle::start(shared(&path), || Duration::from_secs(60)).unwrap();
        let old = b.ring().signing.kid.clone();
        let new = a.rotate(Duration::from_secs(4)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // B publishes the new key while A (and B) still sign with the old one.
        until("B never published A's next key", deadline, || {
            kids_in(&b.ring()).len() == 2
        })
        .await;
        assert_eq!(a.ring().signing.kid, old, "A signed before B published");
        until("A never switched", deadline, || a.ring().signing.kid == new).await;
        until("B never switched", deadline, || b.ring().signing.kid == new).await;
        // B keeps verifying the tokens it signed before, and lists each key once.
        assert_eq!(kids_in(&b.ring()), [new, old]);
    }

    #[tokio::test]
    async fn a_read_only_keys_file_is_followed_never_created_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let ro = KeysFile {
            path: path.clone(),
            read_only: true,
            notify: true,
        };
        let err = KeyHandle::start(Some(ro.clone()), || Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(err.to_string().contains("keys generate"), "{err}");
        assert!(!path.exists(), "a read-only keys file is never created");

        command::generate(&path).unwrap();
        let h = KeyHandle::start(Some(ro), || Duration::from_secs(60)).unwrap();
        let old = h.ring().signing.kid.clone();
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            h.rotate(Duration::ZERO).await,
            Err(KeyError::ReadOnly(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before, "never written");
        // An offline rotation is followed: published at once, signing from its time.
        let new =
            command::rotate(&path, Duration::from_secs(2), Duration::from_secs(3600)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        until("the rotated file was never read", deadline, || {
            kids_in(&h.ring()).contains(&new)
        })
        .await;
        assert_eq!(h.ring().signing.kid, old, "signing before its sign_from");
        until("never switched", deadline, || h.ring().signing.kid == new).await;
    }

    #[tokio::test]
    async fn malformed_keys_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, b"{\"keys\": [{\"kty\": \"RSA\"}]}").unwrap();
        let err = KeyHandle::start(shared(&path), || Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(err.to_string().contains("jwks.json"), "{err}");
        std::fs::write(&path, b"not json").unwrap();
        assert!(KeyHandle::start(shared(&path), || Duration::from_secs(60)).is_err());
        std::fs::write(&path, b"{\"keys\": []}").unwrap();
        assert!(KeyHandle::start(shared(&path), || Duration::from_secs(60)).is_err());
    }
}

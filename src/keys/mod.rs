//! The key actor: owns the ES256 signing keys, publishes the JWKS, rotates.
//!
//! The actor task is the only writer. Readers (the JWT minting on the request path, the JWKS
//! route) take an `Arc<KeyRing>` snapshot from an `ArcSwap`: no lock, no mailbox hop.
//! Rotation publishes the new public key first, switches signing to it after, and keeps the
//! old public key until every token it signed has expired. `SIGUSR1` asks for a rotation.

mod error;
mod file;
pub mod jwk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::{mpsc, oneshot};

use crate::file_read;
pub use error::KeyError;
use file::{load_or_create, read_keys_file, stamp, write_keys_file, Retired};
use jwk::{EcKey, JwksJson};

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub header: Header,
    pub key: EncodingKey,
}

/// What readers see: the signing key and the public JWKS, pre-serialised.
pub struct KeyRing {
    pub signing: Arc<SigningKey>,
    pub jwks: Bytes,
    /// Every kid in the JWKS, signing key first.
    pub kids: Vec<String>,
}

enum Cmd {
    Rotate {
        publish_ahead: Duration,
        keep_old_for: Duration,
        done: oneshot::Sender<Result<String, KeyError>>,
    },
}

/// Cloneable handle to the key actor.
#[derive(Clone)]
pub struct KeyHandle {
    ring: Arc<ArcSwap<KeyRing>>,
    tx: mpsc::Sender<Cmd>,
}

/// How often the keys file is checked for another instance's rotation. Well below the
/// shortest publish-ahead of a rotation that matters (`ttl/2` for a 1 min ttl), so that every
/// instance publishes a new key before its first token arrives anywhere.
const KEYS_FILE_POLL: Duration = Duration::from_secs(2);

struct KeyActor {
    file: Option<PathBuf>,
    /// mtime and length of the keys file as last read or written.
    file_stamp: Option<file::Stamp>,
    signing: EcKey,
    retired: Vec<Retired>,
    ring: Arc<ArcSwap<KeyRing>>,
    /// Lifetime of the tokens the proxy mints, for how long a retired key must stay.
    token_lifetime: Box<dyn Fn() -> Duration + Send>,
    /// Registered in [`KeyHandle::start`], before the banner: a SIGUSR1 that arrived before the
    /// actor first ran would otherwise meet the default action and kill the process.
    #[cfg(unix)]
    usr1: Option<tokio::signal::unix::Signal>,
}

/// How long a SIGUSR1 rotation publishes the new key before signing with it: half the token
/// lifetime, at most 30 s (the JWKS' `Cache-Control: max-age`), so verifiers that cached the
/// JWKS just before the rotation have refetched it when the first new token arrives.
pub fn signal_publish_ahead(token_lifetime: Duration) -> Duration {
    (token_lifetime / 2).min(Duration::from_secs(30))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn build_ring(signing: &EcKey, extra_public: &[&EcKey]) -> Result<KeyRing, KeyError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(signing.kid.clone());
    header.typ = Some("JWT".into());
    let mut keys = vec![signing.public_jwk()];
    keys.extend(extra_public.iter().map(|k| k.public_jwk()));
    let kids = keys.iter().map(|k| k.kid.clone()).collect();
    let jwks = serde_json::to_vec(&JwksJson { keys })?;
    Ok(KeyRing {
        signing: Arc::new(SigningKey {
            kid: signing.kid.clone(),
            header,
            key: signing.encoding_key()?,
        }),
        jwks: Bytes::from(jwks),
        kids,
    })
}

impl KeyActor {
    fn publish(&self, next: Option<&EcKey>) -> Result<(), KeyError> {
        let mut extra: Vec<&EcKey> = next.into_iter().collect();
        extra.extend(self.retired.iter().map(|r| &r.key));
        self.ring
            .store(Arc::new(build_ring(&self.signing, &extra)?));
        Ok(())
    }

    /// Writes the keys file: the signing key first, then `pending` (a key published ahead of
    /// signing, so that other instances publish it too) and the retired keys, verify-only.
    fn persist(&mut self, pending: Option<(&EcKey, SystemTime)>) -> Result<(), KeyError> {
        let Some(path) = self.file.clone() else {
            return Ok(());
        };
        let mut keys = vec![self.signing.private_jwk()];
        let verify_only = pending
            .into_iter()
            .chain(self.retired.iter().map(|r| (&r.key, r.until)));
        keys.extend(verify_only.map(|(key, until)| jwk::JwkJson {
            retire_at: Some(unix(until)),
            ..key.private_jwk()
        }));
        write_keys_file(&path, &JwksJson { keys }, false)?;
        self.file_stamp = stamp(&path);
        Ok(())
    }

    /// Adopts what another instance sharing the keys file wrote (a rotation): its signing key,
    /// and every key either side still needs for verification.
    async fn sync_from_file(&mut self) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let keep = (self.token_lifetime)() + Duration::from_secs(5);
        let last = self.file_stamp;
        let reading = path.clone();
        // Off the runtime: this task shares its thread with signals and reloads, and a file
        // system call can hang (a network mount).
        let polled = file_read::off_runtime(move || {
            let now = stamp(&reading);
            if now.is_none() || now == last {
                return (now, None);
            }
            (now, Some(read_keys_file(&reading, keep)))
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
        self.file_stamp = now_stamp;
        let (signing, retired) = match read {
            Ok(Some(keys)) => keys,
            Ok(None) => return,
            Err(e) => {
                log::error!("{e}; keeping the keys in use");
                return;
            }
        };
        if signing.kid != self.signing.kid {
            let old = std::mem::replace(&mut self.signing, signing);
            log::info!(
                "adopted JWT signing key {} from {}",
                self.signing.kid,
                path.display()
            );
            self.retired.push(Retired {
                key: old,
                until: SystemTime::now() + keep,
            });
        }
        // A key published ahead of a rotation sits in `retired` until it signs.
        let signing_kid = self.signing.kid.clone();
        self.retired.retain(|r| r.key.kid != signing_kid);
        for r in retired {
            if r.key.kid != signing_kid && !self.retired.iter().any(|x| x.key.kid == r.key.kid) {
                self.retired.push(r);
            }
        }
        if let Err(e) = self.publish(None) {
            log::error!("{e}");
        }
    }

    async fn rotate(
        &mut self,
        publish_ahead: Duration,
        keep_old_for: Duration,
    ) -> Result<String, KeyError> {
        // Start from the shared file's latest state, or this write would undo another
        // instance's rotation.
        self.sync_from_file().await;
        let next = EcKey::generate();
        // 1. Publish: verifiers can fetch the new key before any token carries its kid, from
        //    this instance and, through the keys file, from the others sharing it.
        self.publish(Some(&next))?;
        let pending_until = SystemTime::now()
            .checked_add(publish_ahead + keep_old_for)
            .unwrap_or_else(SystemTime::now);
        self.persist(Some((&next, pending_until)))?;
        if !publish_ahead.is_zero() {
            tokio::time::sleep(publish_ahead).await;
        }
        // 2. Sign with it; the old key stays published until its last token has expired.
        let old = std::mem::replace(&mut self.signing, next);
        self.retired.push(Retired {
            key: old,
            until: SystemTime::now()
                .checked_add(keep_old_for)
                .unwrap_or_else(SystemTime::now),
        });
        self.publish(None)?;
        self.persist(None)?;
        log::info!(
            "rotated the JWT signing key: new key id {}",
            self.signing.kid
        );
        Ok(self.signing.kid.clone())
    }

    /// Drops retired keys whose tokens have all expired; returns when to look again.
    fn expire_retired(&mut self) -> Option<SystemTime> {
        let now = SystemTime::now();
        let before = self.retired.len();
        self.retired.retain(|r| r.until > now);
        // Only the JWKS changes: the keys file's `retire_at` tells every reader the same, and
        // writing it here could undo a rotation another instance just made.
        if self.retired.len() != before {
            if let Err(e) = self.publish(None) {
                log::error!("{e}");
            }
        }
        self.retired.iter().map(|r| r.until).min()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        #[cfg(unix)]
        let mut usr1 = self.usr1.take();
        loop {
            let next_expiry = self.expire_retired();
            let mut wait = next_expiry
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(3600));
            if self.file.is_some() {
                wait = wait.min(KEYS_FILE_POLL);
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
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Rotate { publish_ahead, keep_old_for, done }) => {
                        let r = self.rotate(publish_ahead, keep_old_for).await;
                        let _ = done.send(r);
                    }
                    None => return,
                },
                Some(()) = usr1_recv => {
                    let ttl = (self.token_lifetime)();
                    let keep = ttl + Duration::from_secs(5);
                    if let Err(e) = self.rotate(signal_publish_ahead(ttl), keep).await {
                        log::error!("key rotation failed: {e}");
                    }
                }
                _ = tokio::time::sleep(wait) => self.sync_from_file().await,
            }
        }
    }
}

impl KeyHandle {
    /// Loads or creates the keys, publishes the JWKS and spawns the actor on the current
    /// runtime. `token_lifetime` reports the live JWT ttl (retired keys stay that long).
    pub fn start(
        keys_file: Option<&Path>,
        token_lifetime: impl Fn() -> Duration + Send + 'static,
    ) -> Result<KeyHandle, KeyError> {
        let (signing, retired) = match keys_file {
            Some(p) => load_or_create(p, token_lifetime())?,
            None => (EcKey::generate(), Vec::new()),
        };
        let extra: Vec<&EcKey> = retired.iter().map(|r| &r.key).collect();
        let ring = Arc::new(ArcSwap::from_pointee(build_ring(&signing, &extra)?));
        let (tx, rx) = mpsc::channel(8);
        let actor = KeyActor {
            file_stamp: keys_file.and_then(stamp),
            file: keys_file.map(Path::to_path_buf),
            signing,
            retired,
            ring: ring.clone(),
            token_lifetime: Box::new(token_lifetime),
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

    /// Rotates: publish a new key, wait `publish_ahead`, sign with it, keep the old public key
    /// for `keep_old_for`. Returns the new kid.
    pub async fn rotate(
        &self,
        publish_ahead: Duration,
        keep_old_for: Duration,
    ) -> Result<String, KeyError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Rotate {
                publish_ahead,
                keep_old_for,
                done,
            })
            .await
            .map_err(|_| KeyError::Stopped)?;
        rx.await.map_err(|_| KeyError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kids_in(ring: &KeyRing) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&ring.jwks).unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
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
    async fn rotation_publishes_new_then_retires_old() {
        let h = KeyHandle::start(None, || Duration::from_secs(60)).unwrap();
        let old = h.ring().signing.kid.clone();
        let new = h
            .rotate(Duration::ZERO, Duration::from_millis(300))
            .await
            .unwrap();
        assert_ne!(old, new);
        let ring = h.ring();
        assert_eq!(ring.signing.kid, new);
        assert_eq!(kids_in(&ring), [new.clone(), old.clone()]);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while kids_in(&h.ring()).len() > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "old key never retired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(kids_in(&h.ring()), [new]);
    }

    #[tokio::test]
    async fn keys_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let a = KeyHandle::start(Some(&path), || Duration::from_secs(60)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let b = KeyHandle::start(Some(&path), || Duration::from_secs(60)).unwrap();
        assert_eq!(a.ring().signing.kid, b.ring().signing.kid);
    }

    #[test]
    fn instances_creating_the_file_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let kids: Vec<String> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    load_or_create(&p, Duration::from_secs(60)).unwrap().0.kid
                })
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
        let a = KeyHandle::start(Some(&path), || Duration::from_secs(60)).unwrap();
        let b = KeyHandle::start(Some(&path), || Duration::from_secs(60)).unwrap();
        let old = b.ring().signing.kid.clone();
        let rotating = {
            let a = a.clone();
            tokio::spawn(async move {
                a.rotate(Duration::from_secs(4), Duration::from_secs(60))
                    .await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // B publishes the new key while A still signs with the old one.
        while kids_in(&b.ring()).len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "B never published A's next key"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(a.ring().signing.kid, old, "A signed before B published");
        let new = rotating.await.unwrap().unwrap();
        while b.ring().signing.kid != new {
            assert!(
                std::time::Instant::now() < deadline,
                "B never adopted A's key"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // B keeps verifying the tokens it signed before, and lists each key once.
        assert_eq!(kids_in(&b.ring()), [new, old]);
    }

    #[tokio::test]
    async fn malformed_keys_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, b"{\"keys\": [{\"kty\": \"RSA\"}]}").unwrap();
        let err = KeyHandle::start(Some(&path), || Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(err.to_string().contains("jwks.json"), "{err}");
        std::fs::write(&path, b"not json").unwrap();
        assert!(KeyHandle::start(Some(&path), || Duration::from_secs(60)).is_err());
    }
}

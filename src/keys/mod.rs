//! The key actor: owns the ES256 signing keys, publishes the JWKS, rotates.
//!
//! The actor task is the only writer. Readers (the JWT minting on the request path, the JWKS
//! route) take an `Arc<KeyRing>` snapshot from an `ArcSwap`: no lock, no mailbox hop.
//! Rotation publishes the new public key first, switches signing to it after, and keeps the
//! old public key until every token it signed has expired. `SIGUSR1` asks for a rotation.

pub mod jwk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::{mpsc, oneshot};

use jwk::{EcKey, JwkError, JwksJson};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT keys file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Jwk(#[from] JwkError),
    #[error("cannot serialise the JWKS: {0}")]
    Serialise(#[from] serde_json::Error),
    #[error("the key actor has stopped")]
    Stopped,
}

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

/// A verify-only key and when it leaves the JWKS.
struct Retired {
    key: EcKey,
    until: SystemTime,
}

struct KeyActor {
    file: Option<PathBuf>,
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

/// Writes the keys file atomically (temp file + rename) with mode 0600.
fn write_keys_file(path: &Path, jwks: &JwksJson) -> Result<(), KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = serde_json::to_vec_pretty(jwks).map_err(|e| err(e.to_string()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = opts.open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(format!("cannot write: {e}"))
    })
}

/// Loads the keys file, or creates it with a fresh key when it does not exist.
/// An unreadable or malformed file is an error: never a silent new key.
fn load_or_create(path: &Path, default_keep: Duration) -> Result<(EcKey, Vec<Retired>), KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let jwks: JwksJson = serde_json::from_slice(&bytes)
                .map_err(|e| err(format!("not a JWKS with private keys: {e}")))?;
            let mut keys = jwks.keys.iter().enumerate();
            let (i, first) = keys.next().ok_or_else(|| err("holds no key".into()))?;
            let signing = EcKey::from_private_jwk(i, first).map_err(|e| err(e.to_string()))?;
            let now = SystemTime::now();
            let mut retired = Vec::new();
            for (i, j) in keys {
                let key = EcKey::from_private_jwk(i, j).map_err(|e| err(e.to_string()))?;
                let until = j
                    .retire_at
                    .and_then(|t| UNIX_EPOCH.checked_add(Duration::from_secs(t)))
                    .unwrap_or(now + default_keep);
                if until > now {
                    retired.push(Retired { key, until });
                }
            }
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt as _;
                if meta.permissions().mode() & 0o077 != 0 {
                    log::warn!(
                        "JWT keys file {} is readable by others; chmod 600 it",
                        path.display()
                    );
                }
            }
            Ok((signing, retired))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signing = EcKey::generate();
            write_keys_file(
                path,
                &JwksJson {
                    keys: vec![signing.private_jwk()],
                },
            )?;
            log::info!(
                "created JWT keys file {} (key id {})",
                path.display(),
                signing.kid
            );
            Ok((signing, Vec::new()))
        }
        Err(e) => Err(err(format!("cannot read: {e}"))),
    }
}

impl KeyActor {
    fn publish(&self, next: Option<&EcKey>) -> Result<(), KeyError> {
        let mut extra: Vec<&EcKey> = next.into_iter().collect();
        extra.extend(self.retired.iter().map(|r| &r.key));
        self.ring
            .store(Arc::new(build_ring(&self.signing, &extra)?));
        Ok(())
    }

    fn persist(&self) -> Result<(), KeyError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut keys = vec![self.signing.private_jwk()];
        keys.extend(self.retired.iter().map(|r| jwk::JwkJson {
            retire_at: Some(unix(r.until)),
            ..r.key.private_jwk()
        }));
        write_keys_file(path, &JwksJson { keys })
    }

    async fn rotate(
        &mut self,
        publish_ahead: Duration,
        keep_old_for: Duration,
    ) -> Result<String, KeyError> {
        let next = EcKey::generate();
        // 1. Publish: verifiers can fetch the new key before any token carries its kid.
        self.publish(Some(&next))?;
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
        self.persist()?;
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
        if self.retired.len() != before {
            if let Err(e) = self.publish(None).and_then(|_| self.persist()) {
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
            let wait = next_expiry
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(3600));
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
                _ = tokio::time::sleep(wait) => {}
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

//! The keys file (`[jwt].keys_file`): a JWKS with private parts that instances share. Read only
//! when nobody else could have written it, written atomically with mode 0600, created once
//! even when instances start together.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::KeyError;
use super::jwk::{EcKey, JwksJson};
use crate::file_read::{self, Accept, ReadError};
use crate::strict_modes;

/// A verify-only key and when it leaves the JWKS.
pub(super) struct Retired {
    pub key: EcKey,
    pub until: SystemTime,
}

/// Writes the keys file atomically with mode 0600: a temp file beside it, then either a
/// rename over it, or (`create_only`) a hard link that fails when the file already exists, so
/// that instances starting together end up with one key instead of each its own.
/// Returns false when `create_only` lost that race.
pub(super) fn write_keys_file(
    path: &Path,
    jwks: &JwksJson,
    create_only: bool,
) -> Result<bool, KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = jwks.to_file_bytes().map_err(|e| err(e.to_string()))?;
    let dir = strict_modes::directory_of(path);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let write = || -> std::io::Result<bool> {
        use std::io::Write as _;
        let mut f = opts.open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        if create_only {
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        } else {
            std::fs::rename(&tmp, path).map(|()| true)
        }
    };
    let written = write();
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| err(format!("cannot write: {e}")))
}

/// The keys file's identity, to notice another instance's write: its modification time and
/// length, and (on Unix) its change time, which also moves on `chmod`/`chown`, so that a file
/// refused for its mode is read again once the operator fixes the mode.
pub(super) type Stamp = (SystemTime, u64, i64);

pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let changed = {
        use std::os::unix::fs::MetadataExt as _;
        m.ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.ctime_nsec())
    };
    #[cfg(not(unix))]
    let changed = 0;
    Some((m.modified().ok()?, m.len(), changed))
}

/// Reads the keys file; `Ok(None)` when it does not exist. Its first key signs; the others
/// are verify-only until their `retire_at`. A file that someone else could have written is
/// refused (see [`strict_modes`]), and so is anything but a regular file of at most
/// [`file_read::MAX_FILE_BYTES`].
/// The keys file, as its errors name it.
const WHAT: &str = "the keys file";

pub(super) fn read_keys_file(
    path: &Path,
    default_keep: Duration,
) -> Result<Option<(EcKey, Vec<Retired>)>, KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let content = match file_read::read_owned(path, Accept::Regular, WHAT, "plant a signing key") {
        Ok(c) => c,
        // None to read: it is created here, so the directory must be the proxy's too.
        Err(e) if e.is_not_found() => {
            strict_modes::check_dir(path, WHAT).map_err(err)?;
            return Ok(None);
        }
        Err(ReadError::NotOwn(why)) => return Err(err(why)),
        Err(e) => return Err(err(format!("cannot read: {e}"))),
    };
    // The file holds the private keys: its bytes are zeroized when dropped.
    let bytes = zeroize::Zeroizing::new(content.bytes);
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
    Ok(Some((signing, retired)))
}

/// Loads the keys file, or creates it with a fresh key when it does not exist.
/// An unreadable or malformed file is an error: never a silent new key.
pub(super) fn load_or_create(
    path: &Path,
    default_keep: Duration,
) -> Result<(EcKey, Vec<Retired>), KeyError> {
    if let Some(keys) = read_keys_file(path, default_keep)? {
        // Once, at start; a re-read after another instance's rotation does not repeat it.
        if std::fs::metadata(path).is_ok_and(|m| strict_modes::readable_by_others(&m)) {
            log::warn!(
                "JWT keys file {} is readable by others; chmod 600 it",
                path.display()
            );
        }
        return Ok(keys);
    }
    let signing = EcKey::generate();
    let created = write_keys_file(
        path,
        &JwksJson {
            keys: vec![signing.private_jwk()],
        },
        true,
    )?;
    if created {
        log::info!(
            "created JWT keys file {} (key id {})",
            path.display(),
            signing.kid
        );
        return Ok((signing, Vec::new()));
    }
    // Another instance created it first: use its key.
    read_keys_file(path, default_keep)?.ok_or_else(|| KeyError::File {
        path: path.to_path_buf(),
        message: "disappeared while being created".into(),
    })
}

//! The keys file (`[jwt].keys_file`): a JWKS with private parts that instances share, each key
//! with its schedule (see [`super::schedule`]). Read only when nobody else could have written
//! it, written atomically with mode 0600, created once even when instances start together.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::KeyError;
use super::jwk::{EcKey, JwkJson, JwksJson};
use super::schedule::{unix_secs, Scheduled};
use crate::file_read::{self, Accept, ReadError};
use crate::strict_modes;

/// The file's form of a key set.
pub(super) fn to_jwks(keys: &[Scheduled]) -> JwksJson {
    JwksJson {
        keys: keys
            .iter()
            .map(|k| JwkJson {
                sign_from: k.sign_from.map(unix_secs),
                retire_at: k.retire_at.map(unix_secs),
                ..k.key.private_jwk()
            })
            .collect(),
    }
}

/// Writes the keys file atomically with mode 0600: a temp file beside it, then either a
/// rename over it, or (`create_only`) a hard link that fails when the file already exists, so
/// that instances starting together end up with one key instead of each its own.
/// Returns false when `create_only` lost that race.
pub(super) fn write_keys_file(
    path: &Path,
    keys: &[Scheduled],
    create_only: bool,
) -> Result<bool, KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = to_jwks(keys)
        .to_file_bytes()
        .map_err(|e| err(e.to_string()))?;
    // Through a symbolic link, the file it names is replaced, not the link: every reader
    // following the link sees the new keys.
    let resolved;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved =
            std::fs::canonicalize(path).map_err(|e| err(format!("resolving the link: {e}")))?;
        resolved.as_path()
    } else {
        path
    };
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
/// refused for its mode is read again once the operator fixes the mode, and its inode, which
/// changes when a symlink swap (Kubernetes' `..data`) points the path at another file.
pub(super) type Stamp = (SystemTime, u64, i64, u64);

pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (changed, inode) = {
        use std::os::unix::fs::MetadataExt as _;
        let changed = m
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.ctime_nsec());
        (changed, m.ino())
    };
    #[cfg(not(unix))]
    let (changed, inode) = (0, 0);
    Some((m.modified().ok()?, m.len(), changed, inode))
}

/// The keys file, as its errors name it.
const WHAT: &str = "the keys file";

/// Reads the keys file; `Ok(None)` when it does not exist. Each key's schedule is in
/// [`super::schedule`]. A file that someone else could have written is refused (see
/// [`strict_modes`]), and so is anything but a regular file of at most
/// [`file_read::MAX_FILE_BYTES`], a file without keys, and one that lists a key twice.
pub(super) fn read_keys_file(path: &Path) -> Result<Option<Vec<Scheduled>>, KeyError> {
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
    if jwks.keys.is_empty() {
        return Err(err("holds no key".into()));
    }
    let mut kids = HashSet::new();
    let mut keys = Vec::with_capacity(jwks.keys.len());
    for (i, j) in jwks.keys.iter().enumerate() {
        let key = EcKey::from_private_jwk(i, j).map_err(|e| err(e.to_string()))?;
        if !kids.insert(key.kid.clone()) {
            return Err(err(format!("key {i}: key id {} is listed twice", key.kid)));
        }
        let time = |name: &str, secs: Option<u64>| -> Result<Option<SystemTime>, KeyError> {
            secs.map(|s| {
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(s))
                    .filter(|_| s <= LAST_UNIX_TIME)
                    .ok_or_else(|| {
                        err(format!(
                            "key {i}: {name} {s} is not a Unix time before the year 10000"
                        ))
                    })
            })
            .transpose()
        };
        keys.push(Scheduled {
            sign_from: time("sign_from", j.sign_from)?,
            retire_at: time("retire_at", j.retire_at)?,
            key,
        });
    }
    Ok(Some(keys))
}

/// The last second of the year 9999: times beyond cannot be written as RFC 3339, and no key
/// schedule needs them.
pub const LAST_UNIX_TIME: u64 = 253_402_300_799;

/// Loads the keys file. When it does not exist: with `create`, creates it with a fresh key
/// (instances starting together agree on one); without, an error that says how to make one.
/// An unreadable or malformed file is an error: never a silent new key.
pub(super) fn load(path: &Path, create: bool) -> Result<Vec<Scheduled>, KeyError> {
    if let Some(keys) = read_keys_file(path)? {
        // Once, at start; a re-read after another instance's rotation does not repeat it.
        warn_if_readable(path, create);
        return Ok(keys);
    }
    if !create {
        return Err(KeyError::File {
            path: path.to_path_buf(),
            message: format!(
                "does not exist (keys_file_read_only = true: the proxy never creates it); make it with `ory-proxy keys generate --out {}`",
                path.display()
            ),
        });
    }
    let fresh = vec![Scheduled {
        key: EcKey::generate(),
        sign_from: None,
        retire_at: None,
    }];
    if write_keys_file(path, &fresh, true)? {
        log::info!(
            "created JWT keys file {} (key id {})",
            path.display(),
            fresh[0].key.kid
        );
        return Ok(fresh);
    }
    // Another instance created it first: use its key.
    read_keys_file(path)?.ok_or_else(|| KeyError::File {
        path: path.to_path_buf(),
        message: "disappeared while being created".into(),
    })
}

/// Warns about a keys file others can read. A file the proxy writes should be 0600. A mounted
/// read-only one (a Kubernetes Secret) is read through its group when the proxy does not run as
/// its owner (`defaultMode: 0440` with `fsGroup`), so there only others' read access counts.
fn warn_if_readable(path: &Path, writable: bool) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if writable && strict_modes::readable_by_others(&meta) {
        log::warn!(
            "JWT keys file {} is readable by others; chmod 600 it",
            path.display()
        );
    } else if !writable && strict_modes::world_readable(&meta) {
        log::warn!(
            "JWT keys file {} is readable by every user; mount it with mode 0440 (a Kubernetes Secret: defaultMode 0440 and fsGroup) or 0400",
            path.display()
        );
    }
}

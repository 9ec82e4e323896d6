//! Who may change the operator's files (the JWT keys file, `proxy.toml`, the TLS certificate
//! and key), decided as ssh's `StrictModes` decides it for `authorized_keys`. Whoever can write
//! the keys file, or replace it in its directory, can plant a signing key that every instance
//! sharing the file publishes, and so mint tokens the app believes; whoever can do that to
//! `proxy.toml` can open CORS to any origin or stop the stripping of forged identity headers,
//! applied live; whoever can do it to the TLS files can serve their own certificate. So
//! the proxy refuses (at start: an error; on a re-read: keeps what it runs with):
//!
//! - a file writable by group or others, or owned by another user than the proxy's (root
//!   excepted);
//! - a directory writable by group or others without the sticky bit (with it, others cannot
//!   rename over or delete a file they do not own: `/tmp`), or owned by another user (root
//!   excepted). A directory on a read-only mount passes whatever its mode: nobody can create,
//!   rename or delete anything in it through that mount. That is how Kubernetes mounts a
//!   ConfigMap or a Secret into a container (a directory of mode 0777 that only the kubelet,
//!   outside, changes).
//!
//! A keys file that others can only read gets a warning (the private key leaks, but nobody
//! can make the proxy trust a key it did not make).

use std::fs::Metadata;
use std::path::Path;

/// Refuses a file (`meta`: the `fstat` of the descriptor it was read from) that someone else
/// can write; `stake` says what a writer could do ("plant a signing key").
#[cfg(unix)]
pub fn check_file(path: &Path, meta: &Metadata, stake: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode() & 0o7777;
    if let Some(who) = writable_by(mode) {
        return Err(format!(
            "writable by {who} (mode {mode:04o}): anyone who can write it can {stake}; chmod 600 {}",
            path.display()
        ));
    }
    if let Some(e) = foreign_owner(meta.uid()) {
        return Err(format!("{e}; chown it or use a file of your own"));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_file(_: &Path, _: &Metadata, _: &str) -> Result<(), String> {
    Ok(())
}

/// The directory a file's path names: its parent, or `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Refuses the directory of `path` when someone else can replace the file in it (`what`
/// names the file: "the keys file"). A missing directory passes: creating or reading the file
/// there fails with its own error.
#[cfg(unix)]
pub fn check_dir(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = directory_of(path);
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if let (Some(who), false) = (writable_by(mode), sticky || on_read_only_mount(dir)) {
        return Err(format!(
            "its directory {} is writable by {who} (mode {mode:04o}) without the sticky bit: anyone who can write there can replace {what}; chmod go-w it, or keep the file in a directory of its own",
            dir.display()
        ));
    }
    if let Some(e) = foreign_owner(meta.uid()) {
        return Err(format!(
            "its directory {}: {e}, who can replace {what}",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_dir(_: &Path, _: &str) -> Result<(), String> {
    Ok(())
}

/// Whether others than the owner can read the file (worth a warning, not a refusal).
#[cfg(unix)]
pub fn readable_by_others(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.mode() & 0o044 != 0
}

#[cfg(not(unix))]
pub fn readable_by_others(_: &Metadata) -> bool {
    false
}

/// Whether every local user can read the file (`o+r`). Group read is how a service account
/// is usually given a key (Debian's `ssl-cert` group, a Kubernetes `fsGroup`), so it is not
/// counted here.
#[cfg(unix)]
pub fn world_readable(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.mode() & 0o004 != 0
}

#[cfg(not(unix))]
pub fn world_readable(_: &Metadata) -> bool {
    false
}

/// Whether `dir` is on a file system mounted read-only here. An error (no such directory, a
/// name with a NUL) answers no.
#[cfg(unix)]
pub fn on_read_only_mount(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statvfs is a valid value of the plain C struct it is.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a pointer to a statvfs the call may fill.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    rc == 0 && (st.f_flag & libc::ST_RDONLY) != 0
}

#[cfg(unix)]
fn writable_by(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

/// Why an owner `uid` is not trusted: neither the proxy's effective user nor root.
#[cfg(unix)]
fn foreign_owner(uid: u32) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    (uid != me && uid != 0)
        .then(|| format!("owned by uid {uid}, not by the proxy's user (uid {me}) or root"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn writable_files_are_refused_readable_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jwks.json");
        std::fs::write(&p, "{}").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o644, true),
            (0o400, true),
            (0o620, false),
            (0o602, false),
            (0o666, false),
        ] {
            chmod(&p, mode);
            let meta = std::fs::metadata(&p).unwrap();
            assert_eq!(check_file(&p, &meta, "x").is_ok(), ok, "mode {mode:o}");
        }
        chmod(&p, 0o644);
        assert!(readable_by_others(&std::fs::metadata(&p).unwrap()));
        chmod(&p, 0o600);
        assert!(!readable_by_others(&std::fs::metadata(&p).unwrap()));
    }

    #[test]
    fn writable_directories_are_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jwks.json");
        for (mode, ok) in [
            (0o700, true),
            (0o755, true),
            (0o775, false),
            (0o777, false),
            (0o1777, true),
            (0o1775, true),
        ] {
            chmod(dir.path(), mode);
            assert_eq!(check_dir(&p, "x").is_ok(), ok, "mode {mode:o}");
        }
        chmod(dir.path(), 0o700);
        assert!(check_dir(Path::new("/nonexistent/dir/jwks.json"), "x").is_ok());
        assert!(!on_read_only_mount(dir.path()));
        assert!(!on_read_only_mount(Path::new("/nonexistent/dir")));
    }

    #[test]
    fn files_of_other_users_are_refused() {
        // Only root can give a file away; as anyone else, there is nothing to test.
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jwks.json");
        std::fs::write(&p, "{}").unwrap();
        chmod(&p, 0o600);
        std::os::unix::fs::chown(&p, Some(4242), None).unwrap();
        let err = check_file(&p, &std::fs::metadata(&p).unwrap(), "x").unwrap_err();
        assert!(err.contains("uid 4242"), "{err}");
        std::os::unix::fs::chown(dir.path(), Some(4242), None).unwrap();
        assert!(check_dir(&p, "x").unwrap_err().contains("uid 4242"));
    }
}

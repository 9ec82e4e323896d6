//! `ory-proxy keys generate|rotate|list`: the keys file made and rotated offline, for
//! instances that only read it (`keys_file_read_only`, a Kubernetes Secret). The file is
//! written atomically with mode 0600; what it holds is read as the proxy reads it.
//!
//! A rotation adds a key that every instance publishes as soon as it reads the file and that
//! signs only from its `sign_from` (now + `--publish-ahead`): so long as the new file reaches
//! every instance within that time, no instance signs with a key another does not publish.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::KeyError;
use super::file::{read_keys_file, write_keys_file};
use super::jwk::EcKey;
use super::schedule::{self, Scheduled};
use crate::cli::KeysCommand;

/// A publish-ahead beyond this is a mistake (a unit typed wrong): a year.
const MAX_PUBLISH_AHEAD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Below this, a publish-ahead is shorter than a Kubernetes Secret may take to reach a pod.
const SHORT_PUBLISH_AHEAD: Duration = Duration::from_secs(120);

/// Runs a `keys` subcommand: its result on stdout (the new key id, or the listing), a summary
/// or the error on stderr. Exit code 0, or 1 on failure.
pub fn run(cmd: &KeysCommand) -> ExitCode {
    let result = match cmd {
        KeysCommand::Generate { out } => generate(out).map(|kid| {
            eprintln!(
                "ory-proxy: wrote {} (mode 0600), key id {kid}",
                out.display()
            );
            kid
        }),
        KeysCommand::Rotate {
            file,
            publish_ahead,
            prune_after,
        } => {
            if *publish_ahead > MAX_PUBLISH_AHEAD {
                eprintln!(
                    "ory-proxy: a publish-ahead of {} is beyond any rotation: at most {}",
                    humantime::format_duration(*publish_ahead),
                    humantime::format_duration(MAX_PUBLISH_AHEAD)
                );
                return ExitCode::from(2);
            }
            if *publish_ahead < SHORT_PUBLISH_AHEAD {
                eprintln!(
                    "ory-proxy: warning: a publish-ahead of {} is shorter than a Kubernetes Secret may take to reach every pod (1-2 min)",
                    humantime::format_duration(*publish_ahead)
                );
            }
            rotate(file, *publish_ahead, *prune_after).map(|kid| {
                eprintln!(
                    "ory-proxy: added key {kid} to {}: published as soon as an instance reads the file, signing in {}",
                    file.display(),
                    humantime::format_duration(*publish_ahead)
                );
                kid
            })
        }
        KeysCommand::List { file } => list(file, SystemTime::now()),
    };
    let text = match result {
        Ok(text) => text,
        Err(e) => {
            eprintln!("ory-proxy: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ory-proxy: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// Creates `path` with one fresh key that signs at once; refuses to replace a file (that
/// would sign at once with a key no instance has published). Returns its kid.
pub fn generate(path: &Path) -> Result<String, KeyError> {
    let key = Scheduled {
        key: EcKey::generate(),
        sign_from: None,
        retire_at: None,
    };
    let kid = key.key.kid.clone();
    if !write_keys_file(path, &[key], true)? {
        return Err(KeyError::File {
            path: path.to_path_buf(),
            message: format!(
                "exists; `ory-proxy keys rotate {}` replaces its key without breaking tokens",
                path.display()
            ),
        });
    }
    Ok(kid)
}

/// The keys of `path`, which must exist.
fn existing(path: &Path) -> Result<Vec<Scheduled>, KeyError> {
    read_keys_file(path)?.ok_or_else(|| KeyError::File {
        path: path.to_path_buf(),
        message: format!(
            "does not exist; make it with `ory-proxy keys generate --out {}`",
            path.display()
        ),
    })
}

/// Adds a key to `path` that signs `publish_ahead` from now, and drops the keys that stopped
/// signing more than `prune_after` ago. Returns the new kid.
pub fn rotate(
    path: &Path,
    publish_ahead: Duration,
    prune_after: Duration,
) -> Result<String, KeyError> {
    let keys = existing(path)?;
    let never_seen = |_: &EcKey| UNIX_EPOCH;
    let now = SystemTime::now();
    let keys = schedule::rotated(keys, now, publish_ahead, prune_after, &never_seen);
    write_keys_file(path, &keys, false)?;
    Ok(keys[0].key.kid.clone())
}

/// One line per key of `path`: its kid and what it does at `now`. No private part.
pub fn list(path: &Path, now: SystemTime) -> Result<String, KeyError> {
    let keys = existing(path)?;
    // Which key signs does not depend on how long old keys stay.
    let plan = schedule::plan(&keys, now, Duration::ZERO, &|_| UNIX_EPOCH);
    let when = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let lines: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let what = match (k.retire_at, k.sign_from) {
                (Some(t), _) => format!("verify-only until {}", when(t)),
                _ if plan.as_ref().is_some_and(|p| p.signer == i) => "signing".into(),
                (None, Some(t)) if t > now => format!("signs from {}", when(t)),
                _ => "signed before (published until its tokens expire)".into(),
            };
            format!("{}  {what}", k.key.kid)
        })
        .collect();
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_refuses_to_replace_and_rotate_adds_a_key_that_signs_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let first = generate(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = generate(&path).unwrap_err().to_string();
        assert!(err.contains("keys rotate"), "{err}");

        let hour = Duration::from_secs(3600);
        let second = rotate(&path, Duration::from_secs(600), hour).unwrap();
        let keys = read_keys_file(&path).unwrap().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key.kid, second);
        let sign_from = keys[0].sign_from.unwrap();
        let ahead = sign_from.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(598) && ahead <= Duration::from_secs(601));
        let listed = list(&path, SystemTime::now()).unwrap();
        assert!(listed.contains(&format!("{first}  signing")), "{listed}");
        assert!(
            listed.contains(&format!("{second}  signs from")),
            "{listed}"
        );
        let later = list(&path, sign_from).unwrap();
        assert!(later.contains(&format!("{second}  signing")), "{later}");
        assert!(!listed.contains("\"d\""), "{listed}");
    }

    #[test]
    fn rotate_prunes_keys_that_stopped_signing_long_ago() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let first = generate(&path).unwrap();
        // Rotated with no publish-ahead: the first key stopped signing just now.
        let second = rotate(&path, Duration::ZERO, Duration::from_secs(3600)).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let third = rotate(&path, Duration::from_secs(60), Duration::from_secs(3600)).unwrap();
        let kids: Vec<String> = read_keys_file(&path)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|k| k.key.kid)
            .collect();
        assert_eq!(kids, [third.clone(), second.clone(), first]);
        // With a prune-after of zero, the first key (superseded) goes; the second signs on.
        let fourth = rotate(&path, Duration::from_secs(60), Duration::ZERO).unwrap();
        let kids: Vec<String> = read_keys_file(&path)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|k| k.key.kid)
            .collect();
        assert_eq!(kids, [fourth, third, second]);
    }

    #[cfg(unix)]
    #[test]
    fn rotate_through_a_link_rotates_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("k.json");
        let link = dir.path().join("link.json");
        generate(&real).unwrap();
        std::os::unix::fs::symlink("k.json", &link).unwrap();
        rotate(&link, Duration::from_secs(600), Duration::from_secs(3600)).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read_keys_file(&real).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn times_past_the_year_9999_are_refused_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        generate(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["keys"][0]["sign_from"] = serde_json::json!(253_402_300_800u64);
        std::fs::write(&path, v.to_string()).unwrap();
        let err = list(&path, SystemTime::now()).unwrap_err().to_string();
        assert!(err.contains("year 10000"), "{err}");
    }

    #[test]
    fn rotate_and_list_need_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.json");
        let err = rotate(&path, Duration::ZERO, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keys generate --out"), "{err}");
        assert!(list(&path, SystemTime::now()).is_err());
        assert!(!path.exists());
    }
}

//! Stamps the binary with the commit it was built from and the build date, for `--version`,
//! the banner and the metrics' build info (see src/version.rs).
//!
//! Without git, or outside a git checkout (a source tarball), the commit is "unknown".
//! `SOURCE_DATE_EPOCH` (reproducible builds) fixes the date. The script reruns only when HEAD
//! moves (a commit, a checkout), not on every build, so in a working tree the date is that of
//! the last such run; a fresh clone's release build gets today's.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = if in_own_checkout() {
        for path in watched_git_files() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    } else {
        None
    };
    let commit = commit.unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ORY_PROXY_COMMIT={commit}");
    println!("cargo:rustc-env=ORY_PROXY_BUILD_DATE={}", build_date());
}

/// A git command's trimmed output, `None` when git is missing or fails (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Whether the package's directory is the top of a git checkout: sources unpacked somewhere
/// inside another repository (a vendor directory, a home under git) must not take its commit.
fn in_own_checkout() -> bool {
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    match (
        std::fs::canonicalize(top),
        manifest_dir.map(std::fs::canonicalize),
    ) {
        (Ok(top), Some(Ok(here))) => top == here,
        _ => false,
    }
}

/// HEAD, the branch it points to and packed-refs: what a commit or a checkout changes. Git
/// says where they are, so linked worktrees (whose `.git` is a file) work too. Only existing
/// paths are named (cargo reruns a script on every build when a named path is missing): a
/// branch whose ref is packed is watched through its directory, where a commit will write it.
fn watched_git_files() -> Vec<PathBuf> {
    let path = |name: &str| git(&["rev-parse", "--git-path", name]).map(PathBuf::from);
    let mut watched: Vec<PathBuf> = [path("HEAD"), path("packed-refs")]
        .into_iter()
        .flatten()
        .filter(|p| p.is_file())
        .collect();
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|b| path(&b)) {
        match branch.is_file() {
            true => watched.push(branch),
            false => watched.extend(branch.parent().filter(|d| d.is_dir()).map(PathBuf::from)),
        }
    }
    watched
}

/// UTC `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, or of now.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

//! What the binary says about itself and ships for packagers: `--version` (version, commit,
//! build date), the same three in the banner and in `ory_proxy_build_info`, shell completions
//! and the man page generated from the flags' definition (every flag clap knows is in them).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::CommandFactory as _;
use common::{get, run_cli, Proxy};

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

/// `ory-proxy 0.1.0 (commit 0123456789ab, built 2025-01-31)` → (version, commit, date).
fn version_parts(line: &str) -> (String, String, String) {
    let rest = line
        .strip_prefix("ory-proxy ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (version, rest) = rest
        .split_once(" (commit ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (commit, rest) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let date = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    (version.into(), commit.into(), date.into())
}

fn version_line() -> String {
    let out = run_cli(&["--version"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim_end().to_string()
}

/// The commit git reports for this checkout, if git and a checkout are there.
fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let line = version_line();
    let (version, commit, date) = version_parts(&line);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    match git_head() {
        Some(head) => assert_eq!(commit, head, "{line}"),
        None => assert_eq!(commit, "unknown", "{line}"),
    }
    let parsed: jiff::civil::Date = date.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
    // A timestamp prints in UTC, its date first: YYYY-MM-DD strings compare as dates.
    let today = jiff::Timestamp::now().to_string()[..10].to_string();
    assert!(
        date <= today && parsed.year() >= 2024,
        "{line} (today {today})"
    );
    // -V says the same.
    assert_eq!(run_cli(&["-V"], &[], &[]).stdout.trim_end(), line);
}

#[actix_web::test]
async fn banner_and_build_info_carry_the_same_version() {
    let (version, commit, date) = version_parts(&version_line());
    let proxy = Proxy::to("http://127.0.0.1:1")
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let deadline = Duration::from_secs(20);
    let banner = proxy
        .wait_line(deadline, |l| l.starts_with("  version      "))
        .unwrap_or_else(|| panic!("no version line:\n{}", proxy.logs()));
    assert_eq!(
        banner,
        format!("  version      {version} (commit {commit}, built {date})")
    );

    let metrics = proxy
        .wait_line(deadline, |l| l.starts_with("  metrics      http://"))
        .unwrap_or_else(|| panic!("no metrics line:\n{}", proxy.logs()));
    let url = metrics.trim_start_matches("  metrics      ");
    let text = get(url).await.text();
    let info = format!(
        "ory_proxy_build_info{{version=\"{version}\",commit=\"{commit}\",build_date=\"{date}\"}} 1"
    );
    assert!(text.lines().any(|l| l == info), "{info} not in\n{text}");
}

/// Every flag clap knows (hidden ones excepted), as `--long` or `-s`.
fn visible_flags() -> Vec<(Option<String>, Option<char>)> {
    let cmd = ory_proxy::cli::Cli::command();
    let flags: Vec<_> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .map(|a| (a.get_long().map(str::to_string), a.get_short()))
        .collect();
    assert!(flags.len() > 15, "{flags:?}");
    flags
}

#[test]
fn every_shells_completions_offer_every_flag() {
    for shell in SHELLS {
        let out = run_cli(&["--completions", shell], &[], &[]);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        for (long, short) in visible_flags() {
            if let Some(long) = long {
                // fish writes `-l metrics-listen`, the others `--metrics-listen`.
                let needle = if shell == "fish" {
                    format!("-l {long}")
                } else {
                    format!("--{long}")
                };
                assert!(out.stdout.contains(&needle), "{shell}: no {needle}");
            }
            if let Some(short) = short {
                let needle = if shell == "fish" {
                    format!("-s {short}")
                } else {
                    format!("-{short}")
                };
                assert!(out.stdout.contains(&needle), "{shell}: no {needle}");
            }
        }
    }
}

#[test]
fn bash_loads_the_completion_script() {
    let out = run_cli(&["--completions", "bash"], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ory-proxy.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p ory-proxy",
            script.display()
        ))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && said.contains("ory-proxy"),
        "{said}\n{}",
        String::from_utf8_lossy(&bash.stderr)
    );
}

#[test]
fn the_man_page_documents_every_flag() {
    let out = run_cli(&["--man"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let roff = &out.stdout;
    assert!(roff.contains(".TH ory-proxy 1"), "{roff}");
    assert!(roff.contains(".SH OPTIONS"), "{roff}");
    for (long, short) in visible_flags() {
        // roff escapes each `-` as `\-`.
        if let Some(long) = long {
            let needle = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(roff.contains(&needle), "no {needle}");
        }
        if let Some(short) = short {
            assert!(roff.contains(&format!("\\-{short}")), "no -{short}");
        }
    }
    assert!(!roff.contains("completions"), "{roff}");
    assert!(
        roff.contains(&version_line()["ory-proxy ".len()..]),
        "{roff}"
    );
    render_with_man(roff);
}

/// Where `man` is installed, the page also renders (no roff warnings) and reads as expected.
fn render_with_man(roff: &str) {
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("man is not installed: rendering not checked");
        return;
    }
    let mut child = Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{errors}");
    assert!(errors.trim().is_empty(), "roff warnings: {errors}");
    assert!(text.contains("--metrics-listen"), "{text}");
}

#[test]
fn packaging_flags_are_hidden_and_stand_alone() {
    let help = run_cli(&["--help"], &[], &[]);
    assert!(!help.stdout.contains("--completions"), "{}", help.stdout);
    assert!(!help.stdout.contains("--man"), "{}", help.stdout);
    // They do not combine with a run of the proxy, and an unknown shell is refused.
    for args in [
        &["--completions", "bash", "http://localhost:3000"][..],
        &["--man", "--debug"],
        &["--completions", "tcsh"],
    ] {
        let out = run_cli(args, &[], &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stdout);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// build.rs itself, compiled and run as cargo would run it, in the situations a build meets:
/// a git checkout, a source tree outside git (a tarball), no git at all, a fixed
/// `SOURCE_DATE_EPOCH`.
#[test]
fn the_build_script_stamps_commit_and_date_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("build-script");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiled = Command::new(rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&exe)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/build.rs"))
        .output()
        .expect("rustc");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = |manifest_dir: &std::path::Path, env: &[(&str, &str)]| -> String {
        let mut cmd = Command::new(&exe);
        cmd.current_dir(manifest_dir)
            .env("CARGO_MANIFEST_DIR", manifest_dir)
            .env_remove("SOURCE_DATE_EPOCH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("build script");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };

    // The real checkout: git's HEAD, and HEAD is watched (not every build reruns it).
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(head) = git_head() {
        let out = run(here, &[]);
        assert!(out.contains(&format!("ORY_PROXY_COMMIT={head}\n")), "{out}");
        assert!(
            out.contains("cargo:rerun-if-changed=") && out.contains("HEAD\n"),
            "{out}"
        );
    }
    // Sources outside any git checkout, and no git on PATH: "unknown".
    let tarball = tempfile::tempdir().unwrap();
    for env in [&[][..], &[("PATH", "")]] {
        let out = run(tarball.path(), env);
        assert!(out.contains("ORY_PROXY_COMMIT=unknown\n"), "{out}");
        assert!(!out.contains("HEAD"), "{out}");
    }
    // Sources unpacked inside another repository (a vendor directory): not its commit.
    let outer = tempfile::tempdir().unwrap();
    let git_in_outer = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
            .args(args)
            .current_dir(outer.path())
            .status()
            .is_ok_and(|s| s.success())
    };
    if git_in_outer(&["init", "-q"])
        && git_in_outer(&["commit", "-q", "--allow-empty", "-m", "outer"])
    {
        let vendored = outer.path().join("vendor/ory-proxy");
        std::fs::create_dir_all(&vendored).unwrap();
        let out = run(&vendored, &[]);
        assert!(out.contains("ORY_PROXY_COMMIT=unknown\n"), "{out}");
    }
    // SOURCE_DATE_EPOCH fixes the date (UTC), leap days included.
    for (epoch, date) in [
        ("0", "1970-01-01"),
        ("951825599", "2000-02-29"),
        ("1709251199", "2024-02-29"),
        ("4102444800", "2100-01-01"),
    ] {
        let out = run(tarball.path(), &[("SOURCE_DATE_EPOCH", epoch)]);
        assert!(
            out.contains(&format!("ORY_PROXY_BUILD_DATE={date}\n")),
            "{epoch}: {out}"
        );
    }
}

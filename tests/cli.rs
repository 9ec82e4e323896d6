//! The command line (README, "Flags"): every bad input ends with exit code 2 (usage) or 1 (runtime)
//! and one clear line on stderr; `--check-config` prints the effective configuration.

mod common;

use common::{run_cli, Finished};

const APP: &str = "http://127.0.0.1:3000";
const ORY: &str = "http://127.0.0.1:4433";

/// Exit code `code`, exactly one stderr line, and that line contains every needle.
#[track_caller]
fn assert_one_line(out: &Finished, code: i32, needles: &[&str]) {
    assert_eq!(
        out.code,
        Some(code),
        "exit code; stderr:\n{}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    let lines = out.stderr_lines();
    assert_eq!(
        lines.len(),
        1,
        "want one stderr line, got {}:\n{}",
        lines.len(),
        out.stderr
    );
    for n in needles {
        assert!(
            lines[0].contains(n),
            "stderr line lacks {n:?}: {}",
            lines[0]
        );
    }
}

#[test]
fn missing_application_url_is_a_usage_error() {
    let out = run_cli(&["--sdk-url", ORY], &[], &[]);
    assert_one_line(&out, 2, &["APPLICATION_URL"]);
}

#[test]
fn no_ory_upstream_names_the_flags_and_env_vars() {
    let out = run_cli(&[APP], &[], &[]);
    assert_one_line(
        &out,
        2,
        &["--project", "--sdk-url", "ORY_PROJECT_SLUG", "ORY_SDK_URL"],
    );
}

#[test]
fn project_and_sdk_url_flags_together_are_an_error() {
    let out = run_cli(&["--project", "my-slug", "--sdk-url", ORY, APP], &[], &[]);
    assert_one_line(&out, 2, &["--project", "--sdk-url"]);
}

#[test]
fn project_and_sdk_url_env_vars_together_are_an_error() {
    let out = run_cli(
        &[APP],
        &[("ORY_PROJECT_SLUG", "my-slug"), ("ORY_SDK_URL", ORY)],
        &[],
    );
    assert_one_line(&out, 2, &["ORY_PROJECT_SLUG", "ORY_SDK_URL"]);
}

#[test]
fn publish_url_with_path_query_or_fragment_is_an_error() {
    for bad in [
        "http://localhost:4000/app",
        "http://localhost:4000/?x=1",
        "http://localhost:4000/#top",
    ] {
        let out = run_cli(&["--sdk-url", ORY, APP, bad], &[], &[]);
        assert_one_line(&out, 2, &["publish_url", "path, query or fragment"]);
    }
}

#[test]
fn publish_url_with_only_a_slash_is_fine() {
    let out = run_cli(
        &[
            "--check-config",
            "--sdk-url",
            ORY,
            APP,
            "http://localhost:4000/",
        ],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("publish_url = \"http://localhost:4000\""),
        "{}",
        out.stdout
    );
}

#[test]
fn urls_without_scheme_or_host_are_errors() {
    // APPLICATION_URL without a scheme.
    let out = run_cli(&["--sdk-url", ORY, "127.0.0.1:3000"], &[], &[]);
    assert_one_line(&out, 2, &["application_url", "127.0.0.1:3000"]);
    // An SDK URL without a host.
    let out = run_cli(&["--sdk-url", "http://", APP], &[], &[]);
    assert_one_line(&out, 2, &["sdk_url"]);
    // A PUBLISH_URL without a scheme.
    let out = run_cli(&["--sdk-url", ORY, APP, "localhost"], &[], &[]);
    assert_one_line(&out, 2, &["publish_url"]);
}

#[test]
fn bare_star_cors_origin_is_refused() {
    let out = run_cli(
        &["--sdk-url", ORY, "--allowed-cors-origins", "*", APP],
        &[],
        &[],
    );
    assert_one_line(&out, 2, &["--allowed-cors-origins", "`*`"]);
}

#[test]
fn unknown_key_in_proxy_toml_names_file_line_and_key() {
    let toml = "port = 4000\n\n[cors]\nallowed_origin = [\"https://a.example\"]\n";
    let out = run_cli(
        &["-c", "proxy.toml", "--sdk-url", ORY, APP],
        &[],
        &[("proxy.toml", toml)],
    );
    assert_one_line(&out, 2, &["proxy.toml:4", "cors.allowed_origin"]);
}

#[test]
fn default_proxy_toml_in_the_working_directory_is_read() {
    // No -c: ./proxy.toml is picked up, and its typo is reported just the same.
    let out = run_cli(
        &["--sdk-url", ORY, APP],
        &[],
        &[("proxy.toml", "dev = true\nrewrite_hots = true\n")],
    );
    assert_one_line(&out, 2, &["proxy.toml:2", "rewrite_hots"]);
}

#[test]
fn port_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_cli(&["--port", &port, "--sdk-url", ORY, APP], &[], &[]);
    assert_one_line(&out, 1, &[&port]);
    drop(taken);
}

#[test]
fn check_config_prints_the_effective_config_and_exits_0() {
    let toml = "[cookies]\ndomain = \"example.org\"\n\n[upstream]\nresponse_timeout = \"7s\"\n";
    let out = run_cli(
        &[
            "--check-config",
            "-c",
            "proxy.toml",
            "--sdk-url",
            ORY,
            "--port",
            "4555",
            "--allowed-cors-origins",
            "https://*.example.org",
            APP,
            "https://www.example.org",
        ],
        &[],
        &[("proxy.toml", toml)],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    for want in [
        "application_url = \"http://127.0.0.1:3000\"",
        "publish_url = \"https://www.example.org\"",
        "port = 4555",
        "sdk_url = \"http://127.0.0.1:4433/\"",
        "domain = \"example.org\"",
        "allowed_origins = [\"https://*.example.org\"]",
        "response_timeout = \"7s\"",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }
    // It only checks: it never starts listening.
    assert!(!out.stderr.contains("listening"), "{}", out.stderr);
}

#[test]
fn check_config_exits_1_when_invalid() {
    let out = run_cli(&["--check-config", APP], &[], &[]);
    assert_one_line(&out, 1, &["--sdk-url"]);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    let out = run_cli(
        &["--check-config", "-c", "proxy.toml", "--sdk-url", ORY, APP],
        &[],
        &[("proxy.toml", "[jwt]\nttl = \"soon\"\n")],
    );
    assert_one_line(&out, 1, &["proxy.toml:2", "jwt.ttl"]);
}

#[test]
fn a_metrics_address_without_a_port_is_an_error_naming_the_flag() {
    let out = run_cli(
        &["--sdk-url", ORY, "--metrics-listen", "localhost", APP],
        &[],
        &[],
    );
    assert_one_line(
        &out,
        2,
        &["--metrics-listen", "\"localhost\"", "127.0.0.1:9464"],
    );
    let own_port = [
        "--sdk-url",
        ORY,
        "--port",
        "4555",
        "--metrics-listen",
        "127.0.0.1:4555",
        APP,
    ];
    let out = run_cli(&own_port, &[], &[]);
    assert_one_line(&out, 2, &["--metrics-listen", "own port 4555"]);
}

#[test]
fn a_metrics_address_in_use_is_a_runtime_failure_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_cli(
        &[
            "--sdk-url",
            ORY,
            "--port",
            "0",
            "--metrics-listen",
            &addr,
            APP,
        ],
        &[],
        &[],
    );
    assert_one_line(&out, 1, &["metrics", &addr]);
}

#[test]
fn an_unknown_flag_or_a_bad_value_is_one_line_and_exit_2() {
    let out = run_cli(&["--sdk-url", ORY, "--no-such-flag", APP], &[], &[]);
    assert_one_line(&out, 2, &["--no-such-flag", "--help"]);
    // A typo keeps clap's suggestion.
    let out = run_cli(
        &["--sdk-url", ORY, "--allowed-cors-origin", "x", APP],
        &[],
        &[],
    );
    assert_one_line(&out, 2, &["did you mean --allowed-cors-origins?"]);
    let out = run_cli(&["--sdk-url", ORY, "--port", "abc", APP], &[], &[]);
    assert_one_line(&out, 2, &["abc", "--port"]);
}

#[test]
fn help_and_version_go_to_stdout_with_exit_0() {
    let out = run_cli(&["--help"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("--metrics-listen"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Accepted from `ory proxy`"),
        "{}",
        out.stdout
    );
    let out = run_cli(&["--version"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("ory-proxy "), "{}", out.stdout);
}

#[test]
fn go_proxy_sign_in_flags_are_accepted_so_copied_commands_start() {
    let out = run_cli(
        &[
            "-q",
            "--yes",
            "--project",
            "my-slug",
            "--workspace",
            "acme",
            "--api-key-expiry",
            "1h",
            "--check-config",
            APP,
        ],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("my-slug.projects.oryapis.com"),
        "{}",
        out.stdout
    );
    // The two that a user may expect to act say they do not.
    assert!(
        out.stderr.contains("--workspace is ignored"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--api-key-expiry is ignored"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_documented_environment_variable_takes_effect() {
    let check = |env: &[(&str, &str)], files: &[(&str, &str)], want: &[&str]| {
        let out = run_cli(&["--check-config", APP], env, files);
        assert_eq!(out.code, Some(0), "{env:?}: stderr:\n{}", out.stderr);
        for w in want {
            assert!(
                out.stdout.contains(w),
                "{env:?}: no {w:?} in\n{}",
                out.stdout
            );
        }
    };
    check(
        &[("ORY_PROJECT_SLUG", "my-slug")],
        &[],
        &[
            "project = \"my-slug\"",
            "https://my-slug.projects.oryapis.com",
        ],
    );
    check(
        &[("ORY_PROJECT", "other-slug")],
        &[],
        &["https://other-slug.projects.oryapis.com"],
    );
    check(
        &[("ORY_SDK_URL", ORY)],
        &[],
        &["sdk_url = \"http://127.0.0.1:4433/\""],
    );
    check(
        &[("ORY_KRATOS_URL", "http://127.0.0.1:4434")],
        &[],
        &["sdk_url = \"http://127.0.0.1:4434/\""],
    );
    check(
        &[("ORY_SDK_URL", ORY), ("PORT", "4777")],
        &[],
        &["port = 4777"],
    );
    check(
        &[("ORY_SDK_URL", ORY), ("ORY_PROXY_CONFIG", "elsewhere.toml")],
        &[("elsewhere.toml", "[cookies]\ndomain = \"env.example\"\n")],
        &["domain = \"env.example\""],
    );
    // A flag beats the environment.
    let out = run_cli(
        &["--check-config", "--port", "4888", APP],
        &[("ORY_SDK_URL", ORY), ("PORT", "4777")],
        &[],
    );
    assert!(out.stdout.contains("port = 4888"), "{}", out.stdout);
}

#[test]
fn the_go_clis_json_config_given_to_c_gets_a_clear_error() {
    let out = run_cli(
        &["-c", "ory-cloud.json", "--sdk-url", ORY, APP],
        &[],
        &[("ory-cloud.json", "{\"version\":\"v0alpha0\"}")],
    );
    assert_one_line(&out, 2, &["ory-cloud.json", "proxy.toml", "JSON"]);
}

/// The lines of `[section]` in a `--check-config` print-out.
fn section<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .split(&format!("\n[{name}]\n"))
        .nth(1)
        .unwrap_or_default()
        .split("\n[")
        .next()
        .unwrap_or_default()
        .lines()
        .collect()
}

#[test]
fn every_key_is_settable_by_an_ory_proxy_variable() {
    let out = run_cli(
        &["--check-config", APP],
        &[
            ("ORY_PROXY_SDK_URL", ORY),
            ("ORY_PROXY_JWT__TTL", "5m"),
            (
                "ORY_PROXY_CORS__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("ORY_PROXY_SESSION__CACHE_MAX_ENTRIES", "7"),
            ("ORY_PROXY_REWRITE_HOST", "true"),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let jwt = section(&out.stdout, "jwt");
    assert!(
        jwt.iter().any(|l| l.starts_with("ttl = \"5m\"")),
        "{}",
        out.stdout
    );
    let cors = section(&out.stdout, "cors");
    assert!(
        cors.iter()
            .any(|l| l
                .starts_with("allowed_origins = [\"https://a.example\", \"https://b.example\"]")),
        "{}",
        out.stdout
    );
    for want in [
        "sdk_url = \"http://127.0.0.1:4433/\"",
        "cache_max_entries = 7",
        "rewrite_host = true",
        "# env ORY_PROXY_JWT__TTL",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in\n{}", out.stdout);
    }
    // A flag beats the variable, the variable beats the file.
    let out = run_cli(
        &[
            "--check-config",
            "-c",
            "proxy.toml",
            "--cookie-domain",
            "flag.example",
            APP,
        ],
        &[
            ("ORY_PROXY_SDK_URL", ORY),
            ("ORY_PROXY_COOKIES__DOMAIN", "env.example"),
            ("ORY_PROXY_JWT__ISSUER", "env-issuer"),
        ],
        &[(
            "proxy.toml",
            "[cookies]\ndomain = \"file.example\"\n[jwt]\nissuer = \"file-issuer\"\n",
        )],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("domain = \"flag.example\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("issuer = \"env-issuer\""),
        "{}",
        out.stdout
    );
}

#[test]
fn a_bad_ory_proxy_variable_names_itself_and_a_typo_is_warned_about() {
    let out = run_cli(
        &["--check-config", APP],
        &[("ORY_PROXY_SDK_URL", ORY), ("ORY_PROXY_JWT__TTL", "0s")],
        &[],
    );
    assert_one_line(
        &out,
        1,
        &["env ORY_PROXY_JWT__TTL", "jwt.ttl", "at least 1s"],
    );
    let out = run_cli(
        &["--check-config", APP],
        &[("ORY_PROXY_SDK_URL", ORY), ("ORY_PROXY_JWT_TTL", "5m")],
        &[],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("ORY_PROXY_JWT_TTL is not a setting"),
        "{}",
        out.stderr
    );
}

/// However a key is written, an invalid value names the file, its line and the key.
#[test]
fn an_invalid_value_names_file_line_and_key_in_every_toml_form() {
    for (toml, line) in [
        ("dev = false\njwt = { ttl = \"0s\" }\n", "proxy.toml:2"),
        ("dev = false\n\njwt.ttl = \"0s\"\n", "proxy.toml:3"),
        ("[jwt]\nissuer = \"i\"\n\"ttl\" = \"0s\"\n", "proxy.toml:3"),
        ("[jwt]\n\n\nttl = \"0s\"\n", "proxy.toml:4"),
    ] {
        let out = run_cli(
            &["--check-config", "-c", "proxy.toml", "--sdk-url", ORY, APP],
            &[],
            &[("proxy.toml", toml)],
        );
        assert_one_line(&out, 1, &[line, "`jwt.ttl`", "at least 1s"]);
    }
    // A wrong type in an inline table, too, and when starting for real (exit 2).
    let out = run_cli(
        &["-c", "proxy.toml", "--sdk-url", ORY, APP],
        &[],
        &[(
            "proxy.toml",
            "port = 4000\nsession = { cache_ttl = \"1s\", cache_max_entries = \"many\" }\n",
        )],
    );
    assert_one_line(&out, 2, &["proxy.toml:2", "`session.cache_max_entries`"]);
}

/// `ory-proxy keys …` (README, "Rotating keys"): the key id on stdout, one line on stderr
/// (the summary, or the error with exit code 1), and a bad use is a usage error (exit 2).
#[test]
fn keys_subcommands_print_the_key_id_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let file = path.to_str().unwrap();
    let out = run_cli(&["keys", "generate", "--out", file], &[], &[]);
    assert_one_line(&out, 0, &["wrote", file, "mode 0600"]);
    let first = out.stdout.trim().to_string();
    assert_eq!(first.len(), 43, "an RFC 7638 thumbprint: {first}");
    let out = run_cli(&["keys", "generate", "--out", file], &[], &[]);
    assert_one_line(&out, 1, &["exists", "keys rotate"]);

    let out = run_cli(&["keys", "rotate", file], &[], &[]);
    assert_one_line(&out, 0, &["added key", "signing in 10m"]);
    let second = out.stdout.trim().to_string();
    let out = run_cli(&["keys", "list", file], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("{first}  signing")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{second}  signs from")),
        "{}",
        out.stdout
    );
    let out = run_cli(
        &["keys", "rotate", "--publish-ahead", "30s", file],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning"),
        "a short publish-ahead: {}",
        out.stderr
    );

    let missing = dir.path().join("missing.json");
    let out = run_cli(&["keys", "rotate", missing.to_str().unwrap()], &[], &[]);
    assert_one_line(&out, 1, &["does not exist", "keys generate --out"]);
    let out = run_cli(
        &["keys", "rotate", "--publish-ahead", "soon", file],
        &[],
        &[],
    );
    assert_one_line(&out, 2, &["soon", "--publish-ahead"]);
    let out = run_cli(&["keys"], &[], &[]);
    assert_one_line(&out, 2, &["subcommand"]);
}

#[test]
fn keys_file_read_only_needs_a_keys_file() {
    let env = [("ORY_PROXY_JWT__KEYS_FILE_READ_ONLY", "true")];
    let out = run_cli(&["--sdk-url", ORY, APP], &env, &[]);
    assert_one_line(&out, 2, &["keys_file_read_only", "keys_file"]);
}

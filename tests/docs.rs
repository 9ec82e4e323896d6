//! The documentation held to the code: `config/proxy.toml` lists every key of the key tree at
//! its built-in default, marks exactly the live keys "(live)", the README's flag table
//! names exactly the flags clap knows, hidden ones excepted (as in `tests/release.rs`: the
//! packaging flags are for packagers, and the README names them in its Release section), and
//! the README shows every `ory-proxy keys` subcommand with its flags.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use ory_proxy::cli::Cli;
use ory_proxy::config::{dotted, file, keys, Tree};

fn repo_file(name: &str) -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn proxy_toml_sets_every_key_to_its_default() {
    let (path, text) = repo_file("config/proxy.toml");
    let layer = file::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Tree::defaults().to_table().unwrap();
    for (key, value) in dotted::leaves(&defaults) {
        assert_eq!(
            dotted::get(&layer.table, &key),
            Some(value),
            "config/proxy.toml: `{key}` is missing or not the built-in default"
        );
    }
    // And nothing else: every key it sets is a key of the tree (parse refuses unknown ones).
    assert_eq!(dotted::leaves(&layer.table).len(), Tree::keys().len());
}

#[test]
fn proxy_toml_marks_exactly_the_live_keys() {
    let (path, text) = repo_file("config/proxy.toml");
    let layer = file::parse(&path, &text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for key in Tree::keys() {
        let line = layer
            .line_of(&key)
            .unwrap_or_else(|| panic!("`{key}` is not in config/proxy.toml"));
        // The comment block right above the key.
        let comment: Vec<&str> = lines[..line - 1]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect();
        assert!(
            !comment.is_empty(),
            "`{key}` has no comment in config/proxy.toml"
        );
        let marked = comment.iter().any(|l| l.contains("(live)"));
        assert_eq!(
            marked,
            keys::is_live(&key),
            "config/proxy.toml: `{key}` is {}live but {}marked (live)",
            if keys::is_live(&key) { "" } else { "not " },
            if marked { "" } else { "not " },
        );
    }
}

/// The flags of the README's table: every backticked name in its first column.
fn readme_flags() -> BTreeSet<String> {
    let (_, text) = repo_file("README.md");
    let table = text
        .split("| flag | env | default | meaning |")
        .nth(1)
        .expect("the README has a flag table");
    let mut out = BTreeSet::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for quoted in first.split('`').skip(1).step_by(2) {
            for name in quoted.split(", ") {
                let name = name.split_whitespace().next().unwrap_or_default();
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The flags clap knows, `hidden` ones or the others.
fn clap_flags(hidden: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for arg in Cli::command().get_arguments() {
        if arg.is_hide_set() != hidden {
            continue;
        }
        if arg.is_positional() {
            let name = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string());
            out.insert(name.unwrap_or_else(|| arg.get_id().to_string()));
            continue;
        }
        out.extend(arg.get_long().map(|l| format!("--{l}")));
        out.extend(arg.get_short().map(|s| format!("-{s}")));
    }
    out
}

#[test]
fn the_readme_flag_table_matches_the_flags() {
    let (readme, clap) = (readme_flags(), clap_flags(false));
    assert!(clap.contains("--sdk-url") && clap.contains("APPLICATION_URL"));
    assert_eq!(
        readme.difference(&clap).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the README's flag table, not a flag"
    );
    assert_eq!(
        clap.difference(&readme).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "flags missing from the README's flag table"
    );
}

#[test]
fn the_readme_names_the_hidden_flags_outside_the_table() {
    let hidden = clap_flags(true);
    assert!(hidden.contains("--completions") && hidden.contains("--man"));
    let (_, text) = repo_file("README.md");
    for flag in &hidden {
        assert!(
            text.contains(&format!("ory-proxy {flag}")),
            "the README does not show the hidden flag {flag}"
        );
        assert!(!readme_flags().contains(flag), "{flag} is hidden");
    }
}

#[test]
fn the_readme_shows_every_keys_subcommand_and_its_flags() {
    let (_, text) = repo_file("README.md");
    let cli = Cli::command();
    let keys = cli
        .get_subcommands()
        .find(|c| c.get_name() == "keys")
        .expect("the keys subcommand");
    let mut seen = 0;
    for sub in keys.get_subcommands() {
        let shown = format!("ory-proxy keys {}", sub.get_name());
        assert!(text.contains(&shown), "the README does not show `{shown}`");
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                let flag = format!("--{long}");
                assert!(
                    text.contains(&format!("{shown} ")) && text.contains(&flag),
                    "the README does not show {flag} of `{shown}`"
                );
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 3, "generate, rotate, list");
}

//! What a reload changed, derived from the key tree: two merged trees as TOML tables are
//! compared leaf by leaf, and each changed key is live or restart-only as its section declares
//! ([`crate::config::keys::is_live`]). No key is named here.

use toml::Table;

use crate::config::dotted;
use crate::config::keys::is_live;
use crate::config::Origin;

/// Restart-only keys whose values in `next` differ from the `running` ones.
pub fn restart_only_changes(running: &Table, next: &Table) -> Vec<String> {
    let mut keys = dotted::changed(running, next);
    keys.retain(|k| !is_live(k));
    keys
}

/// Live keys whose values in `next` differ from the `current` ones.
pub fn live_changes(current: &Table, next: &Table) -> Vec<String> {
    let mut keys = dotted::changed(current, next);
    keys.retain(|k| is_live(k));
    keys
}

/// `running` with the live keys of `next`: what a reload may apply. Restart-only values stay as
/// they run, so a pending restart-only change never leaks into the live settings (the CORS
/// policy holds the publish origin and `dev`; the default redirect and issuer default to
/// fixed URLs).
pub fn with_live_keys(running: &Table, next: &Table) -> Table {
    let mut out = running.clone();
    for (key, value) in dotted::leaves(next) {
        if is_live(&key) {
            dotted::insert(&mut out, &key, value.clone());
        }
    }
    out
}

/// Pinned keys whose value in the file differs between `prev` and `next` (and is set in
/// `next`): edits that the flag or env var silently overrides unless someone says so.
pub fn pinned_edits(
    prev: &Table,
    next: &Table,
    pinned: &[(String, Origin)],
) -> Vec<(String, Origin)> {
    pinned
        .iter()
        .filter(|(key, _)| {
            let new = dotted::get(next, key);
            new.is_some() && new != dotted::get(prev, key)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::cli::Cli;
    use crate::config::{Loaded, Loader};
    use clap::Parser;

    const BASE: &str =
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:1\"\n";

    fn load(text: &str) -> (Loaded, Table) {
        let cli = Cli::parse_from(["ory-proxy", "-c", "/nonexistent/proxy.toml"]);
        let l = Loader::new(cli, Arc::new(|_: &str| None))
            .load_text(Some(text))
            .unwrap();
        let t = l.layered.merged.to_table().unwrap();
        (l, t)
    }

    #[test]
    fn diffs_name_keys_as_in_the_file() {
        let (_, a) = load(BASE);
        let (_, b) = load(&format!(
            "{BASE}port = 5000\nlog_level = \"debug\"\n[cookies]\ndomain = \"x.example\"\n[cors]\nallowed_origins = [\"https://a.example\"]\n[jwt]\nttl = \"2m\"\n[limits]\nrewrite_budget = \"1GiB\"\n"
        ));
        assert_eq!(
            restart_only_changes(&a, &b),
            ["port", "limits.rewrite_budget"]
        );
        assert_eq!(
            live_changes(&a, &b),
            [
                "log_level",
                "cookies.domain",
                "cors.allowed_origins",
                "jwt.ttl"
            ]
        );
        assert!(live_changes(&a, &a).is_empty());
        let (_, c) = load("application_url = \"http://127.0.0.1:3000\"\nproject = \"slug\"\n");
        assert_eq!(restart_only_changes(&a, &c), ["sdk_url", "project"]);
    }

    #[test]
    fn only_live_keys_cross_over() {
        let (_, a) = load(BASE);
        let (_, b) = load(&format!(
            "{BASE}dev = true\n[jwt]\nttl = \"2m\"\nkeys_file = \"k\"\n"
        ));
        let mixed = with_live_keys(&a, &b);
        assert_eq!(dotted::changed(&a, &mixed), ["jwt.ttl"]);
    }

    #[test]
    fn pinned_edits_compare_the_files_values() {
        let file = |t: &str| {
            crate::config::file::parse(Path::new("proxy.toml"), t)
                .unwrap()
                .table
        };
        let pinned = vec![(
            "cookies.domain".to_string(),
            Origin::Flag("--cookie-domain"),
        )];
        let a = file("[cookies]\ndomain = \"a.example\"\n");
        let b = file("cookies = { domain = \"b.example\" }\n");
        assert_eq!(pinned_edits(&a, &b, &pinned).len(), 1);
        assert!(pinned_edits(&a, &a, &pinned).is_empty());
        assert!(pinned_edits(&a, &file(""), &pinned).is_empty());
        assert_eq!(pinned_edits(&file(""), &b, &pinned).len(), 1);
        // The same value written another way is no edit.
        assert!(pinned_edits(&a, &file("cookies.domain = \"a.example\"\n"), &pinned).is_empty());
    }
}

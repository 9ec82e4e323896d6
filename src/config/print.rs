//! `--check-config`'s print-out: the merged key tree in `proxy.toml` form, each key with its
//! effective value (normalized, or derived when left empty) and, unless it is the built-in
//! default, where it was set. Derived from the tree, so a new key is printed without code here.

use std::fmt::Write as _;

use super::dotted;
use super::error::Origin;
use super::Loaded;

/// Column where a remark starts, so values line up when read top to bottom.
const REMARK_COLUMN: usize = 40;

pub fn effective_config(loaded: &Loaded) -> String {
    let mut out = String::from("# effective configuration (defaults < proxy.toml < env < flags)\n");
    let mut table = match loaded.layered.merged.to_table() {
        Ok(t) => t,
        Err(e) => return format!("{out}# {e}\n"),
    };
    for (key, value) in &loaded.effective.values {
        dotted::insert(&mut table, key, value.clone());
    }
    let mut section = String::new();
    // Lists of tables (`[[access.rules]]`) come after the other keys of their section.
    let mut tables: Vec<(String, &toml::Value)> = Vec::new();
    for (key, value) in dotted::leaves(&table) {
        let (sec, name) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
        if sec != section {
            print_tables(&mut out, loaded, &mut tables);
            let _ = write!(out, "\n[{sec}]\n");
            section = sec.to_string();
        }
        if is_list_of_tables(value) {
            tables.push((key.clone(), value));
            continue;
        }
        let line = format!("{name} = {value}");
        let _ = writeln!(out, "{}", with_remarks(line, &remarks(loaded, &key)));
    }
    print_tables(&mut out, loaded, &mut tables);
    out
}

fn is_list_of_tables(v: &toml::Value) -> bool {
    v.as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(toml::Value::is_table))
}

/// Each table of each list as a `[[key]]` block, the header remarked with where it was set.
fn print_tables(out: &mut String, loaded: &Loaded, tables: &mut Vec<(String, &toml::Value)>) {
    for (key, value) in tables.drain(..) {
        let items = value.as_array().map_or(&[][..], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            let header = format!("\n[[{key}]]");
            let _ = writeln!(
                out,
                "{}",
                with_remarks(header, &remarks(loaded, &format!("{key}.{i}")))
            );
            for (k, v) in item.as_table().into_iter().flatten() {
                let _ = writeln!(out, "{k} = {v}");
            }
        }
    }
}

fn with_remarks(mut line: String, remarks: &[String]) -> String {
    if !remarks.is_empty() {
        let width = line.len() - line.rfind('\n').map_or(0, |i| i + 1);
        let pad = REMARK_COLUMN.saturating_sub(width).max(1);
        let _ = write!(line, "{:pad$}# {}", "", remarks.join("; "));
    }
    line
}

fn remarks(loaded: &Loaded, key: &str) -> Vec<String> {
    let mut out: Vec<String> = match loaded.layered.origin_of(key) {
        Origin::Default => Vec::new(),
        o => vec![o.to_string()],
    };
    out.extend(
        loaded
            .effective
            .notes
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| n.clone()),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cli::Cli;
    use crate::config::Loader;
    use clap::Parser;

    fn printed(args: &[&str], env: &'static [(&'static str, &'static str)]) -> String {
        let mut a = vec!["ory-proxy"];
        a.extend_from_slice(args);
        let env = move |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let loaded = Loader::new(Cli::parse_from(a), Arc::new(env))
            .load()
            .unwrap();
        effective_config(&loaded)
    }

    #[test]
    fn every_key_is_printed_under_its_section_with_its_origin() {
        let out = printed(
            &[
                "--sdk-url",
                "http://127.0.0.1:4433",
                "--port",
                "4555",
                "http://app",
            ],
            &[
                ("ORY_PROXY_JWT__TTL", "5m"),
                ("ORY_PROXY_LIMITS__REWRITE_BUDGET", "1024MiB"),
            ],
        );
        let jwt = out.split("\n[jwt]\n").nth(1).unwrap();
        let jwt = jwt.split("\n[").next().unwrap();
        assert!(
            jwt.lines()
                .any(|l| l.starts_with("ttl = \"5m\"") && l.ends_with("# env ORY_PROXY_JWT__TTL")),
            "{out}"
        );
        // Normalized and derived values; defaults carry no remark.
        assert!(
            out.contains("\nsdk_url = \"http://127.0.0.1:4433/\""),
            "{out}"
        );
        assert!(
            out.contains("\npublish_url = \"http://localhost:4555\"\n"),
            "{out}"
        );
        assert!(
            out.contains("\nissuer = \"http://127.0.0.1:4433\"\n"),
            "{out}"
        );
        assert!(out.contains("\nport = 4555 "), "{out}");
        assert!(out.contains("# flag --port"), "{out}");
        assert!(out.contains("\nresponse_timeout = \"1m\"\n"), "{out}");
        // A size in its largest whole unit.
        assert!(
            out.contains("\nrewrite_budget = \"1GiB\"")
                && out.contains("# env ORY_PROXY_LIMITS__REWRITE_BUDGET"),
            "{out}"
        );
        assert!(
            out.contains("\n[limits]\nbody_idle_timeout = \"30s\"\n"),
            "{out}"
        );
        for key in crate::config::Tree::keys() {
            let name = key.rsplit('.').next().unwrap();
            assert!(
                out.contains(&format!("\n{name} = ")),
                "{key} missing in {out}"
            );
        }
    }

    #[test]
    fn a_project_names_where_ory_is() {
        let out = printed(&["http://app"], &[("ORY_PROJECT_SLUG", "my-slug")]);
        assert!(
            out.contains("# env ORY_PROJECT_SLUG; Ory at https://my-slug.projects.oryapis.com"),
            "{out}"
        );
    }
}

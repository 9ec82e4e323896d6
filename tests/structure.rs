//! The code's shape, held by tests: no import cycles between the modules of `src/` (neither
//! between files nor between the top-level layers: cli, config, the actors, proxy, server), and
//! no file there over 500 lines. Read from the source text, so it needs no build tooling.
//!
//! A module depends on another when it names it in a path: `use crate::a::b`, `super::X`, or
//! `crate::a::f()` inline. A child naming its parent (`super::ProxyState`) and a parent naming
//! its child (`pub use child::X`) are both dependencies, so a parent that re-exports a child
//! which uses the parent is a cycle too. `#[cfg(test)]` modules are left out: tests may look
//! anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines a file in `src/` may have.
const MAX_LINES: usize = 500;

/// Cycles known and left to their owner; none may be added.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `proxy::forward` for `src/proxy/forward/mod.rs` or `src/proxy/forward.rs`; `""` for lib.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.last().map(String::as_str) {
        Some("main") => return None, // the binary: not part of the library's layering
        Some("mod" | "lib") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts.join("::"))
}

/// The text that counts: no test module (`#[cfg(test)]`, `#[cfg(all(test, unix))]`, …; by
/// this crate's convention at the end of its file) and no line comments.
fn code_of(text: &str) -> String {
    let mut cut = text.len();
    let mut search = 0;
    while let Some(i) = text[search..].find("#[cfg(") {
        let at = search + i;
        search = at + 1;
        let Some(len) = text[at..].find(']') else {
            break;
        };
        let attr = &text[at..at + len];
        let for_tests = attr
            .split(|c: char| !is_ident(c))
            .any(|word| word == "test");
        let rest = text[at + len + 1..].trim_start();
        if for_tests && (rest.starts_with("mod ") || rest.starts_with("pub mod ")) {
            cut = at;
            break;
        }
    }
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            // Not inside a string such as "http://…": good enough for paths.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|item| {
            expand(item).into_iter().map(move |p| match p.as_str() {
                "self" => prefix.to_string(),
                _ => format!("{prefix}::{p}"),
            })
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path a file's code names, `use` trees expanded.
fn paths_in(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + 4..];
        if before.is_some_and(is_ident) {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        paths.extend(expand(&rest[..end]));
    }
    // Inline paths: every `a::b…` that starts a path (not `x::a::b`); `resolve` keeps those
    // that name a module of this crate (`crate::`, `super::`, `self::` or a child).
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find("::") {
        let colons = from + i;
        from = colons + 2;
        let start = code[..colons]
            .rfind(|c: char| !is_ident(c))
            .map_or(0, |j| j + 1);
        let continues_a_path =
            start > 0 && (bytes[start - 1] == b':' || is_ident(bytes[start - 1] as char));
        if start == colons || continues_a_path {
            continue;
        }
        let len = code[start..]
            .find(|c: char| !(is_ident(c) || c == ':'))
            .unwrap_or(code.len() - start);
        let path = code[start..start + len].trim_end_matches(':');
        // A lone `super` is a `use super::{…}` group's head: its items were expanded above.
        if path.contains("::") {
            paths.push(path.to_string());
        }
    }
    paths
}

/// The module a path names, from the module `from`: the longest prefix that is a module.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super" | &"self") => {
            while let Some(&s) = segs.first() {
                match s {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs.remove(0);
            }
        }
        // A child of this module (`pub use child::X` in a mod.rs), else another crate.
        Some(first)
            if modules.contains(
                &format!("{from}::{first}")
                    .trim_start_matches("::")
                    .to_string(),
            ) => {}
        _ => return None,
    }
    base.extend(segs);
    (1..=base.len())
        .rev()
        .map(|n| base[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// The strongly connected components with more than one member: the cycles.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

/// Module → the modules it depends on, for every module of `src/`.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let code: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).expect("read a source file");
            Some((module_of(src, f)?, code_of(&text)))
        })
        .collect();
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    code.iter()
        .map(|(m, text)| {
            let deps = paths_in(text)
                .iter()
                .filter_map(|p| resolve(m, p, &modules))
                .filter(|d| d != m && !d.is_empty())
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycles_between_files() {
    let edges = dependencies(&src_dir());
    assert!(
        edges.get("server").is_some_and(|d| d.contains("proxy")),
        "the reader found no dependencies at all: {edges:?}"
    );
    let found: Vec<Vec<String>> = cycles(&edges)
        .into_iter()
        .filter(|c| {
            !KNOWN_CYCLES.contains(&c.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
        })
        .collect();
    assert!(found.is_empty(), "modules importing each other: {found:?}");
}

#[test]
fn no_import_cycles_between_layers() {
    let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in dependencies(&src_dir()) {
        let entry = layers.entry(top(&m)).or_default();
        entry.extend(deps.iter().map(|d| top(d)).filter(|d| *d != top(&m)));
    }
    assert!(
        layers.get("server").is_some_and(|d| d.contains("proxy")),
        "the reader found no dependencies at all: {layers:?}"
    );
    let found = cycles(&layers);
    assert!(found.is_empty(), "layers importing each other: {found:?}");
}

#[test]
fn no_file_in_src_is_over_the_limit() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            let rel = f
                .strip_prefix(root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            (n > MAX_LINES).then(|| format!("{rel} ({n} lines)"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines, split by job: {long:?}"
    );
}

/// The reader itself: a cycle it is shown is one it finds.
#[test]
fn the_reader_sees_a_cycle_through_a_re_export() {
    let modules: BTreeSet<String> = ["a", "a::child", "b"].map(String::from).into();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, text) in [
        ("a", "use crate::b::{self, Y};\nfn f() { child::g(); }"),
        (
            "a::child",
            "use super::{Shared, other::Z};\nfn f() { crate::b::g(); std::mem::drop(1); }",
        ),
        (
            "b",
            "// use crate::a::Nothing;\nfn h() {}\n#[cfg(all(test, unix))]\nmod t { use crate::a; }",
        ),
    ] {
        let deps = paths_in(&code_of(text))
            .iter()
            .filter_map(|p| resolve(from, p, &modules))
            .filter(|d| d != from)
            .collect();
        edges.insert(from.to_string(), deps);
    }
    assert_eq!(edges["a"], ["a::child", "b"].map(String::from).into());
    assert_eq!(edges["a::child"], ["a", "b"].map(String::from).into());
    assert!(
        edges["b"].is_empty(),
        "comments and test modules do not count"
    );
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_string(), "a::child".into()]]
    );
    assert_eq!(
        expand("crate::proxy::{self, answer::{ProxyError, with_dev_page}, route}"),
        [
            "crate::proxy",
            "crate::proxy::answer::ProxyError",
            "crate::proxy::answer::with_dev_page",
            "crate::proxy::route"
        ]
    );
}

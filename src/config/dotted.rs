//! Keys of the tree as dotted names (`jwt.ttl`) over TOML tables: the generic operations that
//! let layering, the reload diff and `--check-config` work on any key without naming it.

use toml::{Table, Value};

/// Every leaf of `t` with its dotted key, in table order. The tree has two levels: a table at
/// the top is a section, whose keys are leaves; a table inside a section is one value (a map
/// such as `access.identity_headers`), as is a list of tables (`access.rules`).
pub fn leaves(t: &Table) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (k, v) in t {
        match v {
            Value::Table(section) => {
                out.extend(section.iter().map(|(name, leaf)| (join(k, name), leaf)));
            }
            leaf => out.push((k.clone(), leaf)),
        }
    }
    out
}

/// `prefix.name`, or `name` at the top level.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The value at a dotted key.
pub fn get<'a>(t: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = t.get(parts.next()?)?;
    parts.try_fold(first, |v, k| v.get(k))
}

/// Sets the value at a dotted key, creating the tables on the way.
pub fn insert(t: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            t.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = t
                .entry(head.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if !inner.is_table() {
                *inner = Value::Table(Table::new());
            }
            if let Value::Table(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// The leaves whose values differ between `a` and `b` (set in one and not the other counts),
/// in `a`'s order, then those only `b` has.
pub fn changed(a: &Table, b: &Table) -> Vec<String> {
    let (la, lb) = (leaves(a), leaves(b));
    let mut out: Vec<String> = la
        .iter()
        .filter(|(k, v)| get(b, k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(
        lb.iter()
            .filter(|(k, _)| get(a, k).is_none())
            .map(|(k, _)| k.clone()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn leaves_are_dotted_and_in_order() {
        let t = table("b = 1\na = [1]\n[z]\ny = \"x\"\nm = { k = 1 }\n[c]\n");
        let keys: Vec<String> = leaves(&t).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["b", "a", "z.y", "z.m"],
            "a map in a section is one value"
        );
        assert_eq!(get(&t, "z.y"), Some(&Value::from("x")));
        assert_eq!(get(&t, "z.q"), None);
        assert_eq!(get(&t, "b.c"), None);
    }

    #[test]
    fn insert_creates_tables() {
        let mut t = Table::new();
        insert(&mut t, "jwt.ttl", "5m".into());
        insert(&mut t, "port", 1.into());
        assert_eq!(t, table("port = 1\n[jwt]\nttl = \"5m\"\n"));
    }

    #[test]
    fn changed_names_each_differing_leaf() {
        let a = table("p = 1\nq = 2\n[s]\nx = [\"a\"]\ny = 1\n");
        let b = table("p = 1\nq = 3\n[s]\nx = [\"b\"]\nz = 1\n");
        assert_eq!(changed(&a, &b), ["q", "s.x", "s.y", "s.z"]);
        assert!(changed(&a, &a).is_empty());
    }
}

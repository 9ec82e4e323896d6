//! Micro-benchmarks of the access rules' lookup, as the worker pays for it on every app-bound
//! request: the path read as an app reads it, then the first matching rule of 100.
//!
//! - `access/100/plain`: a plain path whose first segment has rules (`/app50/items/42`).
//! - `access/100/unmatched`: a path no rule matches (only the wildcard rules are tried).
//! - `access/100/encoded`: `/%61pp50/items/42`: percent-decoding first.
//! - `access/100/dot-segments`: `/app1/../app50/items/42`: matched resolved and as written.
//! - `access/0`: no rules at all (the default for every request).
//!
//!     cargo bench --bench access -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use actix_web::http::Method;
use criterion::{criterion_group, criterion_main, Criterion};

use ory_proxy::access::glob::PathGlob;
use ory_proxy::access::{IdentityHeaders, Methods, Policy, Requirement, Rule, RuleSet};

/// 100 rules: 90 under a literal first segment (two globs each), 10 whose first segment is a
/// wildcard (tried for every path), in the order an operator might write them.
fn hundred_rules() -> Policy {
    let mut rules = Vec::new();
    for i in 0..100 {
        let (paths, require) = match i % 10 {
            3 => (vec![format!("/*/private{i}/**")], Requirement::Session),
            _ => (
                vec![format!("/app{i}/items/*"), format!("/app{i}/admin/**")],
                Requirement::Aal2,
            ),
        };
        let paths = paths
            .iter()
            .map(|p| PathGlob::parse(p).expect("glob"))
            .collect();
        let methods = if i % 2 == 0 {
            Methods::default()
        } else {
            Methods::parse(&["GET".into()]).expect("methods")
        };
        rules.push(Rule::new(
            &format!("rule {i}"),
            require,
            paths,
            methods,
            Vec::new(),
        ));
    }
    Policy::new(
        RuleSet::new(rules, Requirement::Optional),
        "",
        "http://localhost:4000",
        IdentityHeaders::default(),
    )
}

fn bench(c: &mut Criterion) {
    let policy = hundred_rules();
    // The lookups below must find what they claim to, or the figures measure nothing.
    assert_eq!(
        &*policy.rule_for(&Method::GET, "/app50/items/42").name,
        "rule 50"
    );
    assert_eq!(
        &*policy.rule_for(&Method::GET, "/%61pp50/items/42").name,
        "rule 50"
    );
    assert_eq!(
        &*policy
            .rule_for(&Method::GET, "/app1/../app50/items/42")
            .name,
        "rule 50"
    );
    assert_eq!(
        &*policy.rule_for(&Method::GET, "/nowhere/at/all").name,
        "default"
    );
    let mut g = c.benchmark_group("access");
    for (name, path) in [
        ("100/plain", "/app50/items/42"),
        ("100/unmatched", "/nowhere/at/all"),
        ("100/encoded", "/%61pp50/items/42"),
        ("100/dot-segments", "/app1/../app50/items/42"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(policy.rule_for(&Method::GET, black_box(path))).require)
        });
    }
    let none = Policy::new(
        RuleSet::new(Vec::new(), Requirement::Optional),
        "",
        "http://localhost:4000",
        IdentityHeaders::default(),
    );
    g.bench_function("0", |b| {
        b.iter(|| black_box(none.rule_for(&Method::GET, black_box("/app50/items/42"))).require)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

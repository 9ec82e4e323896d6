//! The ordered rules and the index that finds the first one a request meets.
//!
//! Compiled once per configuration load. Each path glob is filed under its first segment when
//! that is literal (`/admin/**` under `admin`), or among the wildcard ones (`/**`, `/*.php`);
//! a request is then checked against the globs of its own first segment and the wildcard ones
//! only, in rule order, so the cost hardly grows with the number of rules.
//!
//! When a path's two spellings (see [`super::path`]) meet different rules, the stricter rule
//! applies: a path with dot segments is protected as well as the app that reads it either way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use actix_web::http::Method;

use super::decision::Requirement;
use super::glob::{EmailGlob, PathGlob};
use super::path::Spellings;
use crate::metrics::{AccessDecision, DecisionCounts, Metrics};

/// The methods a rule is for, as a bit set; empty = any method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods(u16);

/// The methods a rule may name, each with its bit; `GET` brings `HEAD` along.
const METHODS: [(&str, u16); 9] = [
    ("GET", 1 << 0 | 1 << 1),
    ("HEAD", 1 << 1),
    ("POST", 1 << 2),
    ("PUT", 1 << 3),
    ("PATCH", 1 << 4),
    ("DELETE", 1 << 5),
    ("OPTIONS", 1 << 6),
    ("TRACE", 1 << 7),
    ("CONNECT", 1 << 8),
];

/// The bit of methods no rule can name (WebDAV's `PROPFIND`, …): only "any method" meets them.
const OTHER_METHOD: u16 = 1 << 15;

impl Methods {
    /// From the configured names, in any case; the error names an unknown one.
    pub fn parse(names: &[String]) -> Result<Methods, String> {
        let mut bits = 0;
        for n in names {
            let upper = n.trim().to_ascii_uppercase();
            match METHODS.iter().find(|(m, _)| *m == upper) {
                Some((_, b)) => bits |= b,
                None => {
                    let known: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
                    return Err(format!("{n:?} is no method: {}", known.join(", ")));
                }
            }
        }
        Ok(Methods(bits))
    }

    /// The bit of a request's method.
    pub fn bit(m: &Method) -> u16 {
        METHODS
            .iter()
            // In any case: a server that uppercases the method (Django, Flask, Symfony) must
            // not run `delete` as a DELETE that the rules did not see.
            .find(|(name, _)| name.eq_ignore_ascii_case(m.as_str()))
            // GET's own bit is the lowest of its two.
            .map_or(OTHER_METHOD, |(_, b)| b & b.wrapping_neg())
    }

    fn allows(self, bit: u16) -> bool {
        self.0 == 0 || self.0 & bit != 0
    }

    /// The names it stands for (`HEAD` with `GET`); none = any method.
    pub fn names(self) -> Vec<&'static str> {
        METHODS
            .iter()
            .filter(|(_, b)| self.0 & (b & b.wrapping_neg()) != 0)
            .map(|(m, _)| *m)
            .collect()
    }
}

/// One rule, compiled.
#[derive(Debug)]
pub struct Rule {
    /// In logs and metrics; `default` for the requirement of requests no rule meets.
    pub name: Arc<str>,
    pub require: Requirement,
    pub paths: Vec<PathGlob>,
    pub methods: Methods,
    pub allow_emails: Vec<EmailGlob>,
    /// This rule's counts in the metrics, found by name on its first decision.
    counts: OnceLock<Arc<DecisionCounts>>,
}

impl PartialEq for Rule {
    fn eq(&self, o: &Rule) -> bool {
        (
            &self.name,
            self.require,
            &self.paths,
            self.methods,
            &self.allow_emails,
        ) == (&o.name, o.require, &o.paths, o.methods, &o.allow_emails)
    }
}

/// The name under which requests that meet no rule are logged and counted.
pub const DEFAULT_RULE: &str = "default";

impl Rule {
    pub fn new(
        name: &str,
        require: Requirement,
        paths: Vec<PathGlob>,
        methods: Methods,
        allow_emails: Vec<EmailGlob>,
    ) -> Rule {
        Rule {
            name: name.into(),
            require,
            paths,
            methods,
            allow_emails,
            counts: OnceLock::new(),
        }
    }

    /// Counts a decision under this rule's name.
    pub fn count(&self, d: AccessDecision, metrics: &Metrics) {
        self.counts
            .get_or_init(|| metrics.access.rule(&self.name))
            .add(d);
    }

    /// Orders rules by how much they ask: the requirement, then a list of allowed addresses.
    fn strictness(&self) -> (Requirement, bool) {
        (self.require, !self.allow_emails.is_empty())
    }

    /// Of the rules two readings of one request meet, the one that asks more; `a` on a tie.
    pub fn stricter<'a>(a: &'a Rule, b: &'a Rule) -> &'a Rule {
        if b.strictness() > a.strictness() {
            b
        } else {
            a
        }
    }
}

/// The rules in file order, the default behind them, and the first-segment index, once as
/// written and once lowercased (for apps whose routes ignore case).
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Rule,
    exact: Index,
    lowercase: Index,
    /// Some rule applies to some methods only.
    limits_methods: bool,
    /// Some glob has an uppercase letter: its lowercase reading differs.
    globs_upper: bool,
}

/// Where each glob is filed.
#[derive(Debug, Default)]
struct Index {
    /// Every glob as `(rule, glob)`, in rule order: a glob's id is its place here.
    globs: Vec<(u32, PathGlob)>,
    /// Ids of the globs whose first segment is literal, by that segment (`""` for `/`).
    by_first: HashMap<Box<[u8]>, Vec<u32>>,
    /// Ids of the globs whose first segment is a wildcard.
    wild: Vec<u32>,
}

impl Index {
    fn new(globs: impl Iterator<Item = (usize, PathGlob)>) -> Index {
        let mut index = Index::default();
        for (r, glob) in globs {
            let id = index.globs.len() as u32;
            match glob.first_literal() {
                Some(first) => index.by_first.entry(first.into()).or_default().push(id),
                None => index.wild.push(id),
            }
            index.globs.push((r as u32, glob));
        }
        index
    }

    /// The first of `rules` whose method and a glob match `segments`, else `default`.
    fn first_match<'a>(
        &self,
        rules: &'a [Rule],
        default: &'a Rule,
        method_bit: u16,
        segments: &[&[u8]],
    ) -> &'a Rule {
        let first: &[u8] = segments.first().copied().unwrap_or(b"");
        let literal = self.by_first.get(first).map_or(&[][..], Vec::as_slice);
        let (mut i, mut j) = (0, 0);
        // The two id lists merged in order: the first glob to match is the first rule's.
        loop {
            let id = match (literal.get(i), self.wild.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => return default,
            };
            let (r, glob) = &self.globs[id as usize];
            let rule = &rules[*r as usize];
            if rule.methods.allows(method_bit) && glob.matches(segments) {
                return rule;
            }
        }
    }
}

impl PartialEq for RuleSet {
    fn eq(&self, o: &RuleSet) -> bool {
        self.rules == o.rules && self.default == o.default
    }
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>, default: Requirement) -> RuleSet {
        let globs = || {
            rules
                .iter()
                .enumerate()
                .flat_map(|(r, rule)| rule.paths.iter().map(move |g| (r, g)))
        };
        RuleSet {
            default: Rule::new(DEFAULT_RULE, default, Vec::new(), Methods(0), Vec::new()),
            exact: Index::new(globs().map(|(r, g)| (r, g.clone()))),
            lowercase: Index::new(globs().map(|(r, g)| (r, g.to_ascii_lowercase()))),
            limits_methods: rules.iter().any(|r| r.methods.0 != 0),
            globs_upper: globs().any(|(_, g)| g.as_str().bytes().any(|b| b.is_ascii_uppercase())),
            rules,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule of requests that meet none.
    pub fn default_rule(&self) -> &Rule {
        &self.default
    }

    /// Whether some glob has an uppercase letter (see [`super::path::lowercase_spellings`]).
    pub fn globs_upper(&self) -> bool {
        self.globs_upper
    }

    /// Whether some rule applies to some methods only: then the methods a request may stand
    /// for matter (see [`super::method_override`]).
    pub fn limits_methods(&self) -> bool {
        self.limits_methods
    }

    /// The rule a request meets: the first whose method and path match, else the default; when
    /// the path's written spelling meets a stricter rule than its resolved one, that rule.
    pub fn rule_for(&self, method: &Method, path: &Spellings<'_>) -> &Rule {
        self.rule_in(&self.exact, method, path)
    }

    /// [`Self::rule_for`] with the path and the globs lowercased (see
    /// [`super::path::lowercase_spellings`]).
    pub fn rule_for_lowercase(&self, method: &Method, path: &Spellings<'_>) -> &Rule {
        self.rule_in(&self.lowercase, method, path)
    }

    fn rule_in(&self, index: &Index, method: &Method, path: &Spellings<'_>) -> &Rule {
        if self.rules.is_empty() {
            return &self.default;
        }
        let bit = Methods::bit(method);
        let resolved = index.first_match(&self.rules, &self.default, bit, &path.resolved);
        let Some(written) = &path.written else {
            return resolved;
        };
        let other = index.first_match(&self.rules, &self.default, bit, written);
        Rule::stricter(resolved, other)
    }

    /// The first rule whose method and a glob match `segments`, else the default.
    pub fn first_match(&self, method_bit: u16, segments: &[&[u8]]) -> &Rule {
        self.exact
            .first_match(&self.rules, &self.default, method_bit, segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::path::spellings;

    fn rule(name: &str, require: Requirement, paths: &[&str], methods: &[&str]) -> Rule {
        let paths = paths.iter().map(|p| PathGlob::parse(p).unwrap()).collect();
        let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        Rule::new(
            name,
            require,
            paths,
            Methods::parse(&methods).unwrap(),
            Vec::new(),
        )
    }

    fn set() -> RuleSet {
        RuleSet::new(
            vec![
                rule("admin", Requirement::Aal2, &["/admin", "/admin/**"], &[]),
                rule(
                    "writes",
                    Requirement::Session,
                    &["/api/**"],
                    &["post", "DELETE"],
                ),
                rule("api", Requirement::Optional, &["/api/**"], &[]),
                rule(
                    "static",
                    Requirement::Public,
                    &["/static/**", "/*.ico"],
                    &[],
                ),
                rule("edit", Requirement::Session, &["/**/edit"], &[]),
                rule("home", Requirement::Public, &["/"], &["GET"]),
            ],
            Requirement::Session,
        )
    }

    fn name(set: &RuleSet, method: Method, raw: &str) -> String {
        let mut buf = Vec::new();
        set.rule_for(&method, &spellings(raw, &mut buf))
            .name
            .to_string()
    }

    #[test]
    fn first_match_in_file_order_by_method_and_path() {
        let s = set();
        assert_eq!(name(&s, Method::GET, "/admin"), "admin");
        assert_eq!(name(&s, Method::GET, "/admin/users"), "admin");
        assert_eq!(name(&s, Method::POST, "/api/items"), "writes");
        assert_eq!(name(&s, Method::GET, "/api/items"), "api");
        assert_eq!(name(&s, Method::GET, "/static/app.css"), "static");
        assert_eq!(name(&s, Method::GET, "/favicon.ico"), "static");
        assert_eq!(name(&s, Method::GET, "/posts/1/edit"), "edit");
        assert_eq!(
            name(&s, Method::GET, "/admin/1/edit"),
            "admin",
            "file order wins"
        );
        assert_eq!(name(&s, Method::GET, "/"), "home");
        assert_eq!(name(&s, Method::HEAD, "/"), "home", "GET brings HEAD");
        assert_eq!(name(&s, Method::POST, "/"), DEFAULT_RULE);
        assert_eq!(name(&s, Method::GET, "/elsewhere"), DEFAULT_RULE);
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(name(&s, propfind.clone(), "/api/x"), "api");
        assert_eq!(name(&s, propfind, "/"), DEFAULT_RULE);
    }

    #[test]
    fn no_spelling_slips_past_a_rule() {
        let s = set();
        for raw in [
            "/%61dmin/x",
            "//admin/x",
            "/admin/./x",
            "/public/../admin/x",
            "/static/../admin/x",
            "/admin%2Fx",
            "/admin;x=1/y",
            "/static/..;/admin/x",
        ] {
            assert_eq!(name(&s, Method::GET, raw), "admin", "{raw}");
        }
        // Read as written (`/admin/..` kept), an app that does not resolve dot segments
        // would serve this from /admin: the stricter rule applies.
        assert_eq!(name(&s, Method::GET, "/admin/../static/x.css"), "admin");
        assert_eq!(name(&s, Method::GET, "/static/x/../y.css"), "static");
    }

    #[test]
    fn case_of_the_path_and_the_method_cannot_slip_past_a_rule() {
        let p = crate::access::Policy::new(
            set(),
            "",
            "https://www.example.org",
            crate::access::IdentityHeaders::default(),
        );
        let get = |raw: &str| p.rule_for_any(&Method::GET, &[], raw).name.to_string();
        // Express, Koa, ASP.NET route without regard to case.
        for raw in ["/ADMIN/x", "/Admin", "/%41dmin/x", "/aDmIn/./x"] {
            assert_eq!(get(raw), "admin", "{raw}");
        }
        // The stricter reading wins: a public rule does not open other spellings.
        assert_eq!(get("/STATIC/x.css"), "default");
        // A rule written in capitals meets the lowercase spelling too.
        let upper = RuleSet::new(
            vec![rule("Reports", Requirement::Session, &["/Reports/**"], &[])],
            Requirement::Public,
        );
        let p2 = crate::access::Policy::new(
            upper,
            "",
            "https://www.example.org",
            crate::access::IdentityHeaders::default(),
        );
        assert_eq!(
            p2.rule_for_any(&Method::GET, &[], "/reports/q")
                .name
                .as_ref(),
            "Reports"
        );
        // As a WHATWG URL parser reads it: `\` is `/`, `//host/` is a host.
        for raw in [
            "/x\\..\\admin/users",
            "//x/admin/users",
            "/admin\\",
            "\\\\x\\admin",
        ] {
            assert_eq!(get(raw), "admin", "{raw}");
        }
        // A lowercase method is the method a lenient server runs.
        let delete = Method::from_bytes(b"delete").unwrap();
        assert_eq!(name(&set(), delete, "/api/items"), "writes");
    }

    #[test]
    fn methods_parse_in_any_case_and_unknown_ones_are_refused() {
        let m = Methods::parse(&["get".into(), " Post ".into()]).unwrap();
        assert_eq!(m.names(), ["GET", "HEAD", "POST"]);
        assert!(Methods::parse(&["FETCH".into()])
            .unwrap_err()
            .contains("GET"));
        assert!(Methods::parse(&[]).unwrap().names().is_empty());
        assert_eq!(Methods::bit(&Method::GET), 1);
        assert_eq!(Methods::bit(&Method::HEAD), 2);
    }

    #[test]
    fn many_rules_still_find_the_first_match() {
        let mut rules: Vec<Rule> = (0..100)
            .map(|i| {
                let p = format!("/section{i}/**");
                rule(&format!("r{i}"), Requirement::Session, &[&p], &[])
            })
            .collect();
        rules.insert(50, rule("wild", Requirement::Aal2, &["/*/secret/**"], &[]));
        let s = RuleSet::new(rules, Requirement::Optional);
        assert_eq!(name(&s, Method::GET, "/section7/x"), "r7");
        assert_eq!(name(&s, Method::GET, "/section7/secret/x"), "r7");
        assert_eq!(name(&s, Method::GET, "/section77/secret/x"), "wild");
        assert_eq!(name(&s, Method::GET, "/nowhere/secret"), "wild");
        assert_eq!(name(&s, Method::GET, "/nowhere"), DEFAULT_RULE);
    }
}

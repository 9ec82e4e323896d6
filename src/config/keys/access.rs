//! `[access]`: route protection. The requirement of requests no rule meets, where a browser
//! without a session signs in, the identity headers, and the ordered `[[access.rules]]`. All of
//! it reloads live, and all at once: one bad rule and the whole set is refused (a reload keeps
//! the running one). Compiled here into the [`Policy`] the request path applies.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::glob::{EmailGlob, PathGlob};
use crate::access::{IdentityHeaders, Methods, Policy, Requirement, Rule, RuleSet, DEFAULT_RULE};
use crate::config::check::{text, value, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// The requirement of requests no rule matches: `public`, `optional`, `session`, `aal2`.
    pub default: Option<String>,
    /// Where a browser without a session is sent, `return_to` added: a path on the publish URL
    /// or an absolute URL; `""` = Ory's sign-in, `<publish URL>/.ory/self-service/login/browser`.
    pub login_url: Option<String>,
    /// Header name → session field (`identity.traits.email`), set on app requests that have a
    /// session; clients' headers of these names never reach the app.
    pub identity_headers: Option<BTreeMap<String, String>>,
    /// The rules, in order: the first that matches a request's method and path decides.
    pub rules: Option<Vec<RuleSection>>,
}

/// One `[[access.rules]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// In logs and metrics; default `rule <n>`, counted from 1.
    pub name: Option<String>,
    /// Path globs: `*` within one segment, `**` any number of segments.
    pub paths: Option<Vec<String>>,
    /// `[]` = any method.
    pub methods: Option<Vec<String>>,
    pub require: Option<String>,
    /// Address globs (`*@example.org`) over the identity's verified addresses (never
    /// `identity.traits.email`); `session` and `aal2` rules only.
    pub allow_emails: Option<Vec<String>>,
}

/// The keys of `[access]` a reload applies without a restart: all of them.
pub const LIVE: &[&str] = &["default", "login_url", "identity_headers", "rules"];

/// The longest rule name: it labels log lines and metrics.
const MAX_NAME: usize = 64;

impl AccessSection {
    pub fn defaults() -> Self {
        AccessSection {
            default: Some("optional".into()),
            login_url: Some(String::new()),
            identity_headers: Some(BTreeMap::new()),
            rules: Some(Vec::new()),
        }
    }

    /// The compiled policy for a proxy published at `publish_origin`. With `no_jwt` there are no
    /// sessions, so a requirement that needs one is an error.
    pub fn policy(
        &self,
        c: &Check<'_>,
        publish_origin: &str,
        no_jwt: bool,
    ) -> Result<Arc<Policy>, ConfigError> {
        let default = Requirement::parse(text(&self.default)).map_err(|m| c.err("default", m))?;
        if no_jwt && default.needs_session() {
            return Err(c.err("default", no_sessions(default)));
        }
        let login_url = login_url(c, text(&self.login_url), publish_origin)?;
        let identity = identity_headers(c, &value(&self.identity_headers))?;
        let sections = value(&self.rules);
        let mut rules: Vec<Rule> = Vec::with_capacity(sections.len());
        for (i, r) in sections.iter().enumerate() {
            let rule = r.compile(c, i, &rules)?;
            if no_jwt && rule.require.needs_session() {
                return Err(c.err_at(
                    "rules",
                    &format!("{i}.require"),
                    format!(
                        "rule {} ({:?}): {}",
                        i + 1,
                        &*rule.name,
                        no_sessions(rule.require)
                    ),
                ));
            }
            rules.push(rule);
        }
        c.show("rules", effective_rules(&rules));
        let policy = Policy::new(
            RuleSet::new(rules, default),
            &login_url,
            publish_origin,
            identity,
        );
        no_login_loop(c, &policy)?;
        Ok(Arc::new(policy))
    }
}

fn no_sessions(r: Requirement) -> String {
    format!(
        "{:?} needs a session, but no_jwt = true (--no-jwt) turns session lookups off",
        r.as_str()
    )
}

/// `""` stays (Ory's sign-in); a path on the publish URL; or an absolute http(s) URL.
fn login_url(c: &Check<'_>, raw: &str, publish_origin: &str) -> Result<String, ConfigError> {
    if raw.is_empty() {
        c.show(
            "login_url",
            format!("{publish_origin}{}", crate::access::ORY_LOGIN_PATH),
        );
        return Ok(String::new());
    }
    if raw.contains('#') || raw.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
        return Err(c.err(
            "login_url",
            format!("{raw:?}: no fragment, spaces or control characters"),
        ));
    }
    if raw.starts_with('/') && !raw.starts_with("//") {
        return Ok(raw.to_string());
    }
    Ok(c.http_url("login_url", raw)?.to_string())
}

fn identity_headers(
    c: &Check<'_>,
    map: &BTreeMap<String, String>,
) -> Result<IdentityHeaders, ConfigError> {
    let pairs: Vec<(String, String)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    IdentityHeaders::new(&pairs)
        .map_err(|(name, message)| c.err_at("identity_headers", &name, message))
}

impl RuleSection {
    /// Rule `i` (from 0), checked; `before` are the rules above it.
    fn compile(&self, c: &Check<'_>, i: usize, before: &[Rule]) -> Result<Rule, ConfigError> {
        let name = match self.name.as_deref().map(str::trim) {
            None | Some("") => format!("rule {}", i + 1),
            Some(n) => n.to_string(),
        };
        let fail = |part: &str, message: String| {
            let at = if part.is_empty() {
                i.to_string()
            } else {
                format!("{i}.{part}")
            };
            c.err_at(
                "rules",
                &at,
                format!("rule {} ({name:?}): {message}", i + 1),
            )
        };
        if name == DEFAULT_RULE {
            return Err(fail(
                "name",
                format!("{DEFAULT_RULE:?} is the name of requests no rule matches; pick another"),
            ));
        }
        if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(fail(
                "name",
                format!("a name has at most {MAX_NAME} characters and no control characters"),
            ));
        }
        if let Some(j) = before.iter().position(|r| *r.name == *name) {
            return Err(fail(
                "name",
                format!(
                    "the name is taken by rule {} (names tell rules apart in logs and metrics)",
                    j + 1
                ),
            ));
        }
        let Some(require) = self.require.as_deref() else {
            return Err(fail(
                "",
                format!("`require` is missing ({})", Requirement::NAMES),
            ));
        };
        let require = Requirement::parse(require).map_err(|m| fail("require", m))?;
        let paths = value(&self.paths);
        if paths.is_empty() {
            return Err(fail(
                "paths",
                "`paths` is empty: name at least one path glob, like \"/admin/**\"".into(),
            ));
        }
        let paths = paths
            .iter()
            .map(|p| PathGlob::parse(p.trim()).map_err(|m| fail("paths", m)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let methods = Methods::parse(&value(&self.methods)).map_err(|m| fail("methods", m))?;
        // An empty list reads like "nobody" but would mean no list at all: everyone in.
        if self.allow_emails.as_ref().is_some_and(Vec::is_empty) {
            return Err(fail("allow_emails", "an empty allow_emails would let every session in: list the addresses, or remove the key".into()));
        }
        let emails = value(&self.allow_emails);
        if !emails.is_empty() && !require.needs_session() {
            return Err(fail("allow_emails", format!("a {} rule lets everyone in: allow_emails needs require = \"session\" or \"aal2\"", require.as_str())));
        }
        let emails = emails
            .iter()
            .map(|e| EmailGlob::parse(e).map_err(|m| fail("allow_emails", m)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Rule::new(&name, require, paths, methods, emails))
    }
}

/// The rules as `--check-config` shows them: every key, names and methods as they apply.
fn effective_rules(rules: &[Rule]) -> toml::Value {
    let list = |v: Vec<String>| toml::Value::from(v);
    toml::Value::Array(
        rules
            .iter()
            .map(|r| {
                let mut t = toml::Table::new();
                t.insert("name".into(), r.name.to_string().into());
                t.insert(
                    "paths".into(),
                    list(r.paths.iter().map(|p| p.as_str().to_string()).collect()),
                );
                t.insert(
                    "methods".into(),
                    list(r.methods.names().iter().map(|m| m.to_string()).collect()),
                );
                t.insert("require".into(), r.require.as_str().into());
                // Only a rule that has a list shows one: `allow_emails = []` is refused.
                if !r.allow_emails.is_empty() {
                    t.insert(
                        "allow_emails".into(),
                        list(
                            r.allow_emails
                                .iter()
                                .map(|e| e.as_str().to_string())
                                .collect(),
                        ),
                    );
                }
                toml::Value::Table(t)
            })
            .collect(),
    )
}

/// A sign-in page on the publish URL must not itself need a session: browsers would be sent
/// round in a loop.
fn no_login_loop(c: &Check<'_>, policy: &Policy) -> Result<(), ConfigError> {
    let Some(rest) = policy.login_url.strip_prefix(&policy.publish_origin) else {
        return Ok(());
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') || path == "/.ory" || path.starts_with("/.ory/") {
        // Another origin, or Ory's own pages, which no rule covers.
        return Ok(());
    }
    let rule = policy.rule_for(&actix_web::http::Method::GET, path);
    if rule.require.needs_session() {
        return Err(c.err(
            "login_url",
            format!(
                "{path} is itself protected (rule {:?} requires {}): browsers would be sent there in a loop; make it public",
                &*rule.name,
                rule.require.as_str()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser;

    use crate::cli::Cli;
    use crate::config::{ConfigError, Loaded, Loader};

    const BASE: &str =
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:1\"\n";

    fn load(text: &str, flags: &[&str]) -> Result<Loaded, ConfigError> {
        let mut args = vec!["ory-proxy", "-c", "/etc/ory/proxy.toml"];
        args.extend_from_slice(flags);
        Loader::new(Cli::parse_from(args), Arc::new(|_: &str| None))
            .load_text(Some(&format!("{BASE}{text}")))
    }

    fn error(text: &str) -> String {
        load(text, &[]).unwrap_err().to_string()
    }

    const EXAMPLE: &str = r#"
[access]
default = "session"
identity_headers = { "X-Forwarded-Email" = "identity.traits.email", "X-Forwarded-User" = "identity.id" }

[[access.rules]]
name = "admin"
paths = ["/admin", "/admin/**"]
require = "aal2"
allow_emails = ["*@example.org"]

[[access.rules]]
paths = ["/static/**", "/favicon.ico"]
methods = ["get"]
require = "public"
"#;

    #[test]
    fn the_example_compiles() {
        let l = load(EXAMPLE, &[]).unwrap();
        let a = &l.settings.live.access;
        assert_eq!(a.len(), 2);
        let rules = a.rules.rules();
        assert_eq!(&*rules[0].name, "admin");
        assert_eq!(&*rules[1].name, "rule 2");
        assert_eq!(rules[1].methods.names(), ["GET", "HEAD"]);
        assert_eq!(
            a.login_url,
            "http://localhost:4000/.ory/self-service/login/browser"
        );
        let pairs: Vec<(&str, &str)> = a.identity.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("x-forwarded-email", "identity.traits.email"),
                ("x-forwarded-user", "identity.id")
            ]
        );
        let printed = crate::config::print::effective_config(&l);
        assert!(
            printed.contains("\n[[access.rules]]                        # /etc/ory/proxy.toml:8\nname = \"admin\"\npaths = [\"/admin\", \"/admin/**\"]\nmethods = []\nrequire = \"aal2\"\nallow_emails = [\"*@example.org\"]\n"),
            "{printed}"
        );
        assert!(printed.contains("\nname = \"rule 2\"\n"), "{printed}");
        assert!(
            printed.contains("\nmethods = [\"GET\", \"HEAD\"]\n"),
            "{printed}"
        );
        assert!(
            printed.contains(
                "\nlogin_url = \"http://localhost:4000/.ory/self-service/login/browser\""
            ),
            "{printed}"
        );
    }

    #[test]
    fn each_mistake_is_named_with_its_line() {
        let rule = |body: &str| format!("[access]\n[[access.rules]]\nname = \"r\"\n{body}\n");
        for (text, line, needle) in [
            (
                rule("paths = [\"admin/**\"]\nrequire = \"session\""),
                6,
                "must start with /",
            ),
            (
                rule("paths = [\"/a/**b\"]\nrequire = \"session\""),
                6,
                "whole segments",
            ),
            (
                rule("paths = [\"/a\"]\nrequire = \"admin\""),
                7,
                "is no requirement",
            ),
            (
                rule("paths = [\"/a\"]\nmethods = [\"FETCH\"]\nrequire = \"session\""),
                7,
                "is no method",
            ),
            (
                rule("paths = []\nrequire = \"session\""),
                6,
                "`paths` is empty",
            ),
            (rule("paths = [\"/a\"]"), 4, "`require` is missing"),
            (
                rule("paths = [\"/a\"]\nrequire = \"optional\"\nallow_emails = [\"*@x.org\"]"),
                8,
                "lets everyone in",
            ),
            (
                rule("paths = [\"/a\"]\nrequire = \"session\"\nallow_emails = [\"x.org\"]"),
                8,
                "address glob",
            ),
            (
                rule("paths = [\"/a\"]\nrequire = \"session\"\nallow_emails = []"),
                8,
                "empty allow_emails",
            ),
            (
                "[access]\ndefault = \"everyone\"\n".to_string(),
                4,
                "is no requirement",
            ),
            (
                "[access]\nidentity_headers = { Authorization = \"identity.id\" }\n".to_string(),
                4,
                "set or checked by the proxy",
            ),
            (
                "[access]\nidentity_headers = { X-User = \"identity.nope\" }\n".to_string(),
                4,
                "no field",
            ),
            (
                "[access]\nlogin_url = \"ftp://x\"\n".to_string(),
                4,
                "http or https",
            ),
        ] {
            let e = error(&text);
            assert!(
                e.starts_with(&format!("/etc/ory/proxy.toml:{line}: `access.")),
                "{text}\n=> {e}"
            );
            assert!(e.contains(needle), "{text}\n=> {e}");
        }
        let e = error("[[access.rules]]\npaths = [\"/a\"]\nrequire = \"public\"\n[[access.rules]]\nname = \"rule 1\"\npaths = [\"/b\"]\nrequire = \"public\"\n");
        assert!(
            e.contains(":7: `access.rules`: rule 2 (\"rule 1\"): the name is taken by rule 1"),
            "{e}"
        );
        let e =
            error("[[access.rules]]\nname = \"default\"\npaths = [\"/a\"]\nrequire = \"public\"\n");
        assert!(e.contains("is the name of requests no rule matches"), "{e}");
    }

    #[test]
    fn without_jwt_no_requirement_may_need_a_session() {
        let e = load("[access]\ndefault = \"session\"\n", &["--no-jwt"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`access.default`") && e.contains("--no-jwt"),
            "{e}"
        );
        let e = load(
            "[[access.rules]]\npaths = [\"/a\"]\nrequire = \"aal2\"\n",
            &["--no-jwt"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":5: `access.rules`: rule 1") && e.contains("--no-jwt"),
            "{e}"
        );
        assert!(load(
            "[access]\ndefault = \"public\"\n[[access.rules]]\npaths = [\"/a\"]\nrequire = \"optional\"\n",
            &["--no-jwt"]
        )
        .is_ok());
    }

    #[test]
    fn a_protected_sign_in_page_is_a_loop() {
        let e = error("[access]\ndefault = \"session\"\nlogin_url = \"/login\"\n");
        assert!(
            e.contains("`access.login_url`") && e.contains("loop"),
            "{e}"
        );
        let ok = "[access]\ndefault = \"session\"\nlogin_url = \"/login\"\n[[access.rules]]\npaths = [\"/login\"]\nrequire = \"public\"\n";
        assert_eq!(
            load(ok, &[]).unwrap().settings.live.access.login_url,
            "http://localhost:4000/login"
        );
        // Ory's own sign-in, and other origins, are never covered by a rule.
        assert!(load("[access]\ndefault = \"aal2\"\n", &[]).is_ok());
        assert!(load(
            "[access]\ndefault = \"aal2\"\nlogin_url = \"https://auth.example.org/login\"\n",
            &[]
        )
        .is_ok());
    }
}

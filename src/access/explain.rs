//! `--explain "GET /admin/users"`: which rule a request to the app meets and what happens to it
//! signed out, with an aal1 and with an aal2 session, for a browser and for another client —
//! from the same rule lookup and decision table the request path uses.

use std::fmt::Write as _;

use actix_web::http::Method;

use super::decision::{decide, Outcome, SessionFacts, SessionState};
use super::path::{display, spellings};
use super::rules::{Methods, Rule};
use super::Policy;

/// A request to explain: `"GET /path?query"`, or a path alone (GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub method: Method,
    /// As the client would send it: the raw path, and the query if any.
    pub path_and_query: String,
}

impl Asked {
    pub fn parse(text: &str) -> Result<Asked, String> {
        let mut words = text.split_whitespace();
        let (method, target) = match (words.next(), words.next(), words.next()) {
            (Some(t), None, None) if t.starts_with('/') => ("GET", t),
            (Some(m), Some(t), None) => (m, t),
            _ => {
                return Err(format!(
                    "{text:?}: write a request like \"GET /admin/users\""
                ))
            }
        };
        if !target.starts_with('/') {
            return Err(format!("{target:?}: the path must start with /"));
        }
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("{method:?} is not an HTTP method"))?;
        Ok(Asked {
            method,
            path_and_query: target.to_string(),
        })
    }

    fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("/")
    }
}

/// The explanation of `asked`, a request to the app (not under `/.ory`).
pub fn explain(policy: &Policy, asked: &Asked) -> String {
    let mut out = format!("{} {}\n", asked.method, asked.path_and_query);
    let mut scratch = Vec::new();
    let path = spellings(asked.path(), &mut scratch);
    let rule = policy.rules.rule_for(&asked.method, &path);
    let _ = writeln!(out, "  read as          {}", display(&path.resolved));
    if let Some(written) = &path.written {
        let as_written = policy
            .rules
            .first_match(Methods::bit(&asked.method), written);
        let _ = writeln!(
            out,
            "  as written       {} (dot segments kept) meets {}; the stricter rule applies",
            display(written),
            rule_name(as_written)
        );
    }
    let _ = writeln!(out, "  rule             {}", describe_rule(policy, rule));
    if asked.method == Method::OPTIONS {
        let _ = writeln!(
            out,
            "  (a CORS preflight, OPTIONS with Access-Control-Request-Method, is answered by the proxy: no rule applies)"
        );
    }
    let aal1 = SessionFacts::new(Some("aal1"), []);
    let aal2 = SessionFacts::new(Some("aal2"), []);
    let rows: [(&str, SessionState<'_>); 4] = [
        ("signed out", SessionState::Missing),
        ("aal1 session", SessionState::Active(&aal1)),
        ("aal2 session", SessionState::Active(&aal2)),
        ("Ory unavailable", SessionState::Unavailable),
    ];
    for (label, state) in rows {
        // A session whose address the rule allows; the other case is a line of its own.
        let allowed = &[];
        // Only a GET or HEAD is a navigation a browser can be redirected from.
        let navigation = matches!(asked.method, Method::GET | Method::HEAD);
        let browser = decide(rule.require, allowed, state, navigation);
        let other = decide(rule.require, allowed, state, false);
        let describe = |o| describe_outcome(policy, o, state, asked);
        if browser == other {
            let _ = writeln!(out, "  {label:<16} {}", describe(browser));
        } else {
            let _ = writeln!(out, "  {label:<16} browser: {}", describe(browser));
            let _ = writeln!(out, "  {:<16} other:   {}", "", describe(other));
        }
    }
    if !rule.allow_emails.is_empty() {
        let _ = writeln!(
            out,
            "  {:<16} 403 ({}) unless a verified address matches",
            "other address",
            Outcome::EmailNotAllowed.error_id().unwrap_or_default()
        );
    }
    out
}

fn rule_name(rule: &Rule) -> String {
    format!("{:?}", &*rule.name)
}

fn describe_rule(policy: &Policy, rule: &Rule) -> String {
    let position = policy
        .rules
        .rules()
        .iter()
        .position(|r| std::ptr::eq(r, rule));
    let Some(i) = position else {
        return format!(
            "none matches: the default, require {}",
            rule.require.as_str()
        );
    };
    let paths: Vec<String> = rule
        .paths
        .iter()
        .map(|p| format!("{:?}", p.as_str()))
        .collect();
    let methods = match rule.methods.names() {
        m if m.is_empty() => "any method".to_string(),
        m => m.join(", "),
    };
    let mut s = format!(
        "{} (rule {} of {}): paths {}; {methods}; require {}",
        rule_name(rule),
        i + 1,
        policy.len(),
        paths.join(", "),
        rule.require.as_str()
    );
    if !rule.allow_emails.is_empty() {
        let e: Vec<String> = rule
            .allow_emails
            .iter()
            .map(|e| format!("{:?}", e.as_str()))
            .collect();
        let _ = write!(s, "; allow_emails {}", e.join(", "));
    }
    s
}

fn describe_outcome(
    policy: &Policy,
    outcome: Outcome,
    state: SessionState<'_>,
    asked: &Asked,
) -> String {
    let id = outcome.error_id().unwrap_or_default();
    match outcome {
        Outcome::Public => "the app, without a session lookup: no JWT, no identity headers, the client's Authorization removed".into(),
        Outcome::Allow => match state {
            SessionState::Active(_) => {
                let mut s = "the app, with the session's JWT".to_string();
                if !policy.identity.is_empty() {
                    let names: Vec<&str> = policy.identity.pairs().map(|(n, _)| n).collect();
                    let _ = write!(s, " and {}", names.join(", "));
                }
                s
            }
            _ => "the app, anonymous (no Authorization, no identity headers)".into(),
        },
        Outcome::Login | Outcome::StepUp => format!(
            "303 to {}",
            policy
                .redirect_for(outcome, &asked.path_and_query)
                .unwrap_or_default()
        ),
        Outcome::Unauthenticated | Outcome::Aal2Required => format!("{} JSON ({id})", outcome.status()),
        Outcome::EmailNotAllowed | Outcome::Unavailable => {
            let extra = if outcome == Outcome::Unavailable {
                " with Retry-After, never the app"
            } else {
                ""
            };
            format!("{} ({id}){extra}; a page for browsers, JSON otherwise", outcome.status())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::glob::PathGlob;
    use crate::access::{IdentityHeaders, Requirement, Rule, RuleSet};

    fn policy() -> Policy {
        let admin = Rule::new(
            "admin",
            Requirement::Aal2,
            vec![PathGlob::parse("/admin/**").unwrap()],
            Methods::default(),
            Vec::new(),
        );
        Policy::new(
            RuleSet::new(vec![admin], Requirement::Optional),
            "",
            "http://localhost:4000",
            IdentityHeaders::default(),
        )
    }

    #[test]
    fn requests_parse_and_bad_ones_say_how_to_write_them() {
        let a = Asked::parse("get /a?b=1").unwrap();
        assert_eq!(
            (a.method, a.path_and_query.as_str()),
            (Method::GET, "/a?b=1")
        );
        assert_eq!(Asked::parse("/x").unwrap().method, Method::GET);
        for bad in ["", "GET", "GET x", "GET /a /b", "G(T /a"] {
            assert!(Asked::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_explanation_names_the_rule_and_every_case() {
        let out = explain(&policy(), &Asked::parse("GET /admin/users?x=1").unwrap());
        assert!(out.contains("\"admin\" (rule 1 of 1)"), "{out}");
        assert!(out.contains("signed out       browser: 303 to http://localhost:4000/.ory/self-service/login/browser?return_to=http%3A%2F%2Flocalhost%3A4000%2Fadmin%2Fusers%3Fx%3D1"), "{out}");
        assert!(
            out.contains("other:   401 JSON (session_inactive)"),
            "{out}"
        );
        assert!(out.contains("aal=aal2&return_to="), "{out}");
        assert!(out.contains("403 JSON (session_aal2_required)"), "{out}");
        assert!(
            out.contains("aal2 session     the app, with the session's JWT"),
            "{out}"
        );
        assert!(out.contains("Ory unavailable  503"), "{out}");
        let out = explain(&policy(), &Asked::parse("/x/../admin").unwrap());
        assert!(out.contains("read as          /admin"), "{out}");
        assert!(out.contains("as written       /x/../admin"), "{out}");
        let out = explain(&policy(), &Asked::parse("POST /admin").unwrap());
        assert!(
            out.contains("signed out       401 JSON (session_inactive)"),
            "{out}"
        );
        assert!(!out.contains("303"), "a POST is never redirected: {out}");
        let out = explain(&policy(), &Asked::parse("/else").unwrap());
        assert!(
            out.contains("none matches: the default, require optional"),
            "{out}"
        );
        assert!(out.contains("signed out       the app, anonymous"), "{out}");
    }
}

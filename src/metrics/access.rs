//! `ory_proxy_access_decisions_total{rule,decision}`: what the access rules decided, per rule.
//!
//! Rule names come from the configuration, so the label's values are bounded by what the
//! operator writes (a rule's counts live on across reloads under its name); past
//! [`MAX_RULE_NAMES`] names in one process's life, the rest count under [`OTHER_RULES`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// What the rules decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    /// A public route: to the app without a session lookup.
    Public,
    /// To the app (anonymous on an optional route, or with a session that meets the rule).
    Allow,
    /// A browser sent to sign in (303).
    Login,
    /// Another client without a session (401).
    Unauthenticated,
    /// A browser sent to add a second factor (303).
    StepUp,
    /// Another client whose session lacks a second factor (403).
    Aal2Required,
    /// A session whose addresses the rule does not allow (403).
    EmailNotAllowed,
    /// The session could not be checked (503).
    Unavailable,
}

impl AccessDecision {
    pub const ALL: [AccessDecision; 8] = [
        AccessDecision::Public,
        AccessDecision::Allow,
        AccessDecision::Login,
        AccessDecision::Unauthenticated,
        AccessDecision::StepUp,
        AccessDecision::Aal2Required,
        AccessDecision::EmailNotAllowed,
        AccessDecision::Unavailable,
    ];

    /// The label value, and the word of the access log's `decision=`.
    pub fn label(self) -> &'static str {
        match self {
            AccessDecision::Public => "public",
            AccessDecision::Allow => "allow",
            AccessDecision::Login => "login",
            AccessDecision::Unauthenticated => "unauthenticated",
            AccessDecision::StepUp => "step-up",
            AccessDecision::Aal2Required => "aal2-required",
            AccessDecision::EmailNotAllowed => "email-not-allowed",
            AccessDecision::Unavailable => "unavailable",
        }
    }
}

/// The most rule names counted apart in one process's life.
pub const MAX_RULE_NAMES: usize = 1024;
/// Where decisions of further rule names are counted.
pub const OTHER_RULES: &str = "(other)";

/// One rule's counts, one per decision.
#[derive(Debug, Default)]
pub struct DecisionCounts([AtomicU64; AccessDecision::ALL.len()]);

impl DecisionCounts {
    pub fn add(&self, d: AccessDecision) {
        self.0[d as usize].fetch_add(1, Relaxed);
    }

    pub fn get(&self, d: AccessDecision) -> u64 {
        self.0[d as usize].load(Relaxed)
    }
}

/// The counts of every rule seen so far, by name, in the order first seen.
#[derive(Debug, Default)]
pub struct AccessCounts {
    rules: Mutex<Vec<(Arc<str>, Arc<DecisionCounts>)>>,
}

impl AccessCounts {
    /// The counts of the rule named `name`; taken once per rule and rule set, not per request.
    pub fn rule(&self, name: &str) -> Arc<DecisionCounts> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let name = if rules.len() >= MAX_RULE_NAMES && !rules.iter().any(|(n, _)| &**n == name) {
            OTHER_RULES
        } else {
            name
        };
        if let Some((_, c)) = rules.iter().find(|(n, _)| &**n == name) {
            return c.clone();
        }
        let counts = Arc::new(DecisionCounts::default());
        rules.push((name.into(), counts.clone()));
        counts
    }

    pub(super) fn render_into(&self, out: &mut String) -> std::fmt::Result {
        let name = "ory_proxy_access_decisions_total";
        writeln!(out, "# HELP {name} App-bound requests by the access rule they met (\"default\" when none) and what it decided.")?;
        writeln!(out, "# TYPE {name} counter")?;
        let rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        for (rule, counts) in rules.iter() {
            let rule = escape_label(rule);
            for d in AccessDecision::ALL {
                writeln!(
                    out,
                    "{name}{{rule=\"{rule}\",decision=\"{}\"}} {}",
                    d.label(),
                    counts.get(d)
                )?;
            }
        }
        Ok(())
    }
}

/// A label value as the text format wants it: `\`, `"` and line feeds escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_live_on_under_the_name_and_names_are_bounded() {
        let c = AccessCounts::default();
        c.rule("admin").add(AccessDecision::Login);
        c.rule("admin").add(AccessDecision::Login);
        c.rule("say \"hi\"").add(AccessDecision::Allow);
        let mut out = String::new();
        c.render_into(&mut out).unwrap();
        assert!(
            out.contains("ory_proxy_access_decisions_total{rule=\"admin\",decision=\"login\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("{rule=\"say \\\"hi\\\"\",decision=\"allow\"} 1\n"));
        for i in 0..MAX_RULE_NAMES + 5 {
            c.rule(&format!("r{i}"));
        }
        assert!(Arc::ptr_eq(&c.rule("late-1"), &c.rule("late-2")));
        c.rule("late-1").add(AccessDecision::Public);
        assert_eq!(c.rule(OTHER_RULES).get(AccessDecision::Public), 1);
        assert_eq!(c.rule("admin").get(AccessDecision::Login), 2);
    }
}

//! Route protection (README, "Protecting routes"): which requirement — `public`, `optional`,
//! `session` or `aal2` — a request to the app meets, and what follows from the session it
//! carries. Compiled into a [`Policy`] once per configuration load; the request path only
//! matches and decides.
//!
//! A leaf: the configuration compiles the policy, the request path applies it, the session
//! cache takes identity header values with it, and it imports none of them (only the counters
//! of [`crate::metrics`] and the header names of [`crate::header_names`]).
//!
//! - the path as the rules read it: [`path`]; globs over paths and addresses: [`glob`]
//! - the ordered rules and their index: [`rules`]; the decision table: [`decision`]
//! - identity headers: [`identity`]; `--explain`: [`explain`]

pub mod decision;
pub mod explain;
pub mod glob;
pub mod identity;
pub mod method_override;
pub mod path;
pub mod rules;

pub use decision::{decide, Outcome, Requirement, SessionFacts, SessionState};
pub use identity::IdentityHeaders;
pub use rules::{Methods, Rule, RuleSet, DEFAULT_RULE};

use actix_web::http::Method;

/// Ory's browser sign-in, under the publish URL.
pub const ORY_LOGIN_PATH: &str = "/.ory/self-service/login/browser";

/// The compiled `[access]` section.
#[derive(Debug, PartialEq)]
pub struct Policy {
    pub rules: RuleSet,
    /// Where a browser without a session is sent, absolute; `return_to` is added to its query.
    pub login_url: String,
    /// Ory's step-up to a second factor, absolute, with `aal=aal2` in its query.
    pub step_up_url: String,
    /// `scheme://host[:port]` of the publish URL: `return_to` is the asked-for URL on it.
    pub publish_origin: String,
    pub identity: IdentityHeaders,
}

impl Policy {
    /// `login_url` empty is Ory's sign-in under the publish URL; a path is taken on it.
    pub fn new(
        rules: RuleSet,
        login_url: &str,
        publish_origin: &str,
        identity: IdentityHeaders,
    ) -> Policy {
        let login_url = match login_url {
            "" => format!("{publish_origin}{ORY_LOGIN_PATH}"),
            path if path.starts_with('/') => format!("{publish_origin}{path}"),
            url => url.to_string(),
        };
        Policy {
            rules,
            login_url,
            step_up_url: format!("{publish_origin}{ORY_LOGIN_PATH}?aal=aal2"),
            publish_origin: publish_origin.to_string(),
            identity,
        }
    }

    /// The rule a request to the app meets, from its method and raw path (no query).
    pub fn rule_for(&self, method: &Method, raw_path: &str) -> &Rule {
        self.rule_for_any(method, &[], raw_path)
    }

    /// The rule a request meets when it may also stand for the `named` methods (see
    /// [`method_override`]), and the path may be read without regard to case (an app whose
    /// routes ignore case serves `/ADMIN` as `/admin`): the strictest of the rules met under
    /// each reading, and as a URL parser reads it ([`path::url_parser_path`]); the first on a
    /// tie.
    pub fn rule_for_any(&self, method: &Method, named: &[Method], raw_path: &str) -> &Rule {
        if self.rules.rules().is_empty() {
            return self.rules.default_rule();
        }
        let mut scratch = Vec::new();
        let spellings = path::spellings(raw_path, &mut scratch);
        let url_path = path::url_parser_path(raw_path);
        let mut url_scratch = Vec::new();
        let url_read = url_path
            .as_deref()
            .map(|p| path::spellings(p, &mut url_scratch));
        let mut lower_scratch = Vec::new();
        let lowercase =
            path::lowercase_spellings(raw_path, self.rules.globs_upper(), &mut lower_scratch);
        std::iter::once(method)
            .chain(named)
            .flat_map(|m| {
                let folded = lowercase
                    .as_ref()
                    .map(|l| self.rules.rule_for_lowercase(m, l));
                let url = url_read.as_ref().map(|u| self.rules.rule_for(m, u));
                std::iter::once(self.rules.rule_for(m, &spellings))
                    .chain(folded)
                    .chain(url)
            })
            .reduce(Rule::stricter)
            .unwrap_or_else(|| self.rules.default_rule())
    }

    /// The number of rules (the default not counted).
    pub fn len(&self) -> usize {
        self.rules.rules().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.rules().is_empty()
    }

    /// The URL a denied browser is sent to for `outcome` (login or step-up), with `return_to`
    /// set to `asked` (path and query as the client sent them) on the publish URL.
    pub fn redirect_for(&self, outcome: Outcome, asked: &str) -> Option<String> {
        let base = match outcome {
            Outcome::Login => &self.login_url,
            Outcome::StepUp => &self.step_up_url,
            _ => return None,
        };
        let mut return_to = String::with_capacity(self.publish_origin.len() + asked.len() + 1);
        return_to.push_str(&self.publish_origin);
        if !asked.starts_with('/') {
            return_to.push('/');
        }
        return_to.push_str(asked);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .finish();
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(format!("{base}{sep}{query}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(login: &str) -> Policy {
        Policy::new(
            RuleSet::new(Vec::new(), Requirement::Session),
            login,
            "https://www.example.org",
            IdentityHeaders::default(),
        )
    }

    #[test]
    fn redirects_carry_the_asked_url_encoded() {
        let p = policy("");
        assert_eq!(
            p.redirect_for(Outcome::Login, "/admin/users?tab=a b&x=%2F").unwrap(),
            "https://www.example.org/.ory/self-service/login/browser?return_to=https%3A%2F%2Fwww.example.org%2Fadmin%2Fusers%3Ftab%3Da+b%26x%3D%252F"
        );
        assert_eq!(
            p.redirect_for(Outcome::StepUp, "/admin").unwrap(),
            "https://www.example.org/.ory/self-service/login/browser?aal=aal2&return_to=https%3A%2F%2Fwww.example.org%2Fadmin"
        );
        assert_eq!(p.redirect_for(Outcome::Unauthenticated, "/x"), None);
        let decoded: Vec<(String, String)> =
            url::Url::parse(&p.redirect_for(Outcome::Login, "/a?b=1&c=%20").unwrap())
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
        assert_eq!(
            decoded,
            [(
                "return_to".to_string(),
                "https://www.example.org/a?b=1&c=%20".to_string()
            )]
        );
    }

    #[test]
    fn login_urls_relative_absolute_and_with_a_query() {
        assert_eq!(
            policy("/login").redirect_for(Outcome::Login, "/x").unwrap(),
            "https://www.example.org/login?return_to=https%3A%2F%2Fwww.example.org%2Fx"
        );
        assert_eq!(
            policy("https://auth.example.org/in?app=1")
                .redirect_for(Outcome::Login, "/x")
                .unwrap(),
            "https://auth.example.org/in?app=1&return_to=https%3A%2F%2Fwww.example.org%2Fx"
        );
    }
}

//! The decision table (README, "Protecting routes"): what a request meets, given the rule's
//! requirement, the session it carries, and whether it is a browser navigation. Pure: no
//! request, no I/O, so every row is a unit test.

use super::glob::EmailGlob;
use crate::metrics::AccessDecision;

/// What a rule requires of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirement {
    /// No session lookup at all; no JWT, no identity headers, no client `Authorization`.
    Public,
    /// The session, if any, is passed on; anonymous requests pass too.
    Optional,
    /// An active session.
    Session,
    /// An active session at assurance level `aal2` (a second factor).
    Aal2,
}

impl Requirement {
    pub const NAMES: &'static str = "public, optional, session or aal2";

    pub fn parse(s: &str) -> Result<Requirement, String> {
        match s.trim() {
            "public" => Ok(Requirement::Public),
            "optional" => Ok(Requirement::Optional),
            "session" => Ok(Requirement::Session),
            "aal2" => Ok(Requirement::Aal2),
            other => Err(format!("{other:?} is no requirement: {}", Self::NAMES)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Public => "public",
            Requirement::Optional => "optional",
            Requirement::Session => "session",
            Requirement::Aal2 => "aal2",
        }
    }

    /// Whether only a request with an active session may pass.
    pub fn needs_session(self) -> bool {
        self >= Requirement::Session
    }
}

/// What the decisions need to know of an active session, taken from the whoami answer once
/// per cache entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// `authenticator_assurance_level` is `aal2` (or higher).
    pub aal2: bool,
    /// The identity's verified email addresses, lowercase. Not `identity.traits.email`: that
    /// is whatever the user typed at sign-up, and a self-service sign-up could claim anyone's
    /// address in it.
    pub emails: Box<[Box<str>]>,
}

impl SessionFacts {
    pub fn new<'e>(aal: Option<&str>, verified: impl IntoIterator<Item = &'e str>) -> SessionFacts {
        let mut emails: Vec<Box<str>> = Vec::new();
        for e in verified {
            let e: Box<str> = e.trim().to_lowercase().into();
            if !e.is_empty() && !emails.contains(&e) {
                emails.push(e);
            }
        }
        SessionFacts {
            aal2: matches!(aal, Some("aal2" | "aal3")),
            emails: emails.into(),
        }
    }
}

/// The session a request carries, as far as the lookup could tell.
#[derive(Debug, Clone, Copy)]
pub enum SessionState<'a> {
    /// No credentials, or none of an active session.
    Missing,
    /// Ory could not be asked (down, the breaker open) and nothing was cached.
    Unavailable,
    /// A session Ory shows only after a second factor (whoami's 403 `session_aal2_required`,
    /// when Ory requires the highest available level): only the step-up leads on.
    Aal2Required,
    Active(&'a SessionFacts),
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A public route: to the app, no lookup.
    Public,
    /// To the app, with the session if there is one.
    Allow,
    /// A browser without a session: 303 to the sign-in page.
    Login,
    /// Another client without a session: 401.
    Unauthenticated,
    /// A browser with an aal1 session on an aal2 route: 303 to Ory's second-factor step-up.
    StepUp,
    /// Another client with an aal1 session on an aal2 route: 403.
    Aal2Required,
    /// A session whose addresses `allow_emails` does not allow: 403.
    EmailNotAllowed,
    /// The session could not be checked: 503, never the app.
    Unavailable,
}

impl Outcome {
    /// Whether the app gets the request.
    pub fn reaches_app(self) -> bool {
        matches!(self, Outcome::Public | Outcome::Allow)
    }

    pub fn metric(self) -> AccessDecision {
        match self {
            Outcome::Public => AccessDecision::Public,
            Outcome::Allow => AccessDecision::Allow,
            Outcome::Login => AccessDecision::Login,
            Outcome::Unauthenticated => AccessDecision::Unauthenticated,
            Outcome::StepUp => AccessDecision::StepUp,
            Outcome::Aal2Required => AccessDecision::Aal2Required,
            Outcome::EmailNotAllowed => AccessDecision::EmailNotAllowed,
            Outcome::Unavailable => AccessDecision::Unavailable,
        }
    }

    /// The status of the proxy's answer when the request is denied.
    pub fn status(self) -> u16 {
        match self {
            Outcome::Public | Outcome::Allow => 200,
            Outcome::Login | Outcome::StepUp => 303,
            Outcome::Unauthenticated => 401,
            Outcome::Aal2Required | Outcome::EmailNotAllowed => 403,
            Outcome::Unavailable => 503,
        }
    }

    /// The `error.id` of the JSON answer, named as Ory names its own where it has one.
    pub fn error_id(self) -> Option<&'static str> {
        match self {
            Outcome::Unauthenticated | Outcome::Login => Some("session_inactive"),
            Outcome::Aal2Required | Outcome::StepUp => Some("session_aal2_required"),
            Outcome::EmailNotAllowed => Some("email_not_allowed"),
            Outcome::Unavailable => Some("session_check_unavailable"),
            Outcome::Public | Outcome::Allow => None,
        }
    }

    /// The word in the access log (`decision=`) and the metrics.
    pub fn label(self) -> &'static str {
        self.metric().label()
    }
}

/// The decision for a request under `require` (with `allow_emails`, when the rule has some).
/// The addresses are checked before the assurance level: a second factor is never asked of
/// someone who would be refused after it.
pub fn decide(
    require: Requirement,
    allow_emails: &[EmailGlob],
    session: SessionState<'_>,
    browser: bool,
) -> Outcome {
    match (require, session) {
        (Requirement::Public, _) => Outcome::Public,
        (Requirement::Optional, _) => Outcome::Allow,
        (_, SessionState::Unavailable) => Outcome::Unavailable,
        (_, SessionState::Aal2Required) if browser => Outcome::StepUp,
        (_, SessionState::Aal2Required) => Outcome::Aal2Required,
        (_, SessionState::Missing) if browser => Outcome::Login,
        (_, SessionState::Missing) => Outcome::Unauthenticated,
        (_, SessionState::Active(facts)) if !emails_allowed(allow_emails, facts) => {
            Outcome::EmailNotAllowed
        }
        (Requirement::Aal2, SessionState::Active(facts)) if !facts.aal2 => {
            if browser {
                Outcome::StepUp
            } else {
                Outcome::Aal2Required
            }
        }
        (_, SessionState::Active(_)) => Outcome::Allow,
    }
}

/// No list allows everyone; a list allows a session one of whose addresses matches an entry.
fn emails_allowed(allow: &[EmailGlob], facts: &SessionFacts) -> bool {
    allow.is_empty()
        || facts
            .emails
            .iter()
            .any(|e| allow.iter().any(|g| g.matches(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;
    use Requirement as R;

    fn facts(aal: &str, email: &str) -> SessionFacts {
        SessionFacts::new(Some(aal), [email])
    }

    #[test]
    fn the_decision_table() {
        let aal1 = facts("aal1", "ada@example.org");
        let aal2 = facts("aal2", "ada@example.org");
        let rows: [(Requirement, [Outcome; 5], [Outcome; 5]); 4] = [
            // signed out, aal1, aal2, unavailable, a session Ory shows only at aal2; for a
            // browser, then for an API client.
            (
                R::Public,
                [Public, Public, Public, Public, Public],
                [Public, Public, Public, Public, Public],
            ),
            (
                R::Optional,
                [Allow, Allow, Allow, Allow, Allow],
                [Allow, Allow, Allow, Allow, Allow],
            ),
            (
                R::Session,
                [Login, Allow, Allow, Unavailable, StepUp],
                [Unauthenticated, Allow, Allow, Unavailable, Aal2Required],
            ),
            (
                R::Aal2,
                [Login, StepUp, Allow, Unavailable, StepUp],
                [
                    Unauthenticated,
                    Aal2Required,
                    Allow,
                    Unavailable,
                    Aal2Required,
                ],
            ),
        ];
        for (require, browser, api) in rows {
            for (is_browser, expected) in [(true, browser), (false, api)] {
                let got = [
                    SessionState::Missing,
                    SessionState::Active(&aal1),
                    SessionState::Active(&aal2),
                    SessionState::Unavailable,
                    SessionState::Aal2Required,
                ]
                .map(|s| decide(require, &[], s, is_browser));
                assert_eq!(got, expected, "{require:?}, browser {is_browser}");
            }
        }
    }

    #[test]
    fn allow_emails_refuses_before_asking_for_a_second_factor() {
        let only = [EmailGlob::parse("*@example.org").unwrap()];
        let outsider = facts("aal1", "eve@evil.example");
        for require in [R::Session, R::Aal2] {
            for browser in [true, false] {
                let got = decide(require, &only, SessionState::Active(&outsider), browser);
                assert_eq!(got, EmailNotAllowed, "{require:?} {browser}");
            }
        }
        let insider = facts("aal2", "Ada@EXAMPLE.org");
        assert_eq!(
            decide(R::Aal2, &only, SessionState::Active(&insider), true),
            Allow
        );
        let none = SessionFacts::new(Some("aal1"), []);
        assert_eq!(
            decide(R::Session, &only, SessionState::Active(&none), false),
            EmailNotAllowed
        );
    }

    #[test]
    fn assurance_levels_and_names() {
        assert!(!SessionFacts::new(Some("aal1"), []).aal2);
        assert!(!SessionFacts::new(None, []).aal2);
        assert!(SessionFacts::new(Some("aal3"), []).aal2);
        assert_eq!(Requirement::parse(" aal2 ").unwrap(), R::Aal2);
        assert!(Requirement::parse("admin").unwrap_err().contains("public"));
        assert!(R::Session.needs_session() && R::Aal2.needs_session());
        assert!(!R::Optional.needs_session() && !R::Public.needs_session());
        assert!(Allow.reaches_app() && Public.reaches_app() && !Login.reaches_app());
    }
}

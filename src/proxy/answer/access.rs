//! The access rules' refusals as HTTP (README, "Protecting routes"): a browser without a session
//! is sent to sign in (303), one without a second factor to Ory's step-up (303); other clients
//! get 401 or 403 as JSON shaped like Ory's own errors; a refused address gets 403 and a session
//! that could not be checked 503 with `Retry-After`, each as a small page for clients that ask
//! for HTML. Never cached: the same request may pass a moment later.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::access::{Outcome, Policy};
use crate::html::escape;

/// How long a client is asked to wait before trying again when the session cannot be checked:
/// the outage breaker probes Ory once a second.
pub const RETRY_AFTER_SECS: u64 = 5;

/// A request the access rules did not let through.
#[derive(Debug)]
pub struct Denial {
    pub outcome: Outcome,
    /// Where a browser is sent (login, step-up), `return_to` included.
    location: Option<String>,
    /// The step-up URL for an API client without a second factor (Ory's
    /// `redirect_browser_to`): a single-page app can send its user there.
    step_up: Option<String>,
    /// The client asked for HTML: 403 and 503 as a page.
    page: bool,
}

impl Denial {
    /// The refusal of a request with `headers` for `path_and_query` (as the client sent them).
    pub fn new(
        outcome: Outcome,
        headers: &HeaderMap,
        path_and_query: &str,
        policy: &Policy,
    ) -> Denial {
        Denial {
            outcome,
            location: policy.redirect_for(outcome, path_and_query),
            step_up: (outcome == Outcome::Aal2Required)
                .then(|| policy.redirect_for(Outcome::StepUp, path_and_query))
                .flatten(),
            page: wants_html(headers),
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.outcome.status()).unwrap_or(StatusCode::FORBIDDEN)
    }

    /// What the person or program reads: Ory's wording where Ory has the same error.
    pub fn reason(&self) -> &'static str {
        match self.outcome {
            Outcome::Login | Outcome::Unauthenticated => {
                "No active session was found in this request."
            }
            Outcome::StepUp | Outcome::Aal2Required => {
                "An active session was found but it does not fulfill the Authenticator Assurance Level, implying that the session must use a second factor. Please complete the second factor authentication to continue."
            }
            Outcome::EmailNotAllowed => {
                "The signed-in account has no verified email address that is allowed to access this resource."
            }
            Outcome::Unavailable => {
                "The session cannot be checked right now because the identity service is unavailable. Please try again shortly."
            }
            Outcome::Public | Outcome::Allow => "",
        }
    }

    /// The client's answer.
    pub fn response(&self) -> HttpResponse<String> {
        let mut res = match (&self.location, self.page) {
            (Some(location), _) => {
                let mut res = HttpResponse::with_body(StatusCode::SEE_OTHER, String::new());
                if let Ok(v) = HeaderValue::from_str(location) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                res
            }
            (None, true) if self.has_page() => self.page_response(),
            (None, _) => self.json(),
        };
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.outcome == Outcome::Unavailable {
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        res
    }

    /// 403 and 503 are pages for browsers; 401 and the aal2 403 stay JSON for the programs
    /// that meet them (a browser navigating was redirected instead).
    fn has_page(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::EmailNotAllowed | Outcome::Unavailable
        )
    }

    /// `{"error":{"id","code","status","reason","message"}}`, as Ory answers, plus Ory's
    /// `redirect_browser_to` for a missing second factor.
    pub fn json(&self) -> HttpResponse<String> {
        let status = self.status();
        let mut body = serde_json::json!({
            "error": {
                "id": self.outcome.error_id().unwrap_or_default(),
                "code": status.as_u16(),
                "status": status.canonical_reason().unwrap_or(""),
                "reason": self.reason(),
                "message": message(self.outcome),
            }
        });
        if let Some(url) = &self.step_up {
            body["redirect_browser_to"] = url.clone().into();
        }
        let mut res = HttpResponse::with_body(status, body.to_string());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }

    fn page_response(&self) -> HttpResponse<String> {
        let status = self.status();
        let title = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        // A browser on a 503 page tries again by itself.
        let refresh = if self.outcome == Outcome::Unavailable {
            format!("<meta http-equiv=\"refresh\" content=\"{RETRY_AFTER_SECS}\">")
        } else {
            String::new()
        };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:44em;margin:3em auto\">\
             <h1>{title}</h1><p>{reason}</p></body></html>",
            title = escape(&title),
            reason = escape(self.reason()),
        );
        let mut res = HttpResponse::with_body(status, body);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res
    }
}

/// Ory's `message` for the errors it has, a short one for the others.
fn message(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Login | Outcome::Unauthenticated => {
            "request does not have a valid authentication session"
        }
        Outcome::StepUp | Outcome::Aal2Required => "Session does not fulfill the requested AAL",
        Outcome::EmailNotAllowed => "access denied",
        Outcome::Unavailable => "the session could not be checked",
        Outcome::Public | Outcome::Allow => "",
    }
}

/// Whether the client asked for HTML: a browser, not a program.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .any(|v| contains_ignore_case(v.as_bytes(), b"text/html"))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{IdentityHeaders, Requirement, RuleSet};

    fn policy() -> Policy {
        Policy::new(
            RuleSet::new(Vec::new(), Requirement::Session),
            "",
            "http://localhost:4000",
            IdentityHeaders::default(),
        )
    }

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    fn answer(outcome: Outcome, accept: &str) -> HttpResponse<String> {
        Denial::new(outcome, &headers(accept), "/admin?x=1", &policy()).response()
    }

    #[test]
    fn api_clients_get_ory_shaped_json() {
        for (outcome, code, id) in [
            (Outcome::Unauthenticated, 401, "session_inactive"),
            (Outcome::Aal2Required, 403, "session_aal2_required"),
            (Outcome::EmailNotAllowed, 403, "email_not_allowed"),
            (Outcome::Unavailable, 503, "session_check_unavailable"),
        ] {
            let res = answer(outcome, "application/json");
            assert_eq!(res.status().as_u16(), code);
            let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
            assert_eq!(v["error"]["id"], id);
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["reason"].as_str().is_some_and(|r| !r.is_empty()));
            assert_eq!(
                res.headers().get(header::CACHE_CONTROL).unwrap(),
                "no-store"
            );
            assert_eq!(
                res.headers().get(header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
        }
        let res = answer(Outcome::Aal2Required, "*/*");
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(
            v["redirect_browser_to"],
            "http://localhost:4000/.ory/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Flocalhost%3A4000%2Fadmin%3Fx%3D1"
        );
        let res = answer(Outcome::Unavailable, "");
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "5");
    }

    #[test]
    fn browsers_are_redirected_or_get_a_page() {
        let res = answer(Outcome::Login, "text/html");
        assert_eq!(res.status(), 303);
        assert_eq!(
            res.headers().get(header::LOCATION).unwrap(),
            "http://localhost:4000/.ory/self-service/login/browser?return_to=http%3A%2F%2Flocalhost%3A4000%2Fadmin%3Fx%3D1"
        );
        let res = answer(Outcome::StepUp, "text/html");
        assert!(res
            .headers()
            .get(header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("?aal=aal2&return_to="));
        for (outcome, code) in [(Outcome::EmailNotAllowed, 403), (Outcome::Unavailable, 503)] {
            let res = answer(outcome, "Text/HTML,application/xhtml+xml");
            assert_eq!(res.status().as_u16(), code);
            assert!(res.body().starts_with("<!doctype html>"), "{}", res.body());
            assert_eq!(
                res.headers().get(header::CONTENT_TYPE).unwrap(),
                "text/html; charset=utf-8"
            );
        }
        assert_eq!(
            answer(Outcome::Unavailable, "text/html")
                .headers()
                .get(header::RETRY_AFTER)
                .unwrap(),
            "5"
        );
    }
}

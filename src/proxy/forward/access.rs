//! Phase 2: the access rules (`[access]`) and the session. For an app-bound request: the rule it
//! meets; the session lookup unless the rule is `public`; the decision — on to the app (with the
//! session's JWT and identity headers, if any) or the proxy's refusal. Ory-bound requests are
//! never subject to rules and keep the client's `Authorization`; the proxy's own routes and
//! CORS preflights never reach this handler.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::HttpRequest;

use crate::access::{decide, method_override, Outcome, Requirement, Rule, SessionState};
use crate::config::Live;
use crate::metrics::AuthOutcome;
use crate::proxy::answer::access::Denial;
use crate::proxy::answer::ProxyError;
use crate::proxy::route::Upstream;
use crate::proxy::{AccessTag, ProxyState};
use crate::sessions::Auth;

/// What a request that may go on carries to its upstream.
pub(super) struct Admitted {
    /// The session lookup's result; `None` when none was made (Ory-bound, public, `--no-jwt`).
    pub auth: Option<Auth>,
    /// The client's `Authorization` is dropped: only the proxy's JWT may reach the app.
    pub drop_authorization: bool,
}

/// The access decision for `req`, counted and tagged for the access log; a refusal is the
/// proxy's answer.
pub(super) async fn admit(
    req: &HttpRequest,
    upstream: Upstream,
    state: &ProxyState,
    live: &Arc<Live>,
    ory: &awc::Client,
) -> Result<Admitted, ProxyError> {
    if upstream == Upstream::Ory {
        // With JWT on, the client's Authorization goes to Ory untouched.
        let auth = if state.sessions.is_some() {
            "passthrough"
        } else {
            "off"
        };
        AccessTag::unruled(upstream.as_str(), auth).record(req);
        return Ok(Admitted {
            auth: None,
            drop_authorization: false,
        });
    }
    // Only rules limited to some methods can tell a method from the one it stands for.
    let named = if live.access.rules.limits_methods() {
        method_override::named_methods(req.method(), req.headers(), req.uri().query())
    } else {
        Vec::new()
    };
    let rule = live
        .access
        .rule_for_any(req.method(), &named, req.uri().path());
    if rule.require == Requirement::Public {
        conclude(req, state, rule, Outcome::Public, "skipped");
        return Ok(Admitted {
            auth: None,
            drop_authorization: true,
        });
    }
    let auth = lookup(req, state, live, ory).await;
    let session = match &auth {
        Some(Auth::Jwt(m)) => SessionState::Active(&m.facts),
        Some(Auth::Unavailable) => SessionState::Unavailable,
        Some(Auth::Aal2Required) => SessionState::Aal2Required,
        _ => SessionState::Missing,
    };
    let outcome = decide(rule.require, &rule.allow_emails, session, is_browser(req));
    let label = auth.as_ref().map_or("off", Auth::label);
    conclude(req, state, rule, outcome, label);
    if !outcome.reaches_app() {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let denial = Denial::new(outcome, req.headers(), pq, &live.access);
        return Err(ProxyError::Denied(Box::new(denial)));
    }
    Ok(Admitted {
        drop_authorization: auth.is_some(),
        auth,
    })
}

/// The session → JWT lookup, counted; `None` with `--no-jwt`.
async fn lookup(
    req: &HttpRequest,
    state: &ProxyState,
    live: &Arc<Live>,
    ory: &awc::Client,
) -> Option<Auth> {
    let sessions = state.sessions.as_ref()?;
    let auth = sessions.authorize(req.headers(), live, ory).await;
    state.metrics.auth(match auth {
        Auth::Jwt(_) => AuthOutcome::Jwt,
        Auth::Anonymous | Auth::Aal2Required => AuthOutcome::Anonymous,
        Auth::NoCredentials => AuthOutcome::NoCredentials,
        Auth::Unavailable => AuthOutcome::OryUnavailable,
    });
    Some(auth)
}

/// Counts the decision under its rule and tags the request for the access log.
fn conclude(
    req: &HttpRequest,
    state: &ProxyState,
    rule: &Rule,
    outcome: Outcome,
    auth: &'static str,
) {
    rule.count(outcome.metric(), &state.metrics);
    AccessTag {
        upstream: Upstream::App.as_str(),
        auth,
        rule: Some(rule.name.clone()),
        decision: outcome.label(),
    }
    .record(req);
}

/// A browser navigating: `GET` or `HEAD` asking for HTML. It is sent to sign in; other clients
/// get a status they can act on.
fn is_browser(req: &HttpRequest) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && crate::proxy::answer::access::wants_html(req.headers())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header;
    use actix_web::test::TestRequest;

    #[test]
    fn browsers_are_get_or_head_navigations_asking_for_html() {
        let html = || {
            (
                header::ACCEPT,
                "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
            )
        };
        assert!(is_browser(
            &TestRequest::get().insert_header(html()).to_http_request()
        ));
        assert!(is_browser(
            &TestRequest::default()
                .method(Method::HEAD)
                .insert_header(html())
                .to_http_request()
        ));
        assert!(!is_browser(
            &TestRequest::post().insert_header(html()).to_http_request()
        ));
        assert!(!is_browser(&TestRequest::get().to_http_request()));
        assert!(!is_browser(
            &TestRequest::get()
                .insert_header((header::ACCEPT, "application/json"))
                .to_http_request()
        ));
    }
}

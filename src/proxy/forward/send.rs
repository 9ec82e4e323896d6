//! Phase 4: the client's body goes upstream, the upstream's answer head comes back.
//!
//! Bodies stream (see [`request_body`]); the one body read first is an API logout's, which
//! names the session token the session cache must forget once Ory confirms.

use actix_web::http::Method;
use actix_web::{web, HttpRequest};
use awc::{ClientRequest, ClientResponse};

use crate::proxy::answer::ProxyError;
use crate::proxy::request_body;
use crate::proxy::route::{self, Routed, Upstream};
use crate::proxy::ProxyState;

/// Ory's logout for native apps: `DELETE` with `{"session_token": "..."}`.
const API_LOGOUT_PATH: &str = "/self-service/logout/api";
/// Far more than `{"session_token":"ory_st_..."}` needs; longer bodies are passed on unread.
const API_LOGOUT_BODY_LIMIT: usize = 4096;

/// The upstream's answer, its body not read yet.
pub(super) struct Sent {
    pub res: ClientResponse,
    /// The session token an API logout named (see [`observe_ory_answer`](super::observe_ory_answer)).
    pub logged_out_token: Option<String>,
}

/// Sends `out` with the client's body and waits for the answer's head, within
/// `[upstream].response_timeout` from the end of the upload; a client that stops sending its
/// body gets a 408 after `[limits].body_idle_timeout`.
pub(super) async fn send(
    req: &HttpRequest,
    out: ClientRequest,
    payload: web::Payload,
    state: &ProxyState,
    routed: Routed<'_>,
) -> Result<Sent, ProxyError> {
    let upstream = routed.upstream;
    let timeouts = request_body::Timeouts {
        body_idle: state.fixed.limits.body_idle_timeout,
        response: state.fixed.response_timeout,
    };
    let read = if is_api_logout(req, state, routed) {
        let limit = API_LOGOUT_BODY_LIMIT;
        request_body::read_small(req.headers(), payload, limit, timeouts.body_idle).await?
    } else {
        Err(payload)
    };
    let (res, logged_out_token) = match read {
        Ok(body) => {
            let token = session_token_of(&body);
            let res = request_body::send_buffered(out, body, upstream, timeouts.response).await?;
            (res, token)
        }
        Err(payload) => {
            let res = request_body::send(out, req.headers(), payload, upstream, timeouts).await?;
            (res, None)
        }
    };
    refuse_interim(&res, upstream)?;
    Ok(Sent {
        res,
        logged_out_token,
    })
}

/// An API logout through the proxy while the session cache runs: its small body is read
/// first, so that the cache can drop the token once Ory confirms.
fn is_api_logout(req: &HttpRequest, state: &ProxyState, routed: Routed<'_>) -> bool {
    state.sessions.is_some()
        && routed.upstream == Upstream::Ory
        && req.method() == Method::DELETE
        && route::path_of(routed.path_and_query) == API_LOGOUT_PATH
}

/// The session token an API logout body names, if it is one. Read as leniently as Kratos reads
/// it (Go's JSON decoder): the first JSON value only, the key in any case, the last one winning.
fn session_token_of(body: &[u8]) -> Option<String> {
    let first = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    first
        .as_object()?
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("session_token"))
        .filter_map(|(_, v)| v.as_str())
        .next_back()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Upgrades went to the WebSocket relay, so a 1xx here is an interim answer (103 Early Hints,
/// an unasked-for 100) that awc took for the final one: the final answer cannot be had.
/// (tests/hostile_inputs.rs checks that it never reaches the next request either.)
fn refuse_interim(res: &ClientResponse, upstream: Upstream) -> Result<(), ProxyError> {
    if !res.status().is_informational() {
        return Ok(());
    }
    let code = res.status().as_u16();
    log::warn!(
        "{} sent an interim {code} answer, which the proxy cannot pass on; answering 502",
        upstream.as_str(),
    );
    Err(ProxyError::BadAnswer {
        upstream,
        detail: format!(
            "an interim {code} answer in place of a final one (is the app sending 103 Early Hints?)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::session_token_of;

    #[test]
    fn api_logout_bodies_are_read_as_kratos_reads_them() {
        assert_eq!(
            session_token_of(br#"{"session_token":"ory_st_a"}"#).as_deref(),
            Some("ory_st_a")
        );
        assert_eq!(
            session_token_of(br#"{"Session_Token":"ory_st_a"}"#).as_deref(),
            Some("ory_st_a"),
            "keys match in any case"
        );
        assert_eq!(
            session_token_of(b"{\"session_token\":\"ory_st_a\"}\n trailing").as_deref(),
            Some("ory_st_a"),
            "only the first JSON value counts"
        );
        assert_eq!(session_token_of(br#"{"session_token":""}"#), None);
        assert_eq!(session_token_of(br#"{"session_token":1}"#), None);
        assert_eq!(session_token_of(b"not json"), None);
    }
}

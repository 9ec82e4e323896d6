//! The catch-all handler: every request that is not one of the proxy's own routes goes to the
//! app or to Ory through [`forward`], in phases that run in the order the data flows:
//!
//! 1. [`route_request`]: which upstream gets the request, or why the proxy refuses it itself
//!    (and [`client_host`]: the host it asked for);
//! 2. [`access::admit`]: for app-bound requests, the access rule they meet, the session → JWT
//!    lookup (none for `public` rules) and the decision: on to the app, or the proxy's refusal
//!    (a redirect to sign in, 401, 403, 503);
//! 3. [`upstream_request`]: the request for the upstream, its headers under the header rules
//!    (a WebSocket upgrade leaves here for [`websocket::relay`]);
//! 4. [`send::send`]: the client's body, streamed, and the upstream's answer head;
//! 5. [`observe_ory_answer`]: what a logout or a login seen in Ory's answer means for the session
//!    cache — before the client can see that answer, so its next request cannot meet the old
//!    session;
//! 6. [`shape::response`]: the client's answer: status, headers rewritten, and the body
//!    streamed, or for textual Ory answers rewritten.
//!
//! A phase that fails returns a [`ProxyError`]; [`answer`](super::answer) turns it into HTTP.

mod access;
mod send;
mod shape;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use awc::ClientRequest;

use super::answer::ProxyError;
use super::request_headers::{
    client_host, header_bytes, write_upstream_headers, RequestContext, MAX_REQUEST_HEADER_BYTES,
};
use super::route::{self, Routed, Upstream};
use super::{websocket, ProxyState, RequestLive, Upstreams};
use crate::config::Live;
use crate::sessions::Auth;

/// The handler. Each line is one phase (see the module's documentation).
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    clients: web::Data<Upstreams>,
) -> Result<HttpResponse, ProxyError> {
    let routed = route_request(&req)?;
    let host = client_host(req.headers(), req.version(), req.uri())
        .map_err(|why| ProxyError::BadRequest(why.into()))?;
    let live = RequestLive::of(&req, &state.live);
    let admitted = access::admit(&req, routed.upstream, &state, &live, &clients.ory).await?;
    let client = match routed.upstream {
        Upstream::App => &clients.app,
        Upstream::Ory => &clients.ory,
    };
    let url = upstream_url(&state, routed);
    let ctx = request_context(&req, &state, &live, routed.upstream, &admitted, host);
    if is_websocket_upgrade(&req) {
        return websocket::relay(&req, payload, client, &url, &ctx, &live).await;
    }
    let out = upstream_request(&req, client, url, &ctx);
    let sent = send::send(&req, out, payload, &state, routed).await?;
    observe_ory_answer(&req, &state, routed, &sent, &live).await;
    shape::response(&req, sent.res, &state, routed.upstream, &live).await
}

/// Phase 1: the upstream and the path-and-query it gets, decided on the raw request target;
/// or the proxy's refusal (oversized headers, a path it must not send to Ory).
fn route_request(req: &HttpRequest) -> Result<Routed<'_>, ProxyError> {
    let size = header_bytes(req.headers());
    if size > MAX_REQUEST_HEADER_BYTES {
        return Err(ProxyError::HeadersTooLarge {
            size,
            limit: MAX_REQUEST_HEADER_BYTES,
        });
    }
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let routed = route::route(pq);
    if routed.upstream == Upstream::Ory {
        route::check_ory_path(routed.path_and_query)
            .map_err(|why| ProxyError::BadRequest(why.message().into()))?;
    }
    Ok(routed)
}

/// The upstream URL for a routed request.
fn upstream_url(state: &ProxyState, routed: Routed<'_>) -> String {
    let base = match routed.upstream {
        Upstream::App => state.fixed.app_origin.as_str(),
        Upstream::Ory => state.fixed.ory_base.as_str(),
    };
    let pq = routed.path_and_query;
    let mut url = String::with_capacity(base.len() + pq.len() + 1);
    url.push_str(base);
    if !pq.starts_with('/') {
        url.push('/');
    }
    url.push_str(pq);
    url
}

/// The facts the header rules need, shared by the HTTP and the WebSocket path.
fn request_context<'a>(
    req: &HttpRequest,
    state: &'a ProxyState,
    live: &'a Live,
    upstream: Upstream,
    admitted: &'a access::Admitted,
    host: Option<header::HeaderValue>,
) -> RequestContext<'a> {
    let session = admitted.auth.as_ref().and_then(Auth::session);
    RequestContext {
        upstream,
        // The dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
        peer: req.peer_addr().map(|a| a.ip().to_canonical()),
        fixed: &state.fixed,
        constants: &state.constants,
        drop_authorization: admitted.drop_authorization,
        authorization: session.map(|m| &m.header),
        strip: &live.strip_request_headers,
        identity_names: live.access.identity.names(),
        identity: session.map_or(&[][..], |m| &m.identity[..]),
        host,
    }
}

fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Phase 3: the upstream request: the client's method, the upstream URL, the headers under the
/// header rules. awc must not decompress: bodies go on as the upstream encoded them.
fn upstream_request(
    req: &HttpRequest,
    client: &awc::Client,
    url: String,
    ctx: &RequestContext<'_>,
) -> ClientRequest {
    // The URL by value: the URI takes over the string instead of copying it.
    let mut out = client.request(req.method().clone(), url).no_decompress();
    write_upstream_headers(req.headers(), out.headers_mut(), ctx);
    out
}

/// Phase 5 (Ory answers, JWT on): a logout, or an answer that sets or deletes a session cookie,
/// evicts the request's cached session; a confirmed API logout, the token its body named.
async fn observe_ory_answer(
    req: &HttpRequest,
    state: &ProxyState,
    routed: Routed<'_>,
    sent: &send::Sent,
    live: &Live,
) {
    let (Some(sessions), Upstream::Ory) = (&state.sessions, routed.upstream) else {
        return;
    };
    let res = &sent.res;
    sessions
        .observe_ory_answer(
            req.headers(),
            routed.path_and_query,
            res.status(),
            res.headers(),
            live,
        )
        .await;
    if let Some(token) = sent.logged_out_token.as_deref() {
        if res.status().is_success() {
            sessions.observe_api_logout(token, live).await;
        }
    }
}

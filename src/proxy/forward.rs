//! The catch-all handler: sends the request to the app or to Ory and streams the answer back.
//! Bodies stream both ways; only textual Ory answers are buffered, to rewrite Ory's URL.

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use super::body_rewrite::{self, Encoding, MAX_REWRITE_BODY};
use super::error::{ProxyError, Upstream};
use super::request_headers::{
    header_bytes, write_upstream_headers, RequestContext, MAX_REQUEST_HEADER_BYTES,
};
use super::response_headers::{copy_response_headers, ResponseContext};
use super::rewrite_budget::{HeldBody, HeldStream, Reservation};
use super::{request_body, route, websocket, AccessTag, ProxyState, Upstreams};
use crate::metrics::AuthOutcome;
use crate::sessions::Auth;

/// The upstream URL for a routed request.
fn upstream_url(state: &ProxyState, upstream: Upstream, path_and_query: &str) -> String {
    let base = match upstream {
        Upstream::App => state.fixed.app_origin.as_str(),
        Upstream::Ory => state.fixed.ory_base.as_str(),
    };
    let pq = path_and_query;
    let mut url = String::with_capacity(base.len() + pq.len() + 1);
    url.push_str(base);
    if !pq.starts_with('/') {
        url.push('/');
    }
    url.push_str(pq);
    url
}

/// Ory's logout for native apps: `DELETE` with `{"session_token": "..."}`.
const API_LOGOUT_PATH: &str = "/self-service/logout/api";
/// Far more than `{"session_token":"ory_st_..."}` needs; longer bodies are passed on unread.
const API_LOGOUT_BODY_LIMIT: usize = 4096;

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

fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    clients: web::Data<Upstreams>,
) -> Result<HttpResponse, ProxyError> {
    let size = header_bytes(req.headers());
    if size > MAX_REQUEST_HEADER_BYTES {
        return Err(ProxyError::HeadersTooLarge(size));
    }
    let live = super::RequestLive::of(&req, &state.live);
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let routed = route::route(pq);
    if routed.upstream == Upstream::Ory {
        route::check_ory_path(routed.path_and_query)
            .map_err(|why| ProxyError::BadRequest(why.message().into()))?;
    }
    // Only app-bound requests carry the JWT; Ory-bound ones keep the client's Authorization.
    let auth = match (&state.sessions, routed.upstream) {
        (Some(sessions), Upstream::App) => {
            let auth = sessions.authorize(req.headers(), &live, &clients.ory).await;
            state.metrics.auth(match auth {
                Auth::Jwt(_) => AuthOutcome::Jwt,
                Auth::Anonymous => AuthOutcome::Anonymous,
                Auth::NoCredentials => AuthOutcome::NoCredentials,
                Auth::Unavailable => AuthOutcome::OryUnavailable,
            });
            Some(auth)
        }
        _ => None,
    };
    AccessTag {
        upstream: routed.upstream.as_str(),
        auth: match (&auth, state.sessions.is_some()) {
            (Some(a), _) => a.label(),
            // Ory-bound with JWT on: the client's Authorization goes to Ory untouched.
            (None, true) => "passthrough",
            (None, false) => "off",
        },
    }
    .record(&req);
    let client = match routed.upstream {
        Upstream::App => &clients.app,
        Upstream::Ory => &clients.ory,
    };
    let url = upstream_url(&state, routed.upstream, routed.path_and_query);
    let ctx = RequestContext {
        upstream: routed.upstream,
        // The dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
        peer: req.peer_addr().map(|a| a.ip().to_canonical()),
        fixed: &state.fixed,
        constants: &state.constants,
        drop_authorization: auth.is_some(),
        authorization: auth.as_ref().and_then(Auth::header),
        strip: &live.strip_request_headers,
    };

    if is_websocket_upgrade(&req) {
        return websocket::relay(&req, payload, client, &url, &ctx, &live).await;
    }

    let mut out = client
        // By value: the URI takes over the string instead of copying it.
        .request(req.method().clone(), url)
        .no_decompress();
    write_upstream_headers(req.headers(), out.headers_mut(), &ctx);

    // An API logout names the session token in its body, not in a header: that small body is
    // read first, so that the session cache can drop the token once Ory confirms.
    let api_logout = state.sessions.is_some()
        && routed.upstream == Upstream::Ory
        && req.method() == Method::DELETE
        && route::path_of(routed.path_and_query) == API_LOGOUT_PATH;
    let timeouts = request_body::Timeouts {
        body_idle: state.fixed.limits.body_idle_timeout,
        response: state.fixed.response_timeout,
    };
    let read = if api_logout {
        let limit = API_LOGOUT_BODY_LIMIT;
        request_body::read_small(req.headers(), payload, limit, timeouts.body_idle).await?
    } else {
        Err(payload)
    };
    let (mut res, logged_out_token) = match read {
        Ok(body) => {
            let token = session_token_of(&body);
            let res =
                request_body::send_buffered(out, body, routed.upstream, timeouts.response).await?;
            (res, token)
        }
        Err(payload) => {
            let res =
                request_body::send(out, req.headers(), payload, routed.upstream, timeouts).await?;
            (res, None)
        }
    };
    if res.status().is_informational() {
        // Upgrades went to `websocket::relay`, so this is an interim answer (103 Early Hints,
        // an unasked-for 100) that awc took for the final one: the final answer cannot be
        // had. (tests/hostile_inputs.rs checks that it never reaches the next request either.)
        log::warn!(
            "{} sent an interim {} answer, which the proxy cannot pass on; answering 502",
            routed.upstream.as_str(),
            res.status().as_u16()
        );
        return Err(ProxyError::BadAnswer {
            upstream: routed.upstream,
            detail: format!(
                "an interim {} answer in place of a final one (is the app sending 103 Early Hints?)",
                res.status().as_u16()
            ),
        });
    }
    if let (Some(sessions), Upstream::Ory) = (&state.sessions, routed.upstream) {
        sessions
            .observe_ory_answer(
                req.headers(),
                routed.path_and_query,
                res.status(),
                res.headers(),
                &live,
            )
            .await;
        if let Some(token) = logged_out_token.filter(|_| res.status().is_success()) {
            sessions.observe_api_logout(&token, &live).await;
        }
    }

    let mut builder = HttpResponse::build(res.status());
    let rctx = ResponseContext {
        upstream: routed.upstream,
        fixed: &state.fixed,
        live: &live,
    };
    copy_response_headers(res.headers(), &mut builder, &rctx);

    let status = res.status();
    // (1xx answers were refused above.)
    let no_body = req.method() == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // With Transfer-Encoding as well, the body was decoded as chunked and the length is a
    // lie (RFC 9112 §6.3): it must not frame the answer.
    let length = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .filter(|_| !res.headers().contains_key(header::TRANSFER_ENCODING))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());

    if no_body {
        // No body, but the Content-Length a GET would get (HEAD) or the cached entity's (304)
        // stays. Not as a sized body: actix-http frames an answer by the *last* request it
        // parsed, so a HEAD with a GET pipelined behind it would be framed as a GET and wait for
        // bytes that never come. An unchunked empty stream ends cleanly either way.
        return Ok(match length {
            Some(n) => builder
                .no_chunking(n)
                .body(BodyStream::new(futures_util::stream::empty::<
                    Result<bytes::Bytes, ProxyError>,
                >())),
            None => builder.finish(),
        });
    }

    if routed.upstream == Upstream::Ory {
        let textual = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(body_rewrite::is_textual);
        let encoding = Encoding::from_header(
            res.headers()
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        let fits = length.is_none_or(|n| n <= MAX_REWRITE_BODY as u64);
        // The declared length is reserved before a byte is read; a chunked body piece by piece.
        let held = if textual && encoding.is_some() && fits {
            let held = state.rewrite_budget.reserve(length.unwrap_or(0));
            if held.is_none() {
                state.metrics.rewrite_skipped();
            }
            held
        } else {
            None
        };
        if let (Some(enc), Some(mut held)) = (encoding, held) {
            let body = match read_up_to(&mut res, MAX_REWRITE_BODY, length, &mut held).await? {
                Whole(body) => body,
                // Chunked and larger than anything worth rewriting, or over the budget: passed
                // on as it is, like a large answer that declared its length, rather than
                // refused. What was read stays counted until it has been sent.
                Passed(read, why) => {
                    if why == PassReason::Budget {
                        state.metrics.rewrite_skipped();
                    }
                    let read = futures_util::stream::iter(read.into_iter().map(Ok));
                    let rest = HeldStream::new(read.chain(res), held);
                    return Ok(builder.body(BodyStream::new(rest)));
                }
            };
            let to = format!("{}/.ory", state.fixed.publish_origin);
            let body =
                body_rewrite::rewrite(body, enc, &state.fixed.ory_base, &to).map_err(|e| {
                    ProxyError::BadAnswer {
                        upstream: Upstream::Ory,
                        detail: e.to_string(),
                    }
                })?;
            // Rewriting changes the size a little; when the budget cannot cover a longer body,
            // it is sent anyway (it was read within the budget).
            let _ = held.cover(body.len() as u64);
            let n = body.len() as u64;
            return Ok(builder.body(SizedStream::new(n, HeldBody::new(body, held))));
        }
    }

    Ok(match length {
        Some(n) => builder.body(SizedStream::new(n, res)),
        None => builder.body(BodyStream::new(res)),
    })
}

/// Why a body is passed on unrewritten after part of it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassReason {
    /// Larger than [`MAX_REWRITE_BODY`].
    TooLarge,
    /// The global rewrite budget is spent.
    Budget,
}

/// A body read whole, or the pieces read before it passed a limit.
enum Read {
    Whole(bytes::Bytes),
    Passed(Vec<bytes::Bytes>, PassReason),
}
use Read::{Passed, Whole};

/// Reads `res`'s body while it stays within `limit` bytes and `held` can cover it. A body
/// that ends short of its declared `length` is an error: the rewritten answer would otherwise
/// look complete.
async fn read_up_to<S>(
    res: &mut awc::ClientResponse<S>,
    limit: usize,
    length: Option<u64>,
    held: &mut Reservation,
) -> Result<Read, ProxyError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, actix_http::error::PayloadError>> + Unpin,
{
    let mut pieces = Vec::new();
    let mut total = 0;
    while let Some(piece) = res.next().await {
        let piece = piece.map_err(|e| ProxyError::BadAnswer {
            upstream: Upstream::Ory,
            detail: format!("reading the body: {e}"),
        })?;
        total += piece.len();
        let covered = held.cover(total as u64);
        pieces.push(piece);
        if total > limit {
            return Ok(Passed(pieces, PassReason::TooLarge));
        }
        if !covered {
            return Ok(Passed(pieces, PassReason::Budget));
        }
    }
    if let Some(n) = length.filter(|&n| n != total as u64) {
        return Err(ProxyError::BadAnswer {
            upstream: Upstream::Ory,
            detail: format!("the body ended after {total} of its {n} bytes"),
        });
    }
    Ok(Whole(match pieces.len() {
        1 => pieces.remove(0),
        _ => {
            let mut whole = bytes::BytesMut::with_capacity(total);
            for piece in pieces {
                whole.extend_from_slice(&piece);
            }
            whole.freeze()
        }
    }))
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

//! Phase 6: the client's answer from the upstream's: the status as sent, the headers under the
//! answer rules ([`response_headers`](crate::proxy::response_headers)), and the body — none,
//! streamed as it arrives, or, for a textual Ory answer, read and rewritten onto the publish
//! URL (docs/behaviour.md, "Answer bodies").

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use awc::ClientResponse;
use futures_util::StreamExt as _;

use crate::config::Live;
use crate::proxy::answer::ProxyError;
use crate::proxy::body_rewrite::{self, Encoding, MAX_REWRITE_BODY};
use crate::proxy::response_headers::{copy_response_headers, ResponseContext};
use crate::proxy::rewrite_budget::{HeldBody, HeldStream, Reservation};
use crate::proxy::route::Upstream;
use crate::proxy::ProxyState;

/// The client's answer for the upstream's `res`.
pub(super) async fn response(
    req: &HttpRequest,
    res: ClientResponse,
    state: &ProxyState,
    upstream: Upstream,
    live: &Live,
) -> Result<HttpResponse, ProxyError> {
    let mut builder = HttpResponse::build(res.status());
    let rctx = ResponseContext {
        upstream,
        fixed: &state.fixed,
        live,
    };
    copy_response_headers(res.headers(), &mut builder, &rctx);
    let length = declared_length(res.headers());
    // (1xx answers were refused when they arrived.)
    if req.method() == Method::HEAD
        || res.status() == StatusCode::NO_CONTENT
        || res.status() == StatusCode::NOT_MODIFIED
    {
        return Ok(bodiless(builder, length));
    }
    if upstream == Upstream::Ory {
        if let Some(encoding) = rewritable(res.headers(), length) {
            // The declared length is reserved before a byte is read; a chunked body piece by
            // piece. Over the budget shared by all requests, the answer streams as sent.
            match state.rewrite_budget.reserve(length.unwrap_or(0)) {
                Some(held) => return rewritten(builder, res, encoding, length, held, state).await,
                None => state.metrics.rewrite_skipped(),
            }
        }
    }
    Ok(streamed(builder, res, length))
}

/// The body's length as the upstream declared it. With Transfer-Encoding as well, the body was
/// decoded as chunked and the length is a lie (RFC 9112 §6.3): it must not frame the answer.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .filter(|_| !headers.contains_key(header::TRANSFER_ENCODING))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// No body, but the Content-Length a GET would get (HEAD) or the cached entity's (304) stays.
/// Not as a sized body: actix-http frames an answer by the *last* request it parsed, so a HEAD
/// with a GET pipelined behind it would be framed as a GET and wait for bytes that never come.
/// An unchunked empty stream ends cleanly either way.
fn bodiless(mut builder: HttpResponseBuilder, length: Option<u64>) -> HttpResponse {
    match length {
        Some(n) => builder
            .no_chunking(n)
            .body(BodyStream::new(futures_util::stream::empty::<
                Result<bytes::Bytes, ProxyError>,
            >())),
        None => builder.finish(),
    }
}

/// The body as it arrives, with its length when it declared one.
fn streamed(
    mut builder: HttpResponseBuilder,
    res: ClientResponse,
    length: Option<u64>,
) -> HttpResponse {
    match length {
        Some(n) => builder.body(SizedStream::new(n, res)),
        None => builder.body(BodyStream::new(res)),
    }
}

/// The encoding to rewrite an Ory answer in: textual, in an encoding the proxy can decode, and
/// not declared larger than the rewrite buffer. `None`: it streams through as sent.
fn rewritable(headers: &HeaderMap, length: Option<u64>) -> Option<Encoding> {
    let textual = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(body_rewrite::is_textual);
    let fits = length.is_none_or(|n| n <= MAX_REWRITE_BODY as u64);
    if !(textual && fits) {
        return None;
    }
    Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A textual Ory answer with every occurrence of Ory's URL replaced by `<PUBLISH_URL>/.ory`.
/// `held` is its share of the rewrite budget, kept until the body has been sent.
async fn rewritten(
    mut builder: HttpResponseBuilder,
    mut res: ClientResponse,
    encoding: Encoding,
    length: Option<u64>,
    mut held: Reservation,
    state: &ProxyState,
) -> Result<HttpResponse, ProxyError> {
    let body = match read_up_to(&mut res, MAX_REWRITE_BODY, length, &mut held).await? {
        Read::Whole(body) => body,
        // Chunked and larger than anything worth rewriting, or over the budget: passed on as
        // it is, like a large answer that declared its length, rather than refused. What was
        // read stays counted until it has been sent.
        Read::Passed(read, why) => {
            if why == PassReason::Budget {
                state.metrics.rewrite_skipped();
            }
            let read = futures_util::stream::iter(read.into_iter().map(Ok));
            let rest = HeldStream::new(read.chain(res), held);
            return Ok(builder.body(BodyStream::new(rest)));
        }
    };
    let fixed = &state.fixed;
    let to = format!("{}/.ory", fixed.publish_origin);
    let body = body_rewrite::rewrite(body, encoding, &fixed.ory_base, &to).map_err(|e| {
        ProxyError::BadAnswer {
            upstream: Upstream::Ory,
            detail: e.to_string(),
        }
    })?;
    // Rewriting changes the size a little; when the budget cannot cover a longer body, it is
    // sent anyway (it was read within the budget).
    let _ = held.cover(body.len() as u64);
    let n = body.len() as u64;
    Ok(builder.body(SizedStream::new(n, HeldBody::new(body, held))))
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

/// Reads `res`'s body while it stays within `limit` bytes and `held` can cover it. A body that
/// ends short of its declared `length` is an error: the rewritten answer would otherwise look
/// complete.
async fn read_up_to<S>(
    res: &mut ClientResponse<S>,
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
            return Ok(Read::Passed(pieces, PassReason::TooLarge));
        }
        if !covered {
            return Ok(Read::Passed(pieces, PassReason::Budget));
        }
    }
    if let Some(n) = length.filter(|&n| n != total as u64) {
        return Err(ProxyError::BadAnswer {
            upstream: Upstream::Ory,
            detail: format!("the body ended after {total} of its {n} bytes"),
        });
    }
    Ok(Read::Whole(match pieces.len() {
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

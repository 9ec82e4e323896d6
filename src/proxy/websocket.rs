//! WebSocket relay (SPEC §5.1): the dev servers' HMR sockets must work through the proxy.
//!
//! The proxy completes the handshake with the upstream through awc, answers the browser's
//! handshake itself (its own `Sec-WebSocket-Accept`, the upstream's other headers), then
//! copies raw bytes both ways. Frames are never decoded, so extensions and subprotocols the
//! two ends agreed on pass through untouched.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use awc::error::{SendRequestError, WsClientError};

use super::declined_upgrade::DeclinedUpgrade;
use super::error::ProxyError;
use super::request_headers::{write_upstream_headers, RequestContext};
use super::response_headers::{copy_response_headers, ResponseContext};
use crate::config::Live;

/// Handshake headers awc writes itself.
fn awc_owned(name: &header::HeaderName) -> bool {
    *name == header::SEC_WEBSOCKET_KEY
        || *name == header::SEC_WEBSOCKET_VERSION
        || *name == header::UPGRADE
        || *name == header::CONNECTION
}

pub async fn relay(
    req: &HttpRequest,
    payload: web::Payload,
    client: &awc::Client,
    url: &str,
    ctx: &RequestContext<'_>,
    live: &Live,
) -> Result<HttpResponse, ProxyError> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(ProxyError::BadRequest(
            "WebSocket upgrade without Sec-WebSocket-Key".into(),
        ));
    };
    // Sec-WebSocket-Protocol/-Extensions are end-to-end and go through with the rest.
    let mut headers = header::HeaderMap::new();
    write_upstream_headers(req.headers(), &mut headers, ctx);
    let mut ws = client.ws(url);
    for (name, value) in headers.iter() {
        if !awc_owned(name) {
            ws = ws.header(name.clone(), value.clone());
        }
    }
    let connected = tokio::time::timeout(ctx.fixed.response_timeout, ws.connect())
        .await
        .map_err(|_| ProxyError::Timeout {
            upstream: ctx.upstream,
        })?;
    let (res, framed) = match connected {
        Ok(pair) => pair,
        // The upstream declined the upgrade (a 401, or a plain 200 page): the client gets that
        // answer, headers and body, as for any request.
        Err(WsClientError::SendRequest(SendRequestError::Custom(e, _))) => {
            return match e.downcast::<DeclinedUpgrade>() {
                Ok(declined) => Ok(declined_answer(*declined, ctx, live)),
                Err(other) => Err(ProxyError::BadAnswer {
                    upstream: ctx.upstream,
                    detail: format!("WebSocket handshake: {other}"),
                }),
            };
        }
        // Not expected: the client's middleware catches every declined upgrade first.
        Err(WsClientError::InvalidResponseStatus(status)) => {
            return Ok(HttpResponse::build(status).finish())
        }
        Err(WsClientError::SendRequest(e)) => return Err(ProxyError::from_send(ctx.upstream, e)),
        Err(other) => {
            return Err(ProxyError::BadAnswer {
                upstream: ctx.upstream,
                detail: format!("WebSocket handshake: {other}"),
            })
        }
    };

    let mut builder = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    let rctx = ResponseContext {
        upstream: ctx.upstream,
        fixed: ctx.fixed,
        live,
    };
    copy_response_headers(res.headers(), &mut builder, &rctx);
    // `upgrade` (not a plain header) marks the answer as an upgrade, so actix-http writes
    // `Connection: upgrade` instead of `close, upgrade`, which WebSocket clients reject.
    builder.upgrade(HeaderValue::from_static("websocket"));
    let accept = actix_http::ws::hash_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&accept) {
        builder.insert_header((header::SEC_WEBSOCKET_ACCEPT, v));
    }

    let parts = framed.into_parts();
    let leftover = Bytes::from(parts.read_buf);
    let (up_read, mut up_write) = tokio::io::split(parts.io);

    // Browser → upstream.
    let mut payload = payload;
    actix_rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else { break };
            if up_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    });

    // Upstream → browser: what awc had already read past the handshake first, then the socket.
    let first = (!leftover.is_empty()).then_some(Ok::<Bytes, std::io::Error>(leftover));
    let rest = futures_util::stream::unfold(
        (up_read, BytesMut::with_capacity(16 * 1024)),
        |(mut r, mut buf)| async move {
            buf.reserve(16 * 1024);
            match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(_) => {
                    let chunk = buf.split().freeze();
                    Some((Ok(chunk), (r, buf)))
                }
            }
        },
    );
    let down = futures_util::stream::iter(first).chain(rest);
    // A raw byte relay: no `Content-Type` on the 101 (`streaming` would add one).
    Ok(builder.body(actix_web::body::BodyStream::new(down)))
}

/// The upstream's own answer to an upgrade it declined, passed on like any answer: rewritten
/// headers, and the body framed as the upstream framed it.
fn declined_answer(
    declined: DeclinedUpgrade,
    ctx: &RequestContext<'_>,
    live: &Live,
) -> HttpResponse {
    let mut builder = HttpResponse::build(declined.head.status);
    let rctx = ResponseContext {
        upstream: ctx.upstream,
        fixed: ctx.fixed,
        live,
    };
    let headers = &declined.head.headers;
    copy_response_headers(headers, &mut builder, &rctx);
    // With Transfer-Encoding as well, the length is a lie (RFC 9112 §6.3).
    let length = headers
        .get(header::CONTENT_LENGTH)
        .filter(|_| !headers.contains_key(header::TRANSFER_ENCODING))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (declined.body(), length) {
        (None, _) => builder.finish(),
        (Some(body), Some(n)) => builder.body(actix_web::body::SizedStream::new(n, body)),
        (Some(body), None) => {
            // actix-http writes any unsized answer to a WebSocket upgrade request unchunked
            // (the request's connection is a stream), yet announces `chunked`. So: no chunked
            // header, and the end of the body is the end of the connection.
            let mut res = builder
                .force_close()
                .body(actix_web::body::BodyStream::new(body));
            res.head_mut().no_chunking(true);
            res
        }
    }
}

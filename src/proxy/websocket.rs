//! WebSocket relay (docs/behaviour.md, "WebSockets"): the dev servers' HMR sockets must work
//! through the proxy.
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

use super::answer::ProxyError;
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
        // The upstream refused the upgrade (401, 404, …): the client sees that status (awc
        // keeps no body of a refused handshake).
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            return Ok(HttpResponse::build(status).finish())
        }
        Err(awc::error::WsClientError::SendRequest(e)) => {
            return Err(ProxyError::from_send(ctx.upstream, e))
        }
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

//! WebSocket relay (docs/behaviour.md, "WebSockets"): the dev servers' HMR sockets must work
//! through the proxy.
//!
//! The proxy completes the handshake with the upstream through awc, answers the browser's
//! handshake itself (its own `Sec-WebSocket-Accept`, the upstream's other headers), then
//! copies raw bytes both ways. Frames are never decoded, so extensions and subprotocols the
//! two ends agreed on pass through untouched.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
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

/// Relays an upgrade request: the handshake with the upstream, the client's 101, then bytes both
/// ways until either side closes.
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
    let (res, leftover, io) = match handshake(req, client, url, ctx).await? {
        Handshake::Upgraded { res, leftover, io } => (res, leftover, io),
        // The upstream refused the upgrade (401, 404, …): the client sees that status (awc
        // keeps no body of a refused handshake).
        Handshake::Refused(status) => return Ok(HttpResponse::build(status).finish()),
    };
    let mut builder = switching_protocols(&res, &key, ctx, live);
    // A raw byte relay: no `Content-Type` on the 101 (`streaming` would add one).
    Ok(builder.body(actix_web::body::BodyStream::new(pipe(
        payload, leftover, io,
    ))))
}

/// How the upstream answered the upgrade.
enum Handshake {
    /// It switched protocols: its answer, the bytes awc read past the handshake, the socket.
    Upgraded {
        res: awc::ClientResponse,
        leftover: Bytes,
        io: awc::BoxedSocket,
    },
    /// It answered with this status instead.
    Refused(StatusCode),
}

/// The upstream's side of the handshake, under the request header rules, within
/// `[upstream].response_timeout`.
async fn handshake(
    req: &HttpRequest,
    client: &awc::Client,
    url: &str,
    ctx: &RequestContext<'_>,
) -> Result<Handshake, ProxyError> {
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
    match connected {
        Ok((res, framed)) => {
            let parts = framed.into_parts();
            Ok(Handshake::Upgraded {
                res,
                leftover: Bytes::from(parts.read_buf),
                io: parts.io,
            })
        }
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            Ok(Handshake::Refused(status))
        }
        Err(awc::error::WsClientError::SendRequest(e)) => {
            Err(ProxyError::from_send(ctx.upstream, e))
        }
        Err(other) => Err(ProxyError::BadAnswer {
            upstream: ctx.upstream,
            detail: format!("WebSocket handshake: {other}"),
        }),
    }
}

/// The client's 101: the upstream's headers under the answer rules, the proxy's own
/// `Sec-WebSocket-Accept` for the client's key.
fn switching_protocols(
    res: &awc::ClientResponse,
    key: &HeaderValue,
    ctx: &RequestContext<'_>,
    live: &Live,
) -> HttpResponseBuilder {
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
    builder
}

/// Copies raw bytes both ways: the client's on a task of their own, the upstream's as the
/// 101's body — first what awc had already read past the handshake, then the socket.
fn pipe(
    mut payload: web::Payload,
    leftover: Bytes,
    io: awc::BoxedSocket,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (up_read, mut up_write) = tokio::io::split(io);
    actix_rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else { break };
            if up_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    });
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
    futures_util::stream::iter(first).chain(rest)
}

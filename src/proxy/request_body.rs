//! Sending the request body upstream and waiting for the answer's head.
//!
//! Every body is read through [`IdleLimited`]: a client that stops sending gets a 408 after
//! `[limits].body_idle_timeout`, and the upstream connection opened for it is dropped.
//!
//! The response timeout starts when the client has sent its whole body, not when the request
//! starts: awc's own timeout covers the upload too, which would turn every upload slower than
//! `[upstream].response_timeout` into a 504 (SPEC §5.1: no size limit of the proxy's own).

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use awc::error::SendRequestError;
use awc::{ClientRequest, ClientResponse};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::Notify;

use super::body_idle::{IdleLimited, UploadError};
use super::error::{ProxyError, Upstream};

/// The client's body, announcing on `done` when it has all been read (or failed).
struct Tracked<S> {
    inner: S,
    done: Option<Rc<Notify>>,
}

impl<S: Stream + Unpin> Stream for Tracked<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let item = Pin::new(&mut self.inner).poll_next(cx);
        if matches!(item, Poll::Ready(None)) {
            if let Some(done) = self.done.take() {
                done.notify_one();
            }
        }
        item
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.notify_one();
        }
    }
}

/// How the client framed its body.
fn framing(headers: &HeaderMap) -> (bool, Option<u64>) {
    let chunked = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    (chunked, length)
}

/// Timeouts of one upload: for the client's body, then for the upstream's answer.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub body_idle: Duration,
    pub response: Duration,
}

/// What an awc send error means once the client's body is a possible cause.
fn send_error(upstream: Upstream, e: SendRequestError) -> ProxyError {
    let upload = match &e {
        SendRequestError::Body(cause) => {
            cause.downcast_ref::<UploadError>().map(UploadError::answer)
        }
        _ => None,
    };
    upload.unwrap_or_else(|| ProxyError::from_send(upstream, e))
}

/// Sends `out` with the client's body streamed as it arrives (chunked stays chunked, a length
/// stays a length) and returns the upstream's answer head.
pub async fn send(
    out: ClientRequest,
    inbound: &HeaderMap,
    payload: web::Payload,
    upstream: Upstream,
    timeouts: Timeouts,
) -> Result<ClientResponse, ProxyError> {
    let response_timeout = timeouts.response;
    let framed = framing(inbound);
    let with_body = match framed {
        (true, _) => true,
        (false, Some(n)) => n > 0,
        (false, None) => false,
    };
    if !with_body {
        // Nothing to upload: the timeout starts now, and no tracking is needed.
        let sending = match framed {
            (false, Some(_)) => out.send_body(()),
            _ => out.send_body(actix_web::body::None::new()),
        };
        return answer_within(sending, upstream, response_timeout).await;
    }
    let done = Rc::new(Notify::new());
    let body = Tracked {
        inner: IdleLimited::new(payload, timeouts.body_idle),
        done: Some(done.clone()),
    };
    let sending = match framed {
        (false, Some(n)) => out.send_body(SizedStream::new(n, body)),
        _ => out.send_stream(body),
    };
    let mut sending = std::pin::pin!(sending);
    let answered = tokio::select! {
        // An upstream may answer (e.g. 413) before the upload ends.
        res = &mut sending => Some(res),
        () = done.notified() => None,
    };
    let res = match answered {
        Some(res) => res,
        None => tokio::time::timeout(response_timeout, sending)
            .await
            .map_err(|_| ProxyError::Timeout { upstream })?,
    };
    res.map_err(|e| send_error(upstream, e))
}

/// The client's whole body (`Ok(Ok)`), when its `Content-Length` says it is at most `limit`
/// bytes; otherwise the payload back, unread (`Ok(Err)`). For the few requests whose body the
/// proxy must look into.
pub async fn read_small(
    inbound: &HeaderMap,
    payload: web::Payload,
    limit: usize,
    body_idle: Duration,
) -> Result<Result<Bytes, web::Payload>, ProxyError> {
    match framing(inbound) {
        (false, Some(n)) if n <= limit as u64 => {}
        _ => return Ok(Err(payload)),
    }
    let mut body = IdleLimited::new(payload, body_idle);
    let mut read = BytesMut::new();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| e.answer())?;
        // actix-http stops a body at its Content-Length, which was checked above.
        if read.len() + piece.len() > limit {
            return Err(ProxyError::BadRequest(format!(
                "the request body is over {limit} bytes"
            )));
        }
        read.extend_from_slice(&piece);
    }
    Ok(Ok(read.freeze()))
}

/// Sends `out` with a body already read from the client; the timeout starts now.
pub async fn send_buffered(
    out: ClientRequest,
    body: Bytes,
    upstream: Upstream,
    response_timeout: Duration,
) -> Result<ClientResponse, ProxyError> {
    answer_within(out.send_body(body), upstream, response_timeout).await
}

async fn answer_within(
    sending: awc::SendClientRequest,
    upstream: Upstream,
    response_timeout: Duration,
) -> Result<ClientResponse, ProxyError> {
    match tokio::time::timeout(response_timeout, sending).await {
        Ok(res) => res.map_err(|e| ProxyError::from_send(upstream, e)),
        Err(_) => Err(ProxyError::Timeout { upstream }),
    }
}

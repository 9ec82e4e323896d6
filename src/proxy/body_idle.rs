//! The request-body idle timeout: a client that declares a body and then sends nothing (or
//! stops halfway) would otherwise hold its connection, and the upstream connection opened for
//! it, for ever. [`IdleLimited`] wraps the client's body and fails it when no byte has come for
//! `[limits].body_idle_timeout` while the proxy was waiting for one; the handler answers 408.
//!
//! The clock runs only while the proxy waits on the client: time the upstream takes to accept
//! what was already sent (backpressure) is not the client's idleness.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Why the client's body stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no byte of the request body for {}", humantime::format_duration(*.0))]
    Idle(Duration),
    #[error("reading the request body: {0}")]
    Client(#[from] PayloadError),
}

impl UploadError {
    /// The answer the client gets.
    pub fn answer(&self) -> super::ProxyError {
        match self {
            UploadError::Idle(d) => super::ProxyError::BodyIdle(*d),
            UploadError::Client(e) => {
                super::ProxyError::BadRequest(format!("reading the request body: {e}"))
            }
        }
    }
}

/// The client's body, failing with [`UploadError::Idle`] after `limit` without a byte.
pub struct IdleLimited<S> {
    inner: S,
    limit: Duration,
    /// Set while the proxy waits for the client; made at the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> IdleLimited<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        IdleLimited {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }
}

impl<S> Stream for IdleLimited<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, UploadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            this.armed = false;
            return Poll::Ready(item.map(|r| r.map_err(UploadError::Client)));
        }
        let deadline = Instant::now() + this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !this.armed {
            timer.as_mut().reset(deadline);
            this.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.armed = false;
                Poll::Ready(Some(Err(UploadError::Idle(this.limit))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn silence_fails_the_body_and_bytes_reset_the_clock() {
        let limit = Duration::from_millis(300);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, PayloadError>>();
        let mut body = IdleLimited::new(stream_of(rx), limit);
        tx.send(Ok(Bytes::from_static(b"a"))).unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "a");
        // Most of the limit in silence, then a byte: the clock starts again.
        let sender = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sender.send(Ok(Bytes::from_static(b"b"))).unwrap();
        });
        assert_eq!(body.next().await.unwrap().unwrap(), "b");
        let started = Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert!(matches!(err, UploadError::Idle(d) if d == limit), "{err}");
        assert!(started.elapsed() >= limit);
        drop(tx);
    }

    fn stream_of(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, PayloadError>>,
    ) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

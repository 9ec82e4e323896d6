//! How many requests may be in flight at once: on one HTTP/2 connection, and on one worker.
//!
//! Over HTTP/1.1 a connection carries one request at a time, so the worker's connection cap
//! ([`super::limits`]) bounds its requests, and with them the upstream connections they open.
//! HTTP/2 multiplexes: one connection may carry any number of streams, and actix-http neither
//! announces `SETTINGS_MAX_CONCURRENT_STREAMS` nor enforces a limit (nor lets one be set). So
//! the edge layer counts, and answers 503 with `Retry-After` at once, before any lookup or
//! upstream connection, to a request that would be the
//! - [`PER_CONNECTION`] + 1st in flight on its HTTP/2 connection (so one client cannot take a
//!   worker's whole share), or
//! - worker's connection cap + 1st in flight on its worker (so the descriptor budget that cap
//!   was computed from holds for streams too: an HTTP/1.1-only load never gets there).
//!
//! In flight lasts until the answer's body has gone out (a download, a WebSocket relay): the
//! count is released by the [`Tracked`] body when it is dropped.

use std::any::Any;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest};
use bytes::Bytes;

use crate::proxy::answer::ProxyError;

/// Streams one HTTP/2 connection may have in flight. Browsers keep below it (Chromium opens
/// at most 256 per connection; nginx announces 128).
pub const PER_CONNECTION: usize = 256;

thread_local! {
    /// This worker's requests in flight, and the most it takes. Each actix worker is one
    /// thread, and its HTTP/2 streams run on it.
    static WORKER: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

/// Sets this worker's bound: called by the worker's app factory, on its thread.
pub fn set_worker_cap(cap: usize) {
    WORKER.with(|w| w.set((w.get().0, cap)));
}

/// The count of one HTTP/2 connection's streams in flight, kept in its connection data.
#[derive(Default)]
pub struct ConnectionStreams(Rc<Cell<usize>>);

/// `HttpServer::on_connect` for the TLS listener: an HTTP/2 connection gets its counter.
pub fn on_connect(io: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = io.downcast_ref::<Tls>() {
        if tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]) {
            data.insert(ConnectionStreams::default());
        }
    }
}

/// One request counted in flight; dropping it releases the count.
pub struct InFlight {
    connection: Option<Rc<Cell<usize>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        WORKER.with(|w| {
            let (n, cap) = w.get();
            w.set((n.saturating_sub(1), cap));
        });
        if let Some(c) = &self.connection {
            c.set(c.get().saturating_sub(1));
        }
    }
}

/// Counts `req` in flight, or refuses it (see the module doc).
pub fn enter(req: &ServiceRequest) -> Result<InFlight, ProxyError> {
    let connection = req.conn_data::<ConnectionStreams>().map(|c| c.0.clone());
    if let Some(c) = &connection {
        if c.get() >= PER_CONNECTION {
            return Err(ProxyError::Overloaded(format!(
                "on this HTTP/2 connection (at most {PER_CONNECTION})"
            )));
        }
    }
    WORKER.with(|w| {
        let (n, cap) = w.get();
        if n >= cap {
            return Err(ProxyError::Overloaded(format!(
                "on this worker (at most {cap})"
            )));
        }
        w.set((n + 1, cap));
        Ok(())
    })?;
    if let Some(c) = &connection {
        c.set(c.get() + 1);
    }
    Ok(InFlight { connection })
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request counted until it is dropped (sent, or given up).
    pub struct Tracked<B> {
        #[pin]
        body: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: Option<InFlight>) -> Self {
        Tracked { body, in_flight }
    }
}

impl<B: MessageBody> MessageBody for Tracked<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let Tracked { body, in_flight } = self;
        // A body already in memory: the request is as good as answered.
        body.try_into_bytes()
            .map_err(|body| Tracked { body, in_flight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own, as on a worker: the count is per thread.
    #[test]
    fn a_worker_takes_its_bound_and_a_body_releases_its_request_when_dropped() {
        std::thread::spawn(|| {
            set_worker_cap(3);
            let req = actix_web::test::TestRequest::default().to_srv_request();
            let a = enter(&req).unwrap();
            let b = enter(&req).unwrap();
            let c = Tracked::new(Bytes::from_static(b"x"), Some(enter(&req).unwrap()));
            let e = enter(&req).err().unwrap();
            assert!(e.to_string().contains("on this worker (at most 3)"), "{e}");
            assert_eq!(e.status().as_u16(), 503);
            drop(b);
            let d = enter(&req).unwrap();
            assert!(enter(&req).is_err());
            drop(c);
            assert_eq!(WORKER.with(Cell::get), (2, 3));
            drop((a, d));
            assert_eq!(WORKER.with(Cell::get), (0, 3));
        })
        .join()
        .unwrap();
    }
}

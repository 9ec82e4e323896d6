//! The global bound on Ory answers held in memory for rewriting (`[limits].rewrite_budget`).
//!
//! A textual Ory answer is read whole before Ory's URL in it is rewritten, and it stays in
//! memory until the client has taken it: slow readers of large pages would otherwise add up
//! without limit (40 readers of a 7 MB page: 200 MB). Every such answer holds a
//! [`Reservation`] of its bytes, taken before they are read (the declared length at once, a
//! chunked body piece by piece) and given back when its last byte has been handed to the
//! client or the client has gone. An answer that does not fit passes through unrewritten, as
//! one over the 8 MiB per-answer bound does.
//!
//! The bytes held are the metrics gauge `ory_proxy_rewrite_buffer_bytes` itself, so the gauge
//! is exact, not a copy.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use crate::metrics::Metrics;

/// Pieces in which a rewritten body is handed to the client: its memory is given back when
/// the last one has gone, so the client's pace, not the server's write buffer, decides.
const PIECE: usize = 32 * 1024;

/// The budget: a limit on the bytes held, counted in the metrics' gauge.
pub struct RewriteBudget {
    limit: u64,
    metrics: Arc<Metrics>,
}

impl RewriteBudget {
    pub fn new(limit: u64, metrics: Arc<Metrics>) -> Arc<RewriteBudget> {
        Arc::new(RewriteBudget { limit, metrics })
    }

    /// Reserves `n` bytes, or `None` when they do not fit now.
    pub fn reserve(self: &Arc<Self>, n: u64) -> Option<Reservation> {
        let mut r = Reservation {
            budget: self.clone(),
            held: 0,
        };
        r.grow(n).then_some(r)
    }

    /// Bytes held now, across all requests.
    pub fn in_use(&self) -> u64 {
        self.metrics.rewrite_buffer().load(Ordering::Relaxed)
    }

    fn take(&self, n: u64) -> bool {
        let limit = self.limit;
        self.metrics
            .rewrite_buffer()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.metrics.rewrite_buffer().fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes of the budget held by one answer; given back on drop.
pub struct Reservation {
    budget: Arc<RewriteBudget>,
    held: u64,
}

impl Reservation {
    /// Holds `n` more bytes; false (and nothing more held) when they do not fit.
    pub fn grow(&mut self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let ok = self.budget.take(n);
        if ok {
            self.held += n;
        }
        ok
    }

    /// Holds at least `total` bytes in all; false when the rest does not fit.
    pub fn cover(&mut self, total: u64) -> bool {
        self.grow(total.saturating_sub(self.held))
    }

    pub fn held(&self) -> u64 {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// A rewritten body handed out in [`PIECE`]-sized slices; its reservation goes with it.
pub struct HeldBody {
    body: Bytes,
    _held: Reservation,
}

impl HeldBody {
    pub fn new(body: Bytes, held: Reservation) -> Self {
        HeldBody { body, _held: held }
    }
}

impl Stream for HeldBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.body.is_empty() {
            return Poll::Ready(None);
        }
        let n = this.body.len().min(PIECE);
        Poll::Ready(Some(Ok(this.body.split_to(n))))
    }
}

/// Any stream, holding a reservation until it is dropped (pieces read before the budget ran
/// out, passed on with the rest of the answer).
pub struct HeldStream<S> {
    inner: S,
    _held: Reservation,
}

impl<S> HeldStream<S> {
    pub fn new(inner: S, held: Reservation) -> Self {
        HeldStream { inner, _held: held }
    }
}

impl<S: Stream + Unpin> Stream for HeldStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[test]
    fn reservations_stay_within_the_limit_and_are_given_back() {
        let budget = RewriteBudget::new(100, Arc::default());
        let mut a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        assert!(!a.grow(1));
        assert_eq!(a.held(), 60);
        drop(b);
        assert!(a.cover(70));
        assert!(a.cover(50), "already covered");
        assert_eq!(budget.in_use(), 70);
        drop(a);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_held_body_gives_its_bytes_back_when_done() {
        let budget = RewriteBudget::new(1 << 20, Arc::default());
        let body = Bytes::from(vec![7u8; 100_000]);
        let mut stream = HeldBody::new(body, budget.reserve(100_000).unwrap());
        let mut total = 0;
        let mut pieces = 0;
        while let Some(Ok(piece)) = stream.next().await {
            assert!(piece.len() <= PIECE);
            total += piece.len();
            pieces += 1;
            assert_eq!(budget.in_use(), 100_000, "held until dropped");
        }
        assert_eq!((total, pieces), (100_000, 4));
        drop(stream);
        assert_eq!(budget.in_use(), 0);
    }
}

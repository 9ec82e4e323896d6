//! The outage breaker: when Ory keeps failing, cache misses stop waiting for it.
//!
//! Only Ory failing counts: no answer (refused, reset, TLS error), no answer within the whoami
//! timeout, or a 5xx. Any other answer is about one credential (a 4xx, a 200 that is not a
//! session) and says nothing about Ory's health: it neither counts nor resets the count, so a
//! client choosing its own credential cannot open the breaker with it. A session answer or a
//! 401/403 is Ory answering: it resets the count and closes an open breaker.
//!
//! The breaker opens after [`TRIP_FAILURES`] failures in a row whose first and last are at least
//! [`TRIP_SPAN`] apart, so one request, or one burst, is never enough. While it is open, a miss
//! goes on anonymous at once, except for one probe at a time, at most one per
//! [`PROBE_INTERVAL`], which asks Ory; an answer from Ory closes the breaker. Cache hits are not
//! affected.
//!
//! The hot path reads one atomic; the rest runs only when a whoami call ends or while open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Failures in a row before the breaker opens.
pub const TRIP_FAILURES: u32 = 3;
/// The least time between the first and the last of those failures.
pub const TRIP_SPAN: Duration = Duration::from_millis(500);
/// While open, how often a cache miss may probe Ory.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What a cache miss may do about Ory now.
#[derive(Debug)]
pub enum Admission<'a> {
    /// Closed: ask Ory.
    Ask,
    /// Open, and this miss is the probe: ask Ory. Dropping it (the call ended, or the request
    /// was abandoned) lets the next probe through.
    Probe(ProbeGuard<'a>),
    /// Open: go on anonymous without asking.
    Skip,
}

/// What a state change means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// The first failure after an answer.
    FirstFailure,
    /// The breaker opened: `failures` in a row over `span`.
    Opened {
        failures: u32,
        span: Duration,
    },
    /// An answer from Ory closed the open breaker.
    Closed,
}

#[derive(Debug, Default)]
pub struct Breaker {
    /// Mirrors `state.open`, for the hot path.
    open: AtomicBool,
    /// Set while a run of failures is counted (or the breaker is open): until then an answer
    /// has nothing to reset and takes no lock.
    failing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Failures since the last answer.
    run: u32,
    /// When the run's first failure happened.
    run_started: Option<Instant>,
    open: bool,
    probing: bool,
    last_probe: Option<Instant>,
}

impl Breaker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether a cache miss may ask Ory at `now`.
    pub fn admit(&self, now: Instant) -> Admission<'_> {
        if !self.is_open() {
            return Admission::Ask;
        }
        let mut s = self.lock();
        if !s.open {
            return Admission::Ask;
        }
        let due = s
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_INTERVAL);
        if s.probing || !due {
            return Admission::Skip;
        }
        s.probing = true;
        s.last_probe = Some(now);
        Admission::Probe(ProbeGuard(self))
    }

    /// Ory answered (a session, or a 401/403).
    pub fn answered(&self) -> Change {
        // The common case, a healthy Ory, takes no lock.
        if !self.failing.load(Ordering::Relaxed) {
            return Change::None;
        }
        let mut s = self.lock();
        s.run = 0;
        s.run_started = None;
        self.failing.store(false, Ordering::Relaxed);
        if s.open {
            s.open = false;
            self.open.store(false, Ordering::Relaxed);
            return Change::Closed;
        }
        Change::None
    }

    /// Ory failed at `now`.
    pub fn failed(&self, now: Instant) -> Change {
        let mut s = self.lock();
        self.failing.store(true, Ordering::Relaxed);
        s.run = s.run.saturating_add(1);
        let started = *s.run_started.get_or_insert(now);
        if s.run == 1 {
            return Change::FirstFailure;
        }
        let span = now.saturating_duration_since(started);
        if !s.open && s.run >= TRIP_FAILURES && span >= TRIP_SPAN {
            s.open = true;
            // The first probe waits a full interval: the failures just seen were the probes.
            s.last_probe = Some(now);
            self.open.store(true, Ordering::Relaxed);
            return Change::Opened {
                failures: s.run,
                span,
            };
        }
        Change::None
    }
}

/// The one probe in flight while the breaker is open.
#[derive(Debug)]
pub struct ProbeGuard<'a>(&'a Breaker);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn open(b: &Breaker, t0: Instant) {
        b.failed(t0);
        b.failed(t0 + 100 * MS);
        assert!(matches!(b.failed(t0 + TRIP_SPAN), Change::Opened { .. }));
        assert!(b.is_open());
    }

    #[test]
    fn a_burst_of_failures_does_not_open_it() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0), Change::FirstFailure);
        for i in 1..100 {
            assert_eq!(b.failed(t0 + i * MS), Change::None);
        }
        assert!(!b.is_open(), "100 failures within 100 ms opened it");
        assert!(matches!(b.admit(t0), Admission::Ask));
        assert!(matches!(b.failed(t0 + TRIP_SPAN), Change::Opened { .. }));
    }

    #[test]
    fn two_failures_however_far_apart_do_not_open_it() {
        let b = Breaker::default();
        let t0 = Instant::now();
        b.failed(t0);
        assert_eq!(b.failed(t0 + 10 * TRIP_SPAN), Change::None);
        assert!(!b.is_open());
    }

    #[test]
    fn an_answer_resets_the_run() {
        let b = Breaker::default();
        let t0 = Instant::now();
        b.failed(t0);
        b.failed(t0 + 100 * MS);
        assert_eq!(b.answered(), Change::None);
        assert_eq!(b.failed(t0 + TRIP_SPAN), Change::FirstFailure);
        assert_eq!(b.failed(t0 + 2 * TRIP_SPAN), Change::None);
        assert!(!b.is_open());
    }

    #[test]
    fn open_admits_one_probe_per_interval_and_an_answer_closes_it() {
        let b = Breaker::default();
        let t0 = Instant::now();
        open(&b, t0);
        let t1 = t0 + TRIP_SPAN;
        assert!(matches!(b.admit(t1), Admission::Skip), "no probe at once");
        let t2 = t1 + PROBE_INTERVAL;
        let probe = b.admit(t2);
        assert!(matches!(probe, Admission::Probe(_)));
        // One probe at a time, however long it takes.
        assert!(matches!(b.admit(t2 + 10 * PROBE_INTERVAL), Admission::Skip));
        drop(probe);
        assert!(matches!(
            b.admit(t2 + 10 * PROBE_INTERVAL),
            Admission::Probe(_)
        ));
        assert!(matches!(b.admit(t2 + 10 * PROBE_INTERVAL), Admission::Skip));
        assert_eq!(b.answered(), Change::Closed);
        assert!(!b.is_open());
        assert!(matches!(b.admit(t2), Admission::Ask));
        // Closed again: a new run is needed to reopen it.
        assert_eq!(b.failed(t2), Change::FirstFailure);
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_keeps_it_open() {
        let b = Breaker::default();
        let t0 = Instant::now();
        open(&b, t0);
        let t = t0 + TRIP_SPAN + PROBE_INTERVAL;
        let probe = b.admit(t);
        assert_eq!(b.failed(t + 5 * MS), Change::None);
        drop(probe);
        assert!(b.is_open());
        assert!(matches!(b.admit(t + 10 * MS), Admission::Skip));
        assert!(matches!(b.admit(t + PROBE_INTERVAL), Admission::Probe(_)));
    }
}

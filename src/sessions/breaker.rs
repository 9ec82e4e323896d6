//! The outage breaker: when Ory keeps failing, cache misses stop waiting for it.
//!
//! Only Ory failing counts: no answer (refused, reset, TLS error), no answer within the whoami
//! timeout, or a 5xx. Any other answer is about one credential (a 4xx, a 200 that is not a
//! session) and says nothing about Ory's health: it neither counts nor resets the count. A
//! session answer or a 401/403 is Ory answering: it resets the count.
//!
//! A client can make Ory fail for its own credential (bytes a database rejects with a 500), so
//! client failures alone never open the breaker nor keep it open. They only raise a question:
//! after [`TRIP_FAILURES`] failures in a row whose first and last are at least [`TRIP_SPAN`]
//! apart, the proxy asks Ory itself with a [`Check`], a whoami without any credential. If Ory
//! answers it at all (any status below 500, typically 401), Ory is up: the run is reset and the
//! breaker stays closed. Only when that check fails too does the breaker open. While a check is
//! in flight the breaker behaves as closed.
//!
//! While open, cache misses go on anonymous at once and never ask Ory; the proxy's own check,
//! at most one at a time and one per [`PROBE_INTERVAL`], probes it, and an answer closes the
//! breaker. Cache hits are not affected.
//!
//! The hot path reads one atomic; the rest runs only when a whoami call ends or while open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Failures in a row before the proxy checks Ory itself.
pub const TRIP_FAILURES: u32 = 3;
/// The least time between the first and the last of those failures.
pub const TRIP_SPAN: Duration = Duration::from_millis(500);
/// While open, how often the proxy probes Ory.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What a cache miss may do about Ory now.
#[derive(Debug)]
pub enum Admission {
    /// Closed (or a check is deciding): ask Ory.
    Ask,
    /// Open: go on anonymous without asking. When `probe` is set, a probe is due: the caller
    /// sends it as its own task, without the client's credentials.
    Skip { probe: Option<Check> },
}

/// What a state change means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// The first failure after an answer.
    FirstFailure,
    /// `failures` in a row over `span`: the caller sends the returned [`Check`].
    Checking {
        failures: u32,
        span: Duration,
    },
    /// The check answered: the failures were about their credentials, not Ory.
    Cleared {
        failures: u32,
    },
    /// The check failed too: the breaker opened after `failures` in a row over `span`.
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
    /// A proxy-owned check (confirmation or probe) is in flight.
    checking: bool,
    last_probe: Option<Instant>,
}

impl State {
    fn reset_run(&mut self, b: &Breaker) {
        self.run = 0;
        self.run_started = None;
        b.failing.store(false, Ordering::Relaxed);
    }

    fn close(&mut self, b: &Breaker) -> Change {
        self.reset_run(b);
        if !self.open {
            return Change::None;
        }
        self.open = false;
        b.open.store(false, Ordering::Relaxed);
        Change::Closed
    }
}

impl Breaker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether a cache miss may ask Ory at `now`.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
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
        if s.checking || !due {
            return Admission::Skip { probe: None };
        }
        s.checking = true;
        s.last_probe = Some(now);
        Admission::Skip {
            probe: Some(Check(self.clone())),
        }
    }

    /// Ory answered a client's whoami (a session, or a 401/403).
    pub fn answered(&self) -> Change {
        // The common case, a healthy Ory, takes no lock.
        if !self.failing.load(Ordering::Relaxed) {
            return Change::None;
        }
        self.lock().close(self)
    }

    /// Ory failed a client's whoami at `now`. With [`Change::Checking`], the check to send.
    pub fn failed(self: &Arc<Self>, now: Instant) -> (Change, Option<Check>) {
        let mut s = self.lock();
        self.failing.store(true, Ordering::Relaxed);
        s.run = s.run.saturating_add(1);
        let started = *s.run_started.get_or_insert(now);
        if s.run == 1 {
            return (Change::FirstFailure, None);
        }
        let span = now.saturating_duration_since(started);
        if s.open || s.checking || s.run < TRIP_FAILURES || span < TRIP_SPAN {
            return (Change::None, None);
        }
        s.checking = true;
        let change = Change::Checking {
            failures: s.run,
            span,
        };
        (change, Some(Check(self.clone())))
    }
}

/// The one proxy-owned whoami without credentials in flight: a confirmation before opening, or
/// a probe while open. Dropping it unfinished (the task was cancelled) lets the next one go.
#[derive(Debug)]
pub struct Check(Arc<Breaker>);

impl Check {
    /// The check's outcome at `now`: `ory_answered` when Ory sent any answer below 500.
    pub fn finish(self, ory_answered: bool, now: Instant) -> Change {
        let b = &self.0;
        let mut s = b.lock();
        if ory_answered {
            let failures = s.run;
            return match s.close(b) {
                Change::None if failures > 0 => Change::Cleared { failures },
                c => c,
            };
        }
        // An answer reset the run while the check was out: Ory is up after all.
        if s.open || s.run < TRIP_FAILURES {
            return Change::None;
        }
        s.open = true;
        // The first probe waits a full interval: this check just failed.
        s.last_probe = Some(now);
        b.open.store(true, Ordering::Relaxed);
        let span = s
            .run_started
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        Change::Opened {
            failures: s.run,
            span,
        }
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        self.0.lock().checking = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Three failures over [`TRIP_SPAN`]: the check they call for.
    fn trip(b: &Arc<Breaker>, t0: Instant) -> Check {
        b.failed(t0);
        b.failed(t0 + 100 * MS);
        let (change, check) = b.failed(t0 + TRIP_SPAN);
        assert!(matches!(change, Change::Checking { failures: 3, .. }));
        check.expect("a check")
    }

    fn open(b: &Arc<Breaker>, t0: Instant) {
        let check = trip(b, t0);
        assert!(!b.is_open(), "open before the check failed");
        assert!(matches!(
            check.finish(false, t0 + TRIP_SPAN),
            Change::Opened { failures: 3, .. }
        ));
        assert!(b.is_open());
    }

    #[test]
    fn a_burst_of_failures_does_not_call_for_a_check() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).0, Change::FirstFailure);
        for i in 1..100 {
            let (change, check) = b.failed(t0 + i * MS);
            assert_eq!(change, Change::None);
            assert!(check.is_none());
        }
        assert!(!b.is_open(), "100 failures within 100 ms opened it");
        assert!(matches!(b.admit(t0), Admission::Ask));
        assert!(b.failed(t0 + TRIP_SPAN).1.is_some());
    }

    #[test]
    fn two_failures_however_far_apart_do_not_call_for_a_check() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        b.failed(t0);
        assert_eq!(b.failed(t0 + 10 * TRIP_SPAN).0, Change::None);
        assert!(!b.is_open());
    }

    #[test]
    fn an_answer_resets_the_run() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        b.failed(t0);
        b.failed(t0 + 100 * MS);
        assert_eq!(b.answered(), Change::None);
        assert_eq!(b.failed(t0 + TRIP_SPAN).0, Change::FirstFailure);
        assert_eq!(b.failed(t0 + 2 * TRIP_SPAN).0, Change::None);
        assert!(!b.is_open());
    }

    #[test]
    fn failures_ory_denies_do_not_open_it_and_reset_the_run() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        let check = trip(&b, t0);
        // While the check is out: closed, and no second check.
        assert!(matches!(b.admit(t0 + TRIP_SPAN), Admission::Ask));
        assert!(b.failed(t0 + 2 * TRIP_SPAN).1.is_none());
        assert_eq!(
            check.finish(true, t0 + 2 * TRIP_SPAN),
            Change::Cleared { failures: 4 }
        );
        assert!(!b.is_open());
        assert!(matches!(b.admit(t0 + 2 * TRIP_SPAN), Admission::Ask));
        // A new run, and a new check, are needed to ask again.
        assert_eq!(b.failed(t0 + 2 * TRIP_SPAN).0, Change::FirstFailure);
        assert!(b.failed(t0 + 3 * TRIP_SPAN).1.is_none());
    }

    #[test]
    fn a_check_failing_after_an_answer_does_not_open_it() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        let check = trip(&b, t0);
        b.answered();
        assert_eq!(check.finish(false, t0 + TRIP_SPAN), Change::None);
        assert!(!b.is_open());
    }

    #[test]
    fn an_abandoned_check_lets_the_next_one_go() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        drop(trip(&b, t0));
        assert!(b.failed(t0 + TRIP_SPAN + MS).1.is_some());
    }

    #[test]
    fn open_probes_once_per_interval_misses_never_ask_and_an_answer_closes_it() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        open(&b, t0);
        let t1 = t0 + TRIP_SPAN;
        assert!(
            matches!(b.admit(t1), Admission::Skip { probe: None }),
            "no probe at once"
        );
        let t2 = t1 + PROBE_INTERVAL;
        let Admission::Skip { probe: Some(probe) } = b.admit(t2) else {
            panic!("no probe after an interval")
        };
        // One probe at a time, however long it takes.
        let later = t2 + 10 * PROBE_INTERVAL;
        assert!(matches!(b.admit(later), Admission::Skip { probe: None }));
        drop(probe);
        let Admission::Skip { probe: Some(probe) } = b.admit(later) else {
            panic!("an abandoned probe blocked the next")
        };
        assert!(matches!(b.admit(later), Admission::Skip { probe: None }));
        // Client failures while open (calls sent before it opened) call for no check.
        assert!(b.failed(later).1.is_none());
        assert_eq!(probe.finish(true, later), Change::Closed);
        assert!(!b.is_open());
        assert!(matches!(b.admit(later), Admission::Ask));
        // Closed again: a new run is needed to check again.
        assert_eq!(b.failed(later).0, Change::FirstFailure);
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_keeps_it_open() {
        let b = Arc::new(Breaker::default());
        let t0 = Instant::now();
        open(&b, t0);
        let t = t0 + TRIP_SPAN + PROBE_INTERVAL;
        let Admission::Skip { probe: Some(probe) } = b.admit(t) else {
            panic!("no probe")
        };
        assert_eq!(probe.finish(false, t + 5 * MS), Change::None);
        assert!(b.is_open());
        assert!(matches!(
            b.admit(t + 10 * MS),
            Admission::Skip { probe: None }
        ));
        assert!(matches!(
            b.admit(t + PROBE_INTERVAL),
            Admission::Skip { probe: Some(_) }
        ));
    }
}

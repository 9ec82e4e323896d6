//! Logouts seen through the proxy, remembered so that an answer that was already on its way
//! cannot bring a logged-out session back.
//!
//! A logout evicts the credentials' cache entry at once. But a whoami sent just before the
//! logout can still answer "active" after it, and moka stores that answer anyway (it does not
//! cancel a pending load on `invalidate`); the session would then get JWTs for `cache_ttl`.
//! So every active entry carries when its whoami was sent, and an entry looked up before its
//! credentials' logout is never served.
//!
//! The hot path stays one atomic load: a generation counter moves on every logout, and an entry
//! remembers the generation it was last checked against, so it takes the lock once per new
//! logout, not once per request.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::credentials::CredentialKey;
use super::whoami::WHOAMI_TIMEOUT;

/// Room for scheduling and parsing between the whoami deadline and the cache insert.
const MARGIN: Duration = Duration::from_secs(1);

pub struct Revocations {
    records: Mutex<Records>,
    /// Moves on every logout (under the lock).
    generation: AtomicU64,
    /// The longest `cache_ttl` any entry was stored with, in ms. A reload may lower the ttl,
    /// but entries stored before keep their longer life, and so must the records.
    longest_ttl_ms: AtomicU64,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            records: Mutex::new(Records::default()),
            generation: AtomicU64::new(0),
            longest_ttl_ms: AtomicU64::new(0),
        }
    }
}

impl Revocations {
    /// The generation now. Taken when a whoami is sent: the entry it makes has seen every
    /// logout so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called for every entry stored, with the lifetime it got.
    pub fn note_lifetime(&self, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.longest_ttl_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long a record matters: a stale answer is stored at most [`WHOAMI_TIMEOUT`] after its
    /// whoami was sent, and lives at most the longest ttl after that.
    fn memory(&self) -> Duration {
        Duration::from_millis(self.longest_ttl_ms.load(Ordering::Relaxed)) + WHOAMI_TIMEOUT + MARGIN
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a logout of `key` now. At most `capacity` records are kept (a client can send
    /// logouts at will): past that, the oldest is folded into a floor that refuses every entry
    /// looked up before it, which costs those entries one more whoami, never a stale answer.
    pub fn revoke(&self, key: CredentialKey, capacity: u64) {
        let mut r = self.lock();
        let now = Instant::now();
        r.prune(now, self.memory());
        // Logged out already (Kratos answers an API logout of a revoked token 204 again): every
        // lookup since then has been answered "logged out", so there is nothing new to refuse,
        // and no reason to send every cached session through the lock once more.
        if r.at.contains_key(&key) {
            return;
        }
        r.insert(key, now, usize::try_from(capacity).unwrap_or(usize::MAX));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether an active entry for `key`, whose whoami was sent at `looked_up`, may be served.
    /// `seen` is the generation the entry was last checked against; it moves forward here.
    pub fn allows(&self, key: &CredentialKey, looked_up: Instant, seen: &AtomicU64) -> bool {
        if seen.load(Ordering::Relaxed) == self.generation() {
            return true;
        }
        let mut r = self.lock();
        r.prune(Instant::now(), self.memory());
        // Read under the lock: no logout can slip between this and the check.
        let generation = self.generation.load(Ordering::Relaxed);
        if r.refuses(key, looked_up) {
            return false;
        }
        seen.store(generation, Ordering::Relaxed);
        true
    }
}

#[derive(Default)]
struct Records {
    at: HashMap<CredentialKey, Instant>,
    /// The same records, oldest first, for pruning.
    order: VecDeque<(Instant, CredentialKey)>,
    /// Entries looked up at or before this are refused (records dropped for room).
    floor: Option<Instant>,
}

impl Records {
    fn prune(&mut self, now: Instant, keep: Duration) {
        let old = |at: Instant| now.saturating_duration_since(at) >= keep;
        while let Some(&(at, key)) = self.order.front() {
            if !old(at) {
                break;
            }
            self.order.pop_front();
            if self.at.get(&key) == Some(&at) {
                self.at.remove(&key);
            }
        }
        if self.floor.is_some_and(old) {
            self.floor = None;
        }
    }

    fn insert(&mut self, key: CredentialKey, now: Instant, capacity: usize) {
        while self.order.len() >= capacity.max(1) {
            let Some((at, oldest)) = self.order.pop_front() else {
                break;
            };
            // A key logged out twice has an older, superseded record in `order`.
            if self.at.get(&oldest) == Some(&at) {
                self.at.remove(&oldest);
                self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
            }
        }
        self.at.insert(key, now);
        self.order.push_back((now, key));
    }

    /// `>=`: a whoami sent in the same instant as the logout may have been answered before it.
    fn refuses(&self, key: &CredentialKey, looked_up: Instant) -> bool {
        self.floor.is_some_and(|f| looked_up <= f)
            || self.at.get(key).is_some_and(|&at| at >= looked_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(15);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_lookup_before_the_logout_is_refused_one_after_it_is_not() {
        let t0 = Instant::now();
        let mut r = Records::default();
        r.insert([1; 32], t0 + secs(1), 10);
        assert!(r.refuses(&[1; 32], t0));
        assert!(r.refuses(&[1; 32], t0 + secs(1)));
        assert!(!r.refuses(&[1; 32], t0 + secs(2)));
        assert!(!r.refuses(&[2; 32], t0), "other credentials are untouched");
    }

    #[test]
    fn records_are_forgotten_once_no_stale_entry_can_live() {
        let t0 = Instant::now();
        let mut r = Records::default();
        r.insert([1; 32], t0, 10);
        r.insert([2; 32], t0 + secs(10), 10);
        r.prune(t0 + KEEP, KEEP);
        assert!(!r.refuses(&[1; 32], t0), "older than KEEP: gone");
        assert!(r.refuses(&[2; 32], t0), "younger: kept");
        r.prune(t0 + secs(10) + KEEP, KEEP);
        assert!(r.at.is_empty() && r.order.is_empty());
    }

    #[test]
    fn a_second_logout_of_the_same_credentials_keeps_the_later_record() {
        let t0 = Instant::now();
        let mut r = Records::default();
        r.insert([1; 32], t0, 10);
        r.insert([1; 32], t0 + secs(10), 10);
        r.prune(t0 + KEEP, KEEP);
        assert!(r.refuses(&[1; 32], t0 + secs(5)));
    }

    #[test]
    fn past_capacity_the_oldest_record_becomes_a_floor_for_every_key() {
        let t0 = Instant::now();
        let mut r = Records::default();
        for i in 0..3u8 {
            r.insert([i; 32], t0 + secs(u64::from(i)), 3);
        }
        r.insert([9; 32], t0 + secs(5), 3);
        assert_eq!(r.at.len(), 3);
        // Key 0's record is gone, but what it refused stays refused, for any key.
        assert!(r.refuses(&[0; 32], t0));
        assert!(r.refuses(&[7; 32], t0));
        assert!(!r.refuses(&[7; 32], t0 + secs(1)));
        r.prune(t0 + KEEP, KEEP);
        assert!(!r.refuses(&[7; 32], t0), "the floor ages out like a record");
    }

    #[test]
    fn an_entry_checked_since_the_last_logout_skips_the_lock() {
        let rev = Revocations::default();
        let before = Instant::now();
        let seen = AtomicU64::new(rev.generation());
        assert!(rev.allows(&[1; 32], before, &seen), "no logout yet");
        rev.revoke([1; 32], 10);
        assert!(
            !rev.allows(&[1; 32], before, &seen),
            "looked up before its logout"
        );
        let other = AtomicU64::new(0);
        assert!(rev.allows(&[2; 32], before, &other));
        assert_eq!(
            other.load(Ordering::Relaxed),
            rev.generation(),
            "checked: fast path next"
        );
        let after = Instant::now() + secs(1);
        let fresh = AtomicU64::new(rev.generation());
        assert!(
            rev.allows(&[1; 32], after, &fresh),
            "looked up after the logout"
        );
    }

    #[test]
    fn a_repeated_logout_changes_nothing() {
        let rev = Revocations::default();
        rev.revoke([1; 32], 10);
        let generation = rev.generation();
        rev.revoke([1; 32], 10);
        assert_eq!(
            rev.generation(),
            generation,
            "cached sessions are not re-checked"
        );
        assert_eq!(rev.lock().order.len(), 1);
    }

    #[test]
    fn a_lowered_ttl_does_not_shorten_the_memory() {
        let rev = Revocations::default();
        rev.note_lifetime(secs(60));
        rev.note_lifetime(secs(10));
        assert_eq!(rev.memory(), secs(60) + WHOAMI_TIMEOUT + MARGIN);
    }
}

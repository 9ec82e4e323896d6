//! The session actor: the cached session → JWT lookup (docs/behaviour.md, "Sessions and the
//! JWT").
//!
//! The request path reads the cache directly (moka is lock-free on hits) and, on a miss, makes
//! the whoami call itself under moka's single-flight: concurrent misses for one credential
//! wait for one call, and no request ever waits on a mailbox. The actor task owns the cache's
//! lifecycle: it rebuilds it when `[session].cache_max_entries` changes on reload.
//!
//! Per credential: at most one whoami per `cache_ttl`, never past the session's `expires_at`;
//! "no session" answers are cached too (an expired cookie must not hammer Ory): 401/403 and
//! other 4xx for `cache_ttl`, a 429 for at most [`THROTTLED_MEMORY`]. Failures are not cached;
//! they feed the outage [`breaker`], which answers about Ory as a whole: it opens only when a
//! whoami the proxy sends without any credential fails too, so no client can open it.
//! The minted token is kept with the entry and reused while half its lifetime remains.
//! A logout seen through the proxy evicts the credentials at once, and a lookup that was
//! already under way when it happened is not served (see `Revocations`).

mod auth;
pub mod breaker;
pub mod credentials;
pub mod mint;
mod revocations;
pub mod whoami;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use arc_swap::{ArcSwap, ArcSwapOption};
use moka::future::Cache;
use tokio::sync::mpsc;

use crate::config::{Live, LiveSettings};
use crate::keys::KeyHandle;
use crate::metrics::{Metrics, WhoamiOutcome};
pub use auth::Auth;
use breaker::{Admission, Breaker, Change, Check};
use credentials::CredentialKey;
use mint::Minted;
use revocations::Revocations;
use whoami::{ActiveSession, Rejection, Whoami};

/// A cached whoami answer.
pub enum Entry {
    Active {
        session: ActiveSession,
        token: ArcSwapOption<Minted>,
        /// Just before the whoami that found the session was sent (see [`revocations`]).
        looked_up: Instant,
        /// When that whoami's answer arrived: the age `cache_ttl` limits.
        answered: Instant,
        /// The logout generation this entry was last checked against.
        revocations_seen: AtomicU64,
    },
    /// No session for these credentials, for at most `max_age` when set (else `cache_ttl`).
    Anonymous { max_age: Option<Duration> },
    /// A session Ory shows only at `aal2` ([`Whoami::Aal2Required`]).
    Aal2Required,
}

/// How long a 429 for one credential is remembered: long enough that a client repeating it does
/// not turn each of its requests into a whoami, short enough that a throttled user is
/// recognised soon after Ory relents.
pub const THROTTLED_MEMORY: Duration = Duration::from_secs(1);

type SessionMap = Cache<CredentialKey, Arc<Entry>>;

/// Ory could not answer for a request (it failed, or the breaker kept the request from asking).
struct Unavailable;

enum Cmd {
    /// `[session].cache_max_entries` may have changed: rebuild to the live value.
    Resize,
}

struct Inner {
    cache: ArcSwap<SessionMap>,
    live: LiveSettings,
    keys: KeyHandle,
    whoami_url: String,
    /// Whether misses ask Ory: a hung Ory must not add its timeout to every signed-in request.
    breaker: Arc<Breaker>,
    /// When a "not a session" answer was last warned about (ms since `epoch`, 0 = never): a
    /// client can cause them at will, so the log gets one a minute at most.
    last_rejection_warning_ms: AtomicU64,
    epoch: Instant,
    revocations: Arc<Revocations>,
    tx: mpsc::Sender<Cmd>,
    metrics: Arc<Metrics>,
}

/// At most one warning about answers that are not sessions per this interval.
const REJECTION_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Cloneable handle to the session actor.
#[derive(Clone)]
pub struct SessionCache(Arc<Inner>);

struct EntryExpiry {
    live: LiveSettings,
    revocations: Arc<Revocations>,
}

impl moka::Expiry<CredentialKey, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &CredentialKey,
        value: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        let ttl = self.live.snapshot().session.cache_ttl;
        let until_expiry = match &**value {
            Entry::Active { session, .. } => session.expires_at.map(|t| {
                t.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            }),
            Entry::Anonymous { max_age } => *max_age,
            Entry::Aal2Required => None,
        };
        let lifetime = until_expiry.map_or(ttl, |d| d.min(ttl));
        self.revocations.note_lifetime(lifetime);
        Some(lifetime)
    }
}

fn build_cache(live: &LiveSettings, capacity: u64, revocations: &Arc<Revocations>) -> SessionMap {
    Cache::builder()
        .max_capacity(capacity)
        .expire_after(EntryExpiry {
            live: live.clone(),
            revocations: revocations.clone(),
        })
        .build()
}

impl SessionCache {
    /// Builds the cache and spawns the actor on the current runtime. Whoami calls and mints
    /// are counted in `metrics`.
    pub fn start(
        live: LiveSettings,
        keys: KeyHandle,
        ory_base: &str,
        metrics: Arc<Metrics>,
    ) -> SessionCache {
        let capacity = live.snapshot().session.cache_max_entries;
        let (tx, mut rx) = mpsc::channel(4);
        let revocations = Arc::new(Revocations::default());
        let inner = Arc::new(Inner {
            cache: ArcSwap::from_pointee(build_cache(&live, capacity, &revocations)),
            live,
            keys,
            whoami_url: format!("{ory_base}/sessions/whoami"),
            breaker: Arc::default(),
            last_rejection_warning_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            revocations,
            tx,
            metrics,
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(Cmd::Resize) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                // Read the live value here, not the sender's: a request still running on an
                // older snapshot must not flip the cache back to the old size.
                let capacity = inner.live.snapshot().session.cache_max_entries;
                if inner.cache.load().policy().max_capacity() != Some(capacity) {
                    inner.cache.store(Arc::new(build_cache(
                        &inner.live,
                        capacity,
                        &inner.revocations,
                    )));
                    log::info!("session cache rebuilt for {capacity} entries");
                }
            }
        });
        SessionCache(inner)
    }

    pub fn keys(&self) -> &KeyHandle {
        &self.0.keys
    }

    /// Decides the `Authorization` an app-bound request gets. `ory` is the calling worker's
    /// client for Ory.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        live: &Arc<Live>,
        ory: &awc::Client,
    ) -> Auth {
        let Some(creds) = credentials::extract(headers, &live.session) else {
            return Auth::NoCredentials;
        };
        let cache = self.0.cache.load_full();
        if cache.policy().max_capacity() != Some(live.session.cache_max_entries) {
            let _ = self.0.tx.try_send(Cmd::Resize);
        }
        let Ok(()) = self.admit(&cache, &creds, ory).await else {
            return Auth::Unavailable;
        };
        let entry = match self.fresh_entry(&cache, &creds, live, ory).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Auth::Anonymous,
            Err(Unavailable) => return Auth::Unavailable,
        };
        let Entry::Active { session, token, .. } = &*entry else {
            return match *entry {
                Entry::Aal2Required => Auth::Aal2Required,
                _ => Auth::Anonymous,
            };
        };
        self.token_for(&cache, &creds, session, token, live).await
    }

    /// While the breaker is open, a miss never asks Ory (hits are served): it goes on anonymous,
    /// and when a probe is due it starts the proxy's own, which carries no credential.
    async fn admit(
        &self,
        cache: &SessionMap,
        creds: &credentials::Credentials,
        ory: &awc::Client,
    ) -> Result<(), Unavailable> {
        if !self.0.breaker.is_open() || cache.get(&creds.key).await.is_some() {
            return Ok(());
        }
        match self.0.breaker.admit(Instant::now()) {
            Admission::Ask => Ok(()),
            Admission::Skip { probe } => {
                if let Some(check) = probe {
                    self.spawn_check(check, ory);
                }
                Err(Unavailable)
            }
        }
    }

    /// Sends the breaker's check, a whoami without credentials, as a task of its own: no
    /// request waits for it.
    fn spawn_check(&self, check: Check, ory: &awc::Client) {
        let (me, ory) = (self.clone(), ory.clone());
        actix_web::rt::spawn(async move {
            let answer = whoami::ory_answers(&ory, &me.0.whoami_url).await;
            if let Err(e) = &answer {
                log::debug!("the breaker's check found Ory failing: {e}");
            }
            me.log_change(check.finish(answer.is_ok(), Instant::now()));
        });
    }

    /// The cached or fresh answer for `creds`, `Ok(None)` when there is none to serve. A second
    /// round only when the first found a session logged out after its whoami was sent (see
    /// `revocations`), or older than a lowered `cache_ttl`; a second such answer is not served
    /// either.
    async fn fresh_entry(
        &self,
        cache: &SessionMap,
        creds: &credentials::Credentials,
        live: &Live,
        ory: &awc::Client,
    ) -> Result<Option<Arc<Entry>>, Unavailable> {
        for _round in 0..2 {
            let asked = Instant::now();
            let Ok(entry) = self.lookup(cache, creds, ory).await else {
                // (Counted and logged by the call that failed, once for all its waiters.)
                return Err(Unavailable);
            };
            if let Entry::Active {
                looked_up,
                answered,
                revocations_seen,
                ..
            } = &*entry
            {
                // An entry's lifetime is fixed when it is stored: one stored under a longer
                // `cache_ttl` than the live one (a reload lowered it) is looked up again. An
                // answer that arrived after this round asked is fresh whatever the ttl ("0s").
                if *answered < asked
                    && asked.saturating_duration_since(*answered) >= live.session.cache_ttl
                {
                    cache.invalidate(&creds.key).await;
                    continue;
                }
                if !self
                    .0
                    .revocations
                    .allows(&creds.key, *looked_up, revocations_seen)
                {
                    log::debug!("a session answer from before its logout was refused");
                    cache.invalidate(&creds.key).await;
                    continue;
                }
            }
            return Ok(Some(entry));
        }
        Ok(None)
    }

    /// The session's token: the cached one while it is reusable, else a fresh one.
    async fn token_for(
        &self,
        cache: &SessionMap,
        creds: &credentials::Credentials,
        session: &ActiveSession,
        token: &ArcSwapOption<Minted>,
        live: &Arc<Live>,
    ) -> Auth {
        if let Some(m) = token.load_full() {
            if m.reusable(mint::unix_now(), live) {
                return Auth::Jwt(m);
            }
        }
        match mint::mint(session, &self.0.keys.ring(), live) {
            Ok(m) => {
                self.0.metrics.minted();
                let m = Arc::new(m);
                token.store(Some(m.clone()));
                Auth::Jwt(m)
            }
            Err(mint::MintError::Expired) => {
                cache.invalidate(&creds.key).await;
                Auth::Anonymous
            }
            Err(e) => {
                log::error!("{e}");
                Auth::Anonymous
            }
        }
    }

    async fn lookup(
        &self,
        cache: &SessionMap,
        creds: &credentials::Credentials,
        ory: &awc::Client,
    ) -> Result<Arc<Entry>, Arc<whoami::WhoamiError>> {
        cache
            .try_get_with(creds.key, async {
                let revocations_seen = AtomicU64::new(self.0.revocations.generation());
                let looked_up = Instant::now();
                let w = whoami::call(ory, &self.0.whoami_url, creds).await;
                self.0.metrics.whoami(match &w {
                    Ok(Whoami::Active(_)) => WhoamiOutcome::Active,
                    Ok(Whoami::Anonymous | Whoami::Aal2Required) => WhoamiOutcome::Inactive,
                    Ok(Whoami::Rejected(_)) => WhoamiOutcome::Rejected,
                    Err(_) => WhoamiOutcome::Failed,
                });
                self.note_health(&w, ory);
                let w = w?;
                Ok::<_, whoami::WhoamiError>(Arc::new(match w {
                    Whoami::Active(session) => Entry::Active {
                        session,
                        token: ArcSwapOption::empty(),
                        looked_up,
                        answered: Instant::now(),
                        revocations_seen,
                    },
                    Whoami::Anonymous => Entry::Anonymous { max_age: None },
                    Whoami::Aal2Required => Entry::Aal2Required,
                    Whoami::Rejected(Rejection::Throttled) => Entry::Anonymous {
                        max_age: Some(THROTTLED_MEMORY),
                    },
                    Whoami::Rejected(_) => Entry::Anonymous { max_age: None },
                }))
            })
            .await
    }

    /// Feeds one whoami outcome to the breaker and the log. Only a failure of Ory counts
    /// toward an outage, and only the proxy's own check can confirm one; an answer about these
    /// credentials alone (a rejection) neither counts nor ends one.
    fn note_health(&self, w: &Result<Whoami, whoami::WhoamiError>, ory: &awc::Client) {
        match w {
            Ok(Whoami::Active(_) | Whoami::Anonymous | Whoami::Aal2Required) => {
                self.log_change(self.0.breaker.answered())
            }
            Ok(Whoami::Rejected(r)) => self.warn_rejection(r),
            Err(e) => {
                let (change, check) = self.0.breaker.failed(Instant::now());
                if change == Change::FirstFailure {
                    log::warn!(
                        "cannot check sessions with Ory ({e}); that request goes on anonymous"
                    );
                }
                self.log_change(change);
                if let Some(check) = check {
                    self.spawn_check(check, ory);
                }
            }
        }
    }

    /// The log line for a breaker change (the first failure is logged with its cause).
    fn log_change(&self, change: Change) {
        match change {
            Change::Checking { failures, span } => log::debug!(
                "whoami failed {failures} times in a row over {} ms: asking Ory without credentials",
                span.as_millis()
            ),
            // A client can cause these at will (failures for its own credential).
            Change::Cleared { failures } => log::debug!(
                "Ory answers a whoami without credentials: the {failures} failures were about their credentials, not an outage"
            ),
            Change::Opened { failures, span } => log::warn!(
                "Ory failed {failures} times in a row over {} ms and fails a whoami without credentials too: uncached sessions go on anonymous without asking it; the proxy probes it once a second",
                span.as_millis()
            ),
            Change::Closed => log::info!("Ory answers whoami again; sessions are recognised"),
            Change::None | Change::FirstFailure => {}
        }
    }

    /// A client can cause these at will: a debug line each, a warning a minute at most for
    /// the one kind that suggests a misconfiguration (a 200 that is not a session).
    fn warn_rejection(&self, r: &Rejection) {
        let now = (self.0.epoch.elapsed().as_millis() as u64).max(1);
        let last = self.0.last_rejection_warning_ms.load(Ordering::Relaxed);
        let due =
            last == 0 || now.saturating_sub(last) >= REJECTION_WARNING_INTERVAL.as_millis() as u64;
        if matches!(r, Rejection::NotASession(_))
            && due
            && self
                .0
                .last_rejection_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!("{r}: that request goes on anonymous (is sdk_url Ory's public API?); more are logged at debug level for a minute");
        } else {
            log::debug!("{r}: that request goes on anonymous");
        }
    }

    /// Called with every Ory answer: a successful logout, or an answer that sets or deletes a
    /// session cookie, evicts the request's credentials at once.
    pub async fn observe_ory_answer(
        &self,
        request_headers: &HeaderMap,
        ory_path: &str,
        status: StatusCode,
        answer_headers: &HeaderMap,
        live: &Live,
    ) {
        let path = ory_path.split('?').next().unwrap_or("");
        let logout = path.starts_with("/self-service/logout")
            && !path.starts_with("/self-service/logout/browser")
            && !path.starts_with("/self-service/logout/api")
            && (status.is_success() || status.is_redirection());
        let touches = || {
            answer_headers
                .get_all(header::SET_COOKIE)
                .filter_map(|v| v.to_str().ok())
                .any(|v| credentials::touches_session_cookie(v, &live.session))
        };
        if !(logout || touches()) {
            return;
        }
        if let Some(creds) = credentials::extract(request_headers, &live.session) {
            self.drop_credentials(creds.key, live).await;
            log::debug!("session logged out through the proxy: cache entry evicted");
        }
    }

    /// Called when Ory confirmed an API logout (`DELETE /self-service/logout/api`), which names
    /// the session token in its body rather than in a header.
    pub async fn observe_api_logout(&self, session_token: &str, live: &Live) {
        for key in credentials::session_token_keys(session_token) {
            self.drop_credentials(key, live).await;
        }
        log::debug!("session token logged out through the proxy: cache entries evicted");
    }

    async fn drop_credentials(&self, key: CredentialKey, live: &Live) {
        // Recorded before the eviction: a lookup finishing in between is then refused.
        self.0
            .revocations
            .revoke(key, live.session.cache_max_entries);
        self.0.cache.load().invalidate(&key).await;
    }
}

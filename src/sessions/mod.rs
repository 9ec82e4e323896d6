//! The session actor: the cached session → JWT lookup (docs/behaviour.md, "Sessions and the
//! JWT").
//!
//! The request path reads the cache directly (moka is lock-free on hits) and, on a miss, makes
//! the whoami call itself under moka's single-flight: concurrent misses for one credential
//! wait for one call, and no request ever waits on a mailbox. The actor task owns the cache's
//! lifecycle: it rebuilds it when `[session].cache_max_entries` changes on reload.
//!
//! Per credential: at most one whoami per `cache_ttl`, never past the session's `expires_at`;
//! 401/403 answers are cached too (an expired cookie must not hammer Ory); failures are not.
//! The minted token is kept with the entry and reused while half its lifetime remains.
//! A logout seen through the proxy evicts the credentials at once, and a lookup that was
//! already under way when it happened is not served (see `Revocations`).

pub mod credentials;
pub mod mint;
mod revocations;
pub mod whoami;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use arc_swap::{ArcSwap, ArcSwapOption};
use moka::future::Cache;
use tokio::sync::mpsc;

use crate::config::{Live, LiveSettings};
use crate::keys::KeyHandle;
use crate::metrics::{Metrics, WhoamiOutcome};
use credentials::CredentialKey;
use mint::Minted;
use revocations::Revocations;
use whoami::{ActiveSession, Whoami};

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
    Anonymous,
}

/// What the proxy does with an app-bound request's `Authorization`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// An active session: `Authorization: Bearer <jwt>`.
    Jwt(HeaderValue),
    /// Credentials, but no active session.
    Anonymous,
    /// No credential in the request: no lookup was made.
    NoCredentials,
    /// Ory could not answer; the request goes on anonymous.
    Unavailable,
}

impl Auth {
    pub fn label(&self) -> &'static str {
        match self {
            Auth::Jwt(_) => "jwt",
            Auth::Anonymous => "anonymous",
            Auth::NoCredentials => "none",
            Auth::Unavailable => "ory-unavailable",
        }
    }

    pub fn header(&self) -> Option<&HeaderValue> {
        match self {
            Auth::Jwt(h) => Some(h),
            _ => None,
        }
    }
}

type SessionMap = Cache<CredentialKey, Arc<Entry>>;

enum Cmd {
    /// `[session].cache_max_entries` may have changed: rebuild to the live value.
    Resize,
}

struct Inner {
    cache: ArcSwap<SessionMap>,
    live: LiveSettings,
    keys: KeyHandle,
    whoami_url: String,
    /// Set while Ory fails, so one warning is logged per failure burst, not per request.
    degraded: AtomicBool,
    /// When Ory last failed (ms since `epoch`): while it is down, misses wait for no whoami
    /// except one probe per [`PROBE_INTERVAL`], so a hung Ory does not add its timeout to
    /// every signed-in request.
    last_failure_ms: AtomicU64,
    epoch: Instant,
    revocations: Arc<Revocations>,
    tx: mpsc::Sender<Cmd>,
    metrics: Arc<Metrics>,
}

/// While Ory is failing, how often a cache miss may try it again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

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
            Entry::Anonymous => None,
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
            degraded: AtomicBool::new(false),
            last_failure_ms: AtomicU64::new(0),
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
        if self.0.degraded.load(Ordering::Relaxed) && cache.get(&creds.key).await.is_none() {
            let since = self.0.epoch.elapsed().as_millis() as u64;
            let last = self.0.last_failure_ms.load(Ordering::Relaxed);
            if since.saturating_sub(last) < PROBE_INTERVAL.as_millis() as u64 {
                return Auth::Unavailable;
            }
            // This request is the probe; concurrent ones keep answering Unavailable.
            self.0.last_failure_ms.store(since, Ordering::Relaxed);
        }
        // A second round only when the first found a session logged out after its whoami was
        // sent (see `revocations`), or older than a lowered `cache_ttl`; a second such answer
        // is not served either.
        let mut fresh = None;
        for _round in 0..2 {
            let asked = Instant::now();
            let entry = match self.lookup(&cache, &creds, ory).await {
                Ok(e) => e,
                Err(e) => {
                    self.0
                        .last_failure_ms
                        .store(self.0.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if !self.0.degraded.swap(true, Ordering::Relaxed) {
                        log::warn!("cannot check sessions with Ory ({e}); requests go on anonymous until it answers");
                    }
                    return Auth::Unavailable;
                }
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
            fresh = Some(entry);
            break;
        }
        let Some(entry) = fresh else {
            return Auth::Anonymous;
        };
        let Entry::Active { session, token, .. } = &*entry else {
            return Auth::Anonymous;
        };
        let now = mint::unix_now();
        if let Some(m) = token.load().as_deref() {
            if m.reusable(now, live) {
                return Auth::Jwt(m.header.clone());
            }
        }
        match mint::mint(session, &self.0.keys.ring(), live) {
            Ok(m) => {
                self.0.metrics.minted();
                let h = m.header.clone();
                token.store(Some(Arc::new(m)));
                Auth::Jwt(h)
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

    /// The cached answer for `creds`, or one whoami under moka's single-flight.
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
                    Ok(Whoami::Anonymous) => WhoamiOutcome::Inactive,
                    Err(_) => WhoamiOutcome::Failed,
                });
                let w = w?;
                // Only an answer from Ory ends an outage: a cache hit says nothing about it.
                if self.0.degraded.swap(false, Ordering::Relaxed) {
                    log::info!("Ory answers whoami again; sessions are recognised");
                }
                Ok::<_, whoami::WhoamiError>(Arc::new(match w {
                    Whoami::Active(session) => Entry::Active {
                        session,
                        token: ArcSwapOption::empty(),
                        looked_up,
                        answered: Instant::now(),
                        revocations_seen,
                    },
                    Whoami::Anonymous => Entry::Anonymous,
                }))
            })
            .await
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

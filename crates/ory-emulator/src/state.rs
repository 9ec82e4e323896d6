//! The emulator's in-memory database: identities, sessions, self-service flows, logout tokens,
//! plus the knobs and counters the tests read and turn.
//!
//! Everything sits behind one `Mutex`: the emulator serves tests and demos, not production
//! traffic, and one lock keeps every operation trivially consistent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::RecordedRequest;

/// How long a login or registration flow may be submitted (Kratos' default is one hour).
pub(crate) const FLOW_LIFESPAN: Duration = Duration::from_secs(60 * 60);

/// The request log keeps the latest this many requests: enough for any test to look back
/// over what it did, bounded for a demo left running under traffic.
pub const REQUEST_LOG_WINDOW: usize = 1000;

/// At most this many flows are kept: past it, expired ones go, then the oldest. A flow is
/// made per visit of a login or registration page, so an open demo would otherwise keep one
/// per page view for an hour.
pub(crate) const MAX_FLOWS: usize = 10_000;

/// At most this many sessions are kept: past it, revoked and expired ones go, then the oldest.
pub(crate) const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub id: String,
    pub email: String,
    /// Kept in clear: this is a test double, and no real secret ever reaches it.
    pub password: Option<String>,
    pub created_at: SystemTime,
    pub verifiable_address_id: String,
    pub recovery_address_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub id: String,
    pub ip_address: String,
    pub user_agent: String,
}

/// Kratos' authenticator assurance level: `aal1` after one factor, `aal2` after a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Aal {
    Aal1,
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub token: String,
    pub identity_id: String,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
    /// False once revoked (logout, [`Store::expire_session`]).
    pub revoked: bool,
    pub device: Device,
    /// The session's logout token, made at the first request for a logout URL (one per
    /// session, as in Kratos: a page view must not add a token).
    pub logout_token: Option<String>,
    /// When the second factor (the one-time code) was completed: the session is `aal2` from
    /// then on. Kratos upgrades the session in place, so its id and token stay the same.
    pub second_factor_at: Option<SystemTime>,
}

impl Session {
    pub fn is_active(&self, now: SystemTime) -> bool {
        !self.revoked && now < self.expires_at
    }

    pub fn aal(&self) -> Aal {
        match self.second_factor_at {
            Some(_) => Aal::Aal2,
            None => Aal::Aal1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowKind {
    Login,
    Registration,
}

/// A message shown on the whole form or on one field (Kratos' `uiText`).
#[derive(Debug, Clone)]
pub(crate) struct UiText {
    pub id: u32,
    pub text: String,
    pub kind: &'static str,
}

impl UiText {
    pub fn error(id: u32, text: impl Into<String>) -> UiText {
        UiText {
            id,
            text: text.into(),
            kind: "error",
        }
    }

    pub fn info(id: u32, text: impl Into<String>) -> UiText {
        UiText {
            id,
            text: text.into(),
            kind: "info",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub id: String,
    pub kind: FlowKind,
    pub csrf_token: String,
    pub return_to: Option<String>,
    pub request_url: String,
    /// `aal2` for a login flow that asks a signed-in user for the second factor.
    pub requested_aal: Aal,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
    pub updated_at: SystemTime,
    /// Set once the user submitted a method (Kratos' `active`).
    pub active: Option<&'static str>,
    /// Errors about the whole submission.
    pub messages: Vec<UiText>,
    /// Errors about one field, keyed by the field's name.
    pub field_messages: Vec<(String, UiText)>,
    /// Values the user typed, shown again after an error (never the password).
    pub values: HashMap<String, String>,
}

impl Flow {
    pub fn new(
        kind: FlowKind,
        csrf_token: String,
        return_to: Option<String>,
        request_url: String,
    ) -> Flow {
        let now = SystemTime::now();
        Flow {
            id: new_id(),
            kind,
            csrf_token,
            return_to,
            request_url,
            requested_aal: Aal::Aal1,
            issued_at: now,
            expires_at: now + FLOW_LIFESPAN,
            updated_at: now,
            active: None,
            messages: Vec::new(),
            field_messages: Vec::new(),
            values: HashMap::new(),
        }
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// The method its form submits: `password` first, `totp` for the second factor.
    pub fn method(&self) -> &'static str {
        match self.requested_aal {
            Aal::Aal1 => "password",
            Aal::Aal2 => "totp",
        }
    }
}

#[derive(Default)]
struct Tables {
    identities: HashMap<String, Identity>,
    /// Lower-cased email → identity id: Kratos treats identifiers case-insensitively.
    by_email: HashMap<String, String>,
    /// Session token → session.
    sessions: HashMap<String, Session>,
    flows: HashMap<String, Flow>,
    /// Logout token → session token.
    logout_tokens: HashMap<String, String>,
}

/// Why an identity could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateIdentityError {
    #[error("an account with the same identifier exists already")]
    Duplicate,
}

pub(crate) struct Store {
    tables: Mutex<Tables>,
    requests: Mutex<std::collections::VecDeque<RecordedRequest>>,
    recording: AtomicBool,
    whoami_calls: AtomicU64,
    whoami_delay_nanos: AtomicU64,
    whoami_failure: Mutex<Option<u16>>,
    whoami_trickle: std::sync::atomic::AtomicBool,
    /// Where flows may send the browser back to; `None` = anywhere.
    allowed_return_urls: Mutex<Option<Vec<String>>>,
}

/// A poisoned lock only means a panic elsewhere; the tables are still usable, and the emulator
/// must keep answering rather than cascade the panic into every later request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh random identifier (UUID v4), also used for tokens: 122 random bits are plenty.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A session token shaped like Kratos' (`ory_st_<random>`).
fn new_session_token() -> String {
    format!("ory_st_{}", uuid::Uuid::new_v4().simple())
}

impl Store {
    pub fn new(whoami_delay: Duration, allowed_return_urls: Option<Vec<String>>) -> Store {
        Store {
            tables: Mutex::default(),
            requests: Mutex::default(),
            recording: AtomicBool::new(true),
            whoami_calls: AtomicU64::new(0),
            whoami_delay_nanos: AtomicU64::new(duration_nanos(whoami_delay)),
            whoami_failure: Mutex::new(None),
            whoami_trickle: std::sync::atomic::AtomicBool::new(false),
            allowed_return_urls: Mutex::new(allowed_return_urls),
        }
    }

    pub fn allowed_return_urls(&self) -> Option<Vec<String>> {
        lock(&self.allowed_return_urls).clone()
    }

    pub fn set_allowed_return_urls(&self, urls: Option<Vec<String>>) {
        *lock(&self.allowed_return_urls) = urls;
    }

    // ---- request log and whoami knobs ----

    pub fn record(&self, request: RecordedRequest) {
        if self.recording.load(Ordering::Relaxed) {
            let mut log = lock(&self.requests);
            if log.len() == REQUEST_LOG_WINDOW {
                log.pop_front();
            }
            log.push_back(request);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    pub fn count_whoami(&self) {
        self.whoami_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn whoami_calls(&self) -> u64 {
        self.whoami_calls.load(Ordering::Relaxed)
    }

    pub fn whoami_delay(&self) -> Duration {
        Duration::from_nanos(self.whoami_delay_nanos.load(Ordering::Relaxed))
    }

    pub fn set_whoami_delay(&self, d: Duration) {
        self.whoami_delay_nanos
            .store(duration_nanos(d), Ordering::Relaxed);
    }

    pub fn whoami_failure(&self) -> Option<u16> {
        *lock(&self.whoami_failure)
    }

    pub fn set_whoami_failure(&self, status: Option<u16>) {
        *lock(&self.whoami_failure) = status;
    }

    pub fn whoami_trickle(&self) -> bool {
        self.whoami_trickle.load(Ordering::Relaxed)
    }

    pub fn set_whoami_trickle(&self, on: bool) {
        self.whoami_trickle.store(on, Ordering::Relaxed);
    }

    // ---- identities ----

    pub fn identity_by_email(&self, email: &str) -> Option<Identity> {
        let t = lock(&self.tables);
        let id = t.by_email.get(&email.to_lowercase())?;
        t.identities.get(id).cloned()
    }

    pub fn create_identity(
        &self,
        email: &str,
        password: Option<&str>,
    ) -> Result<Identity, CreateIdentityError> {
        let mut t = lock(&self.tables);
        let key = email.to_lowercase();
        if t.by_email.contains_key(&key) {
            return Err(CreateIdentityError::Duplicate);
        }
        let identity = Identity {
            id: new_id(),
            email: email.to_owned(),
            password: password.map(str::to_owned),
            created_at: SystemTime::now(),
            verifiable_address_id: new_id(),
            recovery_address_id: new_id(),
        };
        t.by_email.insert(key, identity.id.clone());
        t.identities.insert(identity.id.clone(), identity.clone());
        Ok(identity)
    }

    /// The identity with this email, created (without a password) when missing.
    pub fn ensure_identity(&self, email: &str) -> Identity {
        loop {
            if let Some(found) = self.identity_by_email(email) {
                return found;
            }
            // A concurrent creation can win between the look-up and the insert; look again.
            if let Ok(created) = self.create_identity(email, None) {
                return created;
            }
        }
    }

    /// The identity if the password matches.
    pub fn check_password(&self, email: &str, password: &str) -> Option<Identity> {
        self.identity_by_email(email)
            .filter(|i| i.password.as_deref() == Some(password))
    }

    // ---- sessions ----

    pub fn create_session(&self, identity_id: &str, lifespan: Duration, device: Device) -> Session {
        let now = SystemTime::now();
        let session = Session {
            id: new_id(),
            token: new_session_token(),
            identity_id: identity_id.to_owned(),
            issued_at: now,
            expires_at: now + lifespan,
            revoked: false,
            device,
            logout_token: None,
            second_factor_at: None,
        };
        let mut t = lock(&self.tables);
        if t.sessions.len() >= MAX_SESSIONS {
            t.prune_sessions(now);
        }
        t.sessions.insert(session.token.clone(), session.clone());
        session
    }

    /// The session for this token if it exists and is active.
    pub fn active_session(&self, token: &str) -> Option<(Session, Identity)> {
        let t = lock(&self.tables);
        let session = t.sessions.get(token)?;
        if !session.is_active(SystemTime::now()) {
            return None;
        }
        let identity = t.identities.get(&session.identity_id)?;
        Some((session.clone(), identity.clone()))
    }

    /// Records the second factor on an active session (it becomes `aal2`, keeping its id and
    /// token) and returns it with its identity; `None` when the session is not active.
    pub fn upgrade_session(&self, token: &str) -> Option<(Session, Identity)> {
        let now = SystemTime::now();
        let mut t = lock(&self.tables);
        let session = t.sessions.get_mut(token).filter(|s| s.is_active(now))?;
        session.second_factor_at = Some(now);
        let session = session.clone();
        let identity = t.identities.get(&session.identity_id)?.clone();
        Some((session, identity))
    }

    pub fn revoke_session(&self, token: &str) {
        let mut t = lock(&self.tables);
        if let Some(s) = t.sessions.get_mut(token) {
            s.revoked = true;
        }
        t.logout_tokens
            .retain(|_, session_token| session_token != token);
    }

    /// Revokes the session of a session token (again, if it was revoked already). False when
    /// no session has this token.
    pub fn logout_session_token(&self, token: &str) -> bool {
        if !lock(&self.tables).sessions.contains_key(token) {
            return false;
        }
        self.revoke_session(token);
        true
    }

    // ---- logout tokens ----

    /// The session's logout token, made at the first call.
    pub fn create_logout_token(&self, session_token: &str) -> String {
        let mut t = lock(&self.tables);
        if let Some(token) = t
            .sessions
            .get(session_token)
            .and_then(|s| s.logout_token.clone())
        {
            return token;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        if let Some(s) = t.sessions.get_mut(session_token) {
            s.logout_token = Some(token.clone());
        }
        t.logout_tokens
            .insert(token.clone(), session_token.to_owned());
        token
    }

    /// Consumes the logout token and revokes its session. False when the token is unknown.
    pub fn logout(&self, logout_token: &str) -> bool {
        let session_token = lock(&self.tables).logout_tokens.remove(logout_token);
        match session_token {
            Some(session_token) => {
                self.revoke_session(&session_token);
                true
            }
            None => false,
        }
    }

    // ---- flows ----

    pub fn insert_flow(&self, flow: Flow) {
        let mut t = lock(&self.tables);
        if t.flows.len() >= MAX_FLOWS && !t.flows.contains_key(&flow.id) {
            t.prune_flows(SystemTime::now());
        }
        t.flows.insert(flow.id.clone(), flow);
    }

    pub fn flow(&self, id: &str, kind: FlowKind) -> Option<Flow> {
        lock(&self.tables)
            .flows
            .get(id)
            .filter(|f| f.kind == kind)
            .cloned()
    }

    /// Replaces a stored flow (after an unsuccessful submission).
    pub fn update_flow(&self, flow: Flow) {
        self.insert_flow(flow);
    }

    /// A completed flow cannot be submitted again.
    pub fn remove_flow(&self, id: &str) {
        lock(&self.tables).flows.remove(id);
    }
}

impl Tables {
    /// Makes room below [`MAX_FLOWS`]: expired flows first, then the oldest, down to 3/4 of it
    /// so that the next pruning is many inserts away.
    fn prune_flows(&mut self, now: SystemTime) {
        self.flows.retain(|_, f| !f.is_expired(now));
        let keep = MAX_FLOWS * 3 / 4;
        if self.flows.len() > keep {
            let mut by_age: Vec<(SystemTime, String)> = self
                .flows
                .values()
                .map(|f| (f.issued_at, f.id.clone()))
                .collect();
            by_age.sort();
            for (_, id) in by_age.into_iter().take(self.flows.len() - keep) {
                self.flows.remove(&id);
            }
        }
    }

    /// Makes room below [`MAX_SESSIONS`]: revoked and expired sessions first, then the oldest,
    /// with their logout tokens.
    fn prune_sessions(&mut self, now: SystemTime) {
        self.sessions.retain(|_, s| s.is_active(now));
        let keep = MAX_SESSIONS * 3 / 4;
        if self.sessions.len() > keep {
            let mut by_age: Vec<(SystemTime, String)> = self
                .sessions
                .values()
                .map(|s| (s.issued_at, s.token.clone()))
                .collect();
            by_age.sort();
            for (_, token) in by_age.into_iter().take(self.sessions.len() - keep) {
                self.sessions.remove(&token);
            }
        }
        let sessions = &self.sessions;
        self.logout_tokens.retain(|_, s| sessions.contains_key(s));
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: new_id(),
            ip_address: "127.0.0.1".into(),
            user_agent: "test".into(),
        }
    }

    #[test]
    fn the_request_log_keeps_the_latest_window() {
        let store = Store::new(Duration::ZERO, None);
        for i in 0..REQUEST_LOG_WINDOW + 500 {
            store.record(RecordedRequest {
                method: "GET".into(),
                path_and_query: format!("/{i}"),
                headers: Vec::new(),
            });
        }
        let log = store.requests();
        assert_eq!(log.len(), REQUEST_LOG_WINDOW);
        assert_eq!(log[0].path_and_query, "/500");
        assert_eq!(
            log.last().unwrap().path_and_query,
            format!("/{}", REQUEST_LOG_WINDOW + 499)
        );
    }

    #[test]
    fn flows_are_bounded_and_the_newest_kept() {
        let store = Store::new(Duration::ZERO, None);
        let mut last = String::new();
        for _ in 0..MAX_FLOWS * 2 {
            let flow = Flow::new(FlowKind::Login, new_id(), None, "http://x/".into());
            last = flow.id.clone();
            store.insert_flow(flow);
        }
        assert!(lock(&store.tables).flows.len() <= MAX_FLOWS);
        assert!(store.flow(&last, FlowKind::Login).is_some());
    }

    #[test]
    fn the_second_factor_upgrades_an_active_session_in_place() {
        let store = Store::new(Duration::ZERO, None);
        let id = store.ensure_identity("a@example.org").id;
        let s = store.create_session(&id, Duration::from_secs(3600), device());
        assert_eq!(s.aal(), Aal::Aal1);
        let (up, identity) = store.upgrade_session(&s.token).unwrap();
        assert_eq!((up.aal(), up.id.as_str()), (Aal::Aal2, s.id.as_str()));
        assert_eq!(identity.id, id);
        let (now, _) = store.active_session(&s.token).unwrap();
        assert_eq!(now.aal(), Aal::Aal2);
        // A revoked session cannot be upgraded, nor can a token without a session.
        store.revoke_session(&s.token);
        assert!(store.upgrade_session(&s.token).is_none());
        assert!(store.upgrade_session("ory_st_none").is_none());
    }

    #[test]
    fn sessions_are_bounded_inactive_ones_first() {
        let store = Store::new(Duration::ZERO, None);
        let id = store.ensure_identity("a@example.org").id;
        let keep = store.create_session(&id, Duration::from_secs(3600), device());
        // One page view after another asks for a logout URL: one token per session.
        let token = store.create_logout_token(&keep.token);
        assert_eq!(store.create_logout_token(&keep.token), token);
        for _ in 0..MAX_SESSIONS {
            let s = store.create_session(&id, Duration::from_secs(3600), device());
            store.create_logout_token(&s.token);
            store.revoke_session(&s.token);
        }
        let t = lock(&store.tables);
        assert!(t.sessions.len() <= MAX_SESSIONS);
        assert!(t.logout_tokens.len() <= t.sessions.len());
        drop(t);
        // The active session outlived the revoked ones, and its logout token works.
        assert!(store.active_session(&keep.token).is_some());
        assert!(store.logout(&token));
    }
}

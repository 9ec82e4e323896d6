//! The outcomes the components count, each with the label it has in the exposition.

/// Who produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answerer {
    App,
    Ory,
    /// The proxy itself: JWKS, health, metrics, CORS preflights.
    Proxy,
}

impl Answerer {
    pub(super) const ALL: [Answerer; 3] = [Answerer::App, Answerer::Ory, Answerer::Proxy];

    pub(super) fn label(self) -> &'static str {
        match self {
            Answerer::App => "app",
            Answerer::Ory => "ory",
            Answerer::Proxy => "proxy",
        }
    }
}

/// What an app-bound request carried to the app (with JWT on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A JWT of an active session.
    Jwt,
    /// Credentials without an active session.
    Anonymous,
    /// No credentials: no lookup was made.
    NoCredentials,
    /// Ory could not answer; the request went on anonymous.
    OryUnavailable,
}

impl AuthOutcome {
    pub(super) const ALL: [AuthOutcome; 4] = [
        AuthOutcome::Jwt,
        AuthOutcome::Anonymous,
        AuthOutcome::NoCredentials,
        AuthOutcome::OryUnavailable,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            AuthOutcome::Jwt => "jwt",
            AuthOutcome::Anonymous => "anonymous",
            AuthOutcome::NoCredentials => "none",
            AuthOutcome::OryUnavailable => "ory-unavailable",
        }
    }
}

/// How one whoami call to Ory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhoamiOutcome {
    Active,
    Inactive,
    /// An answer about the credentials that is neither a session nor 401/403 (another 4xx, a
    /// 200 that is not a session): no session, and no sign of an outage.
    Rejected,
    Failed,
}

impl WhoamiOutcome {
    pub(super) const ALL: [WhoamiOutcome; 4] = [
        WhoamiOutcome::Active,
        WhoamiOutcome::Inactive,
        WhoamiOutcome::Rejected,
        WhoamiOutcome::Failed,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            WhoamiOutcome::Active => "active",
            WhoamiOutcome::Inactive => "inactive",
            WhoamiOutcome::Rejected => "rejected",
            WhoamiOutcome::Failed => "error",
        }
    }
}

/// How one reading of `proxy.toml` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Valid, and live settings changed.
    Applied,
    /// Valid, but no live setting changed.
    Unchanged,
    /// Invalid, missing or unreadable: the running settings stayed.
    Rejected,
}

impl ReloadOutcome {
    pub(super) const ALL: [ReloadOutcome; 3] = [
        ReloadOutcome::Applied,
        ReloadOutcome::Unchanged,
        ReloadOutcome::Rejected,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Rejected => "rejected",
        }
    }
}

//! What the user configures ([`EmulatorConfig`]) and what the server derives from it once the
//! listening address is known ([`Settings`]).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How an [`Emulator`](super::Emulator) behaves. Build it with struct-update syntax on
/// `EmulatorConfig::default()` so that fields added later do not break callers.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The URL written into absolute URLs (Location headers, form actions, links).
    /// `None` = the emulator's own `http://127.0.0.1:<port>` (`https://…` with [`tls`](Self::tls)).
    pub base_url: Option<String>,
    /// Serve https with this configuration instead of plain http.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Name of the session cookie: `ory_kratos_session` (self-hosted Kratos) or
    /// `ory_session_<slug>` (Ory Network).
    pub session_cookie_name: String,
    /// How long a session lives: `expires_at = issued_at + session_lifespan`.
    pub session_lifespan: Duration,
    /// Artificial latency of `/sessions/whoami` (changeable later with
    /// [`Emulator::set_whoami_delay`](super::Emulator::set_whoami_delay)). The answer is decided
    /// when the request arrives and sent after the delay, as by an Ory far away.
    pub whoami_delay: Duration,
    /// Gzip-compress HTML and JSON answers when the request's `Accept-Encoding` allows it.
    pub gzip: bool,
    /// Give cookies `Secure; SameSite=None` instead of `SameSite=Lax`. An https base URL always
    /// gets secure cookies (browsers drop `SameSite=None` without `Secure`), so `false` only has
    /// an effect on http.
    pub secure_cookies: bool,
    /// The one-time code of every identity's second factor (the `totp` method of an `aal2`
    /// login flow). `None` = six random digits, fixed for the run (see
    /// [`Emulator::second_factor_code`](super::Emulator::second_factor_code)).
    pub second_factor_code: Option<String>,
    /// Kratos' `selfservice.allowed_return_urls`: where a flow's `return_to` may point, besides
    /// the emulator's own `/self-service` URLs. An entry allows URLs with its scheme, its host
    /// (`*.example.org` matches subdomains) and a path under its path. `None` = any `return_to`
    /// is accepted, as the emulator did before it checked them. Changeable later with
    /// [`Emulator::set_allowed_return_urls`](super::Emulator::set_allowed_return_urls).
    pub allowed_return_urls: Option<Vec<String>>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            base_url: None,
            tls: None,
            session_cookie_name: "ory_kratos_session".to_owned(),
            session_lifespan: Duration::from_secs(24 * 60 * 60),
            whoami_delay: Duration::ZERO,
            gzip: true,
            secure_cookies: false,
            second_factor_code: None,
            allowed_return_urls: None,
        }
    }
}

impl std::fmt::Debug for EmulatorConfig {
    // rustls::ServerConfig's Debug output is huge and says nothing useful here.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("base_url", &self.base_url)
            .field("tls", &self.tls.is_some())
            .field("session_cookie_name", &self.session_cookie_name)
            .field("session_lifespan", &self.session_lifespan)
            .field("whoami_delay", &self.whoami_delay)
            .field("gzip", &self.gzip)
            .field("secure_cookies", &self.secure_cookies)
            .field("second_factor_code", &self.second_factor_code)
            .field("allowed_return_urls", &self.allowed_return_urls)
            .finish()
    }
}

/// The immutable per-server facts every handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Base URL without a trailing slash.
    pub base: String,
    /// Host of the base URL, written into cookies' `Domain` like Kratos does.
    pub cookie_domain: String,
    pub secure_cookies: bool,
    pub session_cookie_name: String,
    /// `csrf_token_<hash of the base URL>`, so that two emulators never share a CSRF cookie.
    pub csrf_cookie_name: String,
    pub session_lifespan: Duration,
    pub gzip: bool,
    /// The code that completes the second factor.
    pub second_factor_code: String,
}

impl Settings {
    pub fn new(config: &EmulatorConfig, addr: std::net::SocketAddr) -> Settings {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = match &config.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{scheme}://{addr}"),
        };
        let parsed = url::Url::parse(&base).ok();
        let cookie_domain = parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| addr.ip().to_string());
        let https = parsed.as_ref().is_some_and(|u| u.scheme() == "https");
        let hash = Sha256::digest(base.as_bytes());
        let csrf_cookie_name = format!("csrf_token_{}", hex(&hash));
        Settings {
            base,
            cookie_domain,
            secure_cookies: config.secure_cookies || https,
            session_cookie_name: config.session_cookie_name.clone(),
            csrf_cookie_name,
            session_lifespan: config.session_lifespan,
            gzip: config.gzip,
            second_factor_code: config
                .second_factor_code
                .clone()
                .unwrap_or_else(random_code),
        }
    }

    /// An absolute URL on the base URL; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// Six random digits, like an authenticator app shows.
fn random_code() -> String {
    format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

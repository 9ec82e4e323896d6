//! [`Emulator`], the public handle: start and stop the server, read what it saw, and set up or
//! break sessions without going through the UI.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use super::config::{EmulatorConfig, Settings};
use super::context::Ctx;
use super::model;
use super::server::{self, Running};
use super::state::{Device, Store};
use super::{DEMO_EMAIL, DEMO_PASSWORD};

/// One request as the emulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Raw path and query, exactly as sent (no decoding or normalisation).
    pub path_and_query: String,
    /// Every header; a multi-valued header appears once per value, in the order received
    /// (the order between different names is not kept).
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An active session created by [`Emulator::create_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSession {
    pub id: String,
    pub identity_id: String,
    /// The session token (works as cookie value, `X-Session-Token` and bearer token).
    pub token: String,
    /// `<session cookie name>=<token>`, ready for a `Cookie` header.
    pub cookie: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A running emulator. Stops its server and joins its thread on [`stop`](Self::stop) or drop.
pub struct Emulator {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    running: Option<Running>,
}

impl Emulator {
    /// Binds `127.0.0.1:0`, seeds the demo user ([`DEMO_EMAIL`]/[`DEMO_PASSWORD`]) and serves on
    /// its own thread with its own actix `System`. Returns once the server is running.
    pub fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let settings = Settings::new(&config, addr);
        let store = Arc::new(Store::new(
            config.whoami_delay,
            config.allowed_return_urls.clone(),
        ));
        // A fresh store cannot hold this identity yet, so this cannot fail.
        let _ = store.create_identity(DEMO_EMAIL, Some(DEMO_PASSWORD));
        let ctx = Arc::new(Ctx { store, settings });
        let running = server::spawn(listener, Arc::clone(&ctx), config.tls.clone())?;
        Ok(Emulator {
            ctx,
            addr,
            running: Some(running),
        })
    }

    /// The base URL, without a trailing slash: the configured one, or
    /// `http(s)://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.ctx.settings.base
    }

    /// The address the server listens on (connect here even when `base_url` names another host).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Name of the session cookie.
    pub fn session_cookie_name(&self) -> &str {
        &self.ctx.settings.session_cookie_name
    }

    /// Name of the CSRF cookie (`csrf_token_<hash>`).
    pub fn csrf_cookie_name(&self) -> &str {
        &self.ctx.settings.csrf_cookie_name
    }

    /// How many `/sessions/whoami` requests arrived (failed and delayed ones included).
    pub fn whoami_calls(&self) -> u64 {
        self.ctx.store.whoami_calls()
    }

    /// The requests received, in arrival order: the latest
    /// [`REQUEST_LOG_WINDOW`](super::REQUEST_LOG_WINDOW) of them.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.ctx.store.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.ctx.store.clear_requests();
    }

    /// Turns request recording on (the default) or off. The log is a bounded window either
    /// way; benchmarks turn it off to spare the copying.
    pub fn set_recording(&self, on: bool) {
        self.ctx.store.set_recording(on);
    }

    /// Creates an identity with a password, for logging in through the UI. Returns its id, or
    /// `None` when the email is taken.
    pub fn create_identity(&self, email: &str, password: &str) -> Option<String> {
        self.ctx
            .store
            .create_identity(email, Some(password))
            .ok()
            .map(|i| i.id)
    }

    /// An active session for `email` (the identity is created when missing), bypassing the UI.
    pub fn create_session(&self, email: &str) -> TestSession {
        let identity = self.ctx.store.ensure_identity(email);
        let device = Device {
            id: super::state::new_id(),
            ip_address: "127.0.0.1".to_owned(),
            user_agent: "ory-proxy-emulator".to_owned(),
        };
        let session =
            self.ctx
                .store
                .create_session(&identity.id, self.ctx.settings.session_lifespan, device);
        TestSession {
            cookie: format!(
                "{}={}",
                self.ctx.settings.session_cookie_name, session.token
            ),
            id: session.id,
            identity_id: identity.id,
            token: session.token,
            expires_at: model::timestamp(session.expires_at),
        }
    }

    /// The one-time code that completes the second factor of every identity (fixed for the
    /// run: [`EmulatorConfig::second_factor_code`], or six random digits).
    pub fn second_factor_code(&self) -> &str {
        &self.ctx.settings.second_factor_code
    }

    /// Completes the second factor of an active session, bypassing the UI: it is `aal2` from
    /// now on (same id and token). False when the token has no active session.
    pub fn upgrade_session(&self, token: &str) -> bool {
        self.ctx.store.upgrade_session(token).is_some()
    }

    /// Where flows may send the browser back to from now on (see
    /// [`EmulatorConfig::allowed_return_urls`]); `None` = anywhere.
    pub fn set_allowed_return_urls(&self, urls: Option<Vec<String>>) {
        self.ctx.store.set_allowed_return_urls(urls);
    }

    /// Makes the session inactive: whoami answers 401 for it from now on.
    pub fn expire_session(&self, token: &str) {
        self.ctx.store.revoke_session(token);
    }

    /// Artificial latency of `/sessions/whoami` from now on.
    pub fn set_whoami_delay(&self, d: Duration) {
        self.ctx.store.set_whoami_delay(d);
    }

    /// `Some(status)`: whoami answers that status with a `genericError` body; `None`: normal.
    pub fn set_whoami_failure(&self, status: Option<u16>) {
        self.ctx.store.set_whoami_failure(status);
    }

    /// `true`: whoami sends its head at once, then a byte of body per second for a minute, like
    /// an Ory stalled behind a slow link; `false`: normal.
    pub fn set_whoami_trickle(&self, on: bool) {
        self.ctx.store.set_whoami_trickle(on);
    }

    /// Stops the server (without waiting for open connections) and joins its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            // `stop` sends the command at once; its future only reports completion, which
            // joining the thread already waits for.
            drop(running.handle.stop(false));
            let _ = running.thread.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url())
            .field("addr", &self.addr)
            .finish()
    }
}

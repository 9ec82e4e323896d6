//! The proxy itself: forwarding to the app and to Ory, rewriting what comes back, CORS.
//!
//! Where to look:
//! - which upstream a path goes to: [`route`]
//! - headers sent upstream: [`request_headers`], which client headers never pass as sent:
//!   [`client_headers`], the client's address: [`client_address`]; headers sent back:
//!   [`response_headers`];
//!   hop-by-hop headers, dropped both ways: [`hop_by_hop`]
//! - `Set-Cookie`: [`cookie_rewrite`]; `Location` and the welcome redirect: [`location_rewrite`]
//! - Ory bodies: [`body_rewrite`], with the memory all requests may hold for it:
//!   [`rewrite_budget`]; CORS: [`cors`]; WebSockets: [`websocket`] (and a declined upgrade's
//!   answer: [`declined_upgrade`])
//! - the upstream clients: [`upstream_client`], trusting the CAs of [`trust_store`]
//! - the request handler tying them together, in named phases: [`forward`]; sending bodies
//!   upstream: [`request_body`], a client that stops sending one: [`body_idle`]
//! - every answer the proxy makes up itself (errors, refusals, its own 404s, `--dev` pages)
//!   and how it becomes HTTP: [`answer`]
//!
//! Imports run one way: the rules above import [`route`] (for [`route::Upstream`]) and
//! [`answer`], never each other in a circle; this module's shared types ([`ProxyState`],
//! [`RequestLive`], [`AccessTag`]) import no submodule but the header constants and the
//! rewrite budget.
//!
//! Route protection (`[access]`) is decided in the handler's access phase
//! ([`forward`]), from the rules of [`crate::access`]; its refusals are answers of [`answer`].

pub mod answer;
pub mod body_idle;
pub mod body_rewrite;
pub mod client_address;
pub mod client_headers;
pub mod client_host;
pub mod cookie_rewrite;
pub mod cors;
pub mod declined_upgrade;
pub mod forward;
pub mod hop_by_hop;
pub mod location_rewrite;
pub mod request_body;
pub mod request_headers;
pub mod response_headers;
pub mod rewrite_budget;
pub mod route;
pub mod trust_store;
pub mod upstream_client;
pub mod websocket;
pub mod weight;

use std::sync::Arc;

use crate::config::{Fixed, LiveSettings};
use crate::metrics::Metrics;
use crate::sessions::SessionCache;
pub use request_headers::OutboundConstants;

/// Shared by every worker: the fixed settings, the live snapshot, precomputed header values.
pub struct ProxyState {
    pub fixed: Arc<Fixed>,
    pub live: LiveSettings,
    pub constants: OutboundConstants,
    /// The session → JWT cache; `None` with `--no-jwt`.
    pub sessions: Option<SessionCache>,
    pub metrics: Arc<Metrics>,
    /// Bytes of Ory answers held for rewriting, across all requests.
    pub rewrite_budget: Arc<rewrite_budget::RewriteBudget>,
    /// The bound metrics listener (`metrics_listen`); requests arriving there get metrics only.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Set when SIGTERM arrives: readiness answers 503 from then on (everything else is served
    /// as usual until the listener closes).
    pub draining: std::sync::atomic::AtomicBool,
}

/// The awc clients of one worker.
pub struct Upstreams {
    pub app: awc::Client,
    pub ory: awc::Client,
}

/// The live settings one request runs on: taken once by the outermost CORS layer
/// ([`cors::preflight_layer`]) and read by everything after it, so that a reload landing
/// mid-request cannot give one response a mix of old and new settings (say the old CORS
/// decision with the new welcome redirect). Only requests with an `Origin` carry one: without
/// it the CORS layer reads no settings, so there is nothing to mix, and the handler's own
/// snapshot spares the request an extensions map.
#[derive(Clone)]
pub struct RequestLive(pub Arc<crate::config::Live>);

impl RequestLive {
    /// The request's snapshot, or a fresh one when no layer took it (a handler called alone).
    pub fn of(req: &actix_web::HttpRequest, live: &LiveSettings) -> Arc<crate::config::Live> {
        use actix_web::HttpMessage as _;
        match req.extensions().get::<RequestLive>() {
            Some(r) => r.0.clone(),
            None => live.snapshot(),
        }
    }
}

pub use crate::config::ACCESS_LOG_TARGET;

/// What the access log reports about a request, left in the request's extensions by the
/// handler that served it.
#[derive(Debug, Clone)]
pub struct AccessTag {
    /// `app`, `ory` or `proxy`.
    pub upstream: &'static str,
    /// `anonymous`, `jwt`, `off`, …
    pub auth: &'static str,
    /// The access rule the request met (`default` when none did); `None` for the requests no
    /// rule applies to: Ory's, the proxy's own routes, CORS preflights.
    pub rule: Option<Arc<str>>,
    /// What the rule decided (`allow`, `login`, …), `-` without a rule.
    pub decision: &'static str,
}

impl AccessTag {
    /// The tag of a request no access rule applies to.
    pub fn unruled(upstream: &'static str, auth: &'static str) -> AccessTag {
        AccessTag {
            upstream,
            auth,
            rule: None,
            decision: "-",
        }
    }

    /// Leaves the tag for the access log; nothing (no allocation) when that log is off.
    pub fn record(self, req: &impl actix_web::HttpMessage) {
        if crate::config::access_log_enabled() {
            req.extensions_mut().insert(self);
        }
    }
}

//! ory-proxy: an identity-aware reverse proxy, a drop-in for `ory proxy`.
//!
//! Data flows one way: [`cli`] (flags) → [`config`] (layering, validation, the live snapshot)
//! → the actors ([`keys`]: signing keys and JWKS; [`sessions`]: the session → JWT cache;
//! [`watcher`]: hot reload of `proxy.toml`, the only writer of the live snapshot)
//! → [`proxy`] (forwarding, rewriting, CORS) → [`server`] (route table, wiring).
//! [`metrics`] is a leaf every layer may count into.

pub mod cli;
pub mod config;
pub mod emulator;
pub mod file_read;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod sessions;
pub mod watcher;

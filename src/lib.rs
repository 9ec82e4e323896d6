//! ory-proxy: an identity-aware reverse proxy, a drop-in for `ory proxy`.
//!
//! Data flows one way: [`cli`] (flags) → [`config`] (layering, validation, the live snapshot)
//! → the actors ([`keys`]: signing keys and JWKS; [`sessions`]: the session → JWT cache;
//! [`watcher`]: hot reload of `proxy.toml`, the only writer of the live snapshot)
//! → [`proxy`] (forwarding, rewriting, CORS) → [`server`] (route table, wiring).
//! [`metrics`] is a leaf every layer may count into; [`version`] says what was built;
//! [`completions`] prints shell completions and the man page from the flags' definition.

pub mod cli;
pub mod completions;
pub mod config;
pub mod emulator;
pub mod file_read;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod sessions;
pub mod version;
pub mod watcher;

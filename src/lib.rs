//! ory-proxy: an identity-aware reverse proxy, a drop-in for `ory proxy`.
//!
//! Data flows one way: [`cli`] (flags) → [`config`] (layering, validation, the live snapshot)
//! → the actors ([`keys`]: signing keys and JWKS; [`sessions`]: the session → JWT cache;
//! [`watcher`]: hot reload of `proxy.toml`, the only writer of the live snapshot, and of the TLS
//! certificate)
//! → [`proxy`] (forwarding, rewriting, CORS) → [`server`] (route table, wiring). [`tls`] holds
//! the listener's certificate, which the watcher swaps when its files are renewed.
//! Leaves any layer may use: [`metrics`] (the counters), [`access`] (the route protection rules,
//! compiled by the configuration and applied by the proxy), [`html`] (the escaper for the pages
//! the proxy writes itself), [`header_names`] (header names compared as CGI servers read them),
//! [`file_read`] and [`strict_modes`] (how the operator's files are read, and whose they may be).
//! [`version`] says what was built; [`completions`] prints shell completions and the man page
//! from the flags' definition.

pub mod access;
pub mod cli;
pub mod completions;
pub mod config;
pub mod file_read;
pub mod header_names;
pub mod html;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod sessions;
pub mod strict_modes;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod version;
pub mod watcher;

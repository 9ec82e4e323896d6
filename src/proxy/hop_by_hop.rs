//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so the proxy drops
//! them in both directions, together with every header a `Connection` header names.
//!
//! `Expect` is treated as one of them: it is an expectation of the hop that receives it, and
//! the proxy is that hop (actix-web answers `100-continue` to the client itself). Relayed, the
//! upstream client would hold the body back until the app sent `100 Continue`; an app that
//! never does (HTTP/1.0 servers, Python's `http.server`, an expectation it does not know) and
//! the client would then wait on each other for ever, holding the connection.

use actix_web::http::header::{self, HeaderMap, HeaderName};

pub use crate::header_names::is_always_hop_by_hop;

/// Names listed in every `Connection` header value, lowercase.
pub fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a header is hop-by-hop, given the `Connection`-listed names.
pub fn is_hop_by_hop(name: &HeaderName, listed: &[String]) -> bool {
    is_always_hop_by_hop(name.as_str()) || listed.iter().any(|l| l == name.as_str())
}

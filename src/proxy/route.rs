//! Which upstream a request goes to (SPEC §4), decided on the raw request target so that
//! `%2F` and friends reach the upstream byte for byte.

use super::error::Upstream;
use super::location_rewrite::ORY_PREFIX;

/// The upstream and the path-and-query to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    pub upstream: Upstream,
    pub path_and_query: &'a str,
}

/// `/.ory` and `/.ory/...` (and `/.ory?...`) go to Ory with the prefix removed once;
/// `/.orything` and everything else go to the app unchanged.
pub fn route(path_and_query: &str) -> Routed<'_> {
    if let Some(rest) = path_and_query.strip_prefix(ORY_PREFIX) {
        if matches!(rest.bytes().next(), None | Some(b'/' | b'?')) {
            return Routed {
                upstream: Upstream::Ory,
                path_and_query: rest,
            };
        }
    }
    Routed {
        upstream: Upstream::App,
        path_and_query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let r = route("/.ory/self-service/login/browser?return_to=%2Fa");
        assert_eq!(r.upstream, Upstream::Ory);
        assert_eq!(
            r.path_and_query,
            "/self-service/login/browser?return_to=%2Fa"
        );
        assert_eq!(route("/.ory/.ory/x").path_and_query, "/.ory/x");
        assert_eq!(route("/.ory").upstream, Upstream::Ory);
        assert_eq!(route("/.ory?x").path_and_query, "?x");
        assert_eq!(route("/.orything").upstream, Upstream::App);
        assert_eq!(route("/a%2Fb?.ory").upstream, Upstream::App);
        assert_eq!(route("/a%2Fb").path_and_query, "/a%2Fb");
    }
}

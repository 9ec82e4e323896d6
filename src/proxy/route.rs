//! Which upstream a request goes to (docs/behaviour.md, "Routing"), decided on the raw request
//! target so that `%2F` and friends reach the upstream byte for byte.

/// Which upstream a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    App,
    Ory,
}

impl Upstream {
    /// The label in the access log and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::App => "app",
            Upstream::Ory => "ory",
        }
    }
}

impl std::fmt::Display for Upstream {
    /// The name in messages to people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Upstream::App => "the application",
            Upstream::Ory => "Ory",
        })
    }
}

/// The path under which Ory is published on the app's domain.
pub const ORY_PREFIX: &str = "/.ory";

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

/// The path of a path-and-query.
pub fn path_of(path_and_query: &str) -> &str {
    path_and_query.split(['?', '#']).next().unwrap_or("")
}

/// Whether a path has a `.` or `..` segment, percent-encoded spellings included. Such a path
/// to Ory is refused: it could climb out of an `sdk_url` base path behind a normalising
/// gateway, carrying the proxy's `Ory-*` headers.
pub fn has_dot_segment(path_and_query: &str) -> bool {
    path_of(path_and_query).split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    })
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

    #[test]
    fn dot_segments() {
        for p in ["/../admin", "/a/./b", "/%2e%2E/x", "/a/%2e", "/.."] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/a.b/c",
            "/.well-known/x",
            "/x?y=/../",
            "/...",
            "/%2e%2e%2e",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }
}

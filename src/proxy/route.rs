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

/// Why an Ory-bound path is refused. Each of these could climb out of an `sdk_url` base path
/// behind a gateway that decodes or normalises paths (into Kratos' admin API, say), carrying
/// the proxy's `Ory-*` headers; Kratos' public API never uses any of them in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePath {
    /// A `.` or `..` segment, also with a `;parameter` (`..;/`, read as `..` by some servers).
    DotSegment,
    /// `%2F`, `%5C`, `%2E` or `%25` (an encoded `%`: `%252e` decodes to `%2e`), `%3B` (`..%3b`
    /// decodes to `..;`), `%00` (a decoder in C ends the path there), or `%C0`/`%C1` (lead bytes
    /// of overlong UTF-8: `%c0%ae` is `.` to a lax decoder), in any case.
    EncodedSeparator,
    /// A literal `\`, which some servers read as `/`, or a literal NUL.
    Backslash,
}

impl UnsafePath {
    pub fn message(self) -> &'static str {
        match self {
            UnsafePath::DotSegment => "`.` and `..` path segments are not forwarded to Ory",
            UnsafePath::EncodedSeparator => {
                "encoded `/`, `\\`, `.`, `%`, `;`, NUL or overlong UTF-8 (%2F, %5C, %2E, %25, %3B, %00, %C0, %C1) in a path are not forwarded to Ory"
            }
            UnsafePath::Backslash => "`\\` or NUL in a path is not forwarded to Ory",
        }
    }
}

/// Checks the path (not the query) of an Ory-bound path-and-query.
pub fn check_ory_path(path_and_query: &str) -> Result<(), UnsafePath> {
    let path = path_of(path_and_query);
    if path.contains(['\\', '\0']) {
        return Err(UnsafePath::Backslash);
    }
    let dot = path.split('/').any(|seg| {
        let seg = seg.split(';').next().unwrap_or("");
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    });
    if dot {
        return Err(UnsafePath::DotSegment);
    }
    let encoded = path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f' | b'e' | b'5')
                    | (b'5', b'c')
                    | (b'3', b'b')
                    | (b'0', b'0')
                    | (b'c' | b'C', b'0' | b'1')
            )
    });
    if encoded {
        return Err(UnsafePath::EncodedSeparator);
    }
    Ok(())
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
    fn unsafe_ory_paths() {
        use UnsafePath::*;
        for (p, why) in [
            ("/../admin", DotSegment),
            ("/a/./b", DotSegment),
            ("/..", DotSegment),
            ("/..;/admin", DotSegment),
            ("/a/.;x=1/b", DotSegment),
            ("/%2e%2E/x", DotSegment),
            ("/a/%2e", DotSegment),
            ("/.%2e;x/a", DotSegment),
            ("/..%2f..%2fadmin", EncodedSeparator),
            ("/a%2Fb", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a%2eb", EncodedSeparator),
            ("/%252e%252e%252f", EncodedSeparator),
            ("/..%3b/admin", EncodedSeparator),
            ("/..%3B/admin", EncodedSeparator),
            ("/a%00.json", EncodedSeparator),
            ("/%c0%ae%c0%ae/admin", EncodedSeparator),
            ("/%C1%9C", EncodedSeparator),
            ("/a\\b", Backslash),
            ("/a\0b", Backslash),
        ] {
            assert_eq!(check_ory_path(p), Err(why), "{p}");
        }
        for p in [
            "/a.b/c",
            "/.well-known/ory/webauthn.js",
            "/x?y=/../",
            "/x?y=%2F%5C%2e%25",
            "/...",
            "/self-service/login/browser",
            "/a;b/c",
            "/%41%zz%",
            "/%2",
            "/%C3%A9",
            "/%3A%01",
            "",
        ] {
            assert_eq!(check_ory_path(p), Ok(()), "{p}");
        }
    }
}

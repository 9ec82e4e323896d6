//! The CORS policy as data: which origins and request headers are allowed. Compiled once per
//! (re)load so that the per-request check is a few string comparisons.

/// Methods the proxy allows cross-origin (docs/behaviour.md, "CORS").
pub const ALLOWED_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Request headers always allowed (docs/behaviour.md, "CORS"), lowercase.
pub const BASE_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "accept-language",
    "content-language",
    "authorization",
    "x-csrf-token",
    "x-session-token",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// `--dev` with no configured origins: echo any origin.
    pub any_origin: bool,
    /// Lowercased exact origins, the publish origin first.
    pub exact: Vec<String>,
    /// `(prefix, suffix)` for entries with one `*`.
    pub wildcards: Vec<(String, String)>,
    /// Lowercased allowed request headers (base + additional).
    pub headers: Vec<String>,
    /// `*` given as an additional header: any request header is allowed.
    pub any_header: bool,
}

impl CorsPolicy {
    /// `origins` must already be normalized (see [`normalize_origin`]).
    pub fn new(publish_origin: &str, origins: &[String], extra: &[String], dev: bool) -> Self {
        let mut exact = vec![publish_origin.to_ascii_lowercase()];
        let mut wildcards = Vec::new();
        for o in origins {
            match o.split_once('*') {
                Some((p, s)) => wildcards.push((p.to_string(), s.to_string())),
                None if !exact.contains(o) => exact.push(o.clone()),
                None => {}
            }
        }
        let mut headers: Vec<String> = BASE_HEADERS.iter().map(|h| h.to_string()).collect();
        let mut any_header = false;
        for h in extra {
            let h = h.trim().to_ascii_lowercase();
            if h == "*" {
                any_header = true;
            } else if !h.is_empty() && !headers.contains(&h) {
                headers.push(h);
            }
        }
        CorsPolicy {
            any_origin: dev && origins.is_empty(),
            exact,
            wildcards,
            headers,
            any_header,
        }
    }

    /// Whether a request `Origin` header value is allowed. Case-insensitive.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        if self.any_origin {
            return true;
        }
        let Ok(o) = std::str::from_utf8(origin) else {
            return false;
        };
        let o = o.to_ascii_lowercase();
        self.exact.contains(&o)
            || self.wildcards.iter().any(|(p, s)| {
                o.len() >= p.len() + s.len() && o.starts_with(p.as_str()) && o.ends_with(s.as_str())
            })
    }

    /// Whether every header in an `Access-Control-Request-Headers` value is allowed.
    pub fn allows_headers(&self, requested: &str) -> bool {
        self.any_header
            || requested
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| self.headers.contains(&h))
    }
}

/// Normalizes a configured origin: lowercase `scheme://host[:port]`, default port and trailing
/// slash removed. One `*` is allowed (in the host); a bare `*` is rejected because it would
/// hand every web site the visitor's session (use `--dev` for that on a laptop).
pub fn normalize_origin(raw: &str) -> Result<String, String> {
    let o = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    if o == "*" {
        return Err("a bare `*` is not an origin; use --dev to allow any origin in local development, or a pattern like https://*.example.org".into());
    }
    if o.matches('*').count() > 1 {
        return Err(format!("{raw:?} has more than one `*`"));
    }
    let (scheme, rest) = o
        .split_once("://")
        .ok_or_else(|| format!("{raw:?} is not an origin (scheme://host[:port])"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("{raw:?}: the scheme must be http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!(
            "{raw:?} is not an origin: no path, query, credentials or spaces"
        ));
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let rest = rest.strip_suffix(default_port).unwrap_or(rest);
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], dev: bool) -> CorsPolicy {
        let o: Vec<String> = origins
            .iter()
            .map(|o| normalize_origin(o).unwrap())
            .collect();
        CorsPolicy::new("http://localhost:4000", &o, &[], dev)
    }

    #[test]
    fn publish_origin_is_always_allowed() {
        let p = policy(&[], false);
        assert!(p.allows_origin(b"http://localhost:4000"));
        assert!(p.allows_origin(b"HTTP://LOCALHOST:4000"));
        assert!(!p.allows_origin(b"https://evil.example"));
    }

    #[test]
    fn dev_echoes_any_origin_only_without_a_list() {
        assert!(policy(&[], true).allows_origin(b"https://evil.example"));
        assert!(!policy(&["https://a.example"], true).allows_origin(b"https://evil.example"));
    }

    #[test]
    fn wildcard_matches_prefix_and_suffix() {
        let p = policy(&["https://*.example.org"], false);
        assert!(p.allows_origin(b"https://a.example.org"));
        assert!(p.allows_origin(b"https://a.b.example.org"));
        assert!(!p.allows_origin(b"https://example.org"));
        assert!(!p.allows_origin(b"http://a.example.org"));
        assert!(!p.allows_origin(b"https://a.example.org.evil.com"));
    }

    #[test]
    fn normalization() {
        assert_eq!(
            normalize_origin("HTTPS://A.example:443/").unwrap(),
            "https://a.example"
        );
        assert_eq!(normalize_origin("http://a:8080").unwrap(), "http://a:8080");
        assert!(normalize_origin("*").is_err());
        assert!(normalize_origin("https://*.*.x").is_err());
        assert!(normalize_origin("a.example").is_err());
        assert!(normalize_origin("https://a.example/path").is_err());
    }

    #[test]
    fn headers_case_insensitive_with_extras() {
        let p = CorsPolicy::new("http://l", &[], &["X-Custom".into()], false);
        assert!(p.allows_headers("content-type, X-CUSTOM"));
        assert!(!p.allows_headers("x-requested-with"));
        let any = CorsPolicy::new("http://l", &[], &["*".into()], false);
        assert!(any.allows_headers("x-anything"));
    }
}

//! `Set-Cookie` rewriting (SPEC §5.2): moves Ory's cookies (and the app's cookies scoped to
//! the app's own host) onto the publish domain.
//!
//! The value is edited attribute by attribute, never parsed into a cookie struct and written
//! back: the Go proxy's re-serialisation drops unknown attributes, unparsable `Expires` and
//! whole cookies (behaviour notes §10.4). Here every attribute the rules do not name stays as
//! sent, in its place.

/// What the rewrite needs to know about this response.
#[derive(Debug, Clone, Copy)]
pub struct CookieContext<'a> {
    /// `[cookies].domain`; `None` = host-only.
    pub domain: Option<&'a str>,
    /// The cookie came from Ory (else from the app).
    pub from_ory: bool,
    /// The application URL's host, lowercase.
    pub app_host: &'a str,
    /// The publish URL is https.
    pub public_https: bool,
}

/// Returns the rewritten value, or `None` when the cookie is to be left exactly as sent.
pub fn rewrite(value: &str, ctx: &CookieContext<'_>) -> Option<String> {
    let mut parts = value.split(';');
    let name_value = parts.next()?.trim();
    let attrs: Vec<&str> = parts.map(str::trim).filter(|a| !a.is_empty()).collect();

    let domain_of = |a: &str| {
        let (k, v) = a.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("domain")
            .then(|| v.trim().trim_start_matches('.').to_ascii_lowercase())
    };
    // A browser takes the last non-empty `Domain` (RFC 6265 §5.2.3, §5.3): an app cookie is
    // rescoped only when that one is the app's host.
    let original_domain = attrs
        .iter()
        .rev()
        .filter_map(|a| domain_of(a))
        .find(|d| !d.is_empty());
    let ours = ctx.from_ory || original_domain.as_deref() == Some(ctx.app_host);
    if !ours {
        return None;
    }

    let mut out = String::with_capacity(value.len() + 16);
    out.push_str(name_value);
    let mut has_secure = false;
    let mut domain_written = false;
    for a in attrs {
        let key = a.split('=').next().unwrap_or("").trim();
        if key.eq_ignore_ascii_case("domain") {
            if let (Some(d), false) = (ctx.domain, domain_written) {
                out.push_str("; Domain=");
                out.push_str(d);
                domain_written = true;
            }
            continue;
        }
        if key.eq_ignore_ascii_case("secure") {
            if ctx.public_https {
                has_secure = true;
                out.push_str("; ");
                out.push_str(a);
            }
            continue;
        }
        if key.eq_ignore_ascii_case("samesite") && !ctx.public_https {
            let v = a.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
            if v.eq_ignore_ascii_case("none") {
                // Browsers reject SameSite=None without Secure, and Secure cannot stand on http.
                out.push_str("; SameSite=Lax");
                continue;
            }
        }
        out.push_str("; ");
        out.push_str(a);
    }
    if let (Some(d), false) = (ctx.domain, domain_written) {
        out.push_str("; Domain=");
        out.push_str(d);
    }
    if ctx.public_https && !has_secure {
        out.push_str("; Secure");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ory(domain: Option<&'static str>, https: bool) -> CookieContext<'static> {
        CookieContext {
            domain,
            from_ory: true,
            app_host: "localhost",
            public_https: https,
        }
    }

    #[test]
    fn ory_domain_removed_when_no_cookie_domain() {
        let v = "ory_kratos_session=abc; Path=/; Domain=kratos.internal; Max-Age=3600; HttpOnly; SameSite=Lax";
        assert_eq!(
            rewrite(v, &ory(None, false)).unwrap(),
            "ory_kratos_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn ory_domain_replaced_or_added() {
        let v = "a=b; Domain=.kratos.internal; Path=/";
        assert_eq!(
            rewrite(v, &ory(Some("example.org"), false)).unwrap(),
            "a=b; Domain=example.org; Path=/"
        );
        assert_eq!(
            rewrite("a=b; Path=/", &ory(Some("example.org"), false)).unwrap(),
            "a=b; Path=/; Domain=example.org"
        );
    }

    #[test]
    fn http_public_url_drops_secure_and_none_becomes_lax() {
        let v = "csrf=x; Path=/; Secure; HttpOnly; SameSite=None";
        assert_eq!(
            rewrite(v, &ory(None, false)).unwrap(),
            "csrf=x; Path=/; HttpOnly; SameSite=Lax"
        );
        // Strict is a choice the browser can honour over http: it stays (unlike the Go proxy).
        let v = "csrf=x; SameSite=Strict";
        assert_eq!(
            rewrite(v, &ory(None, false)).unwrap(),
            "csrf=x; SameSite=Strict"
        );
    }

    #[test]
    fn https_public_url_adds_secure_once() {
        assert_eq!(
            rewrite("a=b; Path=/", &ory(None, true)).unwrap(),
            "a=b; Path=/; Secure"
        );
        assert_eq!(
            rewrite("a=b; secure", &ory(None, true)).unwrap(),
            "a=b; secure"
        );
        assert_eq!(
            rewrite("a=b; SameSite=None; Secure", &ory(None, true)).unwrap(),
            "a=b; SameSite=None; Secure"
        );
    }

    #[test]
    fn unknown_attributes_expires_and_quoting_are_kept() {
        let v = "q=\"a b\"; Expires=not a date; Priority=High; Partitioned; Max-Age=-1";
        assert_eq!(rewrite(v, &ory(None, false)).unwrap(), v);
    }

    #[test]
    fn app_cookies_only_when_scoped_to_app_host() {
        let ctx = CookieContext {
            domain: Some("example.org"),
            from_ory: false,
            app_host: "app.internal",
            public_https: true,
        };
        assert_eq!(rewrite("a=1; Path=/", &ctx), None);
        assert_eq!(rewrite("a=1; Domain=other.org", &ctx), None);
        assert_eq!(
            rewrite("a=1; Domain=App.Internal", &ctx).unwrap(),
            "a=1; Domain=example.org; Secure"
        );
        // The browser's domain is the last non-empty one.
        assert_eq!(
            rewrite("a=1; Domain=app.internal; Domain=other.org", &ctx),
            None
        );
        assert_eq!(
            rewrite("a=1; Domain=other.org; Domain=app.internal; Domain=", &ctx).unwrap(),
            "a=1; Domain=example.org; Secure"
        );
    }
}

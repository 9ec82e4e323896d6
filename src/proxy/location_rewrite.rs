//! `Location` rewriting and the welcome redirect (docs/behaviour.md, "Redirects").
//!
//! Works on the string, not on a parsed-and-reserialised URL, so that query, fragment,
//! percent-encoding and trailing slashes survive byte for byte (the Go proxy loses trailing
//! slashes to `path.Join`).

use super::route::ORY_PREFIX;

/// The origins involved, all as `scheme://host[:port]` without a trailing slash.
#[derive(Debug, Clone, Copy)]
pub struct LocationContext<'a> {
    /// Ory's URL as it appears in its answers: origin plus any base path.
    pub ory_base: &'a str,
    pub app_origin: &'a str,
    pub publish_origin: &'a str,
    /// The response came from Ory (else from the app).
    pub from_ory: bool,
}

/// The welcome page's path behind the Ory prefix.
const WELCOME_PATH: &str = "/.ory/ui/welcome";

/// If `loc` starts with `base` (scheme and host compared case-insensitively) at a URL
/// boundary, the remainder after it.
fn strip_base<'l>(loc: &'l str, base: &str) -> Option<&'l str> {
    let head = loc.get(..base.len())?;
    if !head.eq_ignore_ascii_case(base) {
        return None;
    }
    let rest = &loc[base.len()..];
    matches!(rest.bytes().next(), None | Some(b'/' | b'?' | b'#')).then_some(rest)
}

/// Rewrites one `Location` value; `None` when it stays as sent.
pub fn rewrite(loc: &str, ctx: &LocationContext<'_>) -> Option<String> {
    if let Some(rest) = strip_base(loc, ctx.ory_base) {
        return Some(join(ctx.publish_origin, ORY_PREFIX, rest));
    }
    if let Some(rest) = strip_base(loc, ctx.app_origin) {
        return Some(join(ctx.publish_origin, "", rest));
    }
    if ctx.from_ory && loc.starts_with('/') && !loc.starts_with("//") {
        // A Kratos under a base path (`sdk_url = "http://h/kratos"`) writes its relative
        // redirects with that path; the browser knows it as /.ory.
        let rest = strip_base(loc, base_path(ctx.ory_base))
            .filter(|_| !base_path(ctx.ory_base).is_empty());
        return Some(match rest {
            Some(rest) => join("", ORY_PREFIX, rest),
            None => format!("{ORY_PREFIX}{loc}"),
        });
    }
    None
}

/// The path part of `scheme://host[:port][/path]`, `""` when there is none.
fn base_path(base: &str) -> &str {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    base[after_scheme..]
        .find('/')
        .map_or("", |i| &base[after_scheme + i..])
}

fn join(origin: &str, prefix: &str, rest: &str) -> String {
    let mut s = String::with_capacity(origin.len() + prefix.len() + rest.len() + 1);
    s.push_str(origin);
    s.push_str(prefix);
    if !rest.starts_with('/') && (prefix.is_empty() || !rest.is_empty()) {
        s.push('/');
    }
    s.push_str(rest);
    s
}

/// Whether a (rewritten) `Location` points at Ory's welcome page on the publish origin.
pub fn is_welcome(loc: &str, publish_origin: &str) -> bool {
    let path_etc = strip_base(loc, publish_origin).unwrap_or(loc);
    let path = path_etc
        .split(['?', '#'])
        .next()
        .unwrap_or(path_etc)
        .trim_end_matches('/');
    path == WELCOME_PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(from_ory: bool) -> LocationContext<'static> {
        LocationContext {
            ory_base: "https://slug.projects.oryapis.com",
            app_origin: "http://localhost:3000",
            publish_origin: "http://localhost:4000",
            from_ory,
        }
    }

    #[test]
    fn absolute_ory_url_moves_under_publish_ory() {
        assert_eq!(
            rewrite(
                "https://slug.projects.oryapis.com/ui/login?flow=1#x",
                &ctx(true)
            )
            .unwrap(),
            "http://localhost:4000/.ory/ui/login?flow=1#x"
        );
        assert_eq!(
            rewrite("HTTPS://SLUG.projects.oryapis.com/a/", &ctx(true)).unwrap(),
            "http://localhost:4000/.ory/a/"
        );
        assert_eq!(
            rewrite("https://slug.projects.oryapis.com", &ctx(true)).unwrap(),
            "http://localhost:4000/.ory"
        );
        assert_eq!(
            rewrite("https://slug.projects.oryapis.com?x=1", &ctx(true)).unwrap(),
            "http://localhost:4000/.ory/?x=1"
        );
    }

    #[test]
    fn relative_ory_location_gets_prefix_but_app_relative_stays() {
        assert_eq!(
            rewrite("/self-service/login/browser", &ctx(true)).unwrap(),
            "/.ory/self-service/login/browser"
        );
        assert_eq!(rewrite("/dashboard/", &ctx(false)), None);
        assert_eq!(rewrite("//other.example/x", &ctx(true)), None);
    }

    #[test]
    fn absolute_app_url_moves_to_publish_origin() {
        assert_eq!(
            rewrite("http://localhost:3000/dashboard/?a=%2F", &ctx(false)).unwrap(),
            "http://localhost:4000/dashboard/?a=%2F"
        );
        assert_eq!(
            rewrite("http://localhost:3000", &ctx(false)).unwrap(),
            "http://localhost:4000/"
        );
    }

    #[test]
    fn other_hosts_and_lookalikes_are_left_alone() {
        assert_eq!(
            rewrite("https://accounts.google.com/o/oauth2", &ctx(true)),
            None
        );
        assert_eq!(
            rewrite("https://slug.projects.oryapis.com.evil.com/x", &ctx(true)),
            None
        );
        assert_eq!(rewrite("http://localhost:30001/x", &ctx(false)), None);
        assert_eq!(rewrite("http://127.0.0.1:3000/x", &ctx(false)), None);
    }

    #[test]
    fn ory_base_path_is_replaced_by_the_prefix() {
        let ctx = LocationContext {
            ory_base: "http://kratos.internal:4433/kratos",
            app_origin: "http://localhost:3000",
            publish_origin: "http://localhost:4000",
            from_ory: true,
        };
        assert_eq!(
            rewrite("/kratos/ui/login?flow=1", &ctx).unwrap(),
            "/.ory/ui/login?flow=1"
        );
        assert_eq!(rewrite("/other", &ctx).unwrap(), "/.ory/other");
        assert_eq!(
            rewrite("http://kratos.internal:4433/kratos/ui/x", &ctx).unwrap(),
            "http://localhost:4000/.ory/ui/x"
        );
        assert_eq!(base_path("https://a.b"), "");
        assert_eq!(base_path("https://a.b/k/"), "/k/");
    }

    #[test]
    fn welcome_detection() {
        assert!(is_welcome(
            "http://localhost:4000/.ory/ui/welcome?x=1",
            "http://localhost:4000"
        ));
        assert!(is_welcome("/.ory/ui/welcome", "http://localhost:4000"));
        assert!(is_welcome("/.ory/ui/welcome/", "http://localhost:4000"));
        assert!(!is_welcome("/.ory/ui/welcomes", "http://localhost:4000"));
        assert!(!is_welcome(
            "http://other:4000/.ory/ui/welcome",
            "http://localhost:4000"
        ));
        assert!(!is_welcome("/ui/welcome", "http://localhost:4000"));
    }
}

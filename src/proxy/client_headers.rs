//! Which of a client's request headers never reach an upstream as sent, whatever their
//! spelling: the headers the proxy sets or strips itself, and, on the way to the app, the
//! identity-style headers of `strip_request_headers` ([`HeaderList`]).
//!
//! One rule for all of them: a header the app could take for something the proxy vouches for
//! is the proxy's to set, never the client's. Headers the proxy sets from the session (the JWT's
//! `Authorization` today, identity headers of access rules later) belong to the same list: what
//! the proxy sets, it first strips in every spelling.
//!
//! HTTP tells `X_Forwarded_For` from `X-Forwarded-For`, but CGI and WSGI servers do not: both
//! become `HTTP_X_FORWARDED_FOR`, and which one an app then sees depends on header order. So a
//! name is compared *folded*: lowercase (as every parsed name is), `_` and `.` read as `-`. A
//! client header whose folded name is one the proxy owns is dropped, as nginx does by default
//! (`underscores_in_headers off`); only the canonical spelling is ever believed (from a trusted
//! proxy) or set (by the proxy).

use std::borrow::Cow;
use std::collections::HashSet;

use actix_web::http::header::HeaderName;

/// The default `strip_request_headers`: headers that identity-aware proxies set for the app
/// behind them (oauth2-proxy, Pomerium, Authelia, Authentik, Vouch, Grafana's and Apache's auth
/// proxies, Kong, Google IAP, AWS ALB, Cloudflare Access, Azure App Service), which apps
/// written for such a setup trust. A trailing `*` matches by prefix.
pub const DEFAULT_STRIP_REQUEST_HEADERS: &[&str] = &[
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Remote-User",
    "X-Remote-Email",
    "X-Remote-Group",
    "X-Remote-Groups",
    "X-Remote-Extra-*",
    "X-User",
    "X-User-Id",
    "X-User-Email",
    "X-User-Name",
    "X-User-Groups",
    "X-Email",
    "X-Groups",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-*",
    "X-Authenticated-User",
    "X-Authenticated-Userid",
    "X-Authentik-*",
    "X-Vouch-*",
    "X-WebAuth-*",
    "X-Pomerium-*",
    "X-Consumer-*",
    "X-Credential-Identifier",
    "X-Goog-Authenticated-User-*",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Amzn-Oidc-*",
    "Cf-Access-*",
    "X-MS-Client-Principal*",
    "X-MS-Token-*",
];

/// Headers that tell the client's address. Like `X-Forwarded-For`, they pass only from a proxy
/// in `trusted_proxies`; `X-Real-IP` the proxy always sets itself.
const CLIENT_ADDRESS: &[&str] = &[
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
];

/// Whether a lowercase name tells the client's address (other than `X-Real-IP`).
pub fn is_client_address(name: &str) -> bool {
    CLIENT_ADDRESS.contains(&name)
}

/// `name` as CGI/WSGI servers read it: `_` and `.` as `-`. Borrowed when there is nothing to
/// fold, which is almost always.
pub fn folded(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b == b'.') {
        Cow::Owned(name.replace(['_', '.'], "-"))
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether a folded, lowercase name is one the proxy sets or strips on every request: the
/// forwarding and client-address headers, `Host`, `Authorization`, `Content-Length`, the
/// hop-by-hop headers, and Ory's control headers.
pub fn owned_by_proxy(folded: &str) -> bool {
    matches!(
        folded,
        "host"
            | "authorization"
            | "content-length"
            | "forwarded"
            | "x-real-ip"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    ) || folded.starts_with("x-forwarded-")
        || folded.starts_with("ory-")
        || folded.starts_with("x-ory-")
        || is_client_address(folded)
}

/// Header names to strip, compared folded: exact names and `prefix*` entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderList {
    exact: HashSet<Box<str>>,
    prefixes: Vec<Box<str>>,
    /// The entries as configured, for the effective configuration.
    spelled: Vec<String>,
}

impl HeaderList {
    /// Parses the configured entries; the error names the bad one.
    pub fn parse(entries: &[String]) -> Result<HeaderList, String> {
        let mut list = HeaderList::default();
        for entry in entries {
            let e = entry.trim();
            if e.is_empty() {
                continue;
            }
            let (name, prefix) = match e.strip_suffix('*') {
                Some(p) => (p, true),
                None => (e, false),
            };
            if name.is_empty() {
                return Err(format!(
                    "{e:?} would strip every header; name headers, or prefixes like \"X-Acme-*\""
                ));
            }
            if HeaderName::from_bytes(name.as_bytes()).is_err() || name.contains('*') {
                return Err(format!(
                    "{e:?} is not a header name (a trailing * matches by prefix)"
                ));
            }
            let folded: Box<str> = folded(&name.to_ascii_lowercase()).into();
            if prefix {
                list.prefixes.push(folded);
            } else {
                list.exact.insert(folded);
            }
            list.spelled.push(e.to_string());
        }
        Ok(list)
    }

    /// The built-in default list.
    pub fn default_list() -> Vec<String> {
        DEFAULT_STRIP_REQUEST_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Whether a folded, lowercase name is on the list.
    pub fn contains(&self, folded: &str) -> bool {
        self.exact.contains(folded) || self.prefixes.iter().any(|p| folded.starts_with(&**p))
    }

    /// The entries as configured.
    pub fn entries(&self) -> &[String] {
        &self.spelled
    }
}

/// What happens to one client header on its way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not the client's to send: dropped.
    Drop,
    /// Passed on under the usual rules.
    Pass,
}

/// The one decision for a client header by name: dropped when it is another spelling of a
/// header the proxy owns, or, on the way to the app, on `strip` in any spelling.
pub fn verdict(name: &HeaderName, to_app: bool, strip: &HeaderList) -> Verdict {
    let f = folded(name.as_str());
    let respelled = matches!(f, Cow::Owned(_));
    if (respelled && owned_by_proxy(&f)) || (to_app && strip.contains(&f)) {
        Verdict::Drop
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn respellings_of_owned_names_are_caught() {
        for n in [
            "X_Forwarded_For",
            "x-forwarded_host",
            "X.Forwarded.Proto",
            "X_Real_IP",
            "Ory_Base_Url_Rewrite",
            "x_ory_anything",
            "Content_Length",
            "Transfer_Encoding",
            "Keep_Alive",
            "Proxy_Connection",
            "Proxy_Authorization",
        ] {
            let none = HeaderList::default();
            assert_eq!(verdict(&name(n), false, &none), Verdict::Drop, "{n}");
            assert_eq!(verdict(&name(n), true, &none), Verdict::Drop, "{n}");
        }
    }

    #[test]
    fn canonical_and_unrelated_names_are_not_respellings() {
        for n in [
            "X-Forwarded-For",
            "x-real-ip",
            "authorization",
            "x_custom_header",
            "accept",
            "x-requested-with",
            "sec_fetch_mode",
        ] {
            let none = HeaderList::default();
            assert_eq!(verdict(&name(n), true, &none), Verdict::Pass, "{n}");
        }
    }

    #[test]
    fn the_default_list_parses_and_matches_in_any_spelling() {
        let list = HeaderList::parse(&HeaderList::default_list()).unwrap();
        assert_eq!(list.entries().len(), DEFAULT_STRIP_REQUEST_HEADERS.len());
        for n in [
            "Remote-User",
            "remote_user",
            "X-Auth-Request-Email",
            "X_Auth_Request_Anything",
            "x-pomerium-claim-email",
            "X-MS-Client-Principal",
            "X-MS-Client-Principal-Name",
            "x.forwarded.user",
        ] {
            assert_eq!(verdict(&name(n), true, &list), Verdict::Drop, "{n}");
        }
        // To Ory the list does not apply; respellings of the proxy's own headers still go.
        for n in ["Remote-User", "remote_user", "X-Auth-Request-Email"] {
            assert_eq!(verdict(&name(n), false, &list), Verdict::Pass, "{n}");
        }
        assert_eq!(
            verdict(&name("x.forwarded.user"), false, &list),
            Verdict::Drop
        );
        for n in [
            "accept",
            "x-requested-with",
            "x-csrf-token",
            "x-userland",
            "cookie",
        ] {
            assert_eq!(verdict(&name(n), true, &list), Verdict::Pass, "{n}");
        }
    }

    #[test]
    fn the_documented_default_is_the_default() {
        let doc: toml::Table = toml::from_str(include_str!("../../config/proxy.toml")).unwrap();
        let listed: Vec<&str> = doc["strip_request_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, DEFAULT_STRIP_REQUEST_HEADERS);
    }

    #[test]
    fn bad_entries_are_refused() {
        let parse =
            |v: &[&str]| HeaderList::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(parse(&["*"]).is_err());
        assert!(parse(&["X Y"]).is_err());
        assert!(parse(&["X-*-Y"]).is_err());
        assert!(parse(&["X:Y"]).is_err());
        let l = parse(&["X-Tenant", "", " X-Acme-* "]).unwrap();
        assert!(l.contains("x-tenant") && l.contains("x-acme-role") && !l.contains("x-acm"));
        assert_eq!(l.entries(), ["X-Tenant", "X-Acme-*"]);
    }

    #[test]
    fn folding_borrows_when_there_is_nothing_to_fold() {
        assert!(matches!(folded("x-forwarded-for"), Cow::Borrowed(_)));
        assert_eq!(folded("x_forwarded.for"), "x-forwarded-for");
    }
}

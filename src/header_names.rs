//! Header names as CGI and WSGI servers read them (`_` and `.` as `-`, see [`folded`]), the
//! names the proxy owns on every request ([`owned_by_proxy`]), and the configured lists of them
//! ([`HeaderList`], the value of `strip_request_headers`). A leaf: the configuration parses the
//! lists and checks identity header names against the owned ones, the proxy's header rules
//! apply them, and neither has to import the other for it.

use std::borrow::Cow;
use std::collections::HashSet;

use actix_web::http::header::{self, HeaderName};

/// Hop-by-hop headers (RFC 9110 §7.6.1) whatever `Connection` lists; `keep-alive` and
/// `proxy-connection` are matched by name in [`is_always_hop_by_hop`]. `Expect` is one: the
/// proxy is the hop that answers it (see `proxy::hop_by_hop`).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::EXPECT,
];

/// Whether a lowercase name is hop-by-hop whatever `Connection` lists.
pub fn is_always_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.as_str() == name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

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

/// Whether a lowercase name is one of Ory's control headers (`Ory-*`, the legacy `X-Ory-*`),
/// through which a client could steer Ory or fool the app: the proxy sets its own.
pub fn is_ory_control(name: &str) -> bool {
    name.starts_with("ory-") || name.starts_with("x-ory-")
}

/// Whether a folded, lowercase name is one the proxy sets or strips on every request: the
/// forwarding and client-address headers, `Host`, `Authorization`, `Content-Length`, the
/// hop-by-hop headers, and Ory's control headers.
pub fn owned_by_proxy(folded: &str) -> bool {
    matches!(
        folded,
        "host" | "authorization" | "content-length" | "forwarded" | "x-real-ip"
    ) || is_always_hop_by_hop(folded)
        || folded.starts_with("x-forwarded-")
        || is_ory_control(folded)
        || is_client_address(folded)
}

/// The `X-Forwarded-*` names that carry an identity, not a hop (oauth2-proxy made them common):
/// the only ones an access rule's identity header may have.
const FORWARDED_IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
];

/// Why a header cannot carry the identity to the app (`[access].identity_headers`), if it
/// cannot: the proxy owns it, it carries credentials or the body's framing, or it is spelled
/// with `_` or `.`, which servers in front of apps drop or confuse with `-`.
pub fn identity_header_refusal(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Some("is not a header name");
    }
    if lower.contains(['_', '.']) {
        return Some(
            "has `_` or `.`, which many servers drop or read as `-`: write it with dashes",
        );
    }
    let owned = owned_by_proxy(&lower) && !FORWARDED_IDENTITY.contains(&lower.as_str());
    if owned || matches!(lower.as_str(), "cookie" | "x-session-token") {
        return Some("is set or checked by the proxy itself (forwarding, credentials, hop-by-hop or Ory's headers)");
    }
    if lower.starts_with("content-") {
        return Some("describes the request body");
    }
    None
}

/// The default `strip_request_headers`: headers that identity-aware proxies set for the app
/// behind them (oauth2-proxy, Pomerium, Authelia, Authentik, Vouch, Grafana's and Apache's auth
/// proxies, Kong, Google IAP, AWS ALB, Cloudflare Access, Azure App Service, Tailscale,
/// mod_auth_openidc, Teleport), which apps written for such a setup trust, and the client
/// address, URL, host, scheme and certificate headers that frameworks take from a proxy in
/// front. A trailing `*` matches by prefix.
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
    // Client addresses, original URLs and hosts, and schemes that frameworks read as the
    // client's (Rails, Symfony, IIS ARR, Express's proxies): the proxy says these itself.
    "Client-IP",
    "X-Original-Forwarded-For",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-ProxyUser-Ip",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Host",
    "X-Original-Host",
    "X-Forwarded",
    "Front-End-Https",
    "X-Url-Scheme",
    "X-Scheme",
    // The client certificate as a TLS-terminating proxy passes it on (nginx, IIS ARR, F5).
    "X-SSL-Client-*",
    "X-Client-Cert",
    "SSL-Client-Cert",
    "X-ARR-ClientCert",
    // Identity headers of more gateways (Traefik/Caddy auth plugins, Tailscale serve,
    // mod_auth_openidc, Kong/Apisix OIDC, Google Cloud Endpoints and API Gateway, Teleport).
    // Not `X-Auth-*` as a whole: `X-Auth-Token` is a common API credential of the app's own.
    "X-Auth-User",
    "X-Auth-Email",
    "X-Auth-Username",
    "X-Auth-Subject",
    "X-Auth-Userinfo",
    "Tailscale-User-*",
    "Oidc-Claim-*",
    "X-Userinfo",
    "X-Jwt-Assertion",
    "X-Endpoint-API-UserInfo",
    "X-Apigateway-Api-Userinfo",
    "Teleport-Jwt-Assertion",
    "X-Remote-Name",
    "X-Username",
    "X-Userid",
];

/// `name` as CGI/WSGI servers read it: `_` and `.` as `-`. Borrowed when there is nothing to
/// fold, which is almost always.
pub fn folded(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b == b'.') {
        Cow::Owned(name.replace(['_', '.'], "-"))
    } else {
        Cow::Borrowed(name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_is_the_default() {
        let doc: toml::Table = toml::from_str(include_str!("../config/proxy.toml")).unwrap();
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

//! Request header rules (docs/behaviour.md, "Request headers"): what the proxy strips from, adds to
//! and forwards in the request it sends upstream. Response header rules live in
//! [`super::response_headers`].

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::client_address::{set_client_address, X_FORWARDED_FOR, X_REAL_IP};
use super::client_headers::{is_client_address, is_ory_control, verdict, Verdict};
pub use super::client_host::client_host;
use super::hop_by_hop::{connection_listed, is_hop_by_hop};
use super::route::Upstream;
use crate::config::Fixed;
use crate::header_names::HeaderList;

/// Request headers larger than this in total (names, values, separators) are refused with 431
/// instead of being sent on: actix-http alone accepts up to 128 KiB.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

/// The size of a header block as it appears on the wire (`name: value\r\n` per line).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// Headers believed from a trusted proxy only: `Forwarded`, `X-Forwarded-*` and the other
/// client-address headers (`True-Client-IP`, …).
fn is_forwarding(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "forwarded" || n.starts_with("x-forwarded-") || is_client_address(n)
}

/// The `Accept-Encoding` sent to Ory: the client's codings that the proxy can decode (to rewrite
/// the body), at most [`super::body_rewrite::ORY_ACCEPT_ENCODING`]. Asking Ory for gzip on
/// behalf of a client that did not accept it would hand that client a body it cannot read.
fn ory_accept_encoding(inbound: &HeaderMap) -> HeaderValue {
    let (mut gzip, mut deflate) = (false, false);
    for item in inbound
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if super::weight::is_zero(parts) {
            continue;
        }
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = true,
            "deflate" => deflate = true,
            "*" => (gzip, deflate) = (true, true),
            _ => {}
        }
    }
    HeaderValue::from_static(match (gzip, deflate) {
        (true, true) => super::body_rewrite::ORY_ACCEPT_ENCODING,
        (true, false) => "gzip, identity;q=0.5",
        (false, true) => "deflate, identity;q=0.5",
        (false, false) => "identity",
    })
}

/// Header values computed once at start.
#[derive(Debug, Clone)]
pub struct OutboundConstants {
    ory_base_url_rewrite: HeaderValue,
    ory_rewrite_token: Option<HeaderValue>,
    forwarded_proto: HeaderValue,
    forwarded_host: HeaderValue,
    ory_host: HeaderValue,
    app_host: HeaderValue,
}

impl OutboundConstants {
    pub fn new(fixed: &Fixed) -> Result<Self, header::InvalidHeaderValue> {
        let host_port = |u: &url::Url| match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_string(),
        };
        Ok(OutboundConstants {
            ory_base_url_rewrite: HeaderValue::from_str(&format!("{}/.ory", fixed.publish_origin))?,
            ory_rewrite_token: fixed
                .api_key
                .as_deref()
                .map(HeaderValue::from_str)
                .transpose()?,
            forwarded_proto: HeaderValue::from_str(fixed.publish_url.scheme())?,
            forwarded_host: HeaderValue::from_str(&host_port(&fixed.publish_url))?,
            ory_host: HeaderValue::from_str(&host_port(&fixed.ory_url))?,
            app_host: HeaderValue::from_str(&host_port(&fixed.application_url))?,
        })
    }
}

/// Per-request facts for the header rules.
pub struct RequestContext<'a> {
    pub upstream: Upstream,
    pub peer: Option<IpAddr>,
    pub fixed: &'a Fixed,
    pub constants: &'a OutboundConstants,
    /// Drop the client's `Authorization` (app-bound requests: only the proxy's JWT may reach
    /// the app).
    pub drop_authorization: bool,
    /// The proxy's own `Authorization` (the session JWT), set after the client's is dropped.
    pub authorization: Option<&'a HeaderValue>,
    /// Client headers never sent to the app (`strip_request_headers`), in any spelling.
    pub strip: &'a HeaderList,
    /// The names of the access rules' identity headers: the client's never reach the app, in
    /// any spelling, not even from a trusted proxy.
    pub identity_names: &'a HeaderList,
    /// The identity headers of the request's session, set for the app after the client's are
    /// dropped.
    pub identity: &'a [(HeaderName, HeaderValue)],
    /// The host the client asked for ([`client_host`]): the app's `Host` unless
    /// `--rewrite-host`.
    pub host: Option<HeaderValue>,
}

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Writes the headers for the upstream request into `out`: the client's that may pass, then
/// the proxy's own (docs/behaviour.md, "Request headers").
pub fn write_upstream_headers(inbound: &HeaderMap, out: &mut HeaderMap, ctx: &RequestContext<'_>) {
    let kept = copy_client_headers(inbound, out, ctx);
    if let Some(peer) = ctx.peer {
        set_client_address(out, peer, &kept.prior_xff, ctx.fixed);
    }
    if let Some(a) = ctx.authorization {
        out.insert(header::AUTHORIZATION, a.clone());
    }
    match ctx.upstream {
        Upstream::App => {
            for (name, value) in ctx.identity {
                out.insert(name.clone(), value.clone());
            }
            set_app_headers(out, ctx, &kept);
        }
        Upstream::Ory => set_ory_headers(inbound, out, ctx.constants),
    }
}

/// What the client's headers leave for the proxy's to complete.
#[derive(Default)]
struct Kept<'h> {
    /// A trusted proxy's `X-Forwarded-For` values: the chain the client's address extends.
    prior_xff: Vec<&'h str>,
    /// A trusted proxy's `X-Forwarded-Proto` / `-Host` were kept: they stand.
    proto: bool,
    host: bool,
}

/// Copies the client's headers that may pass, all values of each, in order.
fn copy_client_headers<'h>(
    inbound: &'h HeaderMap,
    out: &mut HeaderMap,
    ctx: &RequestContext<'_>,
) -> Kept<'h> {
    let listed = connection_listed(inbound);
    let trusted = ctx
        .peer
        .is_some_and(|ip| ctx.fixed.trusted_proxies.iter().any(|n| n.contains(&ip)));
    let to_app = ctx.upstream == Upstream::App;
    let mut kept = Kept::default();
    for (name, value) in inbound.iter() {
        if is_hop_by_hop(name, &listed)
            || *name == header::HOST
            || *name == header::CONTENT_LENGTH
            || *name == X_REAL_IP
            || is_ory_control(name.as_str())
            || (ctx.drop_authorization && *name == header::AUTHORIZATION)
            // `X_Forwarded_For` and friends (an app may fold them into the real ones), and
            // identity-style headers (and the access rules' own) on the way to the app.
            || verdict(name, to_app, ctx.strip, ctx.identity_names) == Verdict::Drop
            || (!to_app && *name == header::ACCEPT_ENCODING)
        {
            continue;
        }
        if is_forwarding(name) && !keep_forwarding(name, value, trusted, to_app, &mut kept) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    kept
}

/// Whether a forwarding header is passed on as the client sent it: only from a trusted proxy,
/// and to Ory only `Forwarded` and the client's address. `X-Forwarded-For` is not passed
/// as sent but remembered, to be extended with the peer.
fn keep_forwarding<'h>(
    name: &HeaderName,
    value: &'h HeaderValue,
    trusted: bool,
    to_app: bool,
    kept: &mut Kept<'h>,
) -> bool {
    if !trusted {
        return false;
    }
    if *name == X_FORWARDED_FOR {
        kept.prior_xff
            .extend(value.to_str().ok().filter(|v| !v.trim().is_empty()));
        return false;
    }
    // To Ory: the chain (re-added later), `Forwarded` and the client's address.
    if !to_app && name.as_str() != "forwarded" && !is_client_address(name.as_str()) {
        return false;
    }
    kept.proto |= *name == X_FORWARDED_PROTO;
    kept.host |= *name == X_FORWARDED_HOST;
    true
}

/// For the app: where users reach it (`X-Forwarded-Proto`/`-Host`, unless a trusted proxy said)
/// and `Host`: the client's, or the app's own with `--rewrite-host`.
fn set_app_headers(out: &mut HeaderMap, ctx: &RequestContext<'_>, kept: &Kept<'_>) {
    let c = ctx.constants;
    if !kept.proto {
        out.insert(X_FORWARDED_PROTO, c.forwarded_proto.clone());
    }
    if !kept.host {
        out.insert(X_FORWARDED_HOST, c.forwarded_host.clone());
    }
    let host_value = if ctx.fixed.rewrite_host {
        Some(c.app_host.clone())
    } else {
        ctx.host.clone()
    };
    if let Some(h) = host_value {
        out.insert(header::HOST, h);
    }
}

/// For Ory: its own `Host`, the control headers that tell it where it is published, and the
/// codings the proxy can rewrite.
fn set_ory_headers(inbound: &HeaderMap, out: &mut HeaderMap, c: &OutboundConstants) {
    out.insert(header::HOST, c.ory_host.clone());
    out.insert(
        HeaderName::from_static("ory-base-url-rewrite"),
        c.ory_base_url_rewrite.clone(),
    );
    out.insert(
        HeaderName::from_static("ory-no-custom-domain-redirect"),
        HeaderValue::from_static("true"),
    );
    if let Some(t) = &c.ory_rewrite_token {
        out.insert(
            HeaderName::from_static("ory-base-url-rewrite-token"),
            t.clone(),
        );
    }
    out.insert(header::ACCEPT_ENCODING, ory_accept_encoding(inbound));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::Loader;
    use clap::Parser;
    use std::sync::Arc;

    fn fixed(extra: &[&str]) -> Arc<Fixed> {
        let mut args = vec!["ory-proxy", "--sdk-url", "https://kratos.internal:4433"];
        args.extend_from_slice(extra);
        args.extend(["http://app.internal:3000", "https://www.example.org"]);
        let loader = Loader::new(Cli::parse_from(args), Arc::new(|_| None));
        loader.load().unwrap().settings.fixed
    }

    fn run(inbound: &[(&str, &str)], upstream: Upstream, f: &Fixed, peer: &str) -> HeaderMap {
        run_with(inbound, upstream, f, peer, &HeaderList::default(), &[])
    }

    fn run_with(
        inbound: &[(&str, &str)],
        upstream: Upstream,
        f: &Fixed,
        peer: &str,
        identity_names: &HeaderList,
        identity: &[(HeaderName, HeaderValue)],
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in inbound {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let c = OutboundConstants::new(f).unwrap();
        let mut out = HeaderMap::new();
        let strip = HeaderList::parse(&HeaderList::default_list()).unwrap();
        let ctx = RequestContext {
            upstream,
            peer: Some(peer.parse().unwrap()),
            fixed: f,
            constants: &c,
            drop_authorization: false,
            authorization: None,
            strip: &strip,
            identity_names,
            identity,
            host: h.get(header::HOST).cloned(),
        };
        write_upstream_headers(&h, &mut out, &ctx);
        out
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn hop_by_hop_and_connection_listed_removed_multi_values_kept() {
        let f = fixed(&[]);
        let out = run(
            &[
                ("connection", "keep-alive, x-secret"),
                ("keep-alive", "timeout=5"),
                ("x-secret", "1"),
                ("te", "trailers"),
                ("accept", "text/html"),
                ("accept", "application/json"),
            ],
            Upstream::App,
            &f,
            "10.0.0.1",
        );
        for h in ["connection", "keep-alive", "x-secret", "te"] {
            assert!(out.get(h).is_none(), "{h} leaked");
        }
        assert_eq!(all(&out, "accept"), ["text/html", "application/json"]);
    }

    #[test]
    fn forwarded_headers_from_untrusted_clients_are_replaced() {
        let f = fixed(&[]);
        let out = run(
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil"),
                ("forwarded", "for=6.6.6.6"),
                ("host", "www.example.org"),
            ],
            Upstream::App,
            &f,
            "192.0.2.7",
        );
        assert_eq!(all(&out, "x-forwarded-for"), ["192.0.2.7"]);
        assert_eq!(all(&out, "x-forwarded-host"), ["www.example.org"]);
        assert_eq!(all(&out, "x-forwarded-proto"), ["https"]);
        assert!(out.get("forwarded").is_none());
        assert_eq!(all(&out, "host"), ["www.example.org"]);
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let text = "trusted_proxies = [\"10.0.0.0/8\"]\n";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proxy.toml");
        std::fs::write(&p, text).unwrap();
        let cli = Cli::parse_from([
            "ory-proxy",
            "-c",
            p.to_str().unwrap(),
            "--sdk-url",
            "https://k",
            "http://app",
        ]);
        let f = Loader::new(cli, Arc::new(|_| None))
            .load()
            .unwrap()
            .settings
            .fixed;
        let out = run(
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
            Upstream::App,
            &f,
            "10.1.2.3",
        );
        assert_eq!(all(&out, "x-forwarded-for"), ["203.0.113.9, 10.1.2.3"]);
        assert_eq!(all(&out, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn ory_control_headers_stripped_and_set() {
        let f = fixed(&[]);
        let spoof = [
            ("ory-base-url-rewrite", "https://evil"),
            ("ory-base-url-rewrite-token", "x"),
            ("x-ory-base-url-rewrite", "y"),
            ("ory-ratelimit-action", "z"),
        ];
        let app = run(&spoof, Upstream::App, &f, "127.0.0.1");
        assert!(
            app.iter().all(|(n, _)| !n.as_str().contains("ory-")),
            "{app:?}"
        );
        let ory = run(&spoof, Upstream::Ory, &f, "127.0.0.1");
        assert_eq!(
            all(&ory, "ory-base-url-rewrite"),
            ["https://www.example.org/.ory"]
        );
        assert_eq!(all(&ory, "ory-no-custom-domain-redirect"), ["true"]);
        assert!(ory.get("ory-base-url-rewrite-token").is_none());
        assert!(ory.get("x-ory-base-url-rewrite").is_none());
        assert_eq!(all(&ory, "host"), ["kratos.internal:4433"]);
    }

    #[test]
    fn x_real_ip_is_set_and_identity_headers_stripped_to_the_app_only() {
        let f = fixed(&[]);
        let sent = [
            ("x-real-ip", "6.6.6.6"),
            ("remote-user", "eve"),
            ("x_auth_request_user", "eve"),
        ];
        let app = run(&sent, Upstream::App, &f, "192.0.2.7");
        assert_eq!(all(&app, "x-real-ip"), ["192.0.2.7"]);
        assert!(app.get("remote-user").is_none() && app.get("x_auth_request_user").is_none());
        let ory = run(&sent, Upstream::Ory, &f, "192.0.2.7");
        assert_eq!(all(&ory, "x-real-ip"), ["192.0.2.7"]);
        assert_eq!(all(&ory, "remote-user"), ["eve"]);
    }

    #[test]
    fn identity_headers_are_the_proxys_in_every_spelling_even_from_trusted_proxies() {
        let text = "trusted_proxies = [\"10.0.0.0/8\"]\n";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proxy.toml");
        std::fs::write(&p, text).unwrap();
        let cli = Cli::parse_from([
            "ory-proxy",
            "-c",
            p.to_str().unwrap(),
            "--sdk-url",
            "https://k",
            "http://app",
        ]);
        let f = Loader::new(cli, Arc::new(|_| None))
            .load()
            .unwrap()
            .settings
            .fixed;
        let names = HeaderList::parse(&["X-Acme-User".into(), "X-Forwarded-Email".into()]).unwrap();
        let spoof = [
            ("x-acme-user", "eve"),
            ("X_Acme_User", "eve"),
            ("x.acme.user", "eve"),
            ("x-forwarded-email", "eve@evil.example"),
            ("x_forwarded_email", "eve@evil.example"),
            ("x-acme-other", "kept"),
        ];
        for peer in ["10.1.2.3", "192.0.2.7"] {
            let out = run_with(&spoof, Upstream::App, &f, peer, &names, &[]);
            let leaked: Vec<&str> = out
                .keys()
                .map(|n| n.as_str())
                .filter(|n| {
                    n.contains("acme-user") || n.contains("acme_user") || n.contains("email")
                })
                .collect();
            assert!(leaked.is_empty(), "{peer}: {leaked:?}");
            assert_eq!(all(&out, "x-acme-other"), ["kept"]);
            let set = [(
                HeaderName::from_static("x-acme-user"),
                HeaderValue::from_static("ada"),
            )];
            let out = run_with(&spoof, Upstream::App, &f, peer, &names, &set);
            assert_eq!(all(&out, "x-acme-user"), ["ada"], "{peer}");
            // To Ory the client's headers pass as before, and no identity is added.
            let ory = run_with(&spoof, Upstream::Ory, &f, peer, &names, &set);
            assert_eq!(all(&ory, "x-acme-user"), ["eve"]);
        }
    }

    #[test]
    fn rewrite_host_sends_app_host() {
        let f = fixed(&["--rewrite-host"]);
        let out = run(
            &[("host", "www.example.org")],
            Upstream::App,
            &f,
            "127.0.0.1",
        );
        assert_eq!(all(&out, "host"), ["app.internal:3000"]);
    }
}

//! Response header rules: what reaches the browser from an upstream answer. Hop-by-hop and
//! upstream CORS headers are dropped (the proxy's CORS layer sets its own, so they are never
//! doubled), `Set-Cookie` and `Location` are rewritten onto the publish URL.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpResponseBuilder;

use super::cookie_rewrite::{self, CookieContext};
use super::error::Upstream;
use super::hop_by_hop::{connection_listed, is_hop_by_hop};
use super::location_rewrite::{self, LocationContext};
use crate::config::{Fixed, Live};

/// Per-response facts for the header rules.
pub struct ResponseContext<'a> {
    pub upstream: Upstream,
    pub fixed: &'a Fixed,
    pub live: &'a Live,
}

/// Copies `upstream` headers into `out`, rewritten. `Content-Length` is not copied: the body
/// the proxy sends decides it.
pub fn copy_response_headers(
    upstream: &HeaderMap,
    out: &mut HttpResponseBuilder,
    ctx: &ResponseContext<'_>,
) {
    let listed = connection_listed(upstream);
    let from_ory = ctx.upstream == Upstream::Ory;
    let cookie_ctx = CookieContext {
        domain: ctx.live.cookies.domain.as_deref(),
        from_ory,
        app_host: ctx.fixed.application_url.host_str().unwrap_or_default(),
        public_https: ctx.fixed.publish_url.scheme() == "https",
    };
    let location_ctx = LocationContext {
        ory_base: &ctx.fixed.ory_base,
        app_origin: &ctx.fixed.app_origin,
        publish_origin: &ctx.fixed.publish_origin,
        from_ory,
    };
    for (name, value) in upstream.iter() {
        if is_hop_by_hop(name, &listed)
            || *name == header::CONTENT_LENGTH
            || *name == header::ACCESS_CONTROL_ALLOW_ORIGIN
            || *name == header::ACCESS_CONTROL_ALLOW_CREDENTIALS
            || *name == header::VARY
        {
            continue;
        }
        if *name == header::SET_COOKIE {
            // UTF-8 rather than `to_str`: a non-ASCII byte (an accented `return_to`, a cookie
            // comment) must not exempt the value from rewriting.
            let rewritten = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|v| cookie_rewrite::rewrite(v, &cookie_ctx))
                .and_then(|v| HeaderValue::from_str(&v).ok());
            // append, never insert: each cookie stays its own Set-Cookie line.
            out.append_header((name.clone(), rewritten.unwrap_or_else(|| value.clone())));
            continue;
        }
        if *name == header::LOCATION {
            out.append_header((
                name.clone(),
                rewrite_location(value, &location_ctx, ctx.live),
            ));
            continue;
        }
        out.append_header((name.clone(), value.clone()));
    }
    // One merged `Vary` line: the CORS layer extends only the first line and replaces the
    // others, which would lose e.g. `Vary: Cookie` (a cache would then mix users' pages).
    let vary: Vec<&[u8]> = upstream
        .get_all(header::VARY)
        .map(HeaderValue::as_bytes)
        .collect();
    if !vary.is_empty() && !is_hop_by_hop(&header::VARY, &listed) {
        if let Ok(v) = HeaderValue::from_bytes(&vary.join(&b", "[..])) {
            out.append_header((header::VARY, v));
        }
    }
}

fn rewrite_location(value: &HeaderValue, ctx: &LocationContext<'_>, live: &Live) -> HeaderValue {
    let Ok(loc) = std::str::from_utf8(value.as_bytes()) else {
        return value.clone();
    };
    let rewritten = location_rewrite::rewrite(loc, ctx);
    let effective = rewritten.as_deref().unwrap_or(loc);
    if location_rewrite::is_welcome(effective, ctx.publish_origin) {
        return HeaderValue::from_str(&live.redirects.default_redirect_url)
            .unwrap_or_else(|_| value.clone());
    }
    match rewritten {
        Some(r) => HeaderValue::from_str(&r).unwrap_or_else(|_| value.clone()),
        None => value.clone(),
    }
}

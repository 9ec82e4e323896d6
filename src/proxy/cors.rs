//! CORS (docs/behaviour.md, "CORS"), decided from the live snapshot on every request so that an
//! edit of `[cors]` in `proxy.toml` applies without a restart.
//!
//! Actual requests go through actix-cors, whose origin check is a function reading the live
//! [`CorsPolicy`](crate::config::CorsPolicy). Preflights are answered here instead: they get
//! `204`, a refusal that is an ordinary 204 without CORS headers (not actix-cors' 400), and an
//! allowed-headers list that reloads — actix-cors bakes its header list at start.

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpResponse};

use super::{AccessTag, ProxyState};
use crate::config::cors_policy::ALLOWED_METHODS;
use crate::config::LiveSettings;

/// Response headers a page may read (the Go proxy's list).
const EXPOSED: &[&str] = &[
    "set-cookie",
    "cache-control",
    "expires",
    "last-modified",
    "pragma",
    "content-length",
    "content-language",
    "content-type",
];

/// The actix-cors middleware for actual (non-preflight) requests that carry an `Origin` (the
/// route table only sends those through it). It echoes an allowed origin with credentials and
/// extends `Vary`; [`preflight_layer`] then settles the decision on the request's snapshot and
/// merges `Access-Control-Expose-Headers` (actix-cors would replace the upstream's).
pub fn actual_requests(live: LiveSettings) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin, _head| {
            let allowed = live.snapshot().cors.allows_origin(origin.as_bytes());
            if log::log_enabled!(log::Level::Debug) {
                log::debug!(
                    "cors: origin {origin:?} {}",
                    if allowed { "allowed" } else { "refused" }
                );
            }
            allowed
        })
        .allowed_methods(ALLOWED_METHODS.iter().copied())
        .supports_credentials()
        .max_age(None)
        .disable_preflight()
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a preflight: always 204; CORS headers only when origin, method and headers pass.
pub fn preflight(req: &ServiceRequest, live: &LiveSettings) -> HttpResponse {
    let snapshot = live.snapshot();
    let policy = &snapshot.cors;
    let h = req.headers();
    let mut res = HttpResponse::build(StatusCode::NO_CONTENT);
    res.insert_header((
        header::VARY,
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    ));
    let origin = h.get(header::ORIGIN);
    let method_ok = h
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            ALLOWED_METHODS
                .iter()
                .any(|a| a.eq_ignore_ascii_case(m.trim()))
        });
    let requested = h
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_ok = origin.is_some_and(|o| policy.allows_origin(o.as_bytes()));
    let headers_ok = policy.allows_headers(requested);
    log::debug!(
        "cors: preflight origin={origin:?} method_ok={method_ok} headers_ok={headers_ok} origin_ok={origin_ok}"
    );
    if let (Some(origin), true, true, true) = (origin, origin_ok, method_ok, headers_ok) {
        res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
        res.insert_header((
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
        res.insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            ALLOWED_METHODS.join(", "),
        ));
        if !requested.trim().is_empty() {
            let allowed = if policy.any_header {
                requested.to_string()
            } else {
                policy.headers.join(", ")
            };
            res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allowed));
        }
    }
    res.finish()
}

/// Middleware (for `actix_web::middleware::from_fn`): answers preflights, passes the rest on.
pub async fn preflight_layer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if is_preflight(&req) {
        if let Some(state) = req.app_data::<web::Data<ProxyState>>() {
            let res = preflight(&req, &state.live);
            AccessTag::unruled("proxy", "off").record(&req);
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        let mut res = next.call(req).await?;
        // The answer depends on Origin even when there was none: a shared cache must not hand
        // this copy (no CORS headers) to a cross-origin request.
        vary_on_origin(res.headers_mut());
        return Ok(res.map_into_left_body());
    };
    // One snapshot for the whole request (see `RequestLive`). actix-cors decides
    // Access-Control-Allow-Origin from its own read of the live settings, which a reload can
    // change before the handler reads them; its decision is brought in line below.
    let snapshot = req
        .app_data::<web::Data<ProxyState>>()
        .map(|s| s.live.snapshot());
    if let Some(s) = &snapshot {
        req.extensions_mut().insert(super::RequestLive(s.clone()));
    }
    let mut res = next.call(req).await?;
    if let Some(s) = snapshot {
        settle_actual_response(res.headers_mut(), &s.cors, origin);
    }
    Ok(res.map_into_left_body())
}

/// The final CORS headers of an actual response, decided on the request's own snapshot.
fn settle_actual_response(
    headers: &mut header::HeaderMap,
    policy: &crate::config::CorsPolicy,
    origin: HeaderValue,
) {
    if !policy.allows_origin(origin.as_bytes()) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        return;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    // Keep what the upstream exposes (browsers read one merged list) and add the proxy's.
    let mut exposed: Vec<String> = headers
        .get_all(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    for h in EXPOSED {
        if !exposed.iter().any(|e| e == h) {
            exposed.push((*h).to_string());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&exposed.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

fn vary_on_origin(headers: &mut header::HeaderMap) {
    let Some(current) = headers.get(header::VARY) else {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        return;
    };
    let Ok(v) = current.to_str() else { return };
    if v.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*")
    {
        return;
    }
    if let Ok(merged) = HeaderValue::from_str(&format!("{v}, Origin")) {
        headers.insert(header::VARY, merged);
    }
}

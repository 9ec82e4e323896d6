//! CORS (SPEC §5.6), decided from the live snapshot on every request so that an edit of
//! `[cors]` in `proxy.toml` applies without a restart.
//!
//! Actual requests go through actix-cors, whose origin check is a function reading the live
//! [`CorsPolicy`](crate::config::CorsPolicy). Preflights are answered here instead: SPEC wants
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

/// The actix-cors middleware for actual (non-preflight) requests.
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
        .expose_headers(EXPOSED.iter().copied())
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
            req.extensions_mut().insert(AccessTag {
                upstream: "proxy",
                auth: "off",
            });
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    // One snapshot for the whole request (see `RequestLive`). actix-cors decides
    // Access-Control-Allow-Origin from its own read of the live settings, which a reload can
    // change before the handler reads them; its decision is brought in line below.
    let snapshot = req
        .app_data::<web::Data<ProxyState>>()
        .map(|s| s.live.snapshot());
    if let Some(s) = &snapshot {
        req.extensions_mut().insert(super::RequestLive(s.clone()));
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = next.call(req).await?;
    if let (Some(s), Some(origin)) = (snapshot, origin) {
        let headers = res.headers_mut();
        if s.cors.allows_origin(origin.as_bytes()) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        } else {
            headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        }
    }
    Ok(res.map_into_left_body())
}

//! Routes the proxy answers itself (docs/behaviour.md, "Routing"): the JWKS and health; and the
//! metrics listener's answers.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::metrics::Metrics;
use crate::proxy::answer::ProxyError;
use crate::proxy::{AccessTag, ProxyState};

pub const JWKS: &str = "/.ory/jwks.json";
pub const JWKS_PROXY: &str = "/.ory/proxy/jwks.json";
pub const HEALTH_ALIVE: &str = "/.ory/proxy/health/alive";
pub const HEALTH_READY: &str = "/.ory/proxy/health/ready";

/// Whether the proxy answers `path` itself (whatever the method).
pub fn is_local(path: &str) -> bool {
    path.starts_with("/.ory/") && [JWKS, JWKS_PROXY, HEALTH_ALIVE, HEALTH_READY].contains(&path)
}

/// The public JWKS; 404 with `--no-jwt` (there is nothing to verify).
pub async fn jwks(
    req: HttpRequest,
    state: web::Data<ProxyState>,
) -> Result<HttpResponse, ProxyError> {
    AccessTag::unruled("proxy", "off").record(&req);
    let Some(sessions) = &state.sessions else {
        return Err(ProxyError::NotFound("JWT is off (--no-jwt): no JWKS"));
    };
    // Cached no longer than a rotation publishes a new key ahead of signing with it, so a
    // verifier's cached JWKS always holds the key of any token it sees.
    let ahead = crate::keys::signal_publish_ahead(state.live.snapshot().jwt.ttl);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", ahead.as_secs()),
        ))
        .body(sessions.keys().ring().jwks.clone()))
}

/// Liveness: the process answers.
pub async fn health(req: HttpRequest) -> HttpResponse {
    health_answer(&req, StatusCode::OK, r#"{"status":"ok"}"#)
}

/// Readiness: as liveness, but 503 from the moment a graceful shutdown began, so that a load
/// balancer stops sending new work while the proxy still serves it (`shutdown_delay`).
pub async fn ready(req: HttpRequest, state: web::Data<ProxyState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return health_answer(
            &req,
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"shutting down"}"#,
        );
    }
    health_answer(&req, StatusCode::OK, r#"{"status":"ok"}"#)
}

fn health_answer(req: &HttpRequest, status: StatusCode, body: &'static str) -> HttpResponse {
    AccessTag::unruled("proxy", "off").record(req);
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// Everything that arrives on the metrics listener: `GET /metrics` in the Prometheus text
/// format (not cached: every scrape is fresh), 404 for anything else. Nothing is proxied there.
pub fn metrics_listener(req: &HttpRequest, metrics: &Metrics) -> HttpResponse<String> {
    if !matches!(req.method(), &Method::GET | &Method::HEAD) || req.path() != "/metrics" {
        return ProxyError::NotFound("the metrics listener serves GET /metrics only").json();
    }
    let mut res = HttpResponse::with_body(StatusCode::OK, metrics.render());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

//! Routes the proxy answers itself (SPEC §4): the JWKS and health.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use crate::proxy::{AccessTag, ProxyState};

/// The public JWKS; 404 with `--no-jwt` (there is nothing to verify).
pub async fn jwks(req: HttpRequest, state: web::Data<ProxyState>) -> HttpResponse {
    AccessTag {
        upstream: "proxy",
        auth: "off",
    }
    .record(&req);
    match &state.sessions {
        Some(s) => {
            // Cached no longer than a rotation publishes a new key ahead of signing with it,
            // so a verifier's cached JWKS always holds the key of any token it sees.
            let ahead = crate::keys::signal_publish_ahead(state.live.snapshot().jwt.ttl);
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((header::CACHE_CONTROL, format!("public, max-age={}", ahead.as_secs())))
                .body(s.keys().ring().jwks.clone())
        }
        None => HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(r#"{"error":{"code":404,"status":"Not Found","message":"JWT is off (--no-jwt): no JWKS"}}"#),
    }
}

pub async fn health(req: HttpRequest) -> HttpResponse {
    AccessTag {
        upstream: "proxy",
        auth: "off",
    }
    .record(&req);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(r#"{"status":"ok"}"#)
}

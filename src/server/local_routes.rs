//! Routes the proxy answers itself: health (SPEC §4).

use actix_web::{http::header, HttpMessage as _, HttpRequest, HttpResponse};

use crate::proxy::AccessTag;

pub async fn health(req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(AccessTag {
        upstream: "proxy",
        auth: "off",
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(r#"{"status":"ok"}"#)
}

//! Small request readers and response builders shared by the handlers.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

/// First value of query parameter `name`, percent-decoded. Parsed by hand so that a malformed
/// query never turns into actix-web's own (non-Kratos) error body.
pub(crate) fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the client asked for JSON rather than a browser redirect, the way Kratos decides it:
/// an `Accept` that names `application/json`, or a JSON request body.
pub(crate) fn wants_json(req: &HttpRequest) -> bool {
    let accepts = header_str(req, header::ACCEPT).contains("application/json");
    let sends = header_str(req, header::CONTENT_TYPE).starts_with("application/json");
    accepts || sends
}

pub(crate) fn header_str(req: &HttpRequest, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub(crate) fn json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .insert_header(no_store())
        .body(body.to_string())
}

pub(crate) fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header(no_store())
        .body(body)
}

/// `303 See Other` to an absolute URL, as Kratos' browser flows answer.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header(no_store())
        .finish()
}

/// Session-dependent answers must never be cached by a browser or a shared cache.
fn no_store() -> (header::HeaderName, HeaderValue) {
    (
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate"),
    )
}

/// Address of the client, for the session's `devices` entry.
pub(crate) fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

pub(crate) fn user_agent(req: &HttpRequest) -> String {
    header_str(req, header::USER_AGENT).to_owned()
}

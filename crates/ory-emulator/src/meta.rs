//! Endpoints outside the self-service flows: `/health/*` and the identity schema.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use super::model;
use super::respond;

/// `GET /health/alive` and `GET /health/ready`.
pub(crate) async fn health() -> HttpResponse {
    respond::json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /schemas/ZGVmYXVsdA`, the target of every identity's `schema_url`.
pub(crate) async fn identity_schema() -> HttpResponse {
    respond::json(StatusCode::OK, &model::identity_schema())
}

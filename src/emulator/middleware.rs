//! The two cross-cutting layers: recording every request for
//! [`Emulator::requests`](super::Emulator::requests), and gzip for HTML/JSON answers.

use std::io::Write;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::context::Ctx;
use super::RecordedRequest;

/// Records method, raw path+query and headers, before anything else can answer.
pub(crate) async fn record(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Some(ctx) = req.app_data::<web::Data<Ctx>>() {
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| req.path().to_owned());
        ctx.store.record(RecordedRequest {
            method: req.method().as_str().to_owned(),
            path_and_query,
            headers,
        });
    }
    next.call(req).await
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, with a non-zero q-value).
fn accepts_gzip(req: &ServiceRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero_q = crate::proxy::weight::is_zero(parts);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero_q
        })
}

fn is_compressible(headers: &header::HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (content_type.starts_with("text/html") || content_type.starts_with("application/json"))
        && !headers.contains_key(header::CONTENT_ENCODING)
}

fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

/// Compresses in-memory HTML/JSON bodies when the client allows gzip and the config wants it.
/// Self-hosted Kratos compresses too, which makes the proxy's body rewriting decode and encode.
pub(crate) async fn gzip(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let enabled = req
        .app_data::<web::Data<Ctx>>()
        .is_some_and(|ctx| ctx.settings.gzip);
    let wanted = enabled && accepts_gzip(&req);
    let res = next.call(req).await?;
    if !enabled {
        return Ok(res);
    }
    Ok(res.map_body(|head, body| {
        if !is_compressible(&head.headers) {
            return body;
        }
        head.headers
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        if !wanted {
            return body;
        }
        let bytes = match body.try_into_bytes() {
            Ok(bytes) if !bytes.is_empty() => bytes,
            Ok(bytes) => return BoxBody::new(bytes),
            // A streaming body (none of ours) is passed on as it is.
            Err(body) => return body,
        };
        match gzip_bytes(&bytes) {
            Ok(compressed) => {
                head.headers
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                BoxBody::new(compressed)
            }
            Err(_) => BoxBody::new(bytes),
        }
    }))
}

//! One access line per request (SPEC §7): method, path, status, duration, upstream, auth.
//! The query is left out: it can carry flow ids and tokens.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;

use crate::proxy::AccessTag;

use crate::proxy::ACCESS_LOG_TARGET as TARGET;

pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !log::log_enabled!(target: TARGET, log::Level::Info) {
        return next.call(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let res = next.call(req).await;
    let (status, tag) = match &res {
        Ok(r) => (
            r.status().as_u16(),
            r.request().extensions().get::<AccessTag>().copied(),
        ),
        Err(e) => (e.as_response_error().status_code().as_u16(), None),
    };
    let tag = tag.unwrap_or(AccessTag {
        upstream: "proxy",
        auth: "off",
    });
    log::info!(
        target: TARGET,
        "{method} {path} {status} {:.3}ms upstream={} auth={}",
        start.elapsed().as_secs_f64() * 1000.0,
        tag.upstream,
        tag.auth
    );
    res
}

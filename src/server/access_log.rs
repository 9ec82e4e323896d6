//! One access line per request: method, path, status, duration, upstream, auth, and the access
//! rule the request met with what it decided. The query is left out: it can carry flow ids and
//! tokens. The line is formatted on the worker and written off the request path (see
//! [`super::logging`]).

use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::HttpMessage as _;

use crate::proxy::AccessTag;

use crate::proxy::ACCESS_LOG_TARGET as TARGET;

/// What the line needs from the request, taken before the request is handed on.
pub struct Line {
    start: Instant,
    method: Method,
    path: String,
}

impl Line {
    /// `None` (nothing taken, nothing allocated) when the access log is off. `start`: when the
    /// request arrived.
    pub fn start(req: &ServiceRequest, start: Instant) -> Option<Line> {
        crate::config::access_log_enabled().then(|| Line {
            start,
            method: req.method().clone(),
            path: req.path().to_string(),
        })
    }

    /// Writes the line for the answer the request got.
    pub fn finish<B>(self, res: &Result<ServiceResponse<B>, actix_web::Error>) {
        let (status, tag) = match res {
            Ok(r) => (
                r.status().as_u16(),
                r.request().extensions().get::<AccessTag>().cloned(),
            ),
            Err(e) => (e.as_response_error().status_code().as_u16(), None),
        };
        let tag = tag.unwrap_or(AccessTag::unruled("proxy", "off"));
        super::logging::access(
            TARGET,
            &super::logging::Access {
                method: self.method.as_str(),
                path: &self.path,
                status,
                duration: self.start.elapsed(),
                upstream: tag.upstream,
                auth: tag.auth,
                rule: tag.rule.as_deref().unwrap_or("-"),
                decision: tag.decision,
            },
        );
    }
}

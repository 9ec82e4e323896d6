//! Errors on the request path, each tagged with the upstream it came from, and the single
//! place where they become HTTP answers (SPEC §5.1: 502/504 with a short JSON body).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

/// Which upstream a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    App,
    Ory,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::App => "app",
            Upstream::Ory => "ory",
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Upstream::App => "the application",
            Upstream::Ory => "Ory",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{upstream} is unreachable: {detail}")]
    Unreachable { upstream: Upstream, detail: String },
    #[error("{upstream} did not answer in time")]
    Timeout { upstream: Upstream },
    #[error("{upstream} sent an invalid answer: {detail}")]
    BadAnswer { upstream: Upstream, detail: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request headers too large: {0} bytes, at most {max} allowed", max = super::request_headers::MAX_REQUEST_HEADER_BYTES)]
    HeadersTooLarge(usize),
    /// The client stopped sending its body (`[limits].body_idle_timeout`).
    #[error("no byte of the request body for {}", humantime::format_duration(*.0))]
    BodyIdle(std::time::Duration),
}

impl ProxyError {
    /// The proxy refused the request itself; no upstream answered.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_) | ProxyError::HeadersTooLarge(_) | ProxyError::BodyIdle(_)
        )
    }

    /// Maps an awc send error to what the client should see.
    pub fn from_send(upstream: Upstream, e: awc::error::SendRequestError) -> ProxyError {
        use awc::error::{ConnectError, SendRequestError as E};
        match e {
            E::Timeout | E::Connect(ConnectError::Timeout) => ProxyError::Timeout { upstream },
            E::Connect(c) => ProxyError::Unreachable {
                upstream,
                detail: c.to_string(),
            },
            E::Url(u) => ProxyError::BadRequest(u.to_string()),
            other => ProxyError::BadAnswer {
                upstream,
                detail: other.to_string(),
            },
        }
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        match self {
            ProxyError::Unreachable { .. } | ProxyError::BadAnswer { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BodyIdle(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = serde_json::json!({
            "error": {
                "code": status.as_u16(),
                "status": status.canonical_reason().unwrap_or(""),
                "message": self.to_string(),
            }
        });
        let mut res = HttpResponse::build(status);
        if let ProxyError::BodyIdle(_) = self {
            // The rest of the body may still come: the connection cannot carry another request.
            res.force_close();
        }
        res.insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn json_shape() {
        let e = ProxyError::Timeout {
            upstream: Upstream::Ory,
        };
        let res = e.error_response();
        assert_eq!(res.status(), 504);
        let body = res.into_body().try_into_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], 504);
        assert_eq!(v["error"]["status"], "Gateway Timeout");
        assert_eq!(v["error"]["message"], "Ory did not answer in time");
    }
}

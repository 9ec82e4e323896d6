//! Errors on the request path, each tagged with the upstream it came from, and the single
//! place where they become HTTP answers (docs/behaviour.md, "The proxy's own answers").

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
}

impl ProxyError {
    /// The proxy refused the request itself; no upstream was asked.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_) | ProxyError::HeadersTooLarge(_)
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
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
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

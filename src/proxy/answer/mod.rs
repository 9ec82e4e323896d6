//! Every answer the proxy makes up itself instead of passing one on from an upstream — an
//! upstream that failed or answered nonsense, a request the proxy refuses, its own 404s — as one
//! type, [`ProxyError`], and the one place where it becomes HTTP (docs/behaviour.md, "The
//! proxy's own answers"): its status, the JSON body, and with `--dev` the page a browser gets
//! instead (`dev_page`). The access rules' refusals (sign-in redirects, 401, 403, 503) are one
//! kind of it, written by [`access`].
//!
//! Handlers return `Err(ProxyError)`; actix turns it into the JSON answer through
//! [`ResponseError`], and the edge layer passes every answer through [`with_dev_page`]. The
//! metrics listener, which answers outside actix' error path, takes [`ProxyError::json`].

pub mod access;
mod dev_page;

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};

use super::route::Upstream;
use super::ProxyState;
use crate::config::Fixed;

/// An answer of the proxy's own. The message is what the client reads: it names the upstream
/// and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream could not be reached (connection refused, DNS, TLS): 502.
    #[error("{upstream} is unreachable: {detail}")]
    Unreachable { upstream: Upstream, detail: String },
    /// No answer's head (or no connection) in time: 504.
    #[error("{upstream} did not answer in time")]
    Timeout { upstream: Upstream },
    /// An answer the proxy cannot pass on: 502.
    #[error("{upstream} sent an invalid answer: {detail}")]
    BadAnswer { upstream: Upstream, detail: String },
    /// A request the proxy will not forward: 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Request headers over the proxy's limit: 431.
    #[error("request headers too large: {size} bytes, at most {limit} allowed")]
    HeadersTooLarge { size: usize, limit: usize },
    /// The client stopped sending its body (`[limits].body_idle_timeout`): 408, and the
    /// connection closes.
    #[error("no byte of the request body for {}", humantime::format_duration(*.0))]
    BodyIdle(std::time::Duration),
    /// Nothing at a path the proxy answers itself (the JWKS with `--no-jwt`, the metrics
    /// listener's other paths): 404.
    #[error("{0}")]
    NotFound(&'static str),
    /// The access rules did not let the request through: a redirect to sign in, 401, 403, 503.
    #[error("{}", .0.reason())]
    Denied(Box<access::Denial>),
    /// More requests in flight than the connection or the worker may carry (HTTP/2 streams):
    /// 503 with `Retry-After`, before anything is looked up or sent upstream.
    #[error("too many requests in flight {0}; retry in a moment")]
    Overloaded(String),
}

impl ProxyError {
    /// The proxy answered the request itself; no upstream answered.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::HeadersTooLarge { .. }
                | ProxyError::BodyIdle(_)
                | ProxyError::NotFound(_)
                | ProxyError::Denied(_)
                | ProxyError::Overloaded(_)
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

    /// The error a finished answer carries, if the proxy made it up.
    pub fn of<B>(res: &ServiceResponse<B>) -> Option<&ProxyError> {
        res.response().error()?.as_error::<ProxyError>()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unreachable { .. } | ProxyError::BadAnswer { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BodyIdle(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::Denied(d) => d.status(),
            ProxyError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer every client gets: `{"error":{"code","status","message"}}`, never cached (the
    /// cause is usually gone a moment later).
    pub fn json(&self) -> HttpResponse<String> {
        if let ProxyError::Denied(d) = self {
            return d.json();
        }
        let status = self.status();
        let body = serde_json::json!({
            "error": {
                "code": status.as_u16(),
                "status": status.canonical_reason().unwrap_or(""),
                "message": self.to_string(),
            }
        });
        let mut res = HttpResponse::with_body(status, body.to_string());
        if let ProxyError::BodyIdle(_) = self {
            // The rest of the body may still come: the connection cannot carry another request.
            res.head_mut().set_connection_type(ConnectionType::Close);
        }
        let headers = res.headers_mut();
        if let ProxyError::Overloaded(_) = self {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        res
    }

    /// What usually fixes it, for the `--dev` page.
    fn dev_hint(&self, fixed: &Fixed) -> String {
        let app = fixed.application_url.as_str().trim_end_matches('/');
        let ory = fixed.ory_url.as_str().trim_end_matches('/');
        match self {
            ProxyError::Unreachable {
                upstream: Upstream::App,
                ..
            } => format!(
                "Is your application running at {app}? The proxy sends it every request outside \
                 /.ory; start it, or give the proxy its right URL."
            ),
            ProxyError::Unreachable {
                upstream: Upstream::Ory,
                ..
            } => format!(
                "The proxy sends /.ory requests to {ory}. Check --project or --sdk-url, and that \
                 this machine can reach it."
            ),
            ProxyError::Timeout { upstream } => format!(
                "{} took the request but sent no answer within {} s ([upstream] response_timeout \
                 in proxy.toml).",
                match upstream {
                    Upstream::App => app,
                    Upstream::Ory => ory,
                },
                fixed.response_timeout.as_secs()
            ),
            ProxyError::BadAnswer { upstream, .. } => format!(
                "{upstream} answered, but not with HTTP the proxy could pass on. Is the URL the \
                 right port and scheme (http or https)?"
            ),
            ProxyError::BodyIdle(_) => "The client announced a request body and stopped sending \
                                        it ([limits] body_idle_timeout in proxy.toml)."
                .into(),
            ProxyError::BadRequest(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::NotFound(_)
            | ProxyError::Denied(_)
            | ProxyError::Overloaded(_) => {
                "The request itself was refused; it did not reach an upstream.".into()
            }
        }
    }

    /// Whether a browser gets a page instead under `--dev`: for the failures a developer can
    /// fix (app down, wrong Ory URL, …), not for the 404s of machine endpoints nor the access
    /// rules' refusals, which are answers of their own.
    fn has_dev_page(&self) -> bool {
        !matches!(self, ProxyError::NotFound(_) | ProxyError::Denied(_))
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ProxyError::Denied(d) => d.response().map_into_boxed_body(),
            other => other.json().map_into_boxed_body(),
        }
    }
}

/// With `--dev`, a proxy error answered to a browser becomes a page naming the cause and the
/// usual fix; the status and the other headers (CORS among them) stay. Answers without an
/// error pass as they are, without a look at the settings.
pub fn with_dev_page<B>(res: ServiceResponse<B>) -> ServiceResponse<EitherBody<B, String>> {
    let page = ProxyError::of(&res)
        .filter(|e| e.has_dev_page())
        .and_then(|e| {
            let state = res.request().app_data::<web::Data<ProxyState>>()?;
            (state.fixed.dev && dev_page::wants_html(res.request().headers()))
                .then(|| dev_page::render(e.status(), &e.to_string(), &e.dev_hint(&state.fixed)))
        });
    match page {
        None => res.map_into_left_body(),
        Some(page) => res.map_body(|head, _| {
            head.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            EitherBody::right(page)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(e: &ProxyError) -> (StatusCode, serde_json::Value, Option<String>) {
        let res = e.json();
        let no_store = res
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status();
        let v = serde_json::from_str(res.body()).unwrap();
        (status, v, no_store)
    }

    #[test]
    fn json_shape() {
        let (status, v, cache) = json_of(&ProxyError::Timeout {
            upstream: Upstream::Ory,
        });
        assert_eq!(status, 504);
        assert_eq!(v["error"]["code"], 504);
        assert_eq!(v["error"]["status"], "Gateway Timeout");
        assert_eq!(v["error"]["message"], "Ory did not answer in time");
        assert_eq!(cache.as_deref(), Some("no-store"));
    }

    #[test]
    fn every_answer_maps_to_its_status_in_json() {
        let app = Upstream::App;
        for (e, code) in [
            (
                ProxyError::Unreachable {
                    upstream: app,
                    detail: "refused".into(),
                },
                502,
            ),
            (
                ProxyError::BadAnswer {
                    upstream: app,
                    detail: "1xx".into(),
                },
                502,
            ),
            (ProxyError::Timeout { upstream: app }, 504),
            (ProxyError::BadRequest("..".into()), 400),
            (
                ProxyError::HeadersTooLarge {
                    size: 70_000,
                    limit: 65_536,
                },
                431,
            ),
            (
                ProxyError::BodyIdle(std::time::Duration::from_secs(10)),
                408,
            ),
            (ProxyError::NotFound("nothing here"), 404),
            (ProxyError::Overloaded("on this connection".into()), 503),
        ] {
            let (status, v, _) = json_of(&e);
            assert_eq!(status.as_u16(), code, "{e}");
            assert_eq!(v["error"]["code"], code, "{e}");
            assert_eq!(v["error"]["message"], e.to_string());
            // The same mapping through actix' error path.
            assert_eq!(e.error_response().status().as_u16(), code);
        }
    }
}

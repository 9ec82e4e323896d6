//! `--dev`'s friendlier errors (SPEC §2): a browser that meets a proxy error gets a page saying
//! what failed and what usually fixes it, instead of the JSON body. The status stays the same,
//! and clients that do not ask for HTML keep the JSON of [`super::error`].

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;

use super::error::{ProxyError, Upstream};
use crate::config::Fixed;

/// Whether the client asked for HTML (a browser navigating), not JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// The page for `err`, which was answered with `status`.
pub fn render(err: &ProxyError, status: StatusCode, fixed: &Fixed) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:44em;margin:3em auto\">\
         <h1>{title}</h1><p><strong>{message}</strong></p><p>{hint}</p>\
         <p style=\"color:#666\">ory-proxy shows this page because of <code>--dev</code>; \
         without it, and to clients that do not ask for HTML, the error is JSON.</p>\
         </body></html>",
        title = escape(&title),
        message = escape(&err.to_string()),
        hint = escape(&hint(err, fixed)),
    )
}

fn hint(err: &ProxyError, fixed: &Fixed) -> String {
    let app = fixed.application_url.as_str().trim_end_matches('/');
    let ory = fixed.ory_url.as_str().trim_end_matches('/');
    match err {
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
        ProxyError::BadRequest(_) | ProxyError::HeadersTooLarge(_) => {
            "The request itself was refused; it did not reach an upstream.".into()
        }
        ProxyError::BodyIdle(_) => "The client announced a request body and stopped sending              it ([limits] body_idle_timeout in proxy.toml)."
            .into(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn html_is_for_clients_that_ask_for_it() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&h));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

//! `--dev`'s friendlier errors (README, "Flags"): a browser that meets a proxy error gets a page
//! saying what failed and what usually fixes it, instead of the JSON body. The status stays the
//! same, and clients that do not ask for HTML keep the JSON. What the page says is
//! [`super::ProxyError`]'s to decide; this module only writes it as HTML.

use actix_web::http::StatusCode;

use crate::html::escape;

pub(super) use super::access::wants_html;

/// The page for an answer with `status`: what failed, and what usually fixes it.
pub(super) fn render(status: StatusCode, message: &str, hint: &str) -> String {
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
        message = escape(message),
        hint = escape(hint),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{self, HeaderMap, HeaderValue};

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
}

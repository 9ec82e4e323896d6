//! The methods a request may stand for. Many frameworks let a `POST` act as another method
//! (Rails, Laravel, Express' `method-override`, Symfony): a header such as
//! `X-HTTP-Method-Override: DELETE` or a `_method=DELETE` query parameter. A rule limited to
//! some methods must meet those requests too, or `methods = ["DELETE"]` is bypassed by a `POST`
//! naming `DELETE`. The rules are matched for each method named, and the strictest rule wins.
//! A `_method` inside a form body is not read (the proxy streams bodies): rules that must hold
//! against it are written by path, not by method (README, "Protecting routes").

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;

use crate::header_names::folded;

/// The override header names, folded as CGI servers read them (`_` and `.` for `-`).
const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// At most this many methods named by one request are looked at: each costs one rule match.
const MAX_NAMED: usize = 4;

/// The methods other than its own that a request's override headers and `_method` query
/// parameters name (uppercased, as the frameworks read them), at most [`MAX_NAMED`].
pub fn named_methods(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Vec<Method> {
    let mut out: Vec<Method> = Vec::new();
    let mut add = |raw: &[u8]| {
        let upper = raw.trim_ascii().to_ascii_uppercase();
        if let Ok(m) = Method::from_bytes(&upper) {
            if m != *method && !out.contains(&m) && out.len() < MAX_NAMED {
                out.push(m);
            }
        }
    };
    for (name, value) in headers {
        if OVERRIDE_HEADERS.contains(&folded(name.as_str()).as_ref()) {
            value.as_bytes().split(|&b| b == b',').for_each(&mut add);
        }
    }
    // Decoded as the frameworks decode a query (`%5Fmethod=DEL%45TE` is `_method=DELETE`).
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "_method" {
            add(value.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn headers_in_any_spelling_and_the_query_name_methods() {
        let post = Method::POST;
        assert!(named_methods(&post, &headers(&[]), None).is_empty());
        let named = |h: &[(&str, &str)], q: Option<&str>| named_methods(&post, &headers(h), q);
        assert_eq!(
            named(&[("X-HTTP-Method-Override", "delete")], None),
            [Method::DELETE]
        );
        assert_eq!(named(&[("x_http_method", " PUT ")], None), [Method::PUT]);
        assert_eq!(
            named(&[("x.method.override", "PATCH")], None),
            [Method::PATCH]
        );
        assert_eq!(named(&[], Some("a=1&_method=delete")), [Method::DELETE]);
        assert_eq!(named(&[], Some("%5Fmethod=DEL%45TE")), [Method::DELETE]);
        assert_eq!(named(&[], Some("_method=+put+")), [Method::PUT]);
        // Its own method, repeats and non-methods add nothing.
        assert!(named(
            &[("x-http-method-override", "POST, post")],
            Some("_method=a b")
        )
        .is_empty());
        // Bounded.
        let many = "A1,A2,A3,A4,A5,A6";
        assert_eq!(
            named(&[("x-http-method-override", many)], None).len(),
            MAX_NAMED
        );
    }
}

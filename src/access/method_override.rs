//! The methods a request may stand for. Many frameworks let a `POST` act as another method
//! (Rails, Laravel, Express' `method-override`, Symfony): a header such as
//! `X-HTTP-Method-Override: DELETE` or a `_method=DELETE` query parameter. A rule limited to
//! some methods must meet those requests too, or `methods = ["DELETE"]` is bypassed by a `POST`
//! naming `DELETE`. The rules are matched for each method named, and the strictest rule wins.
//! A `_method` field inside a body (an HTML form's hidden field; Laravel reads JSON too) cannot
//! be read (the proxy streams bodies): a `POST` with a form or JSON body is taken to stand for
//! `PUT`, `PATCH` and `DELETE` as well (README, "Protecting routes").

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
const MAX_NAMED: usize = 6;

/// What a `POST` with a body a framework reads `_method` from may stand for.
const BODY_OVERRIDABLE: [Method; 3] = [Method::PUT, Method::PATCH, Method::DELETE];

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
    if *method == Method::POST && body_may_override(headers) {
        for m in BODY_OVERRIDABLE {
            add(m.as_str().as_bytes());
        }
    }
    for (name, value) in headers {
        if OVERRIDE_HEADERS.contains(&folded(name.as_str()).as_ref()) {
            value.as_bytes().split(|&b| b == b',').for_each(&mut add);
        }
    }
    // Decoded as the frameworks decode a query (`%5Fmethod=DEL%45TE` is `_method=DELETE`).
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key.eq_ignore_ascii_case("_method") {
            add(value.as_bytes());
        }
    }
    out
}

/// Whether the body is one frameworks read `_method` from: a form (URL-encoded or multipart)
/// or JSON.
fn body_may_override(headers: &HeaderMap) -> bool {
    const TYPES: [&str; 3] = [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json",
    ];
    let Some(value) = headers
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let t = value.split(';').next().unwrap_or("").trim().as_bytes();
    TYPES.iter().any(|x| t.eq_ignore_ascii_case(x.as_bytes()))
        || t.len() >= 5 && t[t.len() - 5..].eq_ignore_ascii_case(b"+json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

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
        assert_eq!(named(&[], Some("_METHOD=delete")), [Method::DELETE]);
        // A form or JSON body may carry `_method`: it stands for the methods forms override to.
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json",
        ] {
            assert_eq!(
                named(&[("content-type", ct)], None),
                BODY_OVERRIDABLE,
                "{ct}"
            );
            assert!(
                named_methods(&Method::PUT, &headers(&[("content-type", ct)]), None).is_empty()
            );
        }
        assert!(named(&[("content-type", "text/plain")], None).is_empty());
        // Its own method, repeats and non-methods add nothing.
        assert!(named(
            &[("x-http-method-override", "POST, post")],
            Some("_method=a b")
        )
        .is_empty());
        // Bounded.
        let many = "A1,A2,A3,A4,A5,A6,A7,A8";
        assert_eq!(
            named(&[("x-http-method-override", many)], None).len(),
            MAX_NAMED
        );
    }
}

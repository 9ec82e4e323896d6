//! Helpers shared by the unit tests.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header map of `pairs` in order, a repeated name appended.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

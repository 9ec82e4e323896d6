//! Which of a client's request headers never reach an upstream as sent, whatever their
//! spelling: the headers the proxy sets or strips itself.
//!
//! HTTP tells `X_Forwarded_For` from `X-Forwarded-For`, but CGI and WSGI servers do not: both
//! become `HTTP_X_FORWARDED_FOR`, and which one an app then sees depends on header order. So a
//! name is compared *folded*: lowercase (as every parsed name is), `_` and `.` read as `-`. A
//! client header whose folded name is one the proxy owns is dropped, as nginx does by default
//! (`underscores_in_headers off`); only the canonical spelling is ever believed (from a trusted
//! proxy) or set (by the proxy).

use std::borrow::Cow;

use actix_web::http::header::HeaderName;

/// `name` as CGI/WSGI servers read it: `_` and `.` as `-`. Borrowed when there is nothing to
/// fold, which is almost always.
pub fn folded(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b == b'.') {
        Cow::Owned(name.replace(['_', '.'], "-"))
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether a folded, lowercase name is one the proxy sets or strips on every request: the
/// forwarding and client-address headers, `Host`, `Authorization`, `Content-Length`, the
/// hop-by-hop headers, and Ory's control headers.
pub fn owned_by_proxy(folded: &str) -> bool {
    matches!(
        folded,
        "host"
            | "authorization"
            | "content-length"
            | "forwarded"
            | "x-real-ip"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    ) || folded.starts_with("x-forwarded-")
        || folded.starts_with("ory-")
        || folded.starts_with("x-ory-")
}

/// Whether `name` is another spelling (with `_` or `.`) of a header the proxy owns. Such a
/// header is dropped whoever sent it.
pub fn is_respelling_of_owned(name: &HeaderName) -> bool {
    match folded(name.as_str()) {
        Cow::Borrowed(_) => false,
        Cow::Owned(f) => owned_by_proxy(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn respellings_of_owned_names_are_caught() {
        for n in [
            "X_Forwarded_For",
            "x-forwarded_host",
            "X.Forwarded.Proto",
            "X_Real_IP",
            "Ory_Base_Url_Rewrite",
            "x_ory_anything",
            "Content_Length",
            "Transfer_Encoding",
            "Keep_Alive",
            "Proxy_Connection",
            "Proxy_Authorization",
        ] {
            assert!(is_respelling_of_owned(&name(n)), "{n}");
        }
    }

    #[test]
    fn canonical_and_unrelated_names_are_not_respellings() {
        for n in [
            "X-Forwarded-For",
            "x-real-ip",
            "authorization",
            "x_custom_header",
            "accept",
            "x-requested-with",
            "sec_fetch_mode",
        ] {
            assert!(!is_respelling_of_owned(&name(n)), "{n}");
        }
    }

    #[test]
    fn folding_borrows_when_there_is_nothing_to_fold() {
        assert!(matches!(folded("x-forwarded-for"), Cow::Borrowed(_)));
        assert_eq!(folded("x_forwarded.for"), "x-forwarded-for");
    }
}

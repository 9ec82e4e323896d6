//! Which of a client's request headers never reach an upstream as sent, whatever their
//! spelling: the headers the proxy sets or strips itself, and, on the way to the app, the
//! identity-style headers of `strip_request_headers` ([`HeaderList`], which the configuration
//! parses, in the leaf [`crate::header_names`]).
//!
//! One rule for all of them: a header the app could take for something the proxy vouches for
//! is the proxy's to set, never the client's. Headers the proxy sets from the session (the JWT's
//! `Authorization`, the identity headers of `[access].identity_headers`) belong to the same
//! list: what the proxy sets, it first strips in every spelling, from trusted proxies too.
//!
//! HTTP tells `X_Forwarded_For` from `X-Forwarded-For`, but CGI and WSGI servers do not: both
//! become `HTTP_X_FORWARDED_FOR`, and which one an app then sees depends on header order. So a
//! name is compared *folded*: lowercase (as every parsed name is), `_` and `.` read as `-`. A
//! client header whose folded name is one the proxy owns is dropped, as nginx does by default
//! (`underscores_in_headers off`); only the canonical spelling is ever believed (from a trusted
//! proxy) or set (by the proxy).

use std::borrow::Cow;

use actix_web::http::header::HeaderName;

use crate::header_names::{folded, HeaderList};

pub use crate::header_names::{is_client_address, is_ory_control, owned_by_proxy};

/// What happens to one client header on its way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not the client's to send: dropped.
    Drop,
    /// Passed on under the usual rules.
    Pass,
}

/// The one decision for a client header by name: dropped when it is another spelling of a
/// header the proxy owns, or, on the way to the app, on `strip` or one of the access rules'
/// `identity` headers, in any spelling.
pub fn verdict(
    name: &HeaderName,
    to_app: bool,
    strip: &HeaderList,
    identity: &HeaderList,
) -> Verdict {
    let f = folded(name.as_str());
    let respelled = matches!(f, Cow::Owned(_));
    if (respelled && owned_by_proxy(&f))
        || (to_app && (strip.contains(&f) || identity.contains(&f)))
    {
        Verdict::Drop
    } else {
        Verdict::Pass
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
            let none = HeaderList::default();
            assert_eq!(verdict(&name(n), false, &none, &none), Verdict::Drop, "{n}");
            assert_eq!(verdict(&name(n), true, &none, &none), Verdict::Drop, "{n}");
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
            let none = HeaderList::default();
            assert_eq!(verdict(&name(n), true, &none, &none), Verdict::Pass, "{n}");
        }
    }

    #[test]
    fn the_default_list_parses_and_matches_in_any_spelling() {
        let list = HeaderList::parse(&HeaderList::default_list()).unwrap();
        let none = HeaderList::default();
        assert_eq!(
            list.entries().len(),
            crate::header_names::DEFAULT_STRIP_REQUEST_HEADERS.len()
        );
        for n in [
            "Remote-User",
            "remote_user",
            "X-Auth-Request-Email",
            "X_Auth_Request_Anything",
            "x-pomerium-claim-email",
            "X-MS-Client-Principal",
            "X-MS-Client-Principal-Name",
            "x.forwarded.user",
        ] {
            assert_eq!(verdict(&name(n), true, &list, &none), Verdict::Drop, "{n}");
        }
        // To Ory the list does not apply; respellings of the proxy's own headers still go.
        for n in ["Remote-User", "remote_user", "X-Auth-Request-Email"] {
            assert_eq!(verdict(&name(n), false, &list, &none), Verdict::Pass, "{n}");
        }
        assert_eq!(
            verdict(&name("x.forwarded.user"), false, &list, &none),
            Verdict::Drop
        );
        for n in [
            "accept",
            "x-requested-with",
            "x-csrf-token",
            "x-userland",
            "cookie",
        ] {
            assert_eq!(verdict(&name(n), true, &list, &none), Verdict::Pass, "{n}");
        }
    }
}

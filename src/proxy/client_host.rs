//! Which host a request asked for, the one fact HTTP/1.1 and HTTP/2 carry differently (`Host`
//! against the `:authority` pseudo-header); the app gets it as `Host` unless `--rewrite-host`.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Uri, Version};

/// The host the client asked for: its `Host`, or over HTTP/2, where clients send the
/// `:authority` pseudo-header instead of `Host`, the request's authority. Two `Host`s, a `Host`
/// naming another host than `:authority`, or user info in `:authority` make an HTTP/2 request
/// malformed (RFC 9113, 8.3.1): refused, so the app and a host check never see two answers to
/// "which host?". (HTTP/1.1 requests with two `Host`s never get here: actix-http refuses them.)
pub fn client_host(
    headers: &HeaderMap,
    version: Version,
    uri: &Uri,
) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = headers.get_all(header::HOST);
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if version != Version::HTTP_2 {
        return Ok(host.cloned());
    }
    let authority = uri.authority().map(|a| a.as_str());
    if authority.is_some_and(|a| a.contains('@')) {
        return Err("user info in :authority");
    }
    match (host, authority) {
        (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) => {
            Err("the Host header names another host than :authority")
        }
        (Some(h), _) => Ok(Some(h.clone())),
        (None, Some(a)) => HeaderValue::from_str(a)
            .map(Some)
            .map_err(|_| "an :authority that is no header value"),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_http2_the_authority_is_the_host_and_a_second_host_is_refused() {
        let uri: Uri = "https://www.example.org:8443/x?y".parse().unwrap();
        let headers = |hosts: &[&str]| {
            let mut h = HeaderMap::new();
            for v in hosts {
                h.append(header::HOST, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let h2 = |hosts: &[&str]| client_host(&headers(hosts), Version::HTTP_2, &uri);
        assert_eq!(h2(&[]).unwrap().unwrap(), "www.example.org:8443");
        assert_eq!(
            h2(&["WWW.example.org:8443"]).unwrap().unwrap(),
            "WWW.example.org:8443"
        );
        assert!(h2(&["evil.example"]).is_err());
        assert!(h2(&["www.example.org:8443", "www.example.org:8443"]).is_err());
        let user: Uri = "https://u@www.example.org/".parse().unwrap();
        assert!(client_host(&headers(&[]), Version::HTTP_2, &user).is_err());
        // HTTP/1.1: the Host header, whatever an absolute request target says.
        let h1 = client_host(&headers(&["a.example"]), Version::HTTP_11, &uri);
        assert_eq!(h1.unwrap().unwrap(), "a.example");
        let path_only: Uri = "/x".parse().unwrap();
        assert_eq!(
            client_host(&headers(&[]), Version::HTTP_2, &path_only).unwrap(),
            None
        );
    }
}

//! Who the client is, as the proxy tells the upstream: `X-Real-IP`, the address it vouches for,
//! and `X-Forwarded-For`, the chain a trusted proxy sent extended with the peer
//! (docs/behaviour.md, "Request headers").

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Fixed;

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `X-Real-IP` (the client the proxy vouches for) and `X-Forwarded-For` (a trusted chain, or
/// none, extended with the peer).
pub(super) fn set_client_address(
    out: &mut HeaderMap,
    peer: IpAddr,
    prior_xff: &[&str],
    fixed: &Fixed,
) {
    let client = client_address(peer, prior_xff, &fixed.trusted_proxies);
    out.insert(X_REAL_IP, peer_value(client));
    let value = if prior_xff.is_empty() {
        Some(peer_value(peer))
    } else {
        let mut xff = prior_xff.join(", ");
        xff.push_str(", ");
        xff.push_str(&peer.to_string());
        HeaderValue::from_str(&xff).ok()
    };
    if let Some(v) = value {
        out.insert(X_FORWARDED_FOR, v);
    }
}

/// One `X-Forwarded-For` entry as an address: a bare IP, or `IPv4:port` / `[IPv6]:port` as
/// some proxies write them.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    e.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

/// The client the proxy vouches for (`X-Real-IP`): the peer, or, when the peer is a trusted
/// proxy, the right-most address of the `X-Forwarded-For` chain that is not a trusted proxy
/// itself. Where an entry is not an address, the walk stops at the last trusted hop before it:
/// that hop vouched for garbage, so nothing left of it counts.
pub fn client_address(peer: IpAddr, prior_xff: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !is_trusted(&peer) {
        return client;
    }
    for entry in prior_xff.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Some(ip) = forwarded_address(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The client's address as a header value. A connection sends many requests from one address
/// (and behind a load balancer all of them come from it), so the last value is kept per worker
/// thread: formatting and copying it anew cost three allocations per request.
fn peer_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((cached, value)) if *cached == ip => value.clone(),
        _ => {
            // An IP address always formats to a valid header value.
            let value = HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            *last = Some((ip, value.clone()));
            value
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_walks_the_trusted_chain() {
        let nets: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let peer = ip("10.0.0.1");
        assert_eq!(
            client_address(ip("192.0.2.1"), &["6.6.6.6"], &nets),
            ip("192.0.2.1")
        );
        assert_eq!(client_address(peer, &[], &nets), peer);
        assert_eq!(
            client_address(peer, &["1.1.1.1, 2.2.2.2, 10.9.9.9"], &nets),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_address(peer, &["1.1.1.1", "10.2.2.2"], &nets),
            ip("1.1.1.1")
        );
        assert_eq!(
            client_address(peer, &["10.3.3.3,10.2.2.2"], &nets),
            ip("10.3.3.3")
        );
        assert_eq!(
            client_address(peer, &["x, 10.2.2.2"], &nets),
            ip("10.2.2.2")
        );
        assert_eq!(client_address(peer, &["1.1.1.1, unknown"], &nets), peer);
        assert_eq!(
            client_address(peer, &["[2001:db8::1]:80"], &nets),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(peer, &["::ffff:1.2.3.4"], &nets),
            ip("1.2.3.4")
        );
        assert_eq!(client_address(peer, &[",,"], &nets), peer);
    }
}

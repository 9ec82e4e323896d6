//! Request headers a client sends that must not reach the app (or Ory) as sent: other spellings
//! of the headers the proxy sets or strips, and identity-style headers.
//!
//! Spellings are sent byte for byte on a raw connection: `X_Forwarded_For` is a different
//! header from `X-Forwarded-For` to HTTP, but CGI and WSGI servers fold `_` into `-` (both become
//! `HTTP_X_FORWARDED_FOR`), so an app behind the proxy would take it for the real one.

mod common;

use common::{Conn, Echo, FakeApp, Proxy, RawResponse};

/// The marker every forged value carries: whatever reaches the app with it leaked.
const FORGED: &str = "6.6.6.6";

fn echo_of(r: &RawResponse) -> Echo {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

/// The headers of `echo` that carry the forged marker.
fn leaked(echo: &Echo) -> Vec<(String, String)> {
    echo.headers
        .iter()
        .filter(|(_, v)| v.contains(FORGED))
        .cloned()
        .collect()
}

/// Other spellings of the forwarding headers (and of the other headers the proxy sets or
/// strips): `_` or `.` for `-`, any case.
const RESPELLINGS: &[&str] = &[
    "X_Forwarded_For",
    "X_Forwarded_Host",
    "X_Forwarded_Proto",
    "X_Forwarded_Port",
    "X_Forwarded_Prefix",
    "X_FORWARDED_FOR",
    "x_forwarded_for",
    "X-Forwarded_For",
    "X_Forwarded-Host",
    "X.Forwarded.For",
    "X_Real_IP",
    "X.Real-Ip",
    "Ory_Base_URL_Rewrite",
    "Ory_No_Custom_Domain_Redirect",
    "X_Ory_Session",
    "Keep_Alive",
    "Proxy_Connection",
    "Transfer_Encoding",
    "Content_Length",
];

fn assert_no_respelling_leaks(proxy: &Proxy, path: &str, who: &str) {
    let mut conn = Conn::new(proxy.addr());
    let mut leaks = Vec::new();
    for name in RESPELLINGS {
        let value = format!("{FORGED}, evil.example");
        let r = conn
            .get(path, &[(name, &value)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        leaks.extend(leaked(&echo_of(&r)));
    }
    assert!(leaks.is_empty(), "{who}: reached the upstream: {leaks:?}");
    // All at once, and each twice, in both orders around the real header.
    let mut all: Vec<(&str, &str)> = RESPELLINGS
        .iter()
        .chain(RESPELLINGS.iter().rev())
        .map(|n| (*n, FORGED))
        .collect();
    all.insert(RESPELLINGS.len(), ("X-Forwarded-For", "192.0.2.1"));
    let echo = echo_of(&conn.get(path, &all).unwrap());
    assert!(leaked(&echo).is_empty(), "{who}: {:?}", leaked(&echo));
}

#[test]
fn respelled_forwarding_headers_never_reach_the_app() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    assert_no_respelling_leaks(&proxy, "/echo", "untrusted client");
    // The proxy's own values are there, once each, in their one spelling.
    let echo = echo_of(&common::raw_get(
        proxy.addr(),
        "/echo",
        &[("X_Forwarded_For", FORGED)],
    ));
    assert_eq!(echo.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo.all("x-forwarded-proto"), ["http"]);
}

#[test]
fn respelled_forwarding_headers_are_dropped_even_from_a_trusted_proxy() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("trusted_proxies = [\"127.0.0.0/8\"]\n")
        .start();
    assert_no_respelling_leaks(&proxy, "/echo", "trusted proxy");
    // The canonical spelling from a trusted proxy still counts.
    let echo = echo_of(&common::raw_get(
        proxy.addr(),
        "/echo",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X_Forwarded_For", FORGED),
        ],
    ));
    assert_eq!(echo.all("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
}

#[test]
fn respelled_forwarding_and_control_headers_never_reach_ory() {
    // A fake Ory that echoes the request head: what the proxy sent it is visible.
    let ory = FakeApp::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .flag("--no-jwt")
        .start();
    assert_no_respelling_leaks(&proxy, "/.ory/echo", "to Ory");
}

/// Whitespace around a forwarding header's name (before the colon, a leading tab or space that
/// makes it a folded continuation line) either gets the request refused or the header is not
/// believed: no forged value reaches the app.
#[test]
fn whitespace_around_forwarding_header_names_never_smuggles_a_value() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    for line in [
        "X-Forwarded-For : 6.6.6.6",
        "X-Forwarded-For\t: 6.6.6.6",
        "X-Real-IP : 6.6.6.6",
        "Accept: */*\r\n\tX-Forwarded-For: 6.6.6.6",
        "Accept: */*\r\n X-Real-IP: 6.6.6.6",
        "\tX-Forwarded-For: 6.6.6.6",
        "X-Forwarded-For:\t6.6.6.6\t",
        "X-Forwarded-For:6.6.6.6   ",
    ] {
        let req =
            format!("GET /echo HTTP/1.1\r\nHost: localhost\r\n{line}\r\nConnection: close\r\n\r\n");
        let Some(r) = common::raw_exchange(proxy.addr(), req.as_bytes()) else {
            continue; // closed without an answer: refused
        };
        if r.status == 400 {
            continue;
        }
        let echo = echo_of(&r);
        assert!(leaked(&echo).is_empty(), "{line:?}: {:?}", leaked(&echo));
    }
}

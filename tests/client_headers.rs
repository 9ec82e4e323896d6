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

// ---- identity-style headers and X-Real-IP ----

/// Headers that identity-aware proxies (oauth2-proxy, Pomerium, Authelia, Grafana's auth proxy,
/// Apache, cloud load balancers) set for the app, and that apps behind them trust. A sample of
/// the default `strip_request_headers` list, with prefix entries exercised.
const IDENTITY_HEADERS: &[&str] = &[
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Remote-User",
    "X-Remote-Email",
    "X-Remote-Group",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Access-Token",
    "X-User",
    "X-User-Id",
    "X-Email",
    "X-WebAuth-User",
    "X-Pomerium-Jwt-Assertion",
    "X-Pomerium-Claim-Email",
    "X-Authenticated-User",
    "X-Goog-Authenticated-User-Email",
    "X-Amzn-Oidc-Identity",
    "Cf-Access-Authenticated-User-Email",
    "X-MS-Client-Principal-Name",
    "X-Auth-User",
    "X-Auth-Userinfo",
    "Tailscale-User-Login",
    "Oidc-Claim-Email",
    "X-Userinfo",
    "X-Jwt-Assertion",
    "X-Endpoint-API-UserInfo",
    "Teleport-Jwt-Assertion",
    "X-Username",
    "X-SSL-Client-S-DN",
    "X-ARR-ClientCert",
    "SSL-Client-Cert",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-Host",
    "X-Forwarded",
    "Front-End-Https",
    "X-Url-Scheme",
    // Client-address headers: only the proxy says who the client is.
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
    "Client-IP",
    "X-Originating-IP",
    "X-Original-Forwarded-For",
    "X-Remote-Addr",
];

/// `name` with `-` spelled `_`.
fn underscored(name: &str) -> String {
    name.replace('-', "_")
}

#[test]
fn identity_headers_from_a_client_never_reach_the_app() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let mut conn = Conn::new(proxy.addr());
    let mut leaks = Vec::new();
    for name in IDENTITY_HEADERS {
        for spelling in [name.to_string(), underscored(name), name.to_lowercase()] {
            let r = conn.get("/echo", &[(&spelling, FORGED)]).unwrap();
            leaks.extend(leaked(&echo_of(&r)));
        }
    }
    assert!(leaks.is_empty(), "reached the app: {leaks:?}");
    // Not `X-Auth-*` as a whole: `X-Auth-Token` is the app's own API credential in many apps.
    let r = conn.get("/echo", &[("X-Auth-Token", FORGED)]).unwrap();
    assert_eq!(echo_of(&r).one("x-auth-token"), Some(FORGED), "{r:?}");
    // With JWT off too: the list does not depend on sessions.
    let proxy = Proxy::to(&app.url()).flag("--no-jwt").start();
    let mut conn = Conn::new(proxy.addr());
    for name in IDENTITY_HEADERS {
        let r = conn.get("/echo", &[(name, FORGED)]).unwrap();
        leaks.extend(leaked(&echo_of(&r)));
    }
    assert!(leaks.is_empty(), "--no-jwt: reached the app: {leaks:?}");
    // From a trusted proxy too: trust covers the client's address, not who the user is.
    let proxy = Proxy::to(&app.url())
        .toml("trusted_proxies = [\"127.0.0.0/8\"]\n")
        .start();
    let mut conn = Conn::new(proxy.addr());
    for name in IDENTITY_HEADERS.iter().filter(|n| n.contains("User")) {
        let r = conn.get("/echo", &[(name, FORGED)]).unwrap();
        leaks.extend(leaked(&echo_of(&r)));
    }
    assert!(
        leaks.is_empty(),
        "trusted proxy: reached the app: {leaks:?}"
    );
}

#[test]
fn x_real_ip_is_the_client_the_proxy_vouches_for() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    for path in ["/echo", "/.ory/echo"] {
        let echo = echo_of(&common::raw_get(
            proxy.addr(),
            path,
            &[("X-Real-IP", FORGED), ("X-Forwarded-For", FORGED)],
        ));
        assert_eq!(echo.all("x-real-ip"), ["127.0.0.1"], "{path}");
        assert_eq!(echo.all("x-forwarded-for"), ["127.0.0.1"], "{path}");
    }
    // Behind a trusted proxy: the right-most address that is not a trusted proxy itself.
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n")
        .start();
    for (xff, client) in [
        (vec!["203.0.113.9"], "203.0.113.9"),
        (vec!["6.6.6.6, 203.0.113.9, 10.1.2.3"], "203.0.113.9"),
        (vec!["6.6.6.6, 203.0.113.9", "10.1.2.3"], "203.0.113.9"),
        (vec![" 198.51.100.4 "], "198.51.100.4"),
        (vec!["[2001:db8::1]:4711"], "2001:db8::1"),
        (vec!["203.0.113.9:4711"], "203.0.113.9"),
        (vec!["10.9.9.9"], "10.9.9.9"),
        (vec!["garbage, 10.1.2.3"], "10.1.2.3"),
        (vec!["6.6.6.6, garbage"], "127.0.0.1"),
        (vec![], "127.0.0.1"),
    ] {
        for path in ["/echo", "/.ory/echo"] {
            let mut headers: Vec<(&str, &str)> =
                xff.iter().map(|v| ("X-Forwarded-For", *v)).collect();
            headers.push(("X-Real-IP", "192.0.2.66"));
            let echo = echo_of(&common::raw_get(proxy.addr(), path, &headers));
            assert_eq!(echo.all("x-real-ip"), [client], "{path} {xff:?}");
        }
    }
    // A trusted proxy's client-address headers stand (canonical spelling only).
    let echo = echo_of(&common::raw_get(
        proxy.addr(),
        "/echo",
        &[
            ("True-Client-IP", "203.0.113.7"),
            ("True_Client_IP", FORGED),
        ],
    ));
    assert_eq!(echo.all("true-client-ip"), ["203.0.113.7"]);
    assert!(leaked(&echo).is_empty(), "{:?}", leaked(&echo));
}

#[test]
fn client_address_headers_never_reach_ory_from_an_untrusted_client() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    let mut conn = Conn::new(proxy.addr());
    for name in [
        "True-Client-IP",
        "X-Client-IP",
        "CF-Connecting-IP",
        "X-Real-IP",
    ] {
        let echo = echo_of(&conn.get("/.ory/echo", &[(name, FORGED)]).unwrap());
        assert!(leaked(&echo).is_empty(), "{name}: {:?}", leaked(&echo));
    }
}

/// `strip_request_headers` replaces the default list and follows `proxy.toml` edits.
#[test]
fn strip_request_headers_is_configurable_and_live() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let file = |list: &str| {
        format!(
            "application_url = \"{}\"\nsdk_url = \"{}\"\nstrip_request_headers = {list}\n",
            app.url(),
            common::NO_ORY
        )
    };
    std::fs::write(&path, file(r#"["X-Tenant", "X-Acme-*"]"#)).unwrap();
    let proxy = Proxy::with_config(&path).start();
    let sent = [
        ("X-Tenant", "t1"),
        ("X_Tenant", "t2"),
        ("X-Acme-Role", "admin"),
        ("Remote-User", "alice"),
    ];
    let echo = echo_of(&common::raw_get(proxy.addr(), "/echo", &sent));
    assert!(echo.all("x-tenant").is_empty(), "{echo:?}");
    assert!(echo.all("x_tenant").is_empty(), "{echo:?}");
    assert!(echo.all("x-acme-role").is_empty(), "{echo:?}");
    // The list replaced the default one.
    assert_eq!(echo.all("remote-user"), ["alice"]);
    // X-Real-IP is the proxy's whatever the list says.
    assert_eq!(echo.all("x-real-ip"), ["127.0.0.1"]);

    std::fs::write(&path, file("[]")).unwrap();
    let applied = common::within(std::time::Duration::from_secs(20), || {
        let echo = echo_of(&common::raw_get(proxy.addr(), "/echo", &sent));
        echo.all("x-tenant") == ["t1"] && echo.all("x-acme-role") == ["admin"]
    });
    assert!(
        applied.is_some(),
        "the edit was not applied:\n{}",
        proxy.logs()
    );
    // A bad entry is refused; the running list stays.
    let mark = proxy.mark();
    std::fs::write(&path, file(r#"["*"]"#)).unwrap();
    let error = proxy.wait_line_after(mark, std::time::Duration::from_secs(20), |l| {
        l.contains(" ERROR ")
    });
    assert!(
        error
            .as_deref()
            .is_some_and(|l| l.contains("strip_request_headers")),
        "{error:?}\n{}",
        proxy.logs()
    );
    let echo = echo_of(&common::raw_get(proxy.addr(), "/echo", &sent));
    assert_eq!(echo.all("x-tenant"), ["t1"]);
}

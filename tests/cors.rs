//! CORS (docs/behaviour.md, "CORS"). Allowed origins are echoed with credentials (never `*`); a
//! refusal is the absence of `Access-Control-Allow-Origin`; preflights are the proxy's, always 204;
//! the upstream's own CORS headers never double the proxy's.

mod common;

use common::{client, header_all, header_one, read_body, respond_path, FakeApp, Proxy};

struct Cors {
    status: u16,
    origin: Vec<String>,
    credentials: Vec<String>,
    methods: Option<String>,
    headers: Option<String>,
}

async fn get_with_origin(proxy: &Proxy, path: &str, origin: &str) -> Cors {
    let mut res = client()
        .get(proxy.url(path))
        .insert_header(("Origin", origin))
        .send()
        .await
        .unwrap();
    read_body(&mut res).await;
    let h = res.headers();
    Cors {
        status: res.status().as_u16(),
        origin: header_all(h, "access-control-allow-origin"),
        credentials: header_all(h, "access-control-allow-credentials"),
        methods: None,
        headers: None,
    }
}

async fn preflight(proxy: &Proxy, path: &str, origin: &str, req_headers: Option<&str>) -> Cors {
    let mut req = client()
        .request(awc::http::Method::OPTIONS, proxy.url(path))
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "POST"));
    if let Some(h) = req_headers {
        req = req.insert_header(("Access-Control-Request-Headers", h));
    }
    let mut res = req.send().await.unwrap();
    let body = read_body(&mut res).await;
    assert!(body.is_empty(), "a preflight answer has no body");
    let h = res.headers();
    Cors {
        status: res.status().as_u16(),
        origin: header_all(h, "access-control-allow-origin"),
        credentials: header_all(h, "access-control-allow-credentials"),
        methods: header_one(h, "access-control-allow-methods"),
        headers: header_one(h, "access-control-allow-headers"),
    }
}

#[track_caller]
fn assert_allowed(c: &Cors, origin: &str) {
    assert_eq!(c.origin, [origin], "ACAO");
    assert_eq!(c.credentials, ["true"], "ACAC");
}

#[track_caller]
fn assert_refused(c: &Cors) {
    assert!(
        c.origin.is_empty(),
        "refused origin got ACAO {:?}",
        c.origin
    );
}

#[actix_web::test]
async fn dev_echoes_any_origin_with_credentials() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).flag("--dev").start();
    for origin in ["https://random.example", "http://localhost:5173"] {
        let c = get_with_origin(&proxy, "/api", origin).await;
        assert_eq!(c.status, 200);
        assert_allowed(&c, origin);
        let p = preflight(&proxy, "/api", origin, Some("Content-Type")).await;
        assert_eq!(p.status, 204);
        assert_allowed(&p, origin);
    }
}

#[actix_web::test]
async fn without_dev_only_the_publish_origin_is_allowed() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let publish = proxy.default_publish();
    assert_allowed(&get_with_origin(&proxy, "/api", &publish).await, &publish);

    let refused = get_with_origin(&proxy, "/api", "https://evil.example").await;
    // A refusal is not an error: the request is served, the browser just may not read it.
    assert_eq!(refused.status, 200);
    assert_refused(&refused);
    // Scheme and port are part of the origin.
    let other_port = publish.replace(&proxy.port.to_string(), "1");
    assert_refused(&get_with_origin(&proxy, "/api", &other_port).await);
}

#[actix_web::test]
async fn allowed_origin_wildcard_matches_by_prefix_and_suffix() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .flags(&[
            "--allowed-cors-origins",
            "https://*.example.org,https://exact.example.com",
        ])
        .start();
    for ok in [
        "https://a.example.org",
        "https://a.b.example.org",
        "HTTPS://A.EXAMPLE.ORG",
        "https://exact.example.com",
    ] {
        assert_allowed(&get_with_origin(&proxy, "/api", ok).await, ok);
    }
    let publish = proxy.default_publish();
    assert_allowed(&get_with_origin(&proxy, "/api", &publish).await, &publish);
    for bad in [
        "https://example.org",
        "http://a.example.org",
        "https://a.example.org.evil.com",
        "https://evilexample.org",
        "https://exact.example.com.evil",
    ] {
        assert_refused(&get_with_origin(&proxy, "/api", bad).await);
    }
}

#[actix_web::test]
async fn preflights_are_answered_204_by_the_proxy() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .flags(&[
            "--allowed-cors-origins",
            "https://*.example.org",
            "--additional-cors-headers",
            "X-Custom",
        ])
        .start();

    let ok = preflight(
        &proxy,
        "/api",
        "https://a.example.org",
        Some("content-type, x-csrf-token, x-custom"),
    )
    .await;
    assert_eq!(ok.status, 204);
    assert_allowed(&ok, "https://a.example.org");
    let methods = ok.methods.expect("Access-Control-Allow-Methods");
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] {
        assert!(methods.contains(m), "{m} missing in {methods}");
    }
    let headers = ok
        .headers
        .expect("Access-Control-Allow-Headers")
        .to_lowercase();
    for h in ["content-type", "x-csrf-token", "x-custom"] {
        assert!(headers.contains(h), "{h} missing in {headers}");
    }

    let refused = preflight(&proxy, "/api", "https://evil.example", None).await;
    assert_eq!(refused.status, 204);
    assert_refused(&refused);

    let bad_header = preflight(
        &proxy,
        "/api",
        "https://a.example.org",
        Some("x-not-allowed"),
    )
    .await;
    assert_eq!(bad_header.status, 204);
    assert_refused(&bad_header);

    // Preflights on the Ory route are the proxy's too (Ory is down here).
    let ory = preflight(
        &proxy,
        "/.ory/sessions/whoami",
        "https://a.example.org",
        None,
    )
    .await;
    assert_eq!(ory.status, 204);
    assert_allowed(&ory, "https://a.example.org");

    // Neither ever reached the app.
    assert!(
        app.seen().iter().all(|e| e.method != "OPTIONS"),
        "{:?}",
        app.seen()
    );
}

#[actix_web::test]
async fn upstream_cors_headers_are_never_doubled() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).flag("--dev").start();
    let path = respond_path(
        200,
        &[
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "false"),
        ],
        "x",
        false,
    );
    let c = get_with_origin(&proxy, &path, "https://site.example").await;
    assert_allowed(&c, "https://site.example");

    // Refused origin (no --dev): the app's permissive headers do not leak through either.
    let proxy = Proxy::to(&app.url()).start();
    let c = get_with_origin(&proxy, &path, "https://site.example").await;
    assert_refused(&c);
    // (actix-cors sends its own `Access-Control-Allow-Credentials: true` on every answer,
    // harmless without an ACAO; the app's `false` must not be added to it.)
    assert!(c.credentials.len() <= 1, "{:?}", c.credentials);
    assert!(
        !c.credentials.iter().any(|v| v == "false"),
        "{:?}",
        c.credentials
    );
}

#[actix_web::test]
async fn with_debug_every_cors_decision_is_logged() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).flag("--debug").start();
    let refused = get_with_origin(&proxy, "/api", "https://evil.example").await;
    assert_refused(&refused);
    let pre = preflight(&proxy, "/api", "https://evil.example", None).await;
    assert_refused(&pre);
    let deadline = std::time::Duration::from_secs(20);
    let actual = proxy
        .wait_line(deadline, |l| {
            l.contains("cors: origin") && l.contains("evil.example") && l.contains("refused")
        })
        .unwrap_or_else(|| panic!("no decision for the actual request:\n{}", proxy.logs()));
    assert!(actual.contains("DEBUG"), "{actual}");
    proxy
        .wait_line(deadline, |l| {
            l.contains("cors: preflight")
                && l.contains("evil.example")
                && l.contains("origin_ok=false")
        })
        .unwrap_or_else(|| panic!("no decision for the preflight:\n{}", proxy.logs()));
}

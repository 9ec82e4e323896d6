//! Answers rewritten (docs/behaviour.md, "Cookies" to "Answer bodies"): `Set-Cookie`, `Location`,
//! the welcome redirect and Ory bodies rewritten onto the publish URL; application bodies
//! untouched. A second fake app plays Ory so that the exact bytes Ory answers are under the test's
//! control.

mod common;

use std::io::Read as _;

use common::app::sha256_hex;
use common::{get, get_with, header_all, respond_path, FakeApp, Proxy};

/// `Location` of the answer to GET `path`.
async fn location(proxy: &Proxy, path: &str) -> String {
    let res = get(&proxy.url(path)).await;
    assert!(res.status.is_redirection(), "{path}: {}", res.status);
    res.header("location")
        .unwrap_or_else(|| panic!("{path}: no Location"))
}

fn redirect_to(loc: &str) -> String {
    respond_path(303, &[("Location", loc)], "", false)
}

#[actix_web::test]
async fn ory_locations_move_under_publish_url_slash_ory() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let o = ory.url();
    let proxy = Proxy::to(&app.url())
        .ory(&o)
        .publish("https://www.example.org")
        .start();
    for (sent, want) in [
        (
            format!("{o}/ui/login?flow=abc&return_to=%2Fx#frag"),
            "https://www.example.org/.ory/ui/login?flow=abc&return_to=%2Fx#frag".to_string(),
        ),
        (
            format!("{o}/self-service/settings/"),
            "https://www.example.org/.ory/self-service/settings/".to_string(),
        ),
        (
            "/self-service/login/browser?return_to=%2Fa".to_string(),
            "/.ory/self-service/login/browser?return_to=%2Fa".to_string(),
        ),
        (
            format!("{}/dashboard/?tab=1", app.url()),
            "https://www.example.org/dashboard/?tab=1".to_string(),
        ),
        (
            "https://accounts.google.com/o/oauth2/auth?client_id=1".to_string(),
            "https://accounts.google.com/o/oauth2/auth?client_id=1".to_string(),
        ),
        // Same host, another port: another origin, left alone.
        (
            "http://127.0.0.1:9/x".to_string(),
            "http://127.0.0.1:9/x".to_string(),
        ),
    ] {
        let path = format!("/.ory{}", redirect_to(&sent));
        assert_eq!(location(&proxy, &path).await, want, "Ory sent {sent}");
    }
}

#[actix_web::test]
async fn app_locations_move_to_publish_url_and_others_stay() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .publish("https://www.example.org")
        .start();
    assert_eq!(
        location(&proxy, "/redirect/absolute").await,
        "https://www.example.org/landing/?q=%2F#frag"
    );
    assert_eq!(
        location(&proxy, "/redirect/relative").await,
        "/landing/?q=1"
    );
    assert_eq!(
        location(&proxy, "/redirect/other").await,
        "https://other.example/x?y=1"
    );
}

#[actix_web::test]
async fn welcome_redirects_go_to_publish_url_by_default() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .publish("https://www.example.org")
        .start();
    let from_app = location(&proxy, "/redirect/welcome").await;
    assert_eq!(from_app.trim_end_matches('/'), "https://www.example.org");
    let abs = format!("/.ory{}", redirect_to(&format!("{}/ui/welcome", ory.url())));
    let from_ory = location(&proxy, &abs).await;
    assert_eq!(from_ory.trim_end_matches('/'), "https://www.example.org");
    let rel = format!("/.ory{}", redirect_to("/ui/welcome?x=1"));
    let from_ory_rel = location(&proxy, &rel).await;
    assert_eq!(
        from_ory_rel.trim_end_matches('/'),
        "https://www.example.org"
    );
    // Not the welcome page: not replaced by the default redirect.
    let other = format!("/.ory{}", redirect_to("/ui/welcomes"));
    assert_eq!(location(&proxy, &other).await, "/.ory/ui/welcomes");
}

#[actix_web::test]
async fn welcome_redirects_follow_default_redirect_url() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let abs = format!("/.ory{}", redirect_to(&format!("{}/ui/welcome", ory.url())));
    for (flag, want) in [
        (
            "https://app.example.org/dashboard",
            "https://app.example.org/dashboard",
        ),
        ("/dashboard?from=login", "/dashboard?from=login"),
    ] {
        let proxy = Proxy::to(&app.url())
            .ory(&ory.url())
            .flags(&["--default-redirect-url", flag])
            .start();
        assert_eq!(location(&proxy, "/redirect/welcome").await, want);
        assert_eq!(location(&proxy, &abs).await, want);
    }
}

/// `name=value` and the attributes (lowercase key, value as sent), for order-free comparison.
fn cookie(line: &str) -> (String, Vec<(String, String)>) {
    let mut parts = line.split(';').map(str::trim);
    let nv = parts.next().unwrap().to_string();
    let mut attrs: Vec<(String, String)> = parts
        .filter(|a| !a.is_empty())
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (a.to_ascii_lowercase(), String::new()),
        })
        .collect();
    attrs.sort();
    (nv, attrs)
}

fn cookies(h: &awc::http::header::HeaderMap) -> Vec<(String, Vec<(String, String)>)> {
    header_all(h, "set-cookie")
        .iter()
        .map(|l| cookie(l))
        .collect()
}

const ORY_CSRF: &str =
    "csrf_token_82b3=abc; Path=/; Domain=127.0.0.1; Max-Age=31536000; Secure; HttpOnly; SameSite=None";
const ORY_SESSION: &str = "ory_kratos_session=tok; Path=/; Domain=127.0.0.1; \
    Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly; SameSite=Lax; Partitioned; Priority=High";

async fn ory_cookies(proxy: &Proxy) -> Vec<(String, Vec<(String, String)>)> {
    let path = format!(
        "/.ory{}",
        respond_path(
            200,
            &[("Set-Cookie", ORY_CSRF), ("Set-Cookie", ORY_SESSION)],
            "",
            false
        )
    );
    let res = get(&proxy.url(&path)).await;
    assert_eq!(res.status, 200);
    cookies(&res.headers)
}

#[actix_web::test]
async fn ory_cookies_lose_domain_and_secure_on_an_http_publish_url() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    assert_eq!(
        ory_cookies(&proxy).await,
        [
            cookie("csrf_token_82b3=abc; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"),
            cookie(
                "ory_kratos_session=tok; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; \
                 HttpOnly; SameSite=Lax; Partitioned; Priority=High"
            ),
        ]
    );
}

#[actix_web::test]
async fn cookie_domain_flag_sets_the_domain_of_ory_and_app_scoped_cookies() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .flags(&["--cookie-domain", "example.org"])
        .publish("https://www.example.org")
        .start();
    // https publish URL: Secure kept (and added where missing), SameSite=None kept.
    assert_eq!(
        ory_cookies(&proxy).await,
        [
            cookie(
                "csrf_token_82b3=abc; Path=/; Domain=example.org; Max-Age=31536000; Secure; \
                 HttpOnly; SameSite=None"
            ),
            cookie(
                "ory_kratos_session=tok; Path=/; Domain=example.org; \
                 Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly; SameSite=Lax; Partitioned; \
                 Priority=High; Secure"
            ),
        ]
    );

    let lines = get(&proxy.url("/cookies")).await.all("set-cookie");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        cookie(&lines[0]),
        cookie("app_scoped=1; Path=/; Domain=example.org; HttpOnly; Secure")
    );
    assert_eq!(
        lines[1],
        "elsewhere=2; Path=/x; Domain=other.example; Secure; SameSite=None"
    );
}

#[actix_web::test]
async fn app_cookie_scoped_to_the_app_host_becomes_host_only_others_untouched() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let lines = get(&proxy.url("/cookies")).await.all("set-cookie");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(cookie(&lines[0]), cookie("app_scoped=1; Path=/; HttpOnly"));
    assert_eq!(
        lines[1],
        "elsewhere=2; Path=/x; Domain=other.example; Secure; SameSite=None"
    );
}

#[actix_web::test]
async fn https_publish_url_adds_secure_to_ory_cookies() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .publish("https://www.example.org")
        .start();
    let path = format!(
        "/.ory{}",
        respond_path(200, &[("Set-Cookie", "a=1; Path=/; HttpOnly")], "", false)
    );
    assert_eq!(
        cookies(&get(&proxy.url(&path)).await.headers),
        [cookie("a=1; Path=/; HttpOnly; Secure")]
    );
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_string(&mut s)
        .expect("a gzip body");
    s
}

#[actix_web::test]
async fn gzip_html_from_ory_is_rewritten_with_a_correct_length() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let o = ory.url();
    let proxy = Proxy::to(&app.url()).ory(&o).start();
    let publish_ory = format!("{}/.ory", proxy.default_publish());
    let html = format!(
        "<html><form action=\"{o}/self-service/login?flow=1\" method=\"POST\">\
         <a href=\"{o}/ui/registration\">sign up</a><script src=\"{o}/ui/app.js\"></script>\
         </form>{}</html>",
        "padding ".repeat(2000)
    );
    let path = format!(
        "/.ory{}",
        respond_path(
            200,
            &[("Content-Type", "text/html; charset=utf-8")],
            &html,
            true
        )
    );
    let res = get_with(&proxy.url(&path), &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string())
    );
    let text = gunzip(&res.body);
    assert!(!text.contains(&o), "Ory's origin left in: {text}");
    assert_eq!(text, html.replace(&o, &publish_ory));
    assert!(text.contains(&format!("{publish_ory}/self-service/login?flow=1")));
}

#[actix_web::test]
async fn json_from_ory_is_rewritten_and_binary_left_alone() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let o = ory.url();
    let proxy = Proxy::to(&app.url())
        .ory(&o)
        .publish("https://www.example.org")
        .start();
    let json = format!(r#"{{"ui":{{"action":"{o}/self-service/login?flow=1","nodes":[]}}}}"#);
    let path = format!(
        "/.ory{}",
        respond_path(200, &[("Content-Type", "application/json")], &json, false)
    );
    let res = get(&proxy.url(&path)).await;
    assert_eq!(
        String::from_utf8(res.body.clone()).unwrap(),
        json.replace(&o, "https://www.example.org/.ory")
    );
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string())
    );

    let path = format!(
        "/.ory{}",
        respond_path(200, &[("Content-Type", "image/png")], &json, false)
    );
    let body = get(&proxy.url(&path)).await.body;
    assert_eq!(String::from_utf8(body).unwrap(), json);
}

#[actix_web::test]
async fn app_bodies_are_byte_identical_even_gzip_and_full_of_ory_urls() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let o = ory.url();
    let proxy = Proxy::to(&app.url()).ory(&o).start();
    let html = format!("<a href=\"{o}/ui/login\">{o}</a> and {}", app.url());
    for gzip in [false, true] {
        let path = respond_path(200, &[("Content-Type", "text/html")], &html, gzip);
        let res = get_with(&proxy.url(&path), &[("Accept-Encoding", "gzip")]).await;
        let sent = res.header("x-body-sha256").unwrap();
        assert_eq!(sha256_hex(&res.body), sent, "gzip={gzip}");
        assert_eq!(
            res.header("content-length"),
            Some(res.body.len().to_string())
        );
        assert_eq!(
            res.header("content-encoding").as_deref(),
            gzip.then_some("gzip")
        );
    }
}

#[actix_web::test]
async fn a_chunked_textual_ory_answer_too_large_to_rewrite_is_passed_on_whole() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    // 9 MiB of JSON-typed bytes without a declared length: over the 8 MiB rewrite buffer.
    let n = 9 * 1024 * 1024;
    let res = get(&proxy.url(&format!(
        "/.ory/download?bytes={n}&chunked=1&ct=application/json"
    )))
    .await;
    assert_eq!(
        res.status,
        200,
        "{}",
        String::from_utf8_lossy(&res.body[..res.body.len().min(300)])
    );
    assert_eq!(res.body.len(), n);
    assert_eq!(sha256_hex(&res.body), sha256_hex(&common::app::pattern(n)));
    // Below the limit the same kind of answer is still read whole for rewriting: it leaves
    // with the Content-Length of the (here unchanged) rewritten body.
    let small = get(&proxy.url("/.ory/download?bytes=100000&chunked=1&ct=application/json")).await;
    assert_eq!(small.status, 200);
    assert_eq!(small.body, common::app::pattern(100_000));
    assert_eq!(
        header_all(&small.headers, "content-length"),
        vec!["100000".to_string()],
        "a rewritten answer carries its new length"
    );
}

//! A browser's whole login → whoami → logout journey through the proxy against the local Ory
//! emulator, which (like self-hosted Kratos) writes absolute URLs and `Domain=` cookies on its
//! own origin: everything the browser sees must be on the publish URL.

mod common;

use std::io::Read as _;

use ory_proxy::emulator::{Emulator, EmulatorConfig, DEMO_EMAIL, DEMO_PASSWORD};

use common::{answer, client, get_with, header_all, send, FakeApp, Proxy};

fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator")
}

/// `name=value` of the first `Set-Cookie` whose name starts with `prefix`, and its full line.
fn set_cookie(h: &awc::http::header::HeaderMap, prefix: &str) -> (String, String) {
    let line = header_all(h, "set-cookie")
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* cookie in {:?}", header_all(h, "set-cookie")));
    let nv = line.split(';').next().unwrap().trim().to_string();
    (nv, line)
}

#[track_caller]
fn assert_host_only(line: &str) {
    assert!(
        !line.to_ascii_lowercase().contains("domain="),
        "cookie keeps a Domain: {line}"
    );
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_string(&mut s)
        .expect("a gzip body");
    s
}

/// The `value` of the hidden input named `name` in `html`.
fn hidden_input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} input in {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[actix_web::test]
async fn browser_login_whoami_and_logout_stay_on_the_publish_url() {
    let ory = emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let publish = proxy.default_publish();
    let publish_ory = format!("{publish}/.ory");
    let c = client();

    // 1. Start a login flow: Ory's redirect to its own UI comes back on the publish URL.
    let res = send(
        c.get(proxy.url("/.ory/self-service/login/browser"))
            .insert_header(("Accept", "text/html")),
    )
    .await;
    assert_eq!(res.status, 303);
    let loc = res.location();
    let flow_prefix = format!("{publish_ory}/ui/login?flow=");
    assert!(loc.starts_with(&flow_prefix), "{loc}");
    let flow = loc[flow_prefix.len()..].to_string();
    let (csrf, csrf_line) = set_cookie(&res.headers, "csrf_token_");
    assert_host_only(&csrf_line);

    // 2. The login page: gzip HTML with every Ory URL on the publish URL.
    let res = send(
        c.get(proxy.url(&format!("/.ory/ui/login?flow={flow}")))
            .insert_header(("Accept", "text/html"))
            .insert_header(("Accept-Encoding", "gzip"))
            .insert_header(("Cookie", csrf.as_str())),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string())
    );
    let html = gunzip(&res.body);
    assert!(
        !html.contains(ory.url()),
        "Ory's origin left in the page:\n{html}"
    );
    let action = format!("{publish_ory}/self-service/login?flow={flow}");
    assert!(html.contains(&action), "no {action} in:\n{html}");
    let csrf_token = hidden_input(&html, "csrf_token");

    // 3. Submit the form: the session cookie is host-only on the publish domain and the
    //    welcome redirect goes to the publish URL.
    let form = [
        ("csrf_token", csrf_token.as_str()),
        ("identifier", DEMO_EMAIL),
        ("password", DEMO_PASSWORD),
        ("method", "password"),
    ];
    let res = answer(
        c.post(proxy.url(&format!("/.ory/self-service/login?flow={flow}")))
            .insert_header(("Accept", "text/html"))
            .insert_header(("Cookie", csrf.as_str()))
            .send_form(&form)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.location().trim_end_matches('/'), publish);
    let (session, session_line) = set_cookie(&res.headers, "ory_kratos_session=");
    assert_host_only(&session_line);
    assert!(!session_line.contains("Secure"), "{session_line}");

    // 4. whoami through the proxy with the cookie the browser now holds.
    let res = send(
        c.get(proxy.url("/.ory/sessions/whoami"))
            .insert_header(("Accept", "application/json"))
            .insert_header(("Cookie", session.as_str())),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let whoami = res.json();
    assert_eq!(whoami["active"], true, "{whoami}");
    assert_eq!(
        whoami["identity"]["traits"]["email"], DEMO_EMAIL,
        "{whoami}"
    );
    assert!(!res.text().contains(ory.url()));

    // 5. Logout: the URL Ory hands out is on the publish URL, and following it clears the
    //    cookie on the publish domain.
    let res = send(
        c.get(proxy.url("/.ory/self-service/logout/browser"))
            .insert_header(("Accept", "application/json"))
            .insert_header(("Cookie", session.as_str())),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let logout_url = v["logout_url"].as_str().unwrap().to_string();
    let logout_path = logout_url
        .strip_prefix(&publish)
        .unwrap_or_else(|| panic!("logout_url not on the publish URL: {logout_url}"));
    assert!(logout_path.starts_with("/.ory/self-service/logout?token="));
    let res = send(
        c.get(proxy.url(logout_path))
            .insert_header(("Accept", "text/html"))
            .insert_header(("Cookie", session.as_str())),
    )
    .await;
    assert_eq!(res.status, 303);
    let (cleared, cleared_line) = set_cookie(&res.headers, "ory_kratos_session=");
    assert_eq!(cleared, "ory_kratos_session=");
    assert_host_only(&cleared_line);
    assert_eq!(res.location().trim_end_matches('/'), publish);

    // Every request Ory saw came with the proxy's rewrite headers and Ory's own Host.
    let seen = ory.requests();
    assert!(seen.len() >= 5, "{seen:?}");
    for r in &seen {
        assert_eq!(
            r.header("ory-base-url-rewrite"),
            Some(publish_ory.as_str()),
            "{r:?}"
        );
        assert_eq!(r.header("ory-no-custom-domain-redirect"), Some("true"));
        assert_eq!(r.header("host"), Some(ory.addr().to_string().as_str()));
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
}

#[actix_web::test]
async fn ory_bodies_come_back_in_an_encoding_the_client_accepts() {
    let ory = emulator();
    let proxy = Proxy::to("http://127.0.0.1:1").ory(ory.url()).start();
    let publish_ory = format!("{}/.ory", proxy.default_publish());
    let loc = get_with(
        &proxy.url("/.ory/self-service/login/browser"),
        &[("Accept", "text/html")],
    )
    .await
    .location();
    let path = loc
        .strip_prefix(&proxy.default_publish())
        .unwrap()
        .to_string();

    // No Accept-Encoding, an explicit identity-only one, or gzip and deflate refused with a
    // capital `Q` (parameter names are case-insensitive): plain HTML each time.
    for accept in [None, Some("identity"), Some("gzip;Q=0, deflate; Q=0.0")] {
        let mut req = client()
            .get(proxy.url(&path))
            .insert_header(("Accept", "text/html"));
        if let Some(a) = accept {
            req = req.insert_header(("Accept-Encoding", a));
        }
        let res = send(req).await;
        assert_eq!(res.status, 200);
        assert_eq!(
            res.header("content-encoding"),
            None,
            "Accept-Encoding {accept:?} got an encoded body"
        );
        let html = String::from_utf8(res.body).expect("plain text HTML");
        assert!(html.contains(&publish_ory), "{html}");
        assert!(!html.contains(ory.url()), "{html}");
    }
}

//! The demo (`cargo run --example demo`) serves a signed-in page: its pieces are started as the
//! example starts them, and an HTTP client walks Ory's real browser flows through the proxy,
//! the way a browser would (303s, CSRF cookie and token, session cookie).

use std::collections::BTreeMap;

use awc::http::StatusCode;
use ory_emulator::demo_app::{DemoOptions, DemoStack};
use ory_emulator::{DEMO_EMAIL, DEMO_PASSWORD};

/// A client that shows redirects instead of following them.
fn client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(std::time::Duration::from_secs(20))
        .finish()
}

fn start() -> DemoStack {
    DemoStack::start(DemoOptions {
        port: Some(0),
        publish_url: None,
    })
    .expect("the demo starts")
}

/// A browser's cookie jar for one host, plus the raw `Set-Cookie` lines it received.
#[derive(Default)]
struct Jar {
    cookies: BTreeMap<String, String>,
    set_cookie_lines: Vec<String>,
}

impl Jar {
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store<S>(&mut self, res: &awc::ClientResponse<S>) {
        for line in res.headers().get_all("set-cookie") {
            let line = line.to_str().unwrap().to_owned();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = line.to_ascii_lowercase().contains("max-age=0");
            if expired || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
            self.set_cookie_lines.push(line);
        }
    }
}

/// A page or a redirect, as a browser sees it.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

async fn get(jar: &mut Jar, url: &str) -> Answer {
    let mut res = client()
        .get(url)
        .insert_header(("Cookie", jar.header()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    answer(jar, &mut res).await
}

/// GET as a browser navigating: `Accept: text/html…`, which the proxy answers with redirects
/// where a program gets JSON errors.
async fn navigate(jar: &mut Jar, url: &str) -> Answer {
    let mut res = client()
        .get(url)
        .insert_header(("Cookie", jar.header()))
        .insert_header(("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    answer(jar, &mut res).await
}

/// Follows 303s (relative ones on the demo's URL) from `url` until a page; returns the URLs
/// visited, the last one the page's.
async fn follow(jar: &mut Jar, demo: &DemoStack, url: &str) -> (Vec<String>, Answer) {
    let mut visited = vec![url.to_owned()];
    for _ in 0..10 {
        let at = visited.last().unwrap().clone();
        let answer = navigate(jar, &at).await;
        match (answer.status, &answer.location) {
            (StatusCode::SEE_OTHER, Some(next)) => {
                let next = if next.starts_with('/') {
                    format!("{}{next}", demo.url())
                } else {
                    next.clone()
                };
                visited.push(next);
            }
            _ => return (visited, answer),
        }
    }
    panic!("a redirect loop: {visited:?}");
}

async fn post_form(jar: &mut Jar, url: &str, form: &[(&str, &str)]) -> Answer {
    let mut res = client()
        .post(url)
        .insert_header(("Cookie", jar.header()))
        .send_form(&form)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    answer(jar, &mut res).await
}

async fn answer(
    jar: &mut Jar,
    res: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Answer {
    jar.store(res);
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.body().limit(1 << 20).await.unwrap();
    Answer {
        status: res.status(),
        location,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// The value of attribute `attr` of the element with `id="<id>"`, HTML entities of URLs undone.
fn attr(html: &str, id: &str, attr: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in {html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let needle = format!("{attr}=\"");
    let start = tag
        .find(&needle)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + needle.len();
    let end = start + tag[start..].find('"').unwrap();
    tag[start..end].replace("&amp;", "&")
}

/// Follows a link of the app page (relative or absolute) to an Ory flow's form.
async fn open_flow(jar: &mut Jar, demo: &DemoStack, href: &str) -> String {
    let url = if href.starts_with('/') {
        format!("{}{href}", demo.url())
    } else {
        href.to_owned()
    };
    let start = get(jar, &url).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let ui = start.location.expect("the flow redirects to the UI");
    assert!(
        ui.starts_with(&format!("{}/.ory/ui/", demo.url())),
        "Ory's UI is served through the proxy: {ui}"
    );
    let form = get(jar, &ui).await;
    assert_eq!(form.status, StatusCode::OK);
    form.body
}

/// Submits a flow's form with `fields` (plus its CSRF token); returns where it sends the browser.
async fn submit(jar: &mut Jar, form_page: &str, fields: &[(&str, &str)]) -> String {
    submit_method(jar, form_page, "password", fields).await
}

/// [`submit`] with another method (`totp` for the second factor).
async fn submit_method(
    jar: &mut Jar,
    form_page: &str,
    method: &str,
    fields: &[(&str, &str)],
) -> String {
    let action = attr(form_page, "flow", "action");
    let csrf = attr(form_page, "csrf_token", "value");
    let mut form = vec![("csrf_token", csrf.as_str()), ("method", method)];
    form.extend_from_slice(fields);
    let done = post_form(jar, &action, &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    done.location.expect("a redirect after the flow")
}

fn status_line(page: &str) -> &str {
    let start = page.find("id=\"status\"").expect("a status line");
    let end = start + page[start..].find("</p>").unwrap();
    &page[start..end]
}

#[actix_web::test]
async fn signed_in_page_shows_verified_claims_and_logout_signs_out() {
    let demo = start();
    let mut jar = Jar::default();

    let home = get(&mut jar, &format!("{}/", demo.url())).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        status_line(&home.body).contains("Signed out"),
        "{}",
        home.body
    );

    let login = attr(&home.body, "login", "href");
    let form = open_flow(&mut jar, &demo, &login).await;
    let back = submit(
        &mut jar,
        &form,
        &[("identifier", DEMO_EMAIL), ("password", DEMO_PASSWORD)],
    )
    .await;
    assert_eq!(back, format!("{}/", demo.url()), "return_to is the app");
    let session_cookie = jar
        .set_cookie_lines
        .iter()
        .find(|l| l.starts_with("ory_kratos_session="))
        .expect("a session cookie");
    assert!(
        !session_cookie.to_ascii_lowercase().contains("domain="),
        "host-only: {session_cookie}"
    );

    let page = get(&mut jar, &back).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        status_line(&page.body)
            .contains(&format!("Signed in as <strong id=\"email\">{DEMO_EMAIL}")),
        "{}",
        page.body
    );
    // The claims the app verified: issued by Ory (the emulator), for the demo identity.
    assert!(page
        .body
        .contains(&format!("id=\"claim-iss\">{}<", demo.emulator().url())));
    assert!(page
        .body
        .contains(&format!("id=\"claim-email\">{DEMO_EMAIL}<")));

    // Signed in, a new login goes straight back to the app: to return_to, or (without one)
    // from Ory's welcome page, which the proxy sends to PUBLISH_URL.
    let again = get(&mut jar, &format!("{}{login}", demo.url())).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location.as_deref(), Some(back.as_str()));
    let bare = get(
        &mut jar,
        &format!("{}/.ory/self-service/login/browser", demo.url()),
    )
    .await;
    assert_eq!(bare.status, StatusCode::SEE_OTHER);
    let welcome = bare.location.unwrap();
    assert!(welcome.trim_end_matches('/') == demo.url(), "{welcome}");

    let logout = attr(&page.body, "logout", "href");
    assert!(
        logout.starts_with(&format!("{}/.ory/self-service/logout?token=", demo.url())),
        "{logout}"
    );
    let out = get(&mut jar, &logout).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some(back.as_str()));
    assert!(!jar.cookies.contains_key("ory_kratos_session"));
    let home = get(&mut jar, &back).await;
    assert!(
        status_line(&home.body).contains("Signed out"),
        "{}",
        home.body
    );

    demo.stop().await.unwrap();
}

#[actix_web::test]
async fn registration_signs_the_new_user_in() {
    let demo = start();
    let mut jar = Jar::default();
    let home = get(&mut jar, &format!("{}/", demo.url())).await;
    let registration = attr(&home.body, "registration", "href");
    let form = open_flow(&mut jar, &demo, &registration).await;
    let back = submit(
        &mut jar,
        &form,
        &[
            ("traits.email", "new-user@example.org"),
            ("password", "a-long-enough-password"),
        ],
    )
    .await;
    let page = get(&mut jar, &back).await;
    assert!(
        page.body
            .contains("id=\"claim-email\">new-user@example.org<"),
        "{}",
        page.body
    );
    demo.stop().await.unwrap();
}

#[actix_web::test]
async fn the_app_refuses_a_token_the_proxy_did_not_sign() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let demo = start();
    let jwks: serde_json::Value = client()
        .get(format!("{}/.ory/jwks.json", demo.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    // Right kid, issuer and shape, but signed with another key: only the signature is wrong.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": demo.emulator().url(), "sub": "x", "iat": now, "nbf": now, "exp": now + 60,
        "session": {"identity": {"traits": {"email": "mallory@example.org"}}},
    });
    let forged = encode(
        &header,
        &claims,
        &EncodingKey::from_ec_der(&other.serialize_der()),
    )
    .unwrap();

    // Straight to the app: through the proxy, a client's Authorization never reaches it.
    let mut res = client()
        .get(format!("{}/", demo.app_url()))
        .insert_header(("Authorization", format!("Bearer {forged}")))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(status_line(&body).contains("Signed out"), "{body}");
    assert!(body.contains("Token refused: invalid token"), "{body}");
    assert!(!body.contains("mallory"), "{body}");
    demo.stop().await.unwrap();
}

/// The text of the element `id` (its first text, tags inside cut).
fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in {html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_owned()
}

/// The demo's access rules, walked as a browser walks them: `/account` sends a visitor
/// through Ory's sign-in and back to the URL first asked for; `/admin` then asks for the
/// second factor (a wrong code is refused) and comes back at `aal2`.
#[actix_web::test]
async fn protected_pages_go_through_sign_in_and_the_second_factor() {
    let demo = start();
    let mut jar = Jar::default();
    let home = navigate(&mut jar, &format!("{}/", demo.url())).await;
    assert_eq!(attr(&home.body, "account-link", "href"), "/account");
    assert_eq!(attr(&home.body, "admin-link", "href"), "/admin");

    // Signed out: /account?… leads to Ory's sign-in form.
    let account = format!("{}/account?tab=profile&from=%2Fhome", demo.url());
    let (visited, form) = follow(&mut jar, &demo, &account).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        visited
            .last()
            .unwrap()
            .starts_with(&format!("{}/.ory/ui/login?flow=", demo.url())),
        "{visited:?}"
    );
    let back = submit(
        &mut jar,
        &form.body,
        &[("identifier", DEMO_EMAIL), ("password", DEMO_PASSWORD)],
    )
    .await;
    assert_eq!(back, account, "back on the page first asked for");
    let page = navigate(&mut jar, &back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(text_of(&page.body, "email"), DEMO_EMAIL, "{}", page.body);
    assert_eq!(text_of(&page.body, "aal"), "aal1");
    assert_eq!(text_of(&page.body, "header-email"), DEMO_EMAIL);
    assert_eq!(
        text_of(&page.body, "asked"),
        "/account?tab=profile&amp;from=%2Fhome"
    );

    // aal1 on /admin: Ory's second-factor form.
    let admin = format!("{}/admin?section=keys", demo.url());
    let (visited, form) = follow(&mut jar, &demo, &admin).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        visited.iter().any(|u| u.contains("aal=aal2")),
        "{visited:?}"
    );
    assert!(form.body.contains("id=\"totp_code\""), "{}", form.body);
    let code = demo.emulator().second_factor_code().to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let again = submit_method(&mut jar, &form.body, "totp", &[("totp_code", wrong)]).await;
    let form = navigate(&mut jar, &again).await;
    assert!(
        form.body.contains("authentication code is invalid"),
        "{}",
        form.body
    );
    let back = submit_method(&mut jar, &form.body, "totp", &[("totp_code", &code)]).await;
    assert_eq!(back, admin, "back on the aal2 page first asked for");
    // At once: the proxy must not answer from an aal1 answer it remembered.
    let page = navigate(&mut jar, &back).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "{:?} {}",
        page.location,
        page.body
    );
    assert_eq!(text_of(&page.body, "aal"), "aal2", "{}", page.body);
    assert_eq!(text_of(&page.body, "email"), DEMO_EMAIL);
    demo.stop().await.unwrap();
}

//! The local Ory emulator's public API, exercised over real sockets with awc.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use ory_proxy::emulator::{Emulator, EmulatorConfig, DEMO_EMAIL, DEMO_PASSWORD};
use serde_json::{json, Value};

// ---------- helpers ----------

fn start() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator starts")
}

/// A client that shows redirects instead of following them.
fn client() -> awc::Client {
    awc::Client::builder().disable_redirects().finish()
}

fn set_cookies<S>(res: &awc::ClientResponse<S>) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `name=value` of the first `Set-Cookie` whose name starts with `prefix`.
fn cookie_pair(set_cookies: &[String], prefix: &str) -> String {
    set_cookies
        .iter()
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} cookie in {set_cookies:?}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn location<S>(res: &awc::ClientResponse<S>) -> String {
    res.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `value` attribute of the input with `id="<id>"` in the emulator's HTML.
fn input_value(html: &str, id: &str) -> String {
    let tag_start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no input {id} in {html}"));
    let rest = &html[tag_start..];
    let value_start = rest.find("value=\"").unwrap() + "value=\"".len();
    let value_end = rest[value_start..].find('"').unwrap();
    rest[value_start..value_start + value_end].to_owned()
}

async fn text(res: &mut awc::ClientResponse) -> String {
    String::from_utf8(res.body().await.unwrap().to_vec()).unwrap()
}

/// GET `url` with a `Cookie` header.
async fn get_with_cookie(http: &awc::Client, url: &str, cookie: &str) -> awc::ClientResponse {
    http.get(url)
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap()
}

async fn whoami_status(ory: &Emulator, cookie: &str) -> StatusCode {
    let url = format!("{}/sessions/whoami", ory.url());
    get_with_cookie(&client(), &url, cookie).await.status()
}

fn unauthorized_body() -> Value {
    json!({"error": {
        "code": 401,
        "status": "Unauthorized",
        "reason": "No valid session credentials found in the request.",
        "message": "The request could not be authorized"
    }})
}

// ---------- whoami ----------

#[actix_web::test]
async fn whoami_accepts_cookie_session_token_and_bearer() {
    let ory = start();
    let session = ory.create_session("alice@example.org");
    assert!(session.cookie.starts_with("ory_kratos_session=ory_st_"));
    let url = format!("{}/sessions/whoami", ory.url());
    let bearer = format!("Bearer {}", session.token);
    let credentials = [
        ("Cookie", session.cookie.as_str()),
        ("X-Session-Token", session.token.as_str()),
        ("Authorization", bearer.as_str()),
    ];
    for (name, value) in credentials {
        let mut res = client()
            .get(&url)
            .insert_header((name, value))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "credential in {name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], session.id.as_str());
        assert_eq!(body["active"], true);
        assert_eq!(body["expires_at"], session.expires_at.as_str());
        assert_eq!(body["authenticator_assurance_level"], "aal1");
        assert_eq!(body["authentication_methods"][0]["method"], "password");
        let identity = &body["identity"];
        assert_eq!(identity["id"], session.identity_id.as_str());
        assert_eq!(identity["schema_id"], "default");
        assert_eq!(identity["traits"]["email"], "alice@example.org");
        assert_eq!(identity["state"], "active");
        assert_eq!(
            identity["schema_url"],
            format!("{}/schemas/ZGVmYXVsdA", ory.url())
        );
        assert_eq!(
            identity["verifiable_addresses"][0]["value"],
            "alice@example.org"
        );
        assert_eq!(identity["recovery_addresses"][0]["via"], "email");
        assert!(body["devices"].is_array());
    }
    assert_eq!(ory.whoami_calls(), 3);
    // The same identity is reused for a second session.
    assert_eq!(
        ory.create_session("alice@example.org").identity_id,
        session.identity_id
    );
}

#[actix_web::test]
async fn whoami_answers_401_generic_error_without_a_valid_session() {
    let ory = start();
    let url = format!("{}/sessions/whoami", ory.url());

    let mut res = client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(res.json::<Value>().await.unwrap(), unauthorized_body());

    let mut res = client()
        .get(&url)
        .insert_header(("X-Session-Token", "ory_st_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap(), unauthorized_body());

    let session = ory.create_session("bob@example.org");
    assert_eq!(whoami_status(&ory, &session.cookie).await, StatusCode::OK);
    ory.expire_session(&session.token);
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ory.whoami_calls(), 4);
}

#[actix_web::test]
async fn expired_lifespan_session_is_401() {
    let ory = Emulator::start(EmulatorConfig {
        session_lifespan: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let session = ory.create_session("short@example.org");
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn whoami_failure_and_delay_can_be_injected() {
    let ory = start();
    let session = ory.create_session("carol@example.org");

    ory.set_whoami_failure(Some(503));
    let mut res = get_with_cookie(
        &client(),
        &format!("{}/sessions/whoami", ory.url()),
        session.cookie.as_str(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["status"], "Service Unavailable");

    ory.set_whoami_failure(None);
    assert_eq!(whoami_status(&ory, &session.cookie).await, StatusCode::OK);

    ory.set_whoami_delay(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(whoami_status(&ory, &session.cookie).await, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    ory.set_whoami_delay(Duration::ZERO);
    assert_eq!(ory.whoami_calls(), 3);
}

// ---------- login ----------

#[actix_web::test]
async fn login_through_the_html_form_with_csrf() {
    let ory = start();
    let base = ory.url().to_owned();
    let http = client();

    // 1. Start the flow: 303 to the UI and a CSRF cookie on the emulator's host.
    let res = http
        .get(format!(
            "{base}/self-service/login/browser?return_to=http%3A%2F%2Fapp.test%2Fafter"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let ui_url = location(&res);
    assert!(
        ui_url.starts_with(&format!("{base}/ui/login?flow=")),
        "{ui_url}"
    );
    let flow_id = ui_url.rsplit('=').next().unwrap().to_owned();
    let cookies = set_cookies(&res);
    let csrf_line = cookies
        .iter()
        .find(|c| c.starts_with("csrf_token_"))
        .unwrap();
    assert!(csrf_line.contains("; Path=/"), "{csrf_line}");
    assert!(csrf_line.contains("; Domain=127.0.0.1"), "{csrf_line}");
    assert!(csrf_line.contains("; HttpOnly"), "{csrf_line}");
    assert!(csrf_line.contains("SameSite=Lax"), "{csrf_line}");
    assert!(!csrf_line.contains("Secure"), "{csrf_line}");
    let csrf_cookie = cookie_pair(&cookies, "csrf_token_");
    assert!(csrf_cookie.starts_with(&format!("{}=", ory.csrf_cookie_name())));

    // 2. The UI renders the form with absolute URLs and stable ids.
    let mut res = get_with_cookie(&http, &ui_url, &csrf_cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    let html = text(&mut res).await;
    let action = format!("{base}/self-service/login?flow={flow_id}");
    assert!(html.contains(&format!("action=\"{action}\"")), "{html}");
    assert!(html.contains("method=\"POST\""));
    for id in ["identifier", "password", "submit", "csrf_token"] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "missing {id}: {html}"
        );
    }
    assert!(html.contains(&format!("href=\"{base}/ui/registration\"")));
    let csrf_token = input_value(&html, "csrf_token");

    // 3. The flow JSON has the loginFlow shape.
    let mut res = http
        .get(format!("{base}/self-service/login/flows?id={flow_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let flow: Value = res.json().await.unwrap();
    assert_eq!(flow["id"], flow_id.as_str());
    assert_eq!(flow["type"], "browser");
    assert_eq!(flow["return_to"], "http://app.test/after");
    assert_eq!(flow["ui"]["action"], action.as_str());
    assert_eq!(flow["ui"]["method"], "POST");
    let names: Vec<&str> = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["csrf_token", "identifier", "password", "method"]);
    assert_eq!(
        flow["ui"]["nodes"][0]["attributes"]["value"],
        csrf_token.as_str()
    );

    // 4. A wrong password sends the browser back to the form with the error in the flow.
    let res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .send_form(&[
            ("csrf_token", csrf_token.as_str()),
            ("identifier", DEMO_EMAIL),
            ("password", "wrong-password"),
            ("method", "password"),
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), ui_url);
    assert!(set_cookies(&res).is_empty());
    let mut res = get_with_cookie(&http, &ui_url, &csrf_cookie).await;
    let html = text(&mut res).await;
    assert!(
        html.contains("The provided credentials are invalid"),
        "{html}"
    );
    assert_eq!(input_value(&html, "identifier"), DEMO_EMAIL);
    let flow: Value = http
        .get(format!("{base}/self-service/login/flows?id={flow_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flow["ui"]["messages"][0]["id"], 4000006);
    assert_eq!(flow["ui"]["messages"][0]["type"], "error");

    // 5. The right password: session cookie and 303 to return_to.
    let res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .send_form(&[
            ("csrf_token", csrf_token.as_str()),
            ("identifier", DEMO_EMAIL),
            ("password", DEMO_PASSWORD),
            ("method", "password"),
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "http://app.test/after");
    let cookies = set_cookies(&res);
    let line = cookies
        .iter()
        .find(|c| c.starts_with("ory_kratos_session="))
        .unwrap();
    assert!(
        line.contains("; Path=/; Domain=127.0.0.1; Max-Age=86400; HttpOnly"),
        "{line}"
    );
    let session_cookie = cookie_pair(&cookies, "ory_kratos_session=");

    let mut res = get_with_cookie(
        &http,
        &format!("{base}/sessions/whoami"),
        session_cookie.as_str(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["identity"]["traits"]["email"], DEMO_EMAIL);

    // 6. The flow is used up, and the welcome page knows who is signed in.
    let res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .send_form(&[("csrf_token", csrf_token.as_str())])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let mut res = get_with_cookie(
        &http,
        &format!("{base}/ui/welcome"),
        session_cookie.as_str(),
    )
    .await;
    let html = text(&mut res).await;
    assert!(html.contains(DEMO_EMAIL), "{html}");
    assert!(
        html.contains(&format!("href=\"{base}/ui/logout\"")),
        "{html}"
    );
}

#[actix_web::test]
async fn login_rejects_a_missing_or_wrong_csrf_token() {
    let ory = start();
    let http = client();
    let res = http
        .get(format!("{}/self-service/login/browser", ory.url()))
        .send()
        .await
        .unwrap();
    let action = location(&res).replace("/ui/login?", "/self-service/login?");
    let csrf_cookie = cookie_pair(&set_cookies(&res), "csrf_token_");
    let csrf_token = csrf_cookie.split_once('=').unwrap().1.to_owned();
    let form = [
        ("identifier", DEMO_EMAIL),
        ("password", DEMO_PASSWORD),
        ("method", "password"),
    ];

    // No cookie at all.
    let mut res = http
        .post(&action)
        .send_form(&[
            ("csrf_token", csrf_token.as_str()),
            form[0],
            form[1],
            form[2],
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["id"], "security_csrf_violation");
    assert_eq!(body["error"]["code"], 403);

    // Cookie present, wrong token in the form.
    let res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .send_form(&[("csrf_token", "forged"), form[0], form[1], form[2]])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn login_with_json_answers_json() {
    let ory = start();
    let http = client();
    let mut res = http
        .get(format!("{}/self-service/login/browser", ory.url()))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csrf_cookie = cookie_pair(&set_cookies(&res), "csrf_token_");
    let flow: Value = res.json().await.unwrap();
    let action = flow["ui"]["action"].as_str().unwrap().to_owned();
    assert_eq!(
        action,
        format!(
            "{}/self-service/login?flow={}",
            ory.url(),
            flow["id"].as_str().unwrap()
        )
    );
    let csrf_token = flow["ui"]["nodes"][0]["attributes"]["value"]
        .as_str()
        .unwrap()
        .to_owned();

    // Wrong password: 400 with the flow and its message.
    let mut res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .insert_header(("Accept", "application/json"))
        .send_json(&json!({"method": "password", "identifier": DEMO_EMAIL,
                           "password": "nope", "csrf_token": csrf_token}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ui"]["messages"][0]["id"], 4000006);

    let mut res = http
        .post(&action)
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .insert_header(("Accept", "application/json"))
        .send_json(&json!({"method": "password", "identifier": DEMO_EMAIL,
                           "password": DEMO_PASSWORD, "csrf_token": csrf_token}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let session_cookie = cookie_pair(&set_cookies(&res), "ory_kratos_session=");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["session"]["identity"]["traits"]["email"], DEMO_EMAIL);
    assert!(body.get("session_token").is_none());

    // Already signed in: a new browser flow is refused (JSON) or skipped (browser).
    let res = get_with_cookie(
        &http,
        &format!("{}/self-service/login/browser", ory.url()),
        session_cookie.as_str(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{}/ui/welcome", ory.url()));
    let mut res = http
        .get(format!("{}/self-service/login/browser", ory.url()))
        .insert_header(("Cookie", session_cookie.as_str()))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["id"], "session_already_available");
}

#[actix_web::test]
async fn ui_without_a_known_flow_starts_one() {
    let ory = start();
    for (ui, start) in [
        ("/ui/login", "/self-service/login/browser"),
        (
            "/ui/login?flow=00000000-0000-0000-0000-000000000000",
            "/self-service/login/browser",
        ),
        ("/ui/registration", "/self-service/registration/browser"),
    ] {
        let res = client()
            .get(format!("{}{ui}", ory.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{ui}");
        assert_eq!(location(&res), format!("{}{start}", ory.url()));
    }
}

// ---------- registration ----------

#[actix_web::test]
async fn registration_validates_then_signs_in() {
    let ory = start();
    let base = ory.url().to_owned();
    let http = client();
    let res = http
        .get(format!("{base}/self-service/registration/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let ui_url = location(&res);
    assert!(ui_url.starts_with(&format!("{base}/ui/registration?flow=")));
    let flow_id = ui_url.rsplit('=').next().unwrap().to_owned();
    let csrf_cookie = cookie_pair(&set_cookies(&res), "csrf_token_");

    let mut res = get_with_cookie(&http, &ui_url, &csrf_cookie).await;
    let html = text(&mut res).await;
    let action = format!("{base}/self-service/registration?flow={flow_id}");
    assert!(html.contains(&format!("action=\"{action}\"")), "{html}");
    for id in ["traits.email", "password", "submit"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "missing {id}");
    }
    let csrf_token = input_value(&html, "csrf_token");
    let submit = |email: &'static str, password: &'static str| {
        http.post(&action)
            .insert_header(("Cookie", csrf_cookie.as_str()))
            .send_form(&[
                ("csrf_token", csrf_token.clone()),
                ("traits.email", email.to_owned()),
                ("password", password.to_owned()),
                ("method", "password".to_owned()),
            ])
    };

    // Too short a password: back to the form, message on the field.
    let res = submit("new@example.org", "short").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), ui_url);
    let flow: Value = http
        .get(format!(
            "{base}/self-service/registration/flows?id={flow_id}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password_node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "password")
        .unwrap();
    assert_eq!(password_node["messages"][0]["type"], "error");

    // Duplicate email.
    let res = submit(DEMO_EMAIL, "long-enough-password").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mut res = get_with_cookie(&http, &ui_url, &csrf_cookie).await;
    assert!(text(&mut res).await.contains("exists already"));

    // Success: signed in, 303 to the welcome page.
    let res = submit("new@example.org", "long-enough-password")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{base}/ui/welcome"));
    let session_cookie = cookie_pair(&set_cookies(&res), "ory_kratos_session=");
    let mut res = get_with_cookie(
        &http,
        &format!("{base}/sessions/whoami"),
        session_cookie.as_str(),
    )
    .await;
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["identity"]["traits"]["email"], "new@example.org");
}

#[actix_web::test]
async fn registered_identity_can_log_in_later() {
    let ory = start();
    assert!(ory
        .create_identity("eve@example.org", "eve-password-1")
        .is_some());
    assert!(ory
        .create_identity("eve@example.org", "other-password")
        .is_none());
    let http = client();
    let mut res = http
        .get(format!("{}/self-service/login/browser", ory.url()))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = cookie_pair(&set_cookies(&res), "csrf_token_");
    let flow: Value = res.json().await.unwrap();
    let res = http
        .post(flow["ui"]["action"].as_str().unwrap())
        .insert_header(("Cookie", csrf_cookie.as_str()))
        .send_form(&[
            (
                "csrf_token",
                flow["ui"]["nodes"][0]["attributes"]["value"]
                    .as_str()
                    .unwrap(),
            ),
            ("identifier", "EVE@example.org"),
            ("password", "eve-password-1"),
            ("method", "password"),
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{}/ui/welcome", ory.url()));
}

// ---------- logout ----------

#[actix_web::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let ory = start();
    let base = ory.url().to_owned();
    let http = client();
    let session = ory.create_session("dave@example.org");

    let res = http
        .get(format!("{base}/self-service/logout/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let mut res = get_with_cookie(
        &http,
        &format!("{base}/self-service/logout/browser"),
        session.cookie.as_str(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let flow: Value = res.json().await.unwrap();
    let token = flow["logout_token"].as_str().unwrap();
    let logout_url = flow["logout_url"].as_str().unwrap();
    assert_eq!(
        logout_url,
        format!("{base}/self-service/logout?token={token}")
    );

    let res = get_with_cookie(&http, logout_url, &session.cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{base}/ui/welcome"));
    let cookies = set_cookies(&res);
    assert_eq!(
        cookies,
        ["ory_kratos_session=; Path=/; Domain=127.0.0.1; Max-Age=0; \
          Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"]
    );
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::UNAUTHORIZED
    );

    // The token is single-use.
    let res = http.get(logout_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn api_logout_revokes_the_session_named_in_the_body() {
    let ory = start();
    let url = format!("{}/self-service/logout/api", ory.url());
    let http = client();
    let session = ory.create_session("gus@example.org");
    let logout = |body: String| {
        http.delete(&url)
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };

    let mut res = logout(json!({ "session_token": "ory_st_unknown" }).to_string())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["code"], 403);
    let res = logout("{}".into()).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "no token is an unknown token"
    );
    let res = logout("not json".into()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::OK,
        "refused logouts revoke nothing"
    );

    let body = json!({ "session_token": session.token }).to_string();
    let res = logout(body.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::UNAUTHORIZED
    );
    // Kratos answers 204 again for a token revoked before.
    let res = logout(body).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn logout_through_the_ui_honours_return_to() {
    let ory = start();
    let http = client();
    let session = ory.create_session("frank@example.org");
    let res = http
        .get(format!(
            "{}/ui/logout?return_to=http%3A%2F%2Fapp.test%2F",
            ory.url()
        ))
        .insert_header(("Cookie", session.cookie.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let logout_url = location(&res);
    assert!(logout_url.starts_with(&format!("{}/self-service/logout?token=", ory.url())));
    let res = http.get(&logout_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "http://app.test/");
    assert_eq!(
        whoami_status(&ory, &session.cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

// ---------- transport: gzip, TLS, recording, errors ----------

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[actix_web::test]
async fn answers_are_gzipped_when_asked() {
    let ory = start();
    let session = ory.create_session("gina@example.org");
    let url = format!("{}/sessions/whoami", ory.url());

    let mut res = client()
        .get(&url)
        .insert_header(("Cookie", session.cookie.as_str()))
        .insert_header(("Accept-Encoding", "br;q=1.0, gzip;q=0.8"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("content-encoding").unwrap(), "gzip");
    let body: Value = serde_json::from_str(&gunzip(&res.body().await.unwrap())).unwrap();
    assert_eq!(body["identity"]["traits"]["email"], "gina@example.org");

    // HTML too, and error bodies.
    let mut res = client()
        .get(format!("{}/ui/welcome", ory.url()))
        .insert_header(("Accept-Encoding", "gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("content-encoding").unwrap(), "gzip");
    assert!(gunzip(&res.body().await.unwrap()).contains("not signed in"));
    let mut res = client()
        .get(&url)
        .insert_header(("Accept-Encoding", "gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&gunzip(&res.body().await.unwrap())).unwrap();
    assert_eq!(body, unauthorized_body());

    // Not asked, or refused with q=0 (the parameter name in any case): plain.
    for accept in [None, Some("gzip;q=0"), Some("gzip;Q=0"), Some("identity")] {
        let mut req = client()
            .get(&url)
            .insert_header(("Cookie", session.cookie.as_str()));
        if let Some(accept) = accept {
            req = req.insert_header(("Accept-Encoding", accept));
        }
        let mut res = req.send().await.unwrap();
        assert!(
            res.headers().get("content-encoding").is_none(),
            "{accept:?}"
        );
        assert!(res.json::<Value>().await.is_ok());
    }
}

#[actix_web::test]
async fn gzip_can_be_turned_off() {
    let ory = Emulator::start(EmulatorConfig {
        gzip: false,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let res = client()
        .get(format!("{}/health/alive", ory.url()))
        .insert_header(("Accept-Encoding", "gzip"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none());
}

/// A test CA and a server certificate for 127.0.0.1/localhost signed by it.
fn test_pki() -> (
    rustls_pki_types::CertificateDer<'static>,
    Arc<rustls::ServerConfig>,
) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "emulator test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca_cert.der().clone(), Arc::new(server))
}

#[actix_web::test]
async fn serves_https_with_secure_cookies() {
    let (ca, tls) = test_pki();
    let ory = Emulator::start(EmulatorConfig {
        tls: Some(tls),
        ..EmulatorConfig::default()
    })
    .unwrap();
    assert_eq!(ory.url(), format!("https://{}", ory.addr()));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(client_config)))
        .disable_redirects()
        .finish();

    let session = ory.create_session("tls@example.org");
    let mut res = https
        .get(format!("{}/sessions/whoami", ory.url()))
        .insert_header(("Cookie", session.cookie.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["identity"]["traits"]["email"], "tls@example.org");

    let res = https
        .get(format!("{}/self-service/login/browser", ory.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with(&format!("{}/ui/login?flow=", ory.url())));
    let csrf_line = set_cookies(&res).remove(0);
    assert!(
        csrf_line.ends_with("; HttpOnly; Secure; SameSite=None"),
        "{csrf_line}"
    );
}

#[actix_web::test]
async fn configured_base_url_and_cookie_name_are_used() {
    let ory = Emulator::start(EmulatorConfig {
        base_url: Some("http://ory.example.test:4433/".to_owned()),
        session_cookie_name: "ory_session_playfulsnyder".to_owned(),
        secure_cookies: true,
        ..EmulatorConfig::default()
    })
    .unwrap();
    assert_eq!(ory.url(), "http://ory.example.test:4433");
    let session = ory.create_session("h@example.org");
    assert!(session
        .cookie
        .starts_with("ory_session_playfulsnyder=ory_st_"));

    let direct = format!("http://{}", ory.addr());
    let res = client()
        .get(format!("{direct}/self-service/registration/browser"))
        .send()
        .await
        .unwrap();
    assert!(location(&res).starts_with("http://ory.example.test:4433/ui/registration?flow="));
    let csrf_line = set_cookies(&res).remove(0);
    assert!(
        csrf_line.contains("; Domain=ory.example.test;"),
        "{csrf_line}"
    );
    assert!(
        csrf_line.ends_with("; Secure; SameSite=None"),
        "{csrf_line}"
    );
    assert_eq!(
        client()
            .get(format!("{direct}/sessions/whoami"))
            .insert_header(("Cookie", session.cookie.as_str()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn every_request_is_recorded_raw() {
    let ory = start();
    client()
        .get(format!("{}/some%2Fpath/?a=b%20c&a=d", ory.url()))
        .insert_header(("X-Custom", "one"))
        .send()
        .await
        .unwrap();
    client()
        .post(format!("{}/health/alive", ory.url()))
        .send_body("x")
        .await
        .unwrap();
    let requests = ory.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path_and_query, "/some%2Fpath/?a=b%20c&a=d");
    assert_eq!(requests[0].header("x-custom"), Some("one"));
    assert_eq!(requests[0].header("X-CUSTOM"), Some("one"));
    assert_eq!(requests[0].header("missing"), None);
    assert_eq!(requests[1].method, "POST");

    ory.clear_requests();
    ory.set_recording(false);
    client()
        .get(format!("{}/health/ready", ory.url()))
        .send()
        .await
        .unwrap();
    assert!(ory.requests().is_empty());
}

#[actix_web::test]
async fn bad_input_gets_generic_errors_not_panics() {
    let ory = start();
    let base = ory.url().to_owned();
    let http = client();
    let cases: Vec<(awc::ClientRequest, Option<&str>, StatusCode)> = vec![
        (
            http.get(format!("{base}/nope")),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            http.post(format!("{base}/sessions/whoami")),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            http.post(format!("{base}/self-service/login")),
            Some("a=b"),
            StatusCode::BAD_REQUEST,
        ),
        (
            http.post(format!("{base}/self-service/login?flow=unknown")),
            Some("a=b"),
            StatusCode::NOT_FOUND,
        ),
        (
            http.get(format!("{base}/self-service/login/flows")),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            http.get(format!("{base}/self-service/registration/flows?id=%ZZ")),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            http.get(format!("{base}/self-service/logout")),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            http.get(format!("{base}/self-service/logout?token=bogus")),
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (req, body, expected) in cases {
        let what = format!("{} {}", req.get_method(), req.get_uri());
        let mut res = match body {
            Some(body) => req
                .content_type("application/x-www-form-urlencoded")
                .send_body(body.to_owned())
                .await
                .unwrap(),
            None => req.send().await.unwrap(),
        };
        assert_eq!(res.status(), expected, "{what}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(json["error"]["code"], expected.as_u16(), "{what}");
        assert!(json["error"]["message"].is_string(), "{what}");
    }

    // Malformed JSON and an unknown content type on a real flow.
    let mut res = http
        .get(format!("{base}/self-service/login/browser"))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .unwrap();
    let flow: Value = res.json().await.unwrap();
    let action = flow["ui"]["action"].as_str().unwrap();
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1]"),
        ("text/plain", "x"),
    ] {
        let res = http
            .post(action)
            .content_type(content_type)
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{content_type} {body}"
        );
    }

    // Health still answers.
    let mut res = http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

// ---------- lifecycle ----------

#[test]
fn emulator_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Emulator>();
}

/// One HTTP/1.1 request over a plain socket, for tests without an async runtime.
fn raw_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn works_from_plain_sync_code_and_stops() {
    let ory = start();
    let addr = ory.addr();
    let answer = raw_get(addr, "/health/alive").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");
    ory.stop();

    // The listener is gone: connecting fails (poll briefly; the OS may need a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match raw_get(addr, "/health/alive") {
            Err(_) => break,
            Ok(answer) if answer.is_empty() => break,
            Ok(_) => assert!(Instant::now() < deadline, "still serving after stop"),
        }
    }
}

#[tokio::test]
async fn works_under_a_tokio_runtime() {
    let ory = start();
    let session = ory.create_session("tokio@example.org");
    let addr = ory.addr();
    let cookie = session.cookie.clone();
    // awc needs actix' local runtime, so talk raw HTTP from a blocking task instead.
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr)?;
        write!(
            stream,
            "GET /sessions/whoami HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        stream.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("tokio@example.org"));
    drop(ory);
}

#[actix_web::test]
async fn a_long_run_keeps_a_bounded_record_and_one_logout_token_per_session() {
    use ory_proxy::emulator::REQUEST_LOG_WINDOW;
    let ory = start();
    let http = client();
    let session = ory.create_session("long@example.org");
    let logout_browser = format!("{}/self-service/logout/browser", ory.url());
    let mut token = None;
    // What a demo's signed-in page does on every view: whoami and a logout URL.
    let views = REQUEST_LOG_WINDOW;
    for i in 0..views {
        let res = http
            .get(format!("{}/sessions/whoami?view={i}", ory.url()))
            .insert_header(("Cookie", session.cookie.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut res = get_with_cookie(&http, &logout_browser, &session.cookie).await;
        let flow: Value = res.json().await.unwrap();
        let t = flow["logout_token"].as_str().unwrap().to_owned();
        assert_eq!(
            token.get_or_insert(t.clone()),
            &t,
            "a new logout token per view"
        );
    }
    let requests = ory.requests();
    assert_eq!(
        requests.len(),
        REQUEST_LOG_WINDOW,
        "the record is a bounded window"
    );
    let last = &requests[REQUEST_LOG_WINDOW - 1];
    assert_eq!(last.path_and_query, "/self-service/logout/browser");
    let before_last = &requests[REQUEST_LOG_WINDOW - 2];
    assert_eq!(
        before_last.path_and_query,
        format!("/sessions/whoami?view={}", views - 1)
    );
}

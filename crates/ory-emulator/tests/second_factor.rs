//! The second factor and Kratos' `aal2` step-up, and the `return_to` allow list, over real
//! sockets with awc: what a proxy protecting `aal2` pages sends browsers through.

use awc::http::StatusCode;
use ory_emulator::{Emulator, EmulatorConfig, TestSession, DEMO_EMAIL};
use serde_json::{json, Value};

const CODE: &str = "424242";
const APP: &str = "http://app.test";

// ---------- helpers ----------

/// An emulator with a known code that lets flows return to [`APP`] only.
fn start() -> Emulator {
    Emulator::start(EmulatorConfig {
        second_factor_code: Some(CODE.to_owned()),
        allowed_return_urls: Some(vec![format!("{APP}/")]),
        ..EmulatorConfig::default()
    })
    .expect("emulator starts")
}

/// A client that shows redirects instead of following them.
fn client() -> awc::Client {
    awc::Client::builder().disable_redirects().finish()
}

fn header(res: &awc::ClientResponse<impl Sized>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn set_cookies<S>(res: &awc::ClientResponse<S>) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `name=value` of the first `Set-Cookie` whose name starts with `prefix`, if any.
fn cookie_pair(set_cookies: &[String], prefix: &str) -> Option<String> {
    set_cookies
        .iter()
        .find(|c| c.starts_with(prefix))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// The `value` attribute of the element with `id="<id>"`.
fn input_value(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no input {id} in {html}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").unwrap() + "value=\"".len();
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

async fn get(
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Vec<String>, String) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send().await.unwrap();
    let body = res.body().await.unwrap();
    (
        res.status(),
        header(&res, "location"),
        set_cookies(&res),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn whoami(ory: &Emulator, s: &TestSession) -> Value {
    let (status, _, _, body) = get(
        &format!("{}/sessions/whoami", ory.url()),
        &[("Cookie", &s.cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn flow_json(ory: &Emulator, id: &str) -> Value {
    let (status, _, _, body) = get(
        &format!("{}/self-service/login/flows?id={id}", ory.url()),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn step_up_url(ory: &Emulator, return_to: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("aal", "aal2")
        .append_pair("return_to", return_to)
        .finish();
    format!("{}/self-service/login/browser?{q}", ory.url())
}

fn error_id(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]["id"].clone()
}

/// Submits the code form of flow `flow_id`; returns status, Location and Set-Cookie lines.
async fn post_code(
    ory: &Emulator,
    flow_id: &str,
    cookies: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Option<String>, Vec<String>) {
    let res = client()
        .post(format!("{}/self-service/login?flow={flow_id}", ory.url()))
        .insert_header(("Cookie", cookies))
        .send_form(&fields)
        .await
        .unwrap();
    (res.status(), header(&res, "location"), set_cookies(&res))
}

// ---------- the step-up ----------

#[actix_web::test]
async fn a_browser_steps_up_to_aal2_with_the_code_and_returns() {
    let ory = start();
    let session = ory.create_session(DEMO_EMAIL);
    // Kratos' default for whoami here: the aal1 session is an answer, not a 403.
    let before = whoami(&ory, &session).await;
    assert_eq!(before["authenticator_assurance_level"], "aal1");
    assert_eq!(
        before["authentication_methods"].as_array().unwrap().len(),
        1
    );

    // 1. The step-up starts a flow for the signed-in browser.
    let return_to = format!("{APP}/admin/keys?view=all&q=%2F");
    let (status, location, cookies, _) = get(
        &step_up_url(&ory, &return_to),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let ui = location.unwrap();
    assert!(
        ui.starts_with(&format!("{}/ui/login?flow=", ory.url())),
        "{ui}"
    );
    let flow_id = ui.rsplit('=').next().unwrap().to_owned();
    let csrf = cookie_pair(&cookies, "csrf_token_").expect("a CSRF cookie");
    let jar = format!("{}; {csrf}", session.cookie);

    // 2. Kratos' loginFlow for aal2: the TOTP nodes, no password.
    let flow = flow_json(&ory, &flow_id).await;
    assert_eq!(flow["requested_aal"], "aal2");
    assert_eq!(flow["return_to"], return_to.as_str());
    assert_eq!(flow["ui"]["messages"][0]["id"], 1010004);
    let nodes = flow["ui"]["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["csrf_token", "totp_code", "method"]);
    assert_eq!(nodes[1]["group"], "totp");
    assert_eq!(nodes[1]["attributes"]["type"], "text");
    assert_eq!(nodes[1]["meta"]["label"]["id"], 1010006);
    assert_eq!(nodes[2]["attributes"]["value"], "totp");

    // 3. The UI asks for the code.
    let (status, _, _, html) = get(&ui, &[("Cookie", &jar)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"totp_code\""), "{html}");
    assert!(html.contains("value=\"totp\""), "{html}");
    assert!(!html.contains("id=\"password\""), "{html}");
    let token = input_value(&html, "csrf_token");

    // 4. A wrong code shows the form again with Kratos' error; the session stays aal1.
    let wrong = [
        ("csrf_token", token.as_str()),
        ("method", "totp"),
        ("totp_code", "000000"),
    ];
    let (status, location, cookies) = post_code(&ory, &flow_id, &jar, &wrong).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(ui.as_str()));
    assert!(cookies.is_empty(), "{cookies:?}");
    let flow = flow_json(&ory, &flow_id).await;
    assert_eq!(flow["ui"]["messages"][0]["id"], 4000008, "{flow}");
    assert_eq!(flow["active"], "totp");
    let (_, _, _, html) = get(&ui, &[("Cookie", &jar)]).await;
    assert!(html.contains("authentication code is invalid"), "{html}");
    assert!(
        !html.contains("000000"),
        "the code is not shown again: {html}"
    );
    assert_eq!(
        whoami(&ory, &session).await["authenticator_assurance_level"],
        "aal1"
    );

    // 5. No code at all: a field error.
    let empty = [("csrf_token", token.as_str()), ("method", "totp")];
    let (status, _, _) = post_code(&ory, &flow_id, &jar, &empty).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let flow = flow_json(&ory, &flow_id).await;
    assert_eq!(
        flow["ui"]["nodes"][1]["messages"][0]["id"], 4000002,
        "{flow}"
    );

    // 6. The right code: back to return_to, the same session now aal2, its cookie sent again.
    let right = [
        ("csrf_token", token.as_str()),
        ("method", "totp"),
        ("totp_code", CODE),
    ];
    let (status, location, cookies) = post_code(&ory, &flow_id, &jar, &right).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(return_to.as_str()));
    assert_eq!(
        cookie_pair(&cookies, "ory_kratos_session="),
        Some(session.cookie.clone()),
        "Kratos upgrades in place and issues the same cookie again"
    );
    let after = whoami(&ory, &session).await;
    assert_eq!(after["id"], session.id.as_str());
    assert_eq!(after["authenticator_assurance_level"], "aal2");
    let methods: Vec<(&str, &str)> = after["authentication_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["method"].as_str().unwrap(), m["aal"].as_str().unwrap()))
        .collect();
    assert_eq!(methods, [("password", "aal1"), ("totp", "aal2")]);

    // 7. The flow is used up; another step-up goes straight back; the welcome page says aal2.
    let (status, _, _) = post_code(&ory, &flow_id, &jar, &right).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, location, _, _) = get(
        &step_up_url(&ory, &return_to),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(return_to.as_str()));
    let (status, _, _, body) = get(
        &step_up_url(&ory, &return_to),
        &[("Cookie", &session.cookie), ("Accept", "application/json")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_id(&body), "session_already_available");
    let (_, _, _, html) = get(
        &format!("{}/ui/welcome", ory.url()),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert!(html.contains("<span id=\"aal\">aal2</span>"), "{html}");
}

#[actix_web::test]
async fn an_api_client_steps_up_with_json() {
    let ory = start();
    let session = ory.create_session("json@example.org");
    let (status, _, cookies, body) = get(
        &step_up_url(&ory, &format!("{APP}/x")),
        &[("Cookie", &session.cookie), ("Accept", "application/json")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let flow: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(flow["requested_aal"], "aal2");
    let flow_id = flow["id"].as_str().unwrap();
    let token = flow["ui"]["nodes"][0]["attributes"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let jar = format!(
        "{}; {}",
        session.cookie,
        cookie_pair(&cookies, "csrf_token_").unwrap()
    );
    let submit = |code: &'static str| {
        let jar = jar.clone();
        let token = token.clone();
        let url = format!("{}/self-service/login?flow={flow_id}", ory.url());
        async move {
            let mut res = client()
                .post(url)
                .insert_header(("Cookie", jar))
                .insert_header(("Accept", "application/json"))
                .send_json(&json!({"method": "totp", "totp_code": code, "csrf_token": token}))
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap();
            (res.status(), body)
        }
    };
    let (status, body) = submit("999999").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ui"]["messages"][0]["id"], 4000008, "{body}");
    let (status, body) = submit(CODE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["authenticator_assurance_level"], "aal2");
    assert_eq!(body["session"]["id"], session.id.as_str());
}

#[actix_web::test]
async fn the_step_up_needs_a_session_and_a_known_level() {
    let ory = start();
    let return_to = format!("{APP}/admin");
    for accept in ["text/html", "application/json"] {
        let (status, _, _, body) = get(&step_up_url(&ory, &return_to), &[("Accept", accept)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{accept}: {body}");
        assert_eq!(error_id(&body), "session_aal1_required");
    }
    let session = ory.create_session(DEMO_EMAIL);
    let (status, _, _, body) = get(
        &format!("{}/self-service/login/browser?aal=aal3", ory.url()),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("aal3"), "{body}");

    // A session revoked while its flow is open cannot be upgraded by it.
    let (_, location, cookies, _) = get(
        &step_up_url(&ory, &return_to),
        &[("Cookie", &session.cookie)],
    )
    .await;
    let flow_id = location.unwrap().rsplit('=').next().unwrap().to_owned();
    let csrf = cookie_pair(&cookies, "csrf_token_").unwrap();
    let token = flow_json(&ory, &flow_id).await["ui"]["nodes"][0]["attributes"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    ory.expire_session(&session.token);
    let jar = format!("{}; {csrf}", session.cookie);
    let fields = [
        ("csrf_token", token.as_str()),
        ("method", "totp"),
        ("totp_code", CODE),
    ];
    let (status, _, cookies) = post_code(&ory, &flow_id, &jar, &fields).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie_pair(&cookies, "ory_kratos_session=").is_none());
}

#[actix_web::test]
async fn the_code_is_six_digits_fixed_per_run_and_the_handle_can_upgrade() {
    let ory = Emulator::start(EmulatorConfig::default()).unwrap();
    let code = ory.second_factor_code().to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code:?}"
    );
    assert_eq!(ory.second_factor_code(), code, "fixed for the run");

    let session = ory.create_session("handle@example.org");
    assert!(ory.upgrade_session(&session.token));
    assert_eq!(
        whoami(&ory, &session).await["authenticator_assurance_level"],
        "aal2"
    );
    assert!(!ory.upgrade_session("ory_st_unknown"));
    ory.expire_session(&session.token);
    assert!(!ory.upgrade_session(&session.token));
}

// ---------- return_to ----------

#[actix_web::test]
async fn return_to_must_be_an_allowed_url() {
    let ory = start();
    let flows = ["login", "registration"];
    for flow in flows {
        let start = |return_to: &str| {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish();
            format!("{}/self-service/{flow}/browser?{q}", ory.url())
        };
        // Allowed: the app, and the emulator's own self-service URLs.
        for ok in [
            format!("{APP}/after?x=1"),
            format!("{}/self-service/login/browser", ory.url()),
        ] {
            let (status, location, _, body) = get(&start(&ok), &[]).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{flow} {ok}: {body}");
            assert!(location.unwrap().contains("/ui/"), "{flow} {ok}");
        }
        // Refused, for a browser too: an open redirect through Ory.
        for bad in [
            "http://evil.test/",
            "https://app.test/",
            "http://app.test.evil.test/",
            "/relative-to-ory",
            "//evil.test/x",
        ] {
            let (status, location, _, body) = get(&start(bad), &[("Accept", "text/html")]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{flow} {bad}: {body}");
            assert_eq!(location, None);
            assert_eq!(
                error_id(&body),
                "self_service_flow_return_to_forbidden",
                "{bad}"
            );
        }
    }

    // Signed in, the redirect straight back is checked as well.
    let session = ory.create_session(DEMO_EMAIL);
    let (status, location, _, body) = get(
        &format!(
            "{}/self-service/login/browser?return_to=http%3A%2F%2Fevil.test%2F",
            ory.url()
        ),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert_eq!(
        (status, location),
        (StatusCode::BAD_REQUEST, None),
        "{body}"
    );

    // The list can change at run time (the demo learns its URL once the proxy listens).
    ory.set_allowed_return_urls(Some(vec!["http://evil.test/".into()]));
    let (status, location, _, _) = get(
        &format!(
            "{}/self-service/login/browser?return_to=http%3A%2F%2Fevil.test%2F",
            ory.url()
        ),
        &[("Cookie", &session.cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("http://evil.test/"));
    ory.set_allowed_return_urls(None);
    let (status, _, _, _) = get(
        &format!(
            "{}/self-service/registration/browser?return_to=http%3A%2F%2Fanywhere.test%2F",
            ory.url()
        ),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "None accepts any return_to");
}

//! Route protection (README, "Protecting routes"), end to end: the real binary between the fake
//! app and a fake Ory whose sessions each test dictates (assurance level, email, verified
//! addresses), over real sockets.
//!
//! Every row of the decision table (public / optional / session / aal2 × no session, aal1,
//! aal2, email not allowed, Ory unavailable with nothing cached) is asked by a browser and by
//! an API client; then the path spellings that must not slip past a rule, the routes rules
//! never touch, identity headers and their spoofs, rule order and methods, live edits under
//! load, refused rule sets, and `no_jwt` with a rule that needs a session.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use awc::http::Method;
use serde_json::Value;

use common::{
    client, run_cli, send, with_headers, within, Answer, Conn, Echo, FakeApp, Proxy, NO_ORY,
};

/// The URL users open: another host than the one the tests connect to, so that `return_to`
/// must come from `PUBLISH_URL`, not from the request.
const PUBLISH: &str = "https://app.example.test";

/// What Chromium sends when it navigates.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// How long a reload may take to show.
const APPLY_DEADLINE: Duration = Duration::from_secs(5);

/// The rule set most tests run on: one rule per requirement, in file order.
const RULES: &str = r#"
[access]
default = "optional"
identity_headers = { "X-Forwarded-Email" = "identity.traits.email", "X-Forwarded-User" = "identity.id", "X-Auth-Email" = "identity.traits.email" }

[[access.rules]]
name = "public"
paths = ["/public", "/public/**"]
require = "public"

[[access.rules]]
name = "optional"
paths = ["/optional/**"]
require = "optional"

[[access.rules]]
name = "session"
paths = ["/session", "/session/**"]
require = "session"
allow_emails = ["*@example.org"]

[[access.rules]]
name = "admin"
paths = ["/admin", "/admin/**"]
require = "aal2"
allow_emails = ["*@example.org"]

[[access.rules]]
name = "members"
paths = ["/members/**"]
require = "session"
"#;

// ---------- a fake Ory with dictated sessions ----------

/// One session the fake Ory knows, by token.
#[derive(Debug, Clone)]
struct Who {
    aal: &'static str,
    email: String,
    /// `(address, verified)`.
    addresses: Vec<(String, bool)>,
}

impl Who {
    fn new(aal: &'static str, email: &str) -> Who {
        Who {
            aal,
            email: email.to_owned(),
            addresses: vec![(email.to_owned(), true)],
        }
    }
}

#[derive(Default)]
struct OryState {
    sessions: Mutex<HashMap<String, Who>>,
    whoami_calls: AtomicUsize,
    /// Other requests that reached Ory, by path.
    others: Mutex<Vec<String>>,
    /// Non-zero: whoami answers this status (Ory unavailable).
    failing: AtomicU16,
}

struct FakeOry {
    addr: SocketAddr,
    state: Arc<OryState>,
    system: actix_rt::System,
}

impl FakeOry {
    fn start() -> FakeOry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OryState::default());
        let st = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(st);
                let server = HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(data.clone())
                        .route("/sessions/whoami", web::get().to(whoami))
                        .default_service(web::to(other))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .unwrap()
                .run();
                tx.send(actix_rt::System::current()).unwrap();
                let _ = server.await;
            });
        });
        let system = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let ory = FakeOry {
            addr,
            state,
            system,
        };
        for (token, who) in standard_sessions() {
            ory.add(token, who);
        }
        ory
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn add(&self, token: &str, who: Who) {
        self.state
            .sessions
            .lock()
            .unwrap()
            .insert(token.to_owned(), who);
    }

    fn whoami_calls(&self) -> usize {
        self.state.whoami_calls.load(Ordering::SeqCst)
    }

    fn others(&self) -> Vec<String> {
        self.state.others.lock().unwrap().clone()
    }

    /// `Some(status)`: whoami answers it from now on; `None`: normal again.
    fn fail(&self, status: Option<u16>) {
        self.state
            .failing
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }
}

impl Drop for FakeOry {
    fn drop(&mut self) {
        self.system.stop();
    }
}

/// The sessions every fake Ory starts with.
fn standard_sessions() -> Vec<(&'static str, Who)> {
    vec![
        ("alice-aal1", Who::new("aal1", "alice@example.org")),
        ("alice-aal2", Who::new("aal2", "alice@example.org")),
        ("mallory-aal1", Who::new("aal1", "mallory@evil.test")),
        ("mallory-aal2", Who::new("aal2", "mallory@evil.test")),
    ]
}

/// The identity id the fake Ory gives the session of `token`.
fn identity_id(token: &str) -> String {
    format!("id-{token}")
}

/// The credential of a whoami request: `X-Session-Token`, a bearer token or the cookie.
fn credential(req: &HttpRequest) -> Option<String> {
    let h = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(t) = h(header::HeaderName::from_static("x-session-token")) {
        return Some(t);
    }
    if let Some(t) =
        h(header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
    {
        return Some(t);
    }
    h(header::COOKIE)?.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("ory_kratos_session=")
            .map(str::to_owned)
    })
}

fn session_json(token: &str, who: &Who) -> Value {
    let mut v: Value = serde_json::from_str(include_str!("data/session-example.json")).unwrap();
    v["id"] = format!("session-{token}").into();
    v["expires_at"] = "2999-01-01T00:00:00Z".into();
    v["authenticator_assurance_level"] = who.aal.into();
    let mut methods = vec![serde_json::json!({"method": "password", "aal": "aal1",
        "completed_at": "2026-11-26T09:25:37.931774Z"})];
    if who.aal == "aal2" {
        methods.push(serde_json::json!({"method": "totp", "aal": "aal2",
            "completed_at": "2026-11-26T09:26:00Z"}));
    }
    v["authentication_methods"] = methods.into();
    let identity = &mut v["identity"];
    identity["id"] = identity_id(token).into();
    identity["traits"]["email"] = who.email.clone().into();
    let addresses: Vec<Value> = who
        .addresses
        .iter()
        .map(|(value, verified)| {
            serde_json::json!({"id": format!("addr-{value}"), "value": value,
                "verified": verified, "via": "email",
                "status": if *verified { "completed" } else { "pending" },
                "created_at": "2026-11-20T12:00:00Z", "updated_at": "2026-11-20T12:05:00Z"})
        })
        .collect();
    identity["verifiable_addresses"] = addresses.into();
    v
}

async fn whoami(state: web::Data<OryState>, req: HttpRequest) -> HttpResponse {
    state.whoami_calls.fetch_add(1, Ordering::SeqCst);
    let failing = state.failing.load(Ordering::SeqCst);
    if failing != 0 {
        let status = actix_web::http::StatusCode::from_u16(failing).unwrap();
        return HttpResponse::build(status)
            .content_type("application/json")
            .body(format!(
                r#"{{"error":{{"code":{failing},"message":"unavailable"}}}}"#
            ));
    }
    // Ory with `required_aal = highest_available`: a session with a second factor is shown
    // only at aal2; below, whoami answers 403 `session_aal2_required`.
    if credential(&req).as_deref() == Some(HIDDEN_AAL1) {
        return HttpResponse::Forbidden().content_type("application/json").body(
            r#"{"error":{"id":"session_aal2_required","code":403,"status":"Forbidden","reason":"An active session was found but it does not fulfill the Authenticator Assurance Level, implying that the session must first be upgraded."},"redirect_browser_to":"http://ory.example/self-service/login/browser?aal=aal2"}"#,
        );
    }
    let who = credential(&req).and_then(|t| {
        let who = state.sessions.lock().unwrap().get(&t).cloned()?;
        Some((t, who))
    });
    match who {
        Some((token, who)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(session_json(&token, &who).to_string()),
        None => HttpResponse::Unauthorized().content_type("application/json").body(
            r#"{"error":{"code":401,"status":"Unauthorized","reason":"No valid session credentials found in the request."}}"#,
        ),
    }
}

async fn other(state: web::Data<OryState>, req: HttpRequest) -> HttpResponse {
    state.others.lock().unwrap().push(req.path().to_owned());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"fake":"ory"}"#)
}

/// A credential the fake Ory answers as Ory does whose whoami requires the highest available
/// level: 403 `session_aal2_required`.
const HIDDEN_AAL1: &str = "hidden-aal1";

// ---------- the stack and the questions ----------

struct Stack {
    ory: FakeOry,
    app: FakeApp,
    proxy: Proxy,
}

/// Fake Ory, fake app and the proxy with `access` as its `proxy.toml` (the rest by flags).
fn stack(access: &str) -> Stack {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .publish(PUBLISH)
        .toml(access)
        .start();
    Stack { ory, app, proxy }
}

/// A stack whose Ory cannot be reached at all.
fn stack_without_ory(access: &str) -> (FakeApp, Proxy) {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(NO_ORY)
        .publish(PUBLISH)
        .toml(access)
        .start();
    (app, proxy)
}

/// Who asks: a browser navigating, or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Browser,
    Api,
}

/// The credential sent, if any.
#[derive(Debug, Clone, Copy)]
enum Cred<'a> {
    None,
    Cookie(&'a str),
    Token(&'a str),
    Bearer(&'a str),
}

impl Cred<'_> {
    fn header(&self) -> Option<(&'static str, String)> {
        match self {
            Cred::None => None,
            Cred::Cookie(t) => Some(("Cookie", format!("ory_kratos_session={t}"))),
            Cred::Token(t) => Some(("X-Session-Token", t.to_string())),
            Cred::Bearer(t) => Some(("Authorization", format!("Bearer {t}"))),
        }
    }
}

/// `method path` through `proxy`, as `who`, with `cred` and `extra` headers.
async fn ask(
    proxy: &Proxy,
    method: Method,
    path: &str,
    who: Client,
    cred: Cred<'_>,
    extra: &[(&str, &str)],
) -> Answer {
    let accept = match who {
        Client::Browser => BROWSER_ACCEPT,
        Client::Api => "application/json",
    };
    let mut req = client()
        .request(method, proxy.url(path))
        .append_header(("Accept", accept));
    if let Some((name, value)) = cred.header() {
        req = req.append_header((name, value));
    }
    send(with_headers(req, extra)).await
}

/// What the decision table says should happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The app, with a JWT for a session of this level (`None`: anonymous, no Authorization).
    App(Option<&'static str>),
    /// 303 to the sign-in page with `return_to`.
    SignIn,
    /// 303 to Ory's step-up (`aal=aal2`) with `return_to`.
    StepUp,
    /// The proxy's JSON error with this status (and this id where the contract names one).
    Json(u16, Option<&'static str>),
    /// The proxy's HTML page with this status.
    Page(u16),
}

/// The claims of the JWT in an `Authorization: Bearer` value.
fn jwt_claims(authorization: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let token = authorization
        .strip_prefix("Bearer ")
        .ok_or_else(|| format!("not a bearer token: {authorization:?}"))?;
    let claims = token.split('.').nth(1).ok_or("not a JWT")?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&claims).map_err(|e| e.to_string())
}

/// The parameters of a `Location` that must lead to `/.ory/self-service/login/browser` on
/// `PUBLISH_URL` (absolute, or relative to it).
fn sign_in_query(location: &str) -> Result<HashMap<String, Vec<String>>, String> {
    let base = url::Url::parse(&format!("{PUBLISH}/")).unwrap();
    let url = base
        .join(location)
        .map_err(|e| format!("bad Location {location:?}: {e}"))?;
    let want = format!("{PUBLISH}/.ory/self-service/login/browser");
    let got = format!("{}{}", url.origin().ascii_serialization(), url.path());
    if got != want {
        return Err(format!("Location {location:?} is not {want}"));
    }
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url.query_pairs() {
        params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    Ok(params)
}

/// Checks that `return_to` is there once and is exactly `PUBLISH_URL` + `path`.
fn check_return_to(params: &HashMap<String, Vec<String>>, path: &str) -> Result<(), String> {
    let want = format!("{PUBLISH}{path}");
    match params.get("return_to").map(Vec::as_slice) {
        Some([one]) if *one == want => Ok(()),
        other => Err(format!("return_to {other:?}, want exactly {want:?}")),
    }
}

/// Checks the shape of the proxy's JSON error answers.
fn check_json_error(a: &Answer, status: u16, id: Option<&str>) -> Result<(), String> {
    let ct = a.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}, want JSON"));
    }
    let v: Value =
        serde_json::from_slice(&a.body).map_err(|e| format!("not JSON ({e}): {}", a.text()))?;
    let e = &v["error"];
    let reason = awc::http::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    let ok = e["code"] == status
        && e["status"] == reason
        && e["reason"].as_str().is_some_and(|r| !r.is_empty())
        && e["id"].as_str().is_some_and(|i| !i.is_empty())
        && id.is_none_or(|id| e["id"] == id);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "error body {v} is not {{\"error\":{{\"id\":{id:?},\"code\":{status},\"status\":{reason:?},\"reason\":…}}}}"
        ))
    }
}

fn check_retry_after(a: &Answer) -> Result<(), String> {
    match a.header("retry-after") {
        Some(v) if v.trim().parse::<u64>().is_ok() || v.contains("GMT") => Ok(()),
        other => Err(format!("Retry-After {other:?}")),
    }
}

/// Whether answer `a` to `path` is `want`; `sub` is the JWT subject expected with a session.
fn check(a: &Answer, path: &str, want: Want, sub: Option<&str>) -> Result<(), String> {
    let from_app = a.header("x-fake").as_deref() == Some("app");
    let status = a.status.as_u16();
    match want {
        Want::App(aal) => {
            if status != 200 || !from_app {
                return Err(format!("want the app, got {status}: {}", a.text()));
            }
            let echo: Echo = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
            let auth = echo.all("authorization");
            match (aal, auth.as_slice()) {
                (None, []) => Ok(()),
                (None, got) => Err(format!("anonymous, yet the app got Authorization {got:?}")),
                (Some(_), []) => Err("no JWT for the app".into()),
                (Some(aal), [one]) => {
                    let claims = jwt_claims(one)?;
                    let got = &claims["session"]["authenticator_assurance_level"];
                    if got != aal {
                        return Err(format!("JWT session aal {got}, want {aal}"));
                    }
                    match sub {
                        Some(sub) if claims["sub"] != sub => {
                            Err(format!("JWT sub {}, want {sub}", claims["sub"]))
                        }
                        _ => Ok(()),
                    }
                }
                (Some(_), many) => Err(format!("several Authorization headers: {many:?}")),
            }
        }
        Want::SignIn | Want::StepUp => {
            if status != 303 || from_app {
                return Err(format!(
                    "want a 303 from the proxy, got {status}: {}",
                    a.text()
                ));
            }
            let location = a.header("location").ok_or("a 303 without Location")?;
            let params = sign_in_query(&location)?;
            check_return_to(&params, path)?;
            let aal = params.get("aal").map(Vec::as_slice);
            match (want, aal) {
                (Want::StepUp, Some([one])) if one == "aal2" => Ok(()),
                (Want::SignIn, None) => Ok(()),
                (_, aal) => Err(format!("aal {aal:?} in {location}")),
            }
        }
        Want::Json(code, id) => {
            if status != code || from_app {
                return Err(format!(
                    "want {code} JSON from the proxy, got {status}: {}",
                    a.text()
                ));
            }
            check_json_error(a, code, id)?;
            if code == 503 {
                check_retry_after(a)?;
            }
            Ok(())
        }
        Want::Page(code) => {
            let ct = a.header("content-type").unwrap_or_default();
            if status != code || from_app || !ct.starts_with("text/html") || a.body.is_empty() {
                return Err(format!(
                    "want a {code} HTML page from the proxy, got {status} {ct:?}: {}",
                    a.text()
                ));
            }
            if code == 503 {
                check_retry_after(a)?;
            }
            Ok(())
        }
    }
}

/// One column of the table: a session (or none) and what browser and API client get.
struct Case<'a> {
    column: &'a str,
    cred: Cred<'a>,
    browser: Want,
    api: Want,
}

/// Asks `path` for every case, as a browser and as an API client; returns the mismatches.
async fn run_cases(s: &Proxy, app: &FakeApp, path: &str, cases: &[Case<'_>]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let sub = match case.cred {
            Cred::Cookie(t) | Cred::Token(t) | Cred::Bearer(t) => Some(identity_id(t)),
            Cred::None => None,
        };
        for (who, want) in [(Client::Browser, case.browser), (Client::Api, case.api)] {
            let seen_before = app.seen().len();
            let a = ask(s, Method::GET, path, who, case.cred, &[]).await;
            let reached = app.seen().len() > seen_before;
            let mut result = check(&a, path, want, sub.as_deref());
            if result.is_ok() && reached != matches!(want, Want::App(_)) {
                result = Err(format!("the app was reached: {reached}"));
            }
            if let Err(e) = result {
                failures.push(format!(
                    "{path} / {} / {who:?}: want {want:?}: {e}",
                    case.column
                ));
            }
        }
    }
    failures
}

fn assert_no_failures(what: &str, failures: Vec<String>, proxy: &Proxy) {
    assert!(
        failures.is_empty(),
        "{what}: {} mismatches:\n  {}\nproxy stderr (tail):\n{}",
        failures.len(),
        failures.join("\n  "),
        tail(&proxy.logs(), 15)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------- the decision table, row by row ----------

/// `public`: the app, with no lookup and no identity, whatever the session or Ory's state.
#[actix_web::test]
async fn table_public_row() {
    let s = stack(RULES);
    let path = "/public/x?q=1";
    let anon = Want::App(None);
    let cases = [
        Case {
            column: "no session",
            cred: Cred::None,
            browser: anon,
            api: anon,
        },
        Case {
            column: "aal1",
            cred: Cred::Cookie("alice-aal1"),
            browser: anon,
            api: anon,
        },
        Case {
            column: "aal2",
            cred: Cred::Cookie("alice-aal2"),
            browser: anon,
            api: anon,
        },
    ];
    let mut failures = run_cases(&s.proxy, &s.app, path, &cases).await;
    s.ory.fail(Some(503));
    let down = [Case {
        column: "Ory down",
        cred: Cred::Cookie("fresh-1"),
        browser: anon,
        api: anon,
    }];
    failures.extend(run_cases(&s.proxy, &s.app, path, &down).await);
    if s.ory.whoami_calls() != 0 {
        failures.push(format!(
            "{} whoami calls for a public route",
            s.ory.whoami_calls()
        ));
    }
    assert_no_failures("public", failures, &s.proxy);
}

/// `optional`: today's behaviour — anonymous without a session (or without Ory), a JWT with.
#[actix_web::test]
async fn table_optional_row() {
    let s = stack(RULES);
    for path in ["/optional/x?q=1", "/not-in-any-rule?q=1"] {
        let cases = [
            Case {
                column: "no session",
                cred: Cred::None,
                browser: Want::App(None),
                api: Want::App(None),
            },
            Case {
                column: "aal1",
                cred: Cred::Cookie("alice-aal1"),
                browser: Want::App(Some("aal1")),
                api: Want::App(Some("aal1")),
            },
            Case {
                column: "aal2",
                cred: Cred::Cookie("alice-aal2"),
                browser: Want::App(Some("aal2")),
                api: Want::App(Some("aal2")),
            },
        ];
        let failures = run_cases(&s.proxy, &s.app, path, &cases).await;
        assert_no_failures(path, failures, &s.proxy);
    }
    s.ory.fail(Some(503));
    let down = [Case {
        column: "Ory down",
        cred: Cred::Cookie("fresh-optional"),
        browser: Want::App(None),
        api: Want::App(None),
    }];
    let failures = run_cases(&s.proxy, &s.app, "/optional/x", &down).await;
    assert_no_failures("optional, Ory down", failures, &s.proxy);
}

/// `session`: sign in (browser) or 401 (API) without one; the app with one; 403 for an email
/// not allowed; 503 with Retry-After when Ory cannot say.
#[actix_web::test]
async fn a_session_ory_shows_only_at_aal2_goes_to_the_step_up_not_to_sign_in() {
    let s = stack(RULES);
    let step_up = [Case {
        column: "whoami 403 session_aal2_required",
        cred: Cred::Cookie(HIDDEN_AAL1),
        browser: Want::StepUp,
        api: Want::Json(403, Some("session_aal2_required")),
    }];
    let mut failures = run_cases(&s.proxy, &s.app, "/members/x?y=1", &step_up).await;
    failures.extend(run_cases(&s.proxy, &s.app, "/admin/x", &step_up).await);
    let anonymous = [Case {
        column: "optional route",
        cred: Cred::Cookie(HIDDEN_AAL1),
        browser: Want::App(None),
        api: Want::App(None),
    }];
    failures.extend(run_cases(&s.proxy, &s.app, "/optional/x", &anonymous).await);
    assert_no_failures("hidden aal1", failures, &s.proxy);
}

#[actix_web::test]
async fn table_session_row() {
    let s = stack(RULES);
    let path = "/session/reports?year=2026&q=%2Fx%20y";
    let cases = [
        Case {
            column: "no session",
            cred: Cred::None,
            browser: Want::SignIn,
            api: Want::Json(401, None),
        },
        Case {
            column: "unknown session",
            cred: Cred::Cookie("nobody"),
            browser: Want::SignIn,
            api: Want::Json(401, None),
        },
        Case {
            column: "aal1",
            cred: Cred::Cookie("alice-aal1"),
            browser: Want::App(Some("aal1")),
            api: Want::App(Some("aal1")),
        },
        Case {
            column: "aal2",
            cred: Cred::Cookie("alice-aal2"),
            browser: Want::App(Some("aal2")),
            api: Want::App(Some("aal2")),
        },
        Case {
            column: "email not allowed",
            cred: Cred::Cookie("mallory-aal1"),
            browser: Want::Page(403),
            api: Want::Json(403, None),
        },
        Case {
            column: "token instead of cookie",
            cred: Cred::Token("alice-aal1"),
            browser: Want::App(Some("aal1")),
            api: Want::App(Some("aal1")),
        },
    ];
    let mut failures = run_cases(&s.proxy, &s.app, path, &cases).await;
    s.ory.fail(Some(503));
    let down = [Case {
        column: "Ory down",
        cred: Cred::Cookie("fresh-session"),
        browser: Want::Page(503),
        api: Want::Json(503, None),
    }];
    failures.extend(run_cases(&s.proxy, &s.app, path, &down).await);
    s.ory.fail(Some(500));
    let broken = [Case {
        column: "Ory 500",
        cred: Cred::Bearer("fresh-session-2"),
        browser: Want::Page(503),
        api: Want::Json(503, None),
    }];
    failures.extend(run_cases(&s.proxy, &s.app, path, &broken).await);
    assert_no_failures("session", failures, &s.proxy);
}

/// `aal2`: as `session` without one; Ory's step-up (browser) or 403 `session_aal2_required`
/// (API) for aal1; the app for aal2; 403 for an email not allowed; 503 when Ory cannot say.
#[actix_web::test]
async fn table_aal2_row() {
    let s = stack(RULES);
    let path = "/admin/users?sort=name&page=2";
    let cases = [
        Case {
            column: "no session",
            cred: Cred::None,
            browser: Want::SignIn,
            api: Want::Json(401, None),
        },
        Case {
            column: "aal1",
            cred: Cred::Cookie("alice-aal1"),
            browser: Want::StepUp,
            api: Want::Json(403, Some("session_aal2_required")),
        },
        Case {
            column: "aal2",
            cred: Cred::Cookie("alice-aal2"),
            browser: Want::App(Some("aal2")),
            api: Want::App(Some("aal2")),
        },
        Case {
            column: "email not allowed",
            cred: Cred::Cookie("mallory-aal2"),
            browser: Want::Page(403),
            api: Want::Json(403, None),
        },
    ];
    let mut failures = run_cases(&s.proxy, &s.app, path, &cases).await;
    s.ory.fail(Some(503));
    let down = [Case {
        column: "Ory down",
        cred: Cred::Cookie("fresh-admin"),
        browser: Want::Page(503),
        api: Want::Json(503, None),
    }];
    failures.extend(run_cases(&s.proxy, &s.app, path, &down).await);
    assert_no_failures("aal2", failures, &s.proxy);
}

/// Ory not even reachable (connection refused): protected routes fail closed, the others go on
/// anonymous.
#[actix_web::test]
async fn fail_closed_when_ory_is_unreachable() {
    let (app, proxy) = stack_without_ory(RULES);
    let cred = Cred::Cookie("alice-aal2");
    let mut failures = Vec::new();
    for (path, browser, api) in [
        ("/session/x", Want::Page(503), Want::Json(503, None)),
        ("/admin/x", Want::Page(503), Want::Json(503, None)),
        ("/optional/x", Want::App(None), Want::App(None)),
        ("/public/x", Want::App(None), Want::App(None)),
    ] {
        let case = [Case {
            column: "Ory unreachable",
            cred,
            browser,
            api,
        }];
        failures.extend(run_cases(&proxy, &app, path, &case).await);
    }
    assert_no_failures("Ory unreachable", failures, &proxy);
}

/// A session Ory confirmed is used while cached: Ory going down later does not lock it out
/// (only "nothing cached" fails closed).
#[actix_web::test]
async fn a_cached_session_still_passes_while_ory_is_down() {
    let s = stack(&format!("[session]\ncache_ttl = \"1m\"\n{RULES}"));
    let a = ask(
        &s.proxy,
        Method::GET,
        "/session/x",
        Client::Api,
        Cred::Cookie("alice-aal1"),
        &[],
    )
    .await;
    check(&a, "/session/x", Want::App(Some("aal1")), None).unwrap();
    s.ory.fail(Some(503));
    let a = ask(
        &s.proxy,
        Method::GET,
        "/session/x",
        Client::Api,
        Cred::Cookie("alice-aal1"),
        &[],
    )
    .await;
    check(&a, "/session/x", Want::App(Some("aal1")), None)
        .unwrap_or_else(|e| panic!("cached session refused while Ory is down: {e}"));
}

// ---------- browsers, sign-in URLs, error shapes ----------

/// "Browser" = GET or HEAD whose Accept names text/html; everything else gets JSON.
#[actix_web::test]
async fn only_html_navigations_are_redirected() {
    let s = stack(RULES);
    let path = "/session/x";
    let cases: [(Method, &str, Want); 6] = [
        (Method::GET, BROWSER_ACCEPT, Want::SignIn),
        (Method::HEAD, BROWSER_ACCEPT, Want::SignIn),
        (
            Method::GET,
            "application/xhtml+xml, text/html;q=0.9",
            Want::SignIn,
        ),
        (Method::POST, BROWSER_ACCEPT, Want::Json(401, None)),
        (Method::GET, "*/*", Want::Json(401, None)),
        (Method::DELETE, "text/html", Want::Json(401, None)),
    ];
    let mut failures = Vec::new();
    for (method, accept, want) in cases {
        let req = client()
            .request(method.clone(), s.proxy.url(path))
            .append_header(("Accept", accept));
        let a = send(req).await;
        // HEAD has no body to check.
        let result = if method == Method::HEAD {
            match a.status.as_u16() {
                303 => a
                    .header("location")
                    .ok_or_else(|| "no Location".to_owned())
                    .and_then(|l| sign_in_query(&l))
                    .and_then(|p| check_return_to(&p, path)),
                other => Err(format!("HEAD got {other}")),
            }
        } else {
            check(&a, path, want, None)
        };
        if let Err(e) = result {
            failures.push(format!("{method} Accept: {accept}: want {want:?}: {e}"));
        }
    }
    assert_no_failures("browser detection", failures, &s.proxy);
}

/// `login_url` replaces Ory's sign-in page, `return_to` appended to its own query; the aal2
/// step-up stays Ory's.
#[actix_web::test]
async fn a_configured_login_url_gets_return_to() {
    let login = "https://auth.example.test/sign-in?ui=compact";
    let rules = RULES.replace(
        "default = \"optional\"",
        &format!("default = \"optional\"\nlogin_url = \"{login}\""),
    );
    let s = stack(&rules);
    let path = "/session/a%20b/c?x=%2F&y=1&y=2&z";
    let a = ask(
        &s.proxy,
        Method::GET,
        path,
        Client::Browser,
        Cred::None,
        &[],
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.text());
    let location = a.location();
    let url = url::Url::parse(&location).unwrap_or_else(|e| panic!("{location:?}: {e}"));
    assert_eq!(
        format!("{}{}", url.origin().ascii_serialization(), url.path()),
        "https://auth.example.test/sign-in",
        "{location}"
    );
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("ui".to_owned(), "compact".to_owned()),
            ("return_to".to_owned(), format!("{PUBLISH}{path}"))
        ],
        "{location}"
    );
    // aal1 on an aal2 rule: Ory's step-up, not the configured page.
    let path = "/admin/x?y=%2F";
    let a = ask(
        &s.proxy,
        Method::GET,
        path,
        Client::Browser,
        Cred::Cookie("alice-aal1"),
        &[],
    )
    .await;
    check(&a, path, Want::StepUp, None).unwrap();
}

/// `return_to` is the URL asked for on PUBLISH_URL: path and query as sent, whatever the Host.
#[actix_web::test]
async fn return_to_keeps_the_path_and_query_as_sent() {
    let s = stack(RULES);
    let mut failures = Vec::new();
    for path in [
        "/session",
        "/session/",
        "/session/a%2Fb?x=1",
        "/session/caf%C3%A9?q=a+b&r=%26&s=",
    ] {
        for host in ["localhost", "evil.example"] {
            let a = ask(
                &s.proxy,
                Method::GET,
                path,
                Client::Browser,
                Cred::None,
                &[("Host", host)],
            )
            .await;
            if let Err(e) = check(&a, path, Want::SignIn, None) {
                failures.push(format!("{path} (Host {host}): {e}"));
            }
        }
    }
    assert_no_failures("return_to", failures, &s.proxy);
}

/// The allow list matches verified addresses only, as a whole-string glob: `traits.email` is
/// what the user typed at sign-up, so an unverified claim to an allowed address is refused. The
/// 403 page does not echo what it refused unescaped.
#[actix_web::test]
async fn allow_emails_match_verified_addresses_only() {
    let s = stack(RULES);
    let mut verified = Who::new("aal1", "bob@other.test");
    verified.addresses = vec![
        ("bob@other.test".into(), false),
        ("bob@example.org".into(), true),
    ];
    let mut unverified = Who::new("aal1", "carol@other.test");
    unverified.addresses = vec![("carol@example.org".into(), false)];
    s.ory.add("bob", verified);
    s.ory.add("carol", unverified);
    // Signed up as someone on the allowed domain, never confirmed it.
    let mut claimed = Who::new("aal1", "dave@example.org");
    claimed.addresses = vec![("dave@example.org".into(), false)];
    s.ory.add("dave", claimed);
    s.ory
        .add("suffix", Who::new("aal1", "eve@example.org.evil.test"));
    s.ory.add(
        "html",
        Who::new("aal1", "<script>alert(1)</script>@evil.test"),
    );
    let mut failures = Vec::new();
    for (token, want) in [
        ("bob", Want::App(Some("aal1"))),
        ("carol", Want::Json(403, None)),
        ("dave", Want::Json(403, None)),
        ("suffix", Want::Json(403, None)),
        ("html", Want::Json(403, None)),
    ] {
        let a = ask(
            &s.proxy,
            Method::GET,
            "/session/x",
            Client::Api,
            Cred::Cookie(token),
            &[],
        )
        .await;
        if let Err(e) = check(&a, "/session/x", want, None) {
            failures.push(format!("{token}: {e}"));
        }
    }
    let page = ask(
        &s.proxy,
        Method::GET,
        "/session/x",
        Client::Browser,
        Cred::Cookie("html"),
        &[],
    )
    .await;
    if let Err(e) = check(&page, "/session/x", Want::Page(403), None) {
        failures.push(format!("html page: {e}"));
    }
    if page.text().contains("<script>alert(1)") {
        failures.push(format!("the 403 page echoes markup: {}", page.text()));
    }
    // A rule without a list lets any session in.
    let a = ask(
        &s.proxy,
        Method::GET,
        "/members/x",
        Client::Api,
        Cred::Cookie("mallory-aal1"),
        &[],
    )
    .await;
    if let Err(e) = check(&a, "/members/x", Want::App(Some("aal1")), None) {
        failures.push(format!("members: {e}"));
    }
    assert_no_failures("allow_emails", failures, &s.proxy);
}

// ---------- no bypass through path spelling ----------

/// One raw `GET` with exact path bytes (no client normalises them).
fn raw(proxy: &Proxy, path: &str, cookie: Option<&str>) -> common::RawResponse {
    let cookie = cookie.map(|t| format!("ory_kratos_session={t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c.as_str()));
    }
    Conn::new(proxy.addr())
        .get(path, &headers)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Each spelling an app reads as `/admin/...` meets the `/admin/**` rule (even behind a
/// `/public/**` rule listed first); when allowed, the app still gets the bytes sent.
#[actix_web::test]
async fn path_spellings_cannot_bypass_a_rule() {
    let s = stack(RULES);
    let spellings = [
        "/%61dmin/x",
        "//admin/x",
        "/admin/./x",
        "/public/../admin/x",
        "/admin%2Fx",
        "/admin;x=1/y",
        // Beyond the list: encoded dot segments and slashes, parameters on a dot segment
        // (Tomcat reads `..;` as `..`), bytes that are not UTF-8, a bad escape.
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E%2Fadmin/x",
        "/public/.%2e/admin/x",
        "/public/..;/admin/x",
        "/%2Fadmin/x",
        "/./admin/x",
        "/%ff/../admin/x",
        "/admin/%ff",
        "/admin/%zz",
        // As a WHATWG URL parser reads it (Node's `new URL`, Next.js, Hono): `\` is `/`, and
        // `//x/` names a host.
        "/x\\..\\admin/x",
        "//x/admin/x",
        "/admin\\",
        // Express, Koa, ASP.NET and IIS route without regard to case.
        "/ADMIN/x",
        "/Admin",
        "/%41dmin/x",
    ];
    let mut failures = Vec::new();
    for path in spellings {
        let anon = raw(&s.proxy, path, None);
        if anon.status != 401 || anon.header("x-fake").is_some() {
            failures.push(format!("{path} signed out: {} (want 401)", anon.status));
        }
        let aal1 = raw(&s.proxy, path, Some("alice-aal1"));
        if aal1.status != 403 || aal1.header("x-fake").is_some() {
            failures.push(format!(
                "{path} aal1: {} (want 403, the aal2 rule)",
                aal1.status
            ));
        }
        let ok = raw(&s.proxy, path, Some("alice-aal2"));
        match serde_json::from_slice::<Echo>(&ok.body) {
            Ok(echo) if ok.status == 200 && echo.path == path => {}
            Ok(echo) => failures.push(format!(
                "{path} aal2: {} and the app got {:?} (want 200 and the bytes sent)",
                ok.status, echo.path
            )),
            Err(_) => failures.push(format!(
                "{path} aal2: {} {}",
                ok.status,
                String::from_utf8_lossy(&ok.body)
            )),
        }
    }
    // Look-alikes that are not under /admin stay open.
    for path in [
        "/administrator/x",
        "/adminx",
        "/public/admin/x",
        "/x/admin/y",
    ] {
        let r = raw(&s.proxy, path, None);
        if r.status != 200 || r.header("x-fake").is_none() {
            failures.push(format!("{path}: {} (want the app)", r.status));
        }
    }
    assert_no_failures("path spellings", failures, &s.proxy);
}

/// The request head the proxy answers, read up to its blank line (a 101 keeps the connection
/// open, so reading to the end would wait).
fn raw_head(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::HTTP_DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A WebSocket upgrade (its own relay in the proxy) and an absolute-form request target meet
/// the rules like any request; the upgrade gets the identity headers, never the client's.
#[actix_web::test]
async fn websocket_upgrades_and_absolute_form_targets_meet_the_rules() {
    let rules = format!(
        "{RULES}\n[[access.rules]]\nname = \"ws\"\npaths = [\"/ws\"]\nrequire = \"session\"\n"
    );
    let s = stack(&rules);
    let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\nX-Forwarded-Email: spoof@evil.test\r\n\
                   X_Auth_Email: spoof@evil.test\r\n";
    let anon = raw_head(s.proxy.addr(), &format!("{upgrade}\r\n"));
    assert!(anon.starts_with("HTTP/1.1 401 "), "{anon}");
    assert!(s.app.seen().is_empty(), "the app saw {:?}", s.app.seen());
    let cookie = "Cookie: ory_kratos_session=alice-aal1\r\n";
    let signed_in = raw_head(s.proxy.addr(), &format!("{upgrade}{cookie}\r\n"));
    assert!(signed_in.starts_with("HTTP/1.1 101 "), "{signed_in}");
    let seen = s.app.seen();
    let head = seen
        .iter()
        .find(|e| e.path == "/ws")
        .expect("the app got the upgrade");
    assert_eq!(spelled(head, "x-forwarded-email"), ["alice@example.org"]);
    assert_eq!(spelled(head, "x-auth-email"), ["alice@example.org"]);

    let absolute = raw_head(
        s.proxy.addr(),
        "GET http://app.example.test/admin/x HTTP/1.1\r\nHost: app.example.test\r\n\
         Connection: close\r\n\r\n",
    );
    assert!(absolute.starts_with("HTTP/1.1 401 "), "{absolute}");
}

// ---------- what rules never touch ----------

/// `/.ory/*`, the JWKS, health and CORS preflights answer as always, even when every path
/// needs aal2.
#[actix_web::test]
async fn ory_routes_jwks_health_and_preflights_are_never_subject_to_rules() {
    let s = stack(
        r#"
[access]
default = "aal2"

[[access.rules]]
name = "everything"
paths = ["/**"]
require = "aal2"
"#,
    );
    let mut failures = Vec::new();
    for path in ["/.ory/jwks.json", "/.ory/proxy/jwks.json"] {
        let a = ask(&s.proxy, Method::GET, path, Client::Api, Cred::None, &[]).await;
        let keys = serde_json::from_slice::<Value>(&a.body)
            .ok()
            .map(|v| v["keys"].is_array());
        if a.status != 200 || keys != Some(true) {
            failures.push(format!("{path}: {} {}", a.status, a.text()));
        }
    }
    for path in ["/.ory/proxy/health/alive", "/.ory/proxy/health/ready"] {
        let a = ask(
            &s.proxy,
            Method::GET,
            path,
            Client::Browser,
            Cred::None,
            &[],
        )
        .await;
        if a.status != 200 {
            failures.push(format!("{path}: {} {}", a.status, a.text()));
        }
    }
    for (who, path) in [
        (
            Client::Browser,
            "/.ory/self-service/login/browser?return_to=%2Fx",
        ),
        (Client::Api, "/.ory/self-service/registration/flows?id=1"),
    ] {
        let a = ask(&s.proxy, Method::GET, path, who, Cred::None, &[]).await;
        if a.status != 200 || !a.text().contains("fake") {
            failures.push(format!(
                "{path} did not reach Ory: {} {}",
                a.status,
                a.text()
            ));
        }
    }
    let flows: Vec<String> = s
        .ory
        .others()
        .into_iter()
        .filter(|p| p.starts_with("/self-service/"))
        .collect();
    if flows.len() != 2 {
        failures.push(format!("Ory saw {flows:?}"));
    }
    let preflight = send(
        client()
            .request(Method::OPTIONS, s.proxy.url("/api/things"))
            .append_header(("Origin", PUBLISH))
            .append_header(("Access-Control-Request-Method", "POST")),
    )
    .await;
    if preflight.status != 204
        || preflight.header("access-control-allow-origin").as_deref() != Some(PUBLISH)
    {
        failures.push(format!(
            "preflight: {} {:?}",
            preflight.status, preflight.headers
        ));
    }
    // The rules are on: the same app path without a session is refused.
    let a = ask(
        &s.proxy,
        Method::GET,
        "/api/things",
        Client::Api,
        Cred::None,
        &[],
    )
    .await;
    if a.status != 401 {
        failures.push(format!("/api/things without a session: {}", a.status));
    }
    assert_no_failures("never subject to rules", failures, &s.proxy);
}

/// A `public` route makes no whoami call for any credential, and the app gets no
/// Authorization and no identity headers there.
#[actix_web::test]
async fn public_routes_make_no_whoami_call() {
    let s = stack(RULES);
    for cred in [
        Cred::Cookie("alice-aal2"),
        Cred::Token("alice-aal2"),
        Cred::Bearer("alice-aal2"),
    ] {
        for _ in 0..3 {
            let a = ask(
                &s.proxy,
                Method::GET,
                "/public/app.js",
                Client::Api,
                cred,
                &[],
            )
            .await;
            check(&a, "/public/app.js", Want::App(None), None)
                .unwrap_or_else(|e| panic!("{cred:?}: {e}"));
            let echo: Echo = serde_json::from_slice(&a.body).unwrap();
            assert!(
                echo.all("x-forwarded-email").is_empty(),
                "{cred:?}: {echo:?}"
            );
            assert!(
                echo.all("x-forwarded-user").is_empty(),
                "{cred:?}: {echo:?}"
            );
        }
    }
    assert_eq!(s.ory.whoami_calls(), 0, "public routes asked Ory");
    // The counter counts: the same cookie on an optional route is looked up.
    let a = ask(
        &s.proxy,
        Method::GET,
        "/optional/x",
        Client::Api,
        Cred::Cookie("alice-aal2"),
        &[],
    )
    .await;
    check(&a, "/optional/x", Want::App(Some("aal2")), None).unwrap();
    assert_eq!(s.ory.whoami_calls(), 1);
}

// ---------- identity headers ----------

/// Spellings of the identity headers a client (or a front proxy) may send: a server that
/// maps `_` or `.` to `-` (CGI, WSGI, some frameworks) would read them as the real thing.
/// `X-Auth-Email` is not an `X-Forwarded-*` name, which the proxy drops from untrusted peers
/// anyway.
const SPOOFS: [(&str, &str); 10] = [
    ("X-Forwarded-Email", "spoof@evil.test"),
    ("x-forwarded-email", "spoof2@evil.test"),
    ("X_Forwarded_Email", "spoof3@evil.test"),
    ("X.Forwarded.Email", "spoof4@evil.test"),
    ("X-Forwarded-User", "root"),
    ("X_FORWARDED_USER", "root"),
    ("X-Auth-Email", "spoof5@evil.test"),
    ("x_auth_email", "spoof6@evil.test"),
    ("X.Auth.Email", "spoof7@evil.test"),
    ("x_auth-email", "spoof8@evil.test"),
];

/// The identity header names of [`RULES`].
const IDENTITY_HEADERS: [&str; 3] = ["x-forwarded-email", "x-forwarded-user", "x-auth-email"];

/// Every value the app got under any spelling of `name` (`-`, `_`, `.` alike, any case).
fn spelled(echo: &Echo, name: &str) -> Vec<String> {
    let norm = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
    echo.headers
        .iter()
        .filter(|(n, _)| norm(n) == norm(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The values of each identity header (any spelling) the app got, spoofs sent along.
async fn identity_headers_seen(
    proxy: &Proxy,
    path: &str,
    cred: Cred<'_>,
) -> Result<Vec<Vec<String>>, String> {
    let a = ask(proxy, Method::GET, path, Client::Api, cred, &SPOOFS).await;
    if a.status != 200 {
        return Err(format!("{path} {cred:?}: {} {}", a.status, a.text()));
    }
    let echo: Echo = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
    Ok(IDENTITY_HEADERS.iter().map(|n| spelled(&echo, n)).collect())
}

/// Set from the session on app requests that have one; client-sent ones (any spelling) are
/// removed on every app request, signed in or not, public or not, even from a trusted proxy.
#[actix_web::test]
async fn identity_headers_are_the_sessions_and_spoofs_are_removed() {
    let trusted = format!("trusted_proxies = [\"127.0.0.0/8\"]\n{RULES}");
    let mut failures = Vec::new();
    for (label, rules) in [
        ("untrusted peer", RULES.to_owned()),
        ("trusted peer", trusted),
    ] {
        let s = stack(&rules);
        let email = vec!["alice@example.org".to_owned()];
        let alice = vec![email.clone(), vec![identity_id("alice-aal2")], email];
        let nothing = vec![Vec::<String>::new(); 3];
        for (path, cred, want) in [
            ("/optional/x", Cred::None, &nothing),
            ("/optional/x", Cred::Cookie("nobody"), &nothing),
            ("/optional/x", Cred::Cookie("alice-aal2"), &alice),
            ("/session/x", Cred::Cookie("alice-aal2"), &alice),
            ("/admin/x", Cred::Token("alice-aal2"), &alice),
            ("/public/x", Cred::Cookie("alice-aal2"), &nothing),
            ("/public/x", Cred::None, &nothing),
        ] {
            match identity_headers_seen(&s.proxy, path, cred).await {
                Ok(got) if got == *want => {}
                Ok(got) => failures.push(format!(
                    "{label} {path} {cred:?}: got {got:?}, want {want:?}"
                )),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
        // Ory down: the request goes on anonymous on an optional route, spoofs still removed.
        s.ory.fail(Some(503));
        match identity_headers_seen(&s.proxy, "/optional/y", Cred::Cookie("fresh")).await {
            Ok(got) if got == nothing => {}
            other => failures.push(format!("{label} Ory down: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A trait value with CR/LF cannot add a header: the request goes on, nothing injected.
#[actix_web::test]
async fn a_trait_with_cr_lf_cannot_inject_a_header() {
    let s = stack(RULES);
    s.ory
        .add("crlf", Who::new("aal1", "x@example.org\r\nX-Injected: 1"));
    s.ory
        .add("lf", Who::new("aal1", "y@example.org\nX-Injected: 2"));
    for token in ["crlf", "lf"] {
        let a = ask(
            &s.proxy,
            Method::GET,
            "/members/x",
            Client::Api,
            Cred::Cookie(token),
            &[],
        )
        .await;
        assert_eq!(a.status, 200, "{token}: {}", a.text());
        let echo: Echo = serde_json::from_slice(&a.body).unwrap();
        assert!(
            echo.all("x-injected").is_empty(),
            "{token}: injected: {echo:?}"
        );
        for v in echo.all("x-forwarded-email") {
            assert!(!v.contains(['\r', '\n']), "{token}: {v:?}");
        }
        assert_eq!(
            echo.all("x-forwarded-user"),
            [identity_id(token).as_str()],
            "{token}"
        );
    }
}

// ---------- rule order and methods ----------

/// First match wins, in file order.
#[actix_web::test]
async fn the_first_matching_rule_wins() {
    let specific_first = r#"
[access]
[[access.rules]]
name = "private docs"
paths = ["/docs/private/**"]
require = "session"

[[access.rules]]
name = "docs"
paths = ["/docs/**"]
require = "public"
"#;
    let general_first = r#"
[access]
[[access.rules]]
name = "docs"
paths = ["/docs/**"]
require = "public"

[[access.rules]]
name = "private docs"
paths = ["/docs/private/**"]
require = "session"
"#;
    let s = stack(specific_first);
    let a = ask(
        &s.proxy,
        Method::GET,
        "/docs/private/x",
        Client::Api,
        Cred::None,
        &[],
    )
    .await;
    check(&a, "/docs/private/x", Want::Json(401, None), None).unwrap();
    let a = ask(
        &s.proxy,
        Method::GET,
        "/docs/intro",
        Client::Api,
        Cred::Cookie("alice-aal1"),
        &[],
    )
    .await;
    check(&a, "/docs/intro", Want::App(None), None).unwrap();
    drop(s);

    let s = stack(general_first);
    let a = ask(
        &s.proxy,
        Method::GET,
        "/docs/private/x",
        Client::Api,
        Cred::None,
        &[],
    )
    .await;
    check(&a, "/docs/private/x", Want::App(None), None)
        .unwrap_or_else(|e| panic!("the public rule listed first must win: {e}"));
}

/// `methods` limits a rule; other methods fall through to the next rule or the default.
#[actix_web::test]
async fn a_rule_with_methods_applies_to_those_methods_only() {
    let s = stack(
        r#"
[access]
default = "public"

[[access.rules]]
name = "writes"
paths = ["/api/**"]
methods = ["POST", "DELETE"]
require = "session"

[[access.rules]]
name = "reads"
paths = ["/api/**"]
require = "optional"
"#,
    );
    let mut failures = Vec::new();
    for (method, cred, want) in [
        (Method::GET, Cred::None, Want::App(None)),
        (
            Method::GET,
            Cred::Cookie("alice-aal1"),
            Want::App(Some("aal1")),
        ),
        (Method::POST, Cred::None, Want::Json(401, None)),
        (Method::DELETE, Cred::None, Want::Json(401, None)),
        (
            Method::POST,
            Cred::Cookie("alice-aal1"),
            Want::App(Some("aal1")),
        ),
        (Method::PUT, Cred::None, Want::App(None)),
    ] {
        let a = ask(
            &s.proxy,
            method.clone(),
            "/api/items",
            Client::Api,
            cred,
            &[],
        )
        .await;
        if let Err(e) = check(&a, "/api/items", want, None) {
            failures.push(format!("{method} {cred:?}: want {want:?}: {e}"));
        }
    }
    // A request a framework would act on as another method (an override header in any
    // spelling, a `_method` query parameter) meets that method's rules too.
    for (path, extra) in [
        ("/api/items", &[("X-HTTP-Method-Override", "DELETE")][..]),
        ("/api/items", &[("x_http_method", "post")][..]),
        ("/api/items?_method=DELETE", &[][..]),
    ] {
        let a = ask(&s.proxy, Method::PUT, path, Client::Api, Cred::None, extra).await;
        if a.status != 401 {
            failures.push(format!("PUT {path} {extra:?}: {} instead of 401", a.status));
        }
    }
    // The default (public) for what no rule matches: no lookup.
    let calls = s.ory.whoami_calls();
    let a = ask(
        &s.proxy,
        Method::GET,
        "/elsewhere",
        Client::Api,
        Cred::Cookie("alice-aal1"),
        &[],
    )
    .await;
    if let Err(e) = check(&a, "/elsewhere", Want::App(None), None) {
        failures.push(format!("default: {e}"));
    }
    if s.ory.whoami_calls() != calls {
        failures.push("the public default asked Ory".into());
    }
    assert_no_failures("methods", failures, &s.proxy);
}

// ---------- live edits ----------

/// Writes `text` next to `path` and renames it over `path`, as editors and config managers do.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The two rule sets of the live edit: each answers `/a` and `/b` differently, and its
/// identity header has another name, so an answer made of half of each shows.
const LIVE_OLD: &str = r#"
[access]
identity_headers = { "X-Old-Email" = "identity.traits.email" }

[[access.rules]]
name = "a"
paths = ["/a/**"]
require = "session"

[[access.rules]]
name = "b"
paths = ["/b/**"]
require = "aal2"
"#;

const LIVE_NEW: &str = r#"
[access]
identity_headers = { "X-New-Email" = "identity.traits.email" }

[[access.rules]]
name = "a"
paths = ["/a/**"]
require = "aal2"

[[access.rules]]
name = "b"
paths = ["/b/**"]
require = "session"
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Old,
    New,
    Bad(String),
}

/// Which rule set an aal1 user's answer to `/a/x` or `/b/x` came from.
fn classify(path: &str, r: &std::io::Result<common::RawResponse>) -> Seen {
    let r = match r {
        Ok(r) => r,
        Err(e) => return Seen::Bad(format!("{path}: {e}")),
    };
    let echo = || serde_json::from_slice::<Echo>(&r.body).ok();
    let header_is = |e: &Echo, old: bool| {
        let (set, unset) = if old {
            ("x-old-email", "x-new-email")
        } else {
            ("x-new-email", "x-old-email")
        };
        e.all(set) == ["alice@example.org"] && e.all(unset).is_empty()
    };
    match (path, r.status) {
        ("/a/x", 200) if echo().is_some_and(|e| header_is(&e, true)) => Seen::Old,
        ("/b/x", 200) if echo().is_some_and(|e| header_is(&e, false)) => Seen::New,
        ("/a/x", 403) if r.header("x-fake").is_none() => Seen::New,
        ("/b/x", 403) if r.header("x-fake").is_none() => Seen::Old,
        (path, status) => Seen::Bad(format!(
            "{path}: {status} {}",
            String::from_utf8_lossy(&r.body)
        )),
    }
}

/// Clients keep asking while the rules are rewritten: no request fails, every answer is the
/// old rule set's or the new one's (never a mix), and once a client saw the new set it never
/// sees the old one again.
#[test]
fn a_live_rules_edit_under_load_has_no_failed_or_mixed_answers() {
    const CLIENTS: usize = 4;
    let s = stack(LIVE_OLD);
    let path = s.proxy.dir.join("proxy.toml");
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Vec<Seen>>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let addr = s.proxy.addr();
    let threads: Vec<_> = seen
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::new(addr);
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let p = if n % 2 == 0 { "/a/x" } else { "/b/x" };
                    n += 1;
                    let r = conn.get(p, &[("Cookie", "ory_kratos_session=alice-aal1")]);
                    log.lock().unwrap().push(classify(p, &r));
                }
            })
        })
        .collect();
    let count = |want: &Seen| -> Vec<usize> {
        seen.iter()
            .map(|l| l.lock().unwrap().iter().filter(|s| *s == want).count())
            .collect()
    };
    let warmed = within(Duration::from_secs(20), || {
        count(&Seen::Old).iter().all(|&n| n >= 20)
    });
    assert!(
        warmed.is_some(),
        "clients did not get going: {:?}",
        count(&Seen::Old)
    );
    replace_file(&path, LIVE_NEW);
    let switched = within(APPLY_DEADLINE, || {
        count(&Seen::New).iter().all(|&n| n >= 20)
    });
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let mut problems = Vec::new();
    for (i, log) in seen.iter().enumerate() {
        let log = log.lock().unwrap();
        let bad: Vec<&Seen> = log.iter().filter(|s| matches!(s, Seen::Bad(_))).collect();
        if !bad.is_empty() {
            problems.push(format!(
                "client {i}: {} bad answers, first {:?}",
                bad.len(),
                bad[0]
            ));
        }
        if let Some(first_new) = log.iter().position(|s| *s == Seen::New) {
            if let Some(back) = log[first_new..].iter().position(|s| *s == Seen::Old) {
                problems.push(format!(
                    "client {i}: old rules again {back} answers after the new ones"
                ));
            }
        }
    }
    assert!(
        problems.is_empty() && switched.is_some(),
        "switched: {switched:?}; old {:?}, new {:?}\n{}\nproxy stderr (tail):\n{}",
        count(&Seen::Old),
        count(&Seen::New),
        problems.join("\n"),
        tail(&s.proxy.logs(), 15)
    );
}

/// A rule set with one bad rule is refused whole: the rules running before stay, including
/// the good rules of the refused file; the next valid file applies.
#[actix_web::test]
async fn an_invalid_rule_set_is_refused_whole_at_reload() {
    let start = r#"
[access]
[[access.rules]]
name = "a"
paths = ["/a/**"]
require = "session"
"#;
    // Each makes /a public (the good part) and adds something invalid.
    let good_part = start.replace("require = \"session\"", "require = \"public\"");
    let invalid = [
        format!("{good_part}\n[[access.rules]]\npaths = [\"/b/**\"]\nrequire = \"aal3\"\n"),
        format!("{good_part}\n[[access.rules]]\npaths = [\"/b/**\"]\nrequire = \"session\"\nallow_email = [\"*@example.org\"]\n"),
        good_part.replace("[access]", "[access]\ndefault = \"sometimes\""),
    ];
    let s = stack(start);
    let path = s.proxy.dir.join("proxy.toml");
    let still_protected = || async {
        let a = ask(&s.proxy, Method::GET, "/a/x", Client::Api, Cred::None, &[]).await;
        check(&a, "/a/x", Want::Json(401, None), None)
    };
    still_protected().await.expect("the starting rules apply");
    for bad in &invalid {
        let mark = s.proxy.mark();
        replace_file(&path, bad);
        let line = s
            .proxy
            .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains(" ERROR "));
        assert!(
            line.is_some(),
            "no error logged for:\n{bad}\nstderr:\n{}",
            tail(&s.proxy.logs(), 15)
        );
        // Give a wrongly applied half a chance to show.
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        if let Err(e) = still_protected().await {
            panic!("after the refused file\n{bad}\nthe old rules are gone: {e}");
        }
    }
    replace_file(&path, &good_part);
    let deadline = Instant::now() + APPLY_DEADLINE;
    loop {
        let a = ask(&s.proxy, Method::GET, "/a/x", Client::Api, Cred::None, &[]).await;
        if check(&a, "/a/x", Want::App(None), None).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the valid file was not applied: {}",
            a.text()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------- configuration errors ----------

/// `no_jwt` cannot go with a rule or default that needs a session (there would be no
/// lookups); with only public/optional rules it is fine.
#[test]
fn no_jwt_with_a_session_rule_is_refused_at_startup() {
    let session_rule = "[access]\n[[access.rules]]\npaths = [\"/x/**\"]\nrequire = \"session\"\n";
    let aal2_default = "[access]\ndefault = \"aal2\"\n";
    let harmless = "[access]\ndefault = \"optional\"\n[[access.rules]]\npaths = [\"/x/**\"]\nrequire = \"public\"\n";
    let app = "http://127.0.0.1:9";
    for (how, toml, args) in [
        (
            "no_jwt key + session rule",
            format!("no_jwt = true\n{session_rule}"),
            vec![],
        ),
        (
            "--no-jwt + session rule",
            session_rule.to_owned(),
            vec!["--no-jwt"],
        ),
        (
            "--no-jwt + aal2 default",
            aal2_default.to_owned(),
            vec!["--no-jwt"],
        ),
    ] {
        for check_config in [false, true] {
            let mut argv = vec!["--sdk-url", NO_ORY];
            argv.extend(&args);
            if check_config {
                argv.push("--check-config");
            }
            argv.push(app);
            let out = run_cli(&argv, &[], &[("proxy.toml", toml.as_str())]);
            let lines = out.stderr_lines();
            let named = lines
                .iter()
                .any(|l| l.contains("no_jwt") || l.contains("no-jwt"));
            let code_ok = if check_config {
                out.code == Some(1)
            } else {
                matches!(out.code, Some(1) | Some(2))
            };
            assert!(
                code_ok && named && lines.len() == 1 && !out.stderr.contains("listening"),
                "{how} (check-config {check_config}): exit {:?}, stderr:\n{}",
                out.code,
                out.stderr
            );
        }
    }
    let out = run_cli(
        &["--sdk-url", NO_ORY, "--no-jwt", "--check-config", app],
        &[],
        &[("proxy.toml", harmless)],
    );
    assert_eq!(
        out.code,
        Some(0),
        "public/optional rules with --no-jwt: {}",
        out.stderr
    );
}

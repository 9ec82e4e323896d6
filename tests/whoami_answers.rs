//! What a whoami answer about one credential may change for everyone else.
//!
//! The fake Ory here answers each session cookie with what the test dictates: a real session,
//! a 4xx, a 200 that is not a session, a 5xx. A hostile client choosing its own cookie can make
//! Ory (or a front proxy in front of it, like nginx refusing an 8 KiB+ header with 431) answer
//! anything but a session; that must never switch authentication off for signed-in users.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};

use common::{echo_via, Echo, FakeApp, Proxy};

/// How the fake Ory answers one session cookie value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 200 with an active session.
    Session,
    /// This status, with a small JSON error body (a 200 here is `{"active":true}` without an
    /// identity: not a session).
    Status(u16),
    /// 200 `text/html`: a front proxy's page, not a session.
    Html,
    /// No answer for 30 s (the proxy gives up after 5).
    Hang,
}

/// Cookie values Ory answers with an active session unless told otherwise.
const LEGIT_PREFIX: &str = "legit-";
/// nginx's default `large_client_header_buffers`: one header line over 8 KiB gets 431/400.
const FRONT_PROXY_LINE_LIMIT: usize = 8 * 1024;

#[derive(Default)]
struct OryState {
    answers: Mutex<HashMap<String, Answer>>,
    calls: AtomicUsize,
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
        FakeOry {
            addr,
            state,
            system,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn answer(&self, cookie_value: &str, a: Answer) {
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(cookie_value.to_string(), a);
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }
}

impl Drop for FakeOry {
    fn drop(&mut self) {
        self.system.stop();
    }
}

fn session_body(id: &str) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("data/session-example.json")).unwrap();
    v["expires_at"] = "2999-01-01T00:00:00Z".into();
    v["identity"]["id"] = id.into();
    v.to_string()
}

async fn whoami(state: web::Data<OryState>, req: HttpRequest) -> HttpResponse {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let cookie = req
        .headers()
        .get(header::COOKIE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if cookie.len() > FRONT_PROXY_LINE_LIMIT {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(431).unwrap())
            .content_type("text/html")
            .body("<html><body>431 Request Header Fields Too Large</body></html>");
    }
    let value = cookie
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("ory_kratos_session="))
        .next()
        .unwrap_or("")
        .to_string();
    let told = state.answers.lock().unwrap().get(&value).copied();
    let answer = match told {
        Some(a) => a,
        None if value.starts_with(LEGIT_PREFIX) => Answer::Session,
        None => Answer::Status(401),
    };
    match answer {
        Answer::Session => HttpResponse::Ok()
            .content_type("application/json")
            .body(session_body(&value)),
        Answer::Status(200) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"active":true}"#),
        Answer::Status(s) => HttpResponse::build(actix_web::http::StatusCode::from_u16(s).unwrap())
            .content_type("application/json")
            .body(format!(r#"{{"error":{{"code":{s}}}}}"#)),
        Answer::Html => HttpResponse::Ok()
            .content_type("text/html")
            .body("<html>maintenance</html>"),
        Answer::Hang => {
            actix_rt::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}

fn cookie(value: &str) -> String {
    format!("ory_kratos_session={value}")
}

/// The `sub` of the JWT the app got, `None` without one.
fn jwt_sub(e: &Echo) -> Option<String> {
    use base64::Engine as _;
    let token = e.one("authorization")?.strip_prefix("Bearer ")?.to_string();
    let claims = token.split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    v["sub"].as_str().map(str::to_owned)
}

/// A 9 KiB random-looking session cookie value: over a front proxy's header line limit.
fn oversized_value(i: usize) -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
    (0..9 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// The attack of the hardening report: an unauthenticated client whose session cookie Ory (or
/// the proxy in front of it) answers with 431, 400, 404, 422, 429, another 4xx, or a 200 that
/// is not a session, repeated while a signed-in user browses. Every one of the user's requests
/// is a cache miss (`cache_ttl = 0s`), so each depends on the proxy still asking Ory; not one
/// may reach the app anonymous.
#[actix_web::test]
async fn no_answer_about_a_hostile_credential_makes_signed_in_users_anonymous() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("[session]\ncache_ttl = \"0s\"\n")
        .start();
    let hostile: Vec<(String, &str)> = {
        let mut v = Vec::new();
        for s in [
            400u16, 404, 405, 409, 410, 413, 414, 418, 422, 429, 431, 451,
        ] {
            let name = format!("evil-{s}");
            ory.answer(&name, Answer::Status(s));
            v.push((name, "a 4xx"));
        }
        ory.answer("evil-200", Answer::Status(200));
        v.push(("evil-200".into(), "200 without an identity"));
        ory.answer("evil-html", Answer::Html);
        v.push(("evil-html".into(), "200 text/html"));
        ory.answer("evil-302", Answer::Status(302));
        v.push(("evil-302".into(), "a redirect"));
        for i in 0..3 {
            v.push((
                oversized_value(i),
                "a 9 KiB cookie (431 from the front proxy)",
            ));
        }
        v
    };

    let mut anonymous = Vec::new();
    let mut legit = 0;
    for round in 0..4 {
        for (value, what) in &hostile {
            // The attack: the hostile credential, twice, then a signed-in request right after.
            for _ in 0..2 {
                let e = echo_via(&proxy, "/attack", &[("cookie", &cookie(value))]).await;
                assert!(
                    e.all("authorization").is_empty(),
                    "{what}: the hostile request got {:?}",
                    e.all("authorization")
                );
            }
            let user = format!("{LEGIT_PREFIX}{}", round % 2);
            let e = echo_via(&proxy, "/browse", &[("cookie", &cookie(&user))]).await;
            legit += 1;
            match jwt_sub(&e) {
                Some(sub) => assert_eq!(sub, user, "another session's JWT"),
                None => anonymous.push(*what),
            }
        }
    }
    assert!(
        anonymous.is_empty(),
        "{} of {legit} signed-in requests reached the app anonymous, each right after {:?}:\n{}",
        anonymous.len(),
        anonymous,
        proxy.logs()
    );
    assert!(
        !proxy.logs().contains("cannot check sessions with Ory"),
        "an answer about one credential was taken for an outage:\n{}",
        proxy.logs()
    );
}

/// The same attack, but concurrent: several hostile clients hammer while a signed-in user keeps
/// browsing; every one of the user's requests gets its JWT.
#[actix_web::test]
async fn concurrent_hostile_clients_never_make_a_signed_in_request_anonymous() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("[session]\ncache_ttl = \"0s\"\n")
        .start();
    for s in [400u16, 404, 422, 429, 431] {
        ory.answer(&format!("evil-{s}"), Answer::Status(s));
    }
    ory.answer("evil-html", Answer::Html);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for (i, value) in [
        "evil-400",
        "evil-404",
        "evil-422",
        "evil-429",
        "evil-431",
        "evil-html",
    ]
    .into_iter()
    .enumerate()
    {
        let stop = stop.clone();
        let addr = proxy.addr();
        let value = value.to_string();
        attackers.push(std::thread::spawn(move || {
            let mut conn = common::Conn::new(addr);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let c = if n.is_multiple_of(3) {
                    cookie(&oversized_value(i * 1000 + n))
                } else {
                    cookie(&value)
                };
                let _ = conn.get("/attack", &[("cookie", &c)]);
                n += 1;
            }
            n
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut legit, mut anonymous) = (0, 0);
    while Instant::now() < deadline || legit < 100 {
        let user = format!("{LEGIT_PREFIX}{}", legit % 3);
        let e = echo_via(&proxy, "/browse", &[("cookie", &cookie(&user))]).await;
        match jwt_sub(&e) {
            Some(sub) => assert_eq!(sub, user),
            None => anonymous += 1,
        }
        legit += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let attacks: usize = attackers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(attacks > 50, "the attack did not run ({attacks} requests)");
    assert_eq!(
        anonymous,
        0,
        "{anonymous} of {legit} signed-in requests reached the app anonymous during {attacks} hostile ones:\n{}",
        proxy.logs()
    );
}

/// A client that can make Ory fail for its own credential (a cookie a database-backed Ory
/// answers with a 500) hammers from several threads while signed-in users keep browsing with
/// every request a cache miss. Ory answers a whoami without credentials all along, so the
/// breaker never opens: not one signed-in request reaches the app without its JWT.
#[actix_web::test]
async fn clients_failing_ory_for_their_own_credentials_never_open_the_breaker() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("[session]\ncache_ttl = \"0s\"\n")
        .start();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for i in 0..4 {
        // Distinct credentials per thread: no single-flight joins them into one call.
        let values: Vec<String> = (0..3).map(|j| format!("evil-5xx-{i}-{j}")).collect();
        for (j, v) in values.iter().enumerate() {
            ory.answer(v, Answer::Status(if j == 2 { 503 } else { 500 }));
        }
        let stop = stop.clone();
        let addr = proxy.addr();
        attackers.push(std::thread::spawn(move || {
            let mut conn = common::Conn::new(addr);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let _ = conn.get("/attack", &[("cookie", &cookie(&values[n % values.len()]))]);
                n += 1;
            }
            n
        }));
    }
    // Users browse at a human pace: between their requests, only the attacker's failures reach
    // Ory, well over the breaker's trip span.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut legit, mut anonymous) = (0, 0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let user = format!("{LEGIT_PREFIX}{}", legit % 3);
        let e = echo_via(&proxy, "/browse", &[("cookie", &cookie(&user))]).await;
        match jwt_sub(&e) {
            Some(sub) => assert_eq!(sub, user),
            None => anonymous += 1,
        }
        legit += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let attacks: usize = attackers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(attacks > 50, "the attack did not run ({attacks} requests)");
    assert!(legit >= 5, "only {legit} signed-in requests");
    let logs = proxy.logs();
    assert!(
        logs.contains("cannot check sessions with Ory"),
        "the 5xx answers were not seen as failures:\n{logs}"
    );
    assert_eq!(
        anonymous, 0,
        "{anonymous} of {legit} signed-in requests went without a JWT during {attacks} failing ones:\n{logs}"
    );
    assert!(
        !logs.contains("fails a whoami without credentials too"),
        "the breaker opened:\n{logs}"
    );
}

/// One 5xx, or one hung whoami, is one failure: the next signed-in request still asks Ory.
#[actix_web::test]
async fn a_single_ory_failure_does_not_make_the_next_user_anonymous() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("[session]\ncache_ttl = \"0s\"\n")
        .start();
    ory.answer("evil-500", Answer::Status(500));
    ory.answer("evil-503", Answer::Status(503));
    ory.answer("evil-hang", Answer::Hang);
    for value in ["evil-500", "evil-503", "evil-hang"] {
        let e = echo_via(&proxy, "/failing", &[("cookie", &cookie(value))]).await;
        assert!(e.all("authorization").is_empty());
        let e = echo_via(&proxy, "/browse", &[("cookie", &cookie("legit-a"))]).await;
        assert_eq!(
            jwt_sub(&e).as_deref(),
            Some("legit-a"),
            "one failure after {value} switched sessions off:\n{}",
            proxy.logs()
        );
    }
}

/// A 429 for one credential is not kept for `cache_ttl`: once Ory answers that credential
/// again, it is recognised within about a second. Other 4xx answers are cached like a 401.
#[actix_web::test]
async fn a_429_is_remembered_briefly_and_other_4xx_like_a_401() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    // The default cache_ttl (10 s): far longer than this test waits.
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();

    ory.answer("legit-throttled", Answer::Status(429));
    let asked = Instant::now();
    let e = echo_via(&proxy, "/x", &[("cookie", &cookie("legit-throttled"))]).await;
    assert_eq!(jwt_sub(&e), None);
    let calls = ory.calls();
    let e = echo_via(&proxy, "/x", &[("cookie", &cookie("legit-throttled"))]).await;
    assert_eq!(jwt_sub(&e), None);
    // (Only checkable while the brief memory lasts; a loaded machine may take longer.)
    if asked.elapsed() < Duration::from_millis(500) {
        assert_eq!(ory.calls(), calls, "a 429 was not remembered at all");
    }
    ory.answer("legit-throttled", Answer::Session);
    let started = Instant::now();
    loop {
        let e = echo_via(&proxy, "/x", &[("cookie", &cookie("legit-throttled"))]).await;
        if jwt_sub(&e).as_deref() == Some("legit-throttled") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a 429 kept the session anonymous for {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    ory.answer("evil-422", Answer::Status(422));
    echo_via(&proxy, "/x", &[("cookie", &cookie("evil-422"))]).await;
    let calls = ory.calls();
    for _ in 0..5 {
        echo_via(&proxy, "/x", &[("cookie", &cookie("evil-422"))]).await;
    }
    assert_eq!(ory.calls(), calls, "a 422 was asked again within cache_ttl");
}

/// 408, 421, 425 and 499 speak of the connection or a gateway, not of the credentials (a
/// server closing an idle pooled connection sends an unprompted 408 that the next whoami reads
/// as its answer): the request goes on anonymous, but nothing is remembered, so the user's
/// next request is recognised, well within the default 10 s `cache_ttl`.
#[actix_web::test]
async fn connection_level_4xx_answers_are_not_remembered() {
    let ory = FakeOry::start();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    for status in [408, 421, 425, 499] {
        let value = format!("legit-{status}");
        ory.answer(&value, Answer::Status(status));
        let e = echo_via(&proxy, "/x", &[("cookie", &cookie(&value))]).await;
        assert_eq!(jwt_sub(&e), None, "{status}");
        ory.answer(&value, Answer::Session);
        let e = echo_via(&proxy, "/x", &[("cookie", &cookie(&value))]).await;
        assert_eq!(
            jwt_sub(&e).as_deref(),
            Some(value.as_str()),
            "a {status} was remembered as no session"
        );
    }
}

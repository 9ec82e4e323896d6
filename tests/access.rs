//! Route protection (`[access]`) end to end: the real proxy between a fake app and a fake Ory
//! whose whoami answers each session cookie as the test names it. One test per requirement,
//! identity headers and their spoofing, `public` routes making no whoami call, fail-closed
//! 503s, a live rules edit, the log line and the metrics, and `--explain`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};

use common::{get_with, raw_get, run_cli, Answer, FakeApp, Proxy, NO_ORY};

const BROWSER: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const API: (&str, &str) = ("accept", "application/json");
/// How long a reload may take to be applied or refused.
const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

/// A fake Ory whose whoami reads the session cookie `ory_kratos_session=<aal>:<email>`: `aal1:…`
/// and `aal2:…` are active sessions at that level with that `traits.email`, verified;
/// `hostile` has a line break and a header in its email trait; anything else is no session
/// (401).
struct FakeOry {
    addr: SocketAddr,
    whoami_calls: Arc<AtomicUsize>,
    system: actix_rt::System,
}

impl FakeOry {
    fn start() -> FakeOry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(counted);
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
        FakeOry {
            addr,
            whoami_calls: calls,
            system: rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self) -> usize {
        self.whoami_calls.load(Ordering::SeqCst)
    }
}

impl Drop for FakeOry {
    fn drop(&mut self) {
        self.system.stop();
    }
}

async fn whoami(calls: web::Data<AtomicUsize>, req: HttpRequest) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    let value = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .find_map(|p| p.trim().strip_prefix("ory_kratos_session="))
        })
        .unwrap_or("")
        .to_string();
    let (aal, email) = match value.split_once(':') {
        Some((aal @ ("aal1" | "aal2"), email)) => (aal, email.to_string()),
        _ if value == "hostile" => ("aal1", "eve@example.org\r\nX-Injected: 1".to_string()),
        _ => {
            return HttpResponse::Unauthorized()
                .content_type("application/json")
                .body(r#"{"error":{"code":401,"status":"Unauthorized"}}"#)
        }
    };
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("data/session-example.json")).unwrap();
    v["expires_at"] = "2999-01-01T00:00:00Z".into();
    v["authenticator_assurance_level"] = aal.into();
    v["identity"]["id"] = format!("id-{value}").into();
    v["identity"]["traits"]["email"] = email.clone().into();
    // The address verified, as Kratos reports it once the user has confirmed it:
    // `allow_emails` reads verified addresses only.
    v["identity"]["verifiable_addresses"] =
        serde_json::json!([{"value": email, "verified": true, "via": "email"}]);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(v.to_string())
}

fn cookie(value: &str) -> (&'static str, String) {
    ("cookie", format!("ory_kratos_session={value}"))
}

async fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Answer {
    get_with(&proxy.url(path), headers).await
}

/// The fake app's echo of what it received: 200 and the request head as JSON.
fn echoed(a: &Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "the app was not reached: {}", a.text());
    a.json()
}

fn header_of<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .filter_map(|h| h[1].as_str())
        .collect()
}

const RULES: &str = r#"
[access]
default = "optional"
identity_headers = { "X-Forwarded-Email" = "identity.traits.email", "X-Forwarded-User" = "identity.id" }

[[access.rules]]
name = "admin"
paths = ["/admin", "/admin/**"]
require = "aal2"
allow_emails = ["*@example.org"]

[[access.rules]]
name = "api"
paths = ["/api/**"]
require = "session"

[[access.rules]]
name = "static"
paths = ["/static/**"]
require = "public"
"#;

fn start(ory: &str, app: &FakeApp, toml: &str) -> Proxy {
    Proxy::to(&app.url())
        .ory(ory)
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .toml(toml)
        .start()
}

#[actix_web::test]
async fn session_routes_send_browsers_to_sign_in_refuse_programs_and_pass_sessions() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let proxy = start(&ory.url(), &app, RULES);
    let a = get(&proxy, "/api/items?page=2&q=a%20b", &[BROWSER]).await;
    assert_eq!(a.status, 303, "{}", a.text());
    let publish = proxy.default_publish();
    let return_to: String = url::form_urlencoded::byte_serialize(
        format!("{publish}/api/items?page=2&q=a%20b").as_bytes(),
    )
    .collect();
    assert_eq!(
        a.location(),
        format!("{publish}/.ory/self-service/login/browser?return_to={return_to}")
    );
    assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    for headers in [&[API][..], &[][..], &[("accept", "text/html")][..]] {
        // POST is no navigation, whatever it accepts: no redirect.
        let a = if headers.len() == 1 && headers[0].1 == "text/html" {
            common::send(common::with_headers(
                common::client().post(proxy.url("/api/x")),
                headers,
            ))
            .await
        } else {
            get(&proxy, "/api/x", headers).await
        };
        assert_eq!(a.status, 401, "{headers:?}: {}", a.text());
        let v = a.json();
        assert_eq!(v["error"]["id"], "session_inactive");
        assert_eq!(v["error"]["code"], 401);
        assert_eq!(v["error"]["status"], "Unauthorized");
    }
    let (name, value) = cookie("aal1:ada@example.org");
    let echo = echoed(&get(&proxy, "/api/x", &[(name, &value), API]).await);
    assert!(header_of(&echo, "authorization")[0].starts_with("Bearer "));
    for line in [
        "GET /api/items 303 ",
        "auth=none rule=api decision=login",
        "auth=jwt rule=api decision=allow",
    ] {
        let seen = proxy.wait_line(RELOAD_DEADLINE, |l| l.contains(line));
        assert!(seen.is_some(), "{line:?} not logged:\n{}", proxy.logs());
    }
}

#[actix_web::test]
async fn aal2_routes_step_up_aal1_sessions_and_refuse_other_addresses() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let proxy = start(&ory.url(), &app, RULES);
    let (name, aal1) = cookie("aal1:ada@example.org");
    let a = get(&proxy, "/admin/users", &[(name, &aal1), BROWSER]).await;
    assert_eq!(a.status, 303);
    assert!(
        a.location().starts_with(&format!(
            "{}/.ory/self-service/login/browser?aal=aal2&return_to=",
            proxy.default_publish()
        )),
        "{}",
        a.location()
    );
    let a = get(&proxy, "/admin/users", &[(name, &aal1), API]).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["error"]["id"], "session_aal2_required");
    assert!(a.json()["redirect_browser_to"]
        .as_str()
        .unwrap()
        .contains("aal=aal2"));
    let (_, aal2) = cookie("aal2:ada@example.org");
    echoed(&get(&proxy, "/admin/users", &[(name, &aal2), BROWSER]).await);
    // An address the rule does not allow: 403, a page for a browser, never a redirect.
    let (_, outsider) = cookie("aal2:eve@evil.example");
    let a = get(&proxy, "/admin", &[(name, &outsider), BROWSER]).await;
    assert_eq!(a.status, 403);
    assert!(a.header("location").is_none());
    assert!(a.text().starts_with("<!doctype html>"), "{}", a.text());
    let a = get(&proxy, "/admin", &[(name, &outsider), API]).await;
    assert_eq!(a.json()["error"]["id"], "email_not_allowed");
    let (_, outsider_aal1) = cookie("aal1:eve@evil.example");
    let a = get(&proxy, "/admin", &[(name, &outsider_aal1), BROWSER]).await;
    assert_eq!(
        a.status, 403,
        "no second factor is asked of whom the rule refuses"
    );
    let metrics = get_with(&format!("http://{}/metrics", metrics_addr(&proxy)), &[])
        .await
        .text();
    for series in [
        "ory_proxy_access_decisions_total{rule=\"admin\",decision=\"step-up\"} 1",
        "ory_proxy_access_decisions_total{rule=\"admin\",decision=\"aal2-required\"} 1",
        "ory_proxy_access_decisions_total{rule=\"admin\",decision=\"allow\"} 1",
        "ory_proxy_access_decisions_total{rule=\"admin\",decision=\"email-not-allowed\"} 3",
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
}

fn metrics_addr(proxy: &Proxy) -> String {
    const LINE: &str = "  metrics      http://";
    let line = proxy
        .wait_line(Duration::from_secs(10), |l| l.starts_with(LINE))
        .expect("a metrics line in the banner");
    line[LINE.len()..].trim_end_matches("/metrics").to_string()
}

#[actix_web::test]
async fn public_routes_make_no_lookup_and_pass_no_identity() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let proxy = start(&ory.url(), &app, RULES);
    let (name, value) = cookie("aal2:ada@example.org");
    let spoof = [
        (name, value.as_str()),
        ("authorization", "Bearer forged"),
        ("x-forwarded-email", "boss@example.org"),
        ("x_forwarded_user", "boss"),
    ];
    let echo = echoed(&get(&proxy, "/static/app.css", &spoof).await);
    assert_eq!(ory.calls(), 0, "a public route asked Ory");
    for h in [
        "authorization",
        "x-forwarded-email",
        "x-forwarded-user",
        "x_forwarded_user",
    ] {
        assert!(
            header_of(&echo, h).is_empty(),
            "{h} reached the app: {echo}"
        );
    }
    let line = "auth=skipped rule=static decision=public";
    let seen = proxy.wait_line(RELOAD_DEADLINE, |l| l.contains(line));
    assert!(seen.is_some(), "{line:?} not logged:\n{}", proxy.logs());
    // The same request on an optional route: one lookup, the JWT and the session's identity.
    let echo = echoed(&get(&proxy, "/elsewhere", &spoof).await);
    assert_eq!(ory.calls(), 1);
    assert_eq!(header_of(&echo, "x-forwarded-email"), ["ada@example.org"]);
    assert_eq!(
        header_of(&echo, "x-forwarded-user"),
        ["id-aal2:ada@example.org"]
    );
    assert!(header_of(&echo, "x_forwarded_user").is_empty());
    assert_ne!(header_of(&echo, "authorization"), ["Bearer forged"]);
}

#[actix_web::test]
async fn identity_headers_cannot_be_spoofed_or_injected() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    // Names that `strip_request_headers` does not know; and a trusted proxy in front is no
    // exception.
    let toml = format!(
        "trusted_proxies = [\"127.0.0.1\"]\n{}",
        RULES
            .replace("X-Forwarded-Email", "X-Acme-Email")
            .replace("X-Forwarded-User", "X-Acme-User")
    );
    let proxy = start(&ory.url(), &app, &toml);
    let spoof = [
        ("x-acme-email", "boss@example.org"),
        ("X_Acme_Email", "boss@example.org"),
        ("x.acme.user", "boss"),
    ];
    for cookie_value in ["none", "aal1:ada@example.org"] {
        let (name, value) = cookie(cookie_value);
        let mut headers = spoof.to_vec();
        headers.push((name, &value));
        let echo = echoed(&get(&proxy, "/anything", &headers).await);
        for h in ["x_acme_email", "x.acme.user"] {
            assert!(
                header_of(&echo, h).is_empty(),
                "{h} reached the app: {echo}"
            );
        }
        let signed_in = cookie_value != "none";
        let expected: &[&str] = if signed_in { &["ada@example.org"] } else { &[] };
        assert_eq!(header_of(&echo, "x-acme-email"), expected, "{echo}");
        let users = header_of(&echo, "x-acme-user").len();
        assert_eq!(users, usize::from(signed_in), "{echo}");
    }
    // A session whose email trait carries a line break and a header of its own.
    let (name, value) = cookie("hostile");
    let r = raw_get(proxy.addr(), "/anything", &[(name, value.as_str())]);
    assert_eq!(r.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(header_of(&echo, "x-injected").is_empty(), "{echo}");
    assert!(header_of(&echo, "x-acme-email").is_empty(), "{echo}");
    assert_eq!(header_of(&echo, "x-acme-user"), ["id-hostile"]);
    assert!(header_of(&echo, "authorization")[0].starts_with("Bearer "));
}

#[actix_web::test]
async fn protected_routes_fail_closed_when_the_session_cannot_be_checked() {
    let app = FakeApp::start();
    let proxy = start(NO_ORY, &app, RULES);
    let (name, value) = cookie("aal2:ada@example.org");
    for (headers, html) in [
        (vec![(name, value.as_str()), API], false),
        (vec![(name, value.as_str()), BROWSER], true),
    ] {
        for path in ["/api/x", "/admin"] {
            let a = get(&proxy, path, &headers).await;
            assert_eq!(a.status, 503, "{path}: {}", a.text());
            assert_eq!(a.header("retry-after").as_deref(), Some("5"));
            if html {
                assert!(
                    a.text().contains("<title>503 Service Unavailable</title>"),
                    "{}",
                    a.text()
                );
            } else {
                assert_eq!(a.json()["error"]["id"], "session_check_unavailable");
            }
        }
    }
    // Optional routes go on anonymous; public ones never asked.
    let echo = echoed(&get(&proxy, "/elsewhere", &[(name, &value)]).await);
    assert!(header_of(&echo, "authorization").is_empty());
    echoed(&get(&proxy, "/static/x", &[(name, &value)]).await);
}

#[actix_web::test]
async fn no_spelling_of_a_protected_path_reaches_the_app_and_the_app_gets_it_raw() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let proxy = start(&ory.url(), &app, RULES);
    let (name, value) = cookie("aal2:ada@example.org");
    for raw in [
        "/%61dmin/x",
        "//admin/x",
        "/admin/./x",
        "/public/../admin/x",
        "/static/../admin/x",
        "/admin%2Fx",
        "/admin;x=1/y",
        "/static/..;/admin/x",
        "/admin/../static/x.css",
    ] {
        let r = raw_get(proxy.addr(), raw, &[("accept", "application/json")]);
        assert_eq!(r.status, 401, "{raw} reached the app");
        let r = raw_get(proxy.addr(), raw, &[(name, value.as_str())]);
        assert_eq!(r.status, 200, "{raw}");
        let echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(echo["path"], raw, "the app must get the raw path");
    }
}

#[actix_web::test]
async fn a_live_rules_edit_applies_whole_and_a_bad_set_is_refused_whole() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let open =
        "[[access.rules]]\nname = \"reports\"\npaths = [\"/reports/**\"]\nrequire = \"public\"\n";
    let proxy = start(&ory.url(), &app, open);
    echoed(&get(&proxy, "/reports/q1", &[API]).await);
    let path = proxy.dir.join("proxy.toml");
    let mark = proxy.mark();
    let closed =
        "[[access.rules]]\nname = \"reports\"\npaths = [\"/reports/**\"]\nrequire = \"session\"\n";
    std::fs::write(&path, closed).unwrap();
    proxy
        .wait_line_after(mark, RELOAD_DEADLINE, |l| {
            l.contains("reloaded ") && l.contains("access.rules")
        })
        .unwrap_or_else(|| panic!("no reload:\n{}", proxy.logs()));
    assert_eq!(get(&proxy, "/reports/q1", &[API]).await.status, 401);
    // A second rule with a bad glob: the whole set is refused, the running one stays.
    let mark = proxy.mark();
    let broken = "[[access.rules]]\nname = \"reports\"\npaths = [\"/reports/**\"]\nrequire = \"public\"\n\n[[access.rules]]\nname = \"bad\"\npaths = [\"/x/**y\"]\nrequire = \"session\"\n";
    std::fs::write(&path, broken).unwrap();
    let error = proxy
        .wait_line_after(mark, RELOAD_DEADLINE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error:\n{}", proxy.logs()));
    assert!(
        error.contains("proxy.toml:8: `access.rules`: rule 2 (\"bad\")")
            && error.contains("keeping the running settings"),
        "{error}"
    );
    assert_eq!(get(&proxy, "/reports/q1", &[API]).await.status, 401);
    assert!(
        proxy
            .lines(|l| l.contains("1 rule active, otherwise optional"))
            .len()
            == 1
    );
}

#[test]
fn explain_names_the_rule_and_what_happens() {
    let toml = format!(
        "application_url = \"http://127.0.0.1:3000\"\nsdk_url = \"http://127.0.0.1:4433\"\n{RULES}"
    );
    let out = run_cli(
        &[
            "-c",
            "proxy.toml",
            "--check-config",
            "--explain",
            "GET /admin/users?tab=keys",
        ],
        &[],
        &[("proxy.toml", &toml)],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for needle in [
        "rule             \"admin\" (rule 1 of 3)",
        "signed out       browser: 303 to http://localhost:4000/.ory/self-service/login/browser?return_to=http%3A%2F%2Flocalhost%3A4000%2Fadmin%2Fusers%3Ftab%3Dkeys",
        "other:   401 JSON (session_inactive)",
        "aal1 session     browser: 303 to http://localhost:4000/.ory/self-service/login/browser?aal=aal2&return_to=",
        "other:   403 JSON (session_aal2_required)",
        "aal2 session     the app, with the session's JWT and x-forwarded-email, x-forwarded-user",
        "Ory unavailable  503",
        "other address    403 (email_not_allowed)",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} not in\n{}", out.stdout);
    }
    let out = run_cli(
        &["-c", "proxy.toml", "--explain", "/.ory/sessions/whoami"],
        &[],
        &[("proxy.toml", &toml)],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("access rules never apply"),
        "{}",
        out.stdout
    );
    let out = run_cli(
        &["-c", "proxy.toml", "--explain", "GET admin"],
        &[],
        &[("proxy.toml", &toml)],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let out = run_cli(
        &["-c", "proxy.toml", "--check-config"],
        &[],
        &[("proxy.toml", &toml)],
    );
    assert!(out.stdout.contains("\n[[access.rules]]"), "{}", out.stdout);
}

#[actix_web::test]
async fn json_access_lines_carry_the_rule_and_the_decision() {
    let (ory, app) = (FakeOry::start(), FakeApp::start());
    let proxy = start(&ory.url(), &app, &format!("log_format = \"json\"\n{RULES}"));
    assert_eq!(get(&proxy, "/api/x", &[API]).await.status, 401);
    // Ory's own answer, through the proxy: no rule applies.
    assert_eq!(get(&proxy, "/.ory/sessions/whoami", &[]).await.status, 401);
    let line = |path: &str| {
        let needle = format!("\"path\":\"{path}\"");
        let l = proxy
            .wait_line(RELOAD_DEADLINE, |l| {
                l.contains("ory_proxy::access") && l.contains(&needle)
            })
            .unwrap_or_else(|| panic!("no access line for {path}:\n{}", proxy.logs()));
        serde_json::from_str::<serde_json::Value>(&l).unwrap()
    };
    let denied = line("/api/x");
    assert_eq!(
        (denied["rule"].as_str(), denied["decision"].as_str()),
        (Some("api"), Some("unauthenticated"))
    );
    assert_eq!(denied["status"], 401);
    let ory_line = line("/.ory/sessions/whoami");
    assert_eq!(
        (ory_line["rule"].as_str(), ory_line["decision"].as_str()),
        (Some("-"), Some("-"))
    );
}

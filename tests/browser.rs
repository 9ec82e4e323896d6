//! End to end in a real browser: headless Chromium (Debian's `chromium`) driven over WebDriver
//! (Debian's `chromedriver`, with fantoccini) through the demo — the Ory emulator, the demo app
//! and the proxy with the demo's access rules, started as `cargo run --example demo` starts
//! them.
//!
//! Without Chromium or chromedriver the tests say so loudly and pass, except under `CI=true`,
//! where that is a failure (`.ci/run` installs both). On a failure, a screenshot and the page's
//! HTML go to `target/browser-screenshots/`; `BROWSER_SCREENSHOTS=all` keeps them on success too.

use std::fmt::Display;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use ory_emulator::demo_app::{DemoOptions, DemoStack};
use ory_emulator::{DEMO_EMAIL, DEMO_PASSWORD};
use serde_json::{json, Value};

/// How long one page may take to show what a step waits for.
const STEP_DEADLINE: Duration = Duration::from_secs(20);

/// A step's outcome; the error says which step failed and what the page showed.
type Step<T = ()> = Result<T, String>;

trait Context<T> {
    fn ctx(self, what: &str) -> Step<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Step<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

// ---------- finding and starting the browser ----------

/// The two programs the tests need.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// `$var` if set, else the first of `names` found on `PATH`.
fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The browser and its driver, or `None` (after a loud message) when the test must be skipped.
/// Under `CI=true` a missing browser fails the test instead.
fn tools() -> Option<Tools> {
    let chromium = find_program("CHROME_BIN", &["chromium", "chromium-browser"]);
    let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        (chromium, chromedriver) => {
            let missing = format!(
                "browser test needs Chromium and chromedriver (found chromium: {chromium:?}, \
                 chromedriver: {chromedriver:?}); install them with \
                 `apt-get install -y chromium chromium-driver`"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{missing}");
            }
            // Straight to the stream: the test harness swallows eprintln! of passing tests.
            let _ = writeln!(std::io::stderr(), "\n!!!!! SKIPPED: {missing} !!!!!\n");
            None
        }
    }
}

/// A running chromedriver on a free loopback port; killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start(program: &Path) -> ChromeDriver {
        let mut child = Command::new(program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the port from the start-up line, then keeps draining so the driver never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(STEP_DEADLINE) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("chromedriver did not report its port");
            }
        };
        ChromeDriver { child, port }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with a fresh profile.
struct Browser {
    client: Client,
    // Dropped after the session is closed: the driver, then the profile directory.
    _driver: ChromeDriver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(tools: &Tools) -> Browser {
        let driver = ChromeDriver::start(&tools.chromedriver);
        let profile = tempfile::tempdir().unwrap();
        // As root Chromium needs --no-sandbox. The background-networking flags stop it from
        // calling home, which on a closed network makes it slow and flaky.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1024,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": tools.chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Saves the evidence when asked to (or on failure), closes the session, then fails the
    /// test with the step's error.
    async fn finish(self, test: &str, result: Step) {
        let keep_all = std::env::var("BROWSER_SCREENSHOTS").as_deref() == Ok("all");
        let saved = if result.is_err() || keep_all {
            self.save_artifacts(test).await
        } else {
            String::new()
        };
        let _ = self.client.close().await;
        if let Err(e) = result {
            panic!("{test}: {e}{saved}");
        }
    }

    /// Writes `<test>.png` and `<test>.html`; returns a line naming them.
    async fn save_artifacts(&self, test: &str) -> String {
        let dir = screenshot_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return format!("\n(no screenshot: {e})");
        }
        let png = dir.join(format!("{test}.png"));
        let html = dir.join(format!("{test}.html"));
        let mut note = String::new();
        match self.client.screenshot().await {
            Ok(bytes) => match std::fs::write(&png, bytes) {
                Ok(()) => note.push_str(&format!("\nscreenshot: {}", png.display())),
                Err(e) => note.push_str(&format!("\n(no screenshot: {e})")),
            },
            Err(e) => note.push_str(&format!("\n(no screenshot: {e})")),
        }
        if let Ok(source) = self.client.source().await {
            if std::fs::write(&html, source).is_ok() {
                note.push_str(&format!("\npage source: {}", html.display()));
            }
        }
        if let Ok(url) = self.client.current_url().await {
            note.push_str(&format!("\nat: {url}"));
        }
        note
    }
}

/// `target/browser-screenshots` (next to the tests' own `target/tmp`).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

// ---------- what a person does and sees ----------

/// The text of `#id` once it contains `expected` (pages change under the driver's feet while
/// a redirect chain runs, so this polls).
async fn wait_for_text(c: &Client, id: &str, expected: &str) -> Step<String> {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut seen = String::from("(no element)");
    while Instant::now() < deadline {
        if let Ok(element) = c.find(Locator::Id(id)).await {
            if let Ok(text) = element.text().await {
                if text.contains(expected) {
                    return Ok(text);
                }
                seen = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "#{id} never said {expected:?}; last seen: {seen:?}"
    ))
}

/// Waits until the browser is on `<origin><path>` (query ignored).
async fn wait_for_page(c: &Client, origin: &str, path: &str) -> Step {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut seen = String::new();
    while Instant::now() < deadline {
        let url = c.current_url().await.ctx("read the URL")?;
        seen = url.to_string();
        if url.origin().ascii_serialization() == origin && url.path() == path {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("never reached {origin}{path}; at {seen}"))
}

/// Waits until the browser is exactly on `url` (query included).
async fn wait_for_url(c: &Client, url: &str) -> Step {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = c.current_url().await.ctx("read the URL")?.to_string();
        if seen == url {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("never reached {url}; at {seen}"))
}

/// `#id`'s text, which must be exactly `want`.
async fn expect_text(c: &Client, id: &str, want: &str) -> Step {
    let got = text_of(c, id).await?;
    if got == want {
        Ok(())
    } else {
        Err(format!("#{id} says {got:?}, want {want:?}"))
    }
}

async fn click(c: &Client, id: &str) -> Step {
    c.find(Locator::Id(id))
        .await
        .ctx(&format!("find #{id}"))?
        .click()
        .await
        .ctx(&format!("click #{id}"))
}

async fn type_into(c: &Client, id: &str, text: &str) -> Step {
    c.find(Locator::Id(id))
        .await
        .ctx(&format!("find input #{id}"))?
        .send_keys(text)
        .await
        .ctx(&format!("type into #{id}"))
}

async fn text_of(c: &Client, id: &str) -> Step<String> {
    c.find(Locator::Id(id))
        .await
        .ctx(&format!("find #{id}"))?
        .text()
        .await
        .ctx(&format!("read #{id}"))
}

/// WebDriver's "Get All Cookies", unparsed: the `cookie` crate behind fantoccini's cookie API
/// drops the leading dot that tells a domain cookie from a host-only one.
#[derive(Debug)]
struct RawCookies;

impl WebDriverCompatibleCommand for RawCookies {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/cookie", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// The session cookie as the browser stores it, if any.
async fn session_cookie(c: &Client) -> Step<Option<Value>> {
    let cookies = c.issue_cmd(RawCookies).await.ctx("read the cookies")?;
    Ok(cookies
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == "ory_kratos_session")
        .cloned())
}

/// The session cookie exists and is host-only on `host`: Chrome stores a cookie set without
/// `Domain` under the bare host, one with `Domain` under `.<domain>`.
async fn assert_host_only_session(c: &Client, host: &str) -> Step {
    let cookie = session_cookie(c)
        .await?
        .ok_or("the browser has no ory_kratos_session cookie")?;
    if cookie["domain"] != host {
        return Err(format!(
            "session cookie is not host-only on {host}: {cookie}"
        ));
    }
    Ok(())
}

// ---------- the scenarios ----------

fn host_of(url: &str) -> Step<String> {
    let parsed = url::Url::parse(url).ctx("parse the demo URL")?;
    Ok(parsed.host_str().unwrap_or_default().to_owned())
}

fn start_demo() -> DemoStack {
    DemoStack::start(DemoOptions {
        port: Some(0),
        publish_url: None,
    })
    .expect("the demo starts")
}

/// Open the app through the proxy, sign in with the demo account on the emulator's UI, see the
/// verified claims, check the cookie, sign out.
async fn login_then_logout(c: &Client, demo: &DemoStack) -> Step {
    let url = demo.url();
    let host = host_of(url)?;

    c.goto(&format!("{url}/")).await.ctx("open the proxy URL")?;
    wait_for_text(c, "status", "Signed out").await?;

    click(c, "login").await?;
    // Ory's (the emulator's) UI, served through the proxy on the app's origin.
    wait_for_page(c, url, "/.ory/ui/login").await?;
    type_into(c, "identifier", DEMO_EMAIL).await?;
    type_into(c, "password", DEMO_PASSWORD).await?;
    click(c, "submit").await?;

    let status = wait_for_text(c, "status", "Signed in as").await?;
    wait_for_page(c, url, "/").await?;
    if status != format!("Signed in as {DEMO_EMAIL}") {
        return Err(format!("unexpected status line: {status:?}"));
    }
    let claimed = text_of(c, "claim-email").await?;
    let issuer = text_of(c, "claim-iss").await?;
    if claimed != DEMO_EMAIL || issuer != demo.emulator().url() {
        return Err(format!(
            "unexpected claims: email {claimed:?}, iss {issuer:?}"
        ));
    }
    assert_host_only_session(c, &host).await?;

    // The same proxy under another host name gets no cookie, so nobody is signed in there.
    let port = demo.proxy_addr().port();
    c.goto(&format!("http://127.0.0.1:{port}/"))
        .await
        .ctx("open the proxy by IP")?;
    wait_for_text(c, "status", "Signed out").await?;

    c.goto(&format!("{url}/"))
        .await
        .ctx("reopen the proxy URL")?;
    wait_for_text(c, "status", "Signed in as").await?;
    click(c, "logout").await?;
    wait_for_text(c, "status", "Signed out").await?;
    wait_for_page(c, url, "/").await?;
    if let Some(cookie) = session_cookie(c).await? {
        return Err(format!("the session cookie survived the logout: {cookie}"));
    }
    Ok(())
}

/// Create an account through the proxy; the new user is signed in at once.
async fn register_new_user(c: &Client, demo: &DemoStack) -> Step {
    let url = demo.url();
    let email = "browser-user@example.org";
    c.goto(&format!("{url}/")).await.ctx("open the proxy URL")?;
    wait_for_text(c, "status", "Signed out").await?;
    click(c, "registration").await?;
    wait_for_page(c, url, "/.ory/ui/registration").await?;
    type_into(c, "traits.email", email).await?;
    type_into(c, "password", "a-long-enough-password").await?;
    click(c, "submit").await?;
    wait_for_text(c, "status", &format!("Signed in as {email}")).await?;
    wait_for_page(c, url, "/").await?;
    let claimed = text_of(c, "claim-email").await?;
    if claimed != email {
        return Err(format!("the token names {claimed:?}"));
    }
    assert_host_only_session(c, &host_of(url)?).await
}

/// The demo's access rules in a browser: signed out, a protected page leads through Ory's
/// sign-in back to the URL first asked for; the aal2 page then asks for the second factor
/// (a wrong code is refused on the form) and comes back to it at aal2.
async fn protected_pages(c: &Client, demo: &DemoStack) -> Step {
    let url = demo.url();
    let account = format!("{url}/account?tab=profile&from=%2Fhome");
    c.goto(&account).await.ctx("open /account")?;
    wait_for_page(c, url, "/.ory/ui/login").await?;
    type_into(c, "identifier", DEMO_EMAIL).await?;
    type_into(c, "password", DEMO_PASSWORD).await?;
    click(c, "submit").await?;
    wait_for_text(c, "status", "Signed in as").await?;
    wait_for_url(c, &account).await?;
    expect_text(c, "page", "Account").await?;
    expect_text(c, "email", DEMO_EMAIL).await?;
    expect_text(c, "aal", "aal1").await?;
    expect_text(c, "header-email", DEMO_EMAIL).await?;

    let admin = format!("{url}/admin?section=keys");
    c.goto(&admin).await.ctx("open /admin")?;
    wait_for_page(c, url, "/.ory/ui/login").await?;
    let code = demo.emulator().second_factor_code().to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    type_into(c, "totp_code", wrong).await?;
    click(c, "submit").await?;
    wait_for_text(c, "messages", "authentication code is invalid").await?;
    type_into(c, "totp_code", &code).await?;
    click(c, "submit").await?;
    wait_for_text(c, "aal", "aal2").await?;
    wait_for_url(c, &admin).await?;
    expect_text(c, "page", "Admin").await?;
    expect_text(c, "email", DEMO_EMAIL).await?;

    // The home page links to both and now shows the aal2 token.
    c.goto(&format!("{url}/")).await.ctx("open the home page")?;
    wait_for_text(c, "claim-authenticator_assurance_level", "aal2").await?;
    click(c, "account-link").await?;
    wait_for_url(c, &format!("{url}/account")).await?;
    expect_text(c, "aal", "aal2").await
}

#[actix_web::test]
async fn protected_pages_need_sign_in_then_the_second_factor() {
    let Some(tools) = tools() else { return };
    let demo = start_demo();
    let browser = Browser::launch(&tools).await;
    let result = protected_pages(&browser.client, &demo).await;
    browser.finish("protected_pages", result).await;
    demo.stop().await.unwrap();
}

#[actix_web::test]
async fn login_shows_verified_claims_then_logout_signs_out() {
    let Some(tools) = tools() else { return };
    let demo = start_demo();
    let browser = Browser::launch(&tools).await;
    let result = login_then_logout(&browser.client, &demo).await;
    browser.finish("login_then_logout", result).await;
    demo.stop().await.unwrap();
}

#[actix_web::test]
async fn registration_through_the_proxy_signs_the_new_user_in() {
    let Some(tools) = tools() else { return };
    let demo = start_demo();
    let browser = Browser::launch(&tools).await;
    let result = register_new_user(&browser.client, &demo).await;
    browser.finish("registration", result).await;
    demo.stop().await.unwrap();
}

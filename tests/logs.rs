//! The log output: access lines are written off the request path, arrive promptly, survive a
//! graceful shutdown, and a stuck stderr never stalls requests or shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, get, wait_deadline, FakeApp, Proxy};

/// The writer writes pending lines at least this often (with room for a loaded machine).
const PROMPT: Duration = Duration::from_millis(1500);

fn access_lines(proxy: &Proxy, path: &str) -> Vec<String> {
    proxy.lines(|l| l.contains(&format!("GET {path} 200")))
}

#[actix_web::test]
async fn an_access_line_arrives_within_a_second_or_so() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let _ = get(&proxy.url("/echo")).await;
    let answered = Instant::now();
    let line = proxy.wait_line(PROMPT, |l| l.contains("GET /echo 200"));
    assert!(
        line.is_some(),
        "no access line {:?} after the answer:\n{}",
        answered.elapsed(),
        proxy.logs()
    );
}

#[actix_web::test]
async fn access_lines_of_one_connection_arrive_in_order() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let c = client();
    for i in 0..200 {
        let res = c
            .get(proxy.url(&format!("/echo/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let last = proxy.wait_line(PROMPT * 4, |l| l.contains("GET /echo/199 200"));
    assert!(last.is_some(), "{}", proxy.logs());
    let order: Vec<usize> = proxy
        .lines(|l| l.contains("GET /echo/"))
        .iter()
        .filter_map(|l| {
            l.split("GET /echo/")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(order, (0..200).collect::<Vec<_>>());
}

#[actix_web::test]
async fn the_last_access_lines_are_written_before_a_sigterm_exit() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    let c = client();
    for i in 0..50 {
        let res = c
            .get(proxy.url(&format!("/last/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // At once: the lines are still in the writer's hands.
    proxy.sigterm();
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", proxy.logs()));
    assert_eq!(status.code(), Some(0), "{}", proxy.logs());
    // stderr ends with the process; the reader thread may still be at it.
    proxy.wait_line(Duration::from_secs(10), |l| l == "ory-proxy: stopped");
    let logs = proxy.logs();
    for i in 0..50 {
        assert_eq!(
            access_lines(&proxy, &format!("/last/{i}")).len(),
            1,
            "{i}:\n{logs}"
        );
    }
    assert_eq!(logs.lines().last(), Some("ory-proxy: stopped"), "{logs}");
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// stderr is a pipe nobody reads: it fills after some hundred lines. Requests are answered all
/// the same, and SIGTERM still ends the process.
#[actix_web::test]
async fn a_stderr_nobody_reads_stalls_neither_requests_nor_shutdown() {
    const N: usize = 3000;
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(common::bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .args(["--port", &port.to_string(), "--sdk-url", common::NO_ORY])
        .arg(app.url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Held open, never read.
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = c.get(url("/health/alive")).send().await;
        if up.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    for i in 0..N {
        let res = c
            .get(url(&format!("/echo/{i}")))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match res {
            Ok(r) => assert_eq!(r.status(), 200, "request {i}"),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "request {i} of {N} not answered ({e}) after {:?}",
                    started.elapsed()
                );
            }
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = wait_deadline(&mut child, Duration::from_secs(15));
    if exited.is_none() {
        let _ = child.kill();
    }
    assert!(exited.is_some(), "no exit within 15 s of SIGTERM");
}

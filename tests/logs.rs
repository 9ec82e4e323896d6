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
    // No idle keep-alive connection of ours for the graceful stop to wait on.
    drop(c);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let signalled = Instant::now();
    let exited = wait_deadline(&mut child, Duration::from_secs(15));
    if exited.is_none() {
        let _ = child.kill();
    }
    assert!(exited.is_some(), "no exit within 15 s of SIGTERM");
    // The way out flushes more than once (the last words, then every way out's own flush);
    // a stuck output holds it up for one 2-second limit in all, not for one each (4 s at
    // least, which the bound stays under with room for a loaded machine).
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_millis(3900),
        "SIGTERM to exit took {took:?} with stderr stuck: more than one flush limit"
    );
}

fn json_lines(proxy: &Proxy) -> Vec<serde_json::Value> {
    proxy
        .lines(|l| l.starts_with('{'))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn wait_json_access(proxy: &Proxy, path: &str) -> serde_json::Value {
    let line = proxy
        .wait_line(PROMPT * 4, |l| {
            l.starts_with('{') && l.contains(&format!("\"path\":\"{path}\""))
        })
        .unwrap_or_else(|| panic!("no JSON access line for {path}:\n{}", proxy.logs()));
    serde_json::from_str(&line).unwrap()
}

#[actix_web::test]
async fn json_format_writes_one_object_per_line_and_the_banner_as_one_record() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .flags(&["--log-format", "json"])
        .start();
    let _ = get(&proxy.url("/echo/a%22b?token=secret")).await;
    let a = wait_json_access(&proxy, "/echo/a%22b");
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["target"], "ory_proxy::access");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["status"], 200);
    assert_eq!(a["upstream"], "app");
    assert_eq!(a["auth"], "none");
    assert!(a["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{a}");
    assert!(a["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{a}");
    assert!(
        a["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("GET /echo/")),
        "{a}"
    );
    // The query is left out, as in text.
    assert!(!proxy.logs().contains("secret"), "{}", proxy.logs());
    // Every line is an object: the banner too, as one record.
    let logs = proxy.logs();
    let non_json: Vec<&str> = logs.lines().filter(|l| !l.starts_with('{')).collect();
    assert!(non_json.is_empty(), "{non_json:?}");
    let banners: Vec<_> = json_lines(&proxy)
        .into_iter()
        .filter(|v| v["target"] == "ory_proxy::banner")
        .collect();
    assert_eq!(banners.len(), 1, "{logs}");
    assert_eq!(banners[0]["application"], app.url());
    assert!(banners[0]["listening"].as_str().is_some(), "{}", banners[0]);
}

#[actix_web::test]
async fn the_environment_sets_the_format_and_a_bad_one_is_refused() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .env("ORY_PROXY_LOG_FORMAT", "json")
        .start();
    let _ = get(&proxy.url("/echo/env")).await;
    wait_json_access(&proxy, "/echo/env");

    let out = common::run_cli(
        &[
            "--log-format",
            "xml",
            "--sdk-url",
            common::NO_ORY,
            "http://127.0.0.1:1",
        ],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("log_format"), "{}", out.stderr);
    assert!(out.stderr.contains("\"xml\""), "{}", out.stderr);
}

#[actix_web::test]
async fn the_format_reloads_live() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("log_format = \"text\"\n")
        .start();
    let _ = get(&proxy.url("/echo/before")).await;
    assert!(proxy
        .wait_line(PROMPT * 4, |l| l.contains("] GET /echo/before 200"))
        .is_some());
    std::fs::write(proxy.dir.join("proxy.toml"), "log_format = \"json\"\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        i += 1;
        let path = format!("/echo/after{i}");
        let _ = get(&proxy.url(&path)).await;
        let json = proxy.wait_line(PROMPT, |l| {
            l.starts_with('{') && l.contains(&format!("\"path\":\"{path}\""))
        });
        if json.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "still text:\n{}", proxy.logs());
    }
}

/// Makes `w` a full pipe: every later write to it blocks until someone reads, and nobody does.
fn fill_pipe(w: &std::io::PipeWriter) {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    let fd = w.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows; only its status flags change.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0);
    // SAFETY: as above.
    assert!(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } >= 0);
    let chunk = [b'x'; 65536];
    let mut writer = w;
    loop {
        match writer.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    // Blocking again, so the child's writes block (O_NONBLOCK belongs to the shared open file).
    // SAFETY: as above.
    assert!(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } >= 0);
}

/// The ways out with an error line (a bad proxy.toml at start or under `--check-config`, a
/// port in use, a bad `--explain`) while stderr is a full pipe nobody reads (a stuck journald
/// or log shipper): the proxy still exits, with its code, within about one flush limit, so a
/// supervisor sees the failure instead of a process that hangs forever.
#[test]
fn an_error_exit_with_a_stuck_stderr_still_exits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[access.rules]]\npaths = [\"nope\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("good.toml"), "").unwrap();
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    let cases: [(&str, Vec<&str>, i32); 4] = [
        (
            "--check-config, bad file",
            vec!["--config", "bad.toml", "--check-config"],
            1,
        ),
        (
            "start, bad file",
            vec!["--config", "bad.toml", "--port", &free],
            2,
        ),
        (
            "start, port in use",
            vec!["--config", "good.toml", "--port", &busy_port],
            1,
        ),
        (
            "bad --explain",
            vec!["--config", "good.toml", "--explain", "NOT A REQUEST"],
            2,
        ),
    ];
    for (name, args, code) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        fill_pipe(&writer);
        let started = Instant::now();
        let mut child = Command::new(common::bin())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(dir.path())
            .args(["--sdk-url", common::NO_ORY])
            .args(&args)
            .arg("http://127.0.0.1:1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(writer)
            .spawn()
            .unwrap();
        let exited = wait_deadline(&mut child, Duration::from_secs(8));
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(reader);
        let status = exited.unwrap_or_else(|| panic!("{name}: no exit within 8 s, stderr stuck"));
        let took = started.elapsed();
        assert_eq!(status.code(), Some(code), "{name}");
        assert!(
            took < Duration::from_millis(5000),
            "{name}: exit took {took:?}"
        );
    }
}

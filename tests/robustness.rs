//! Upstream failures become short JSON errors (502/504) and the proxy keeps
//! serving; bad requests get a 4xx (or a closed connection), never a crash; SIGTERM lets
//! in-flight requests finish and exits 0.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::app::{pattern, sha256_hex, CHUNK};
use common::{
    assert_error_json, client, get_echo, header_one, raw_exchange, raw_upstream, read_at_least,
    read_body, FakeApp, Proxy,
};

/// GETs `path` and checks the proxy's JSON error answer.
async fn expect_error(proxy: &Proxy, path: &str, code: u16, status: &str) {
    let mut res = client().get(proxy.url(path)).send().await.unwrap();
    let body = read_body(&mut res).await;
    assert_eq!(
        res.status().as_u16(),
        code,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        header_one(res.headers(), "content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{path}"
    );
    assert_error_json(&body, code, status);
}

/// `--dev`'s friendlier errors: a browser gets a page naming the app's URL and the usual fix;
/// the status is the same, and JSON clients (and everyone without `--dev`) keep the JSON.
#[actix_web::test]
async fn with_dev_a_browser_gets_an_error_page_that_names_the_app() {
    let browser_get = |proxy: &Proxy| {
        client()
            .get(proxy.url("/page"))
            .insert_header(("accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
            .send()
    };
    let dev = Proxy::to("http://127.0.0.1:1").flag("--dev").start();
    let mut res = browser_get(&dev).await.unwrap();
    let page = String::from_utf8(read_body(&mut res).await).unwrap();
    assert_eq!(res.status(), 502, "{page}");
    assert_eq!(
        header_one(res.headers(), "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(page.contains("<title>502 Bad Gateway</title>"), "{page}");
    assert!(
        page.contains("Is your application running at http://127.0.0.1:1?"),
        "{page}"
    );
    // Not a browser: JSON as always.
    expect_error(&dev, "/page", 502, "Bad Gateway").await;

    let plain = Proxy::to("http://127.0.0.1:1").start();
    let mut res = browser_get(&plain).await.unwrap();
    let body = read_body(&mut res).await;
    assert_eq!(res.status(), 502);
    assert_error_json(&body, 502, "Bad Gateway");
}

#[actix_web::test]
async fn ory_down_is_a_502_on_ory_routes_while_the_app_still_works() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    for path in ["/.ory/sessions/whoami", "/.ory/self-service/login/browser"] {
        expect_error(&proxy, path, 502, "Bad Gateway").await;
    }
    let echo = get_echo(client().get(proxy.url("/still/here"))).await;
    assert_eq!(echo.path, "/still/here");
    assert!(proxy.is_running());
}

#[actix_web::test]
async fn app_down_is_a_502_and_the_proxy_keeps_serving() {
    let mut proxy = Proxy::to("http://127.0.0.1:1").start();
    for _ in 0..3 {
        expect_error(&proxy, "/", 502, "Bad Gateway").await;
        expect_error(&proxy, "/some/page?x=1", 502, "Bad Gateway").await;
    }
    let mut res = client()
        .get(proxy.url("/.ory/proxy/health/alive"))
        .send()
        .await
        .unwrap();
    read_body(&mut res).await;
    assert_eq!(res.status(), 200);
    assert!(proxy.is_running());
}

#[actix_web::test]
async fn an_upload_slower_than_the_response_timeout_still_goes_through() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("[upstream]\nresponse_timeout = \"500ms\"\n")
        .start();
    // A client that takes ~1.5 s to send its body: the response timeout only starts once the
    // body is all sent (awc's own timeout would count the upload and answer 504).
    let addr = proxy.addr();
    let report = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .unwrap();
        for _ in 0..6 {
            s.write_all(b"400\r\n").unwrap();
            s.write_all(&[b'u'; 0x400]).unwrap();
            s.write_all(b"\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    })
    .join()
    .unwrap();
    assert!(report.starts_with("HTTP/1.1 200"), "{report}");
    assert!(report.contains("\"len\":6144"), "{report}");
}

#[actix_web::test]
async fn slow_upstream_past_response_timeout_is_a_504() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url())
        .toml("[upstream]\nresponse_timeout = \"500ms\"\n")
        .start();
    let started = Instant::now();
    // The gate is never opened: the app would hold the answer for 30 s.
    expect_error(&proxy, "/slow-head?gate=never", 504, "Gateway Timeout").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "504 after {took:?}"
    );
    let echo = get_echo(client().get(proxy.url("/after"))).await;
    assert_eq!(echo.path, "/after");
    assert!(proxy.is_running());
}

#[actix_web::test]
async fn a_garbage_upstream_answer_is_a_502() {
    let up = raw_upstream(b"this is not HTTP at all\r\n\r\n");
    let mut proxy = Proxy::to(&format!("http://{up}")).start();
    expect_error(&proxy, "/x", 502, "Bad Gateway").await;
    let up = raw_upstream(b"");
    let proxy2 = Proxy::to(&format!("http://{up}")).start();
    expect_error(&proxy2, "/x", 502, "Bad Gateway").await;
    assert!(proxy.is_running());
}

/// The status of a raw answer, `None` when the proxy just closed the connection.
fn raw_status(proxy: &Proxy, request: &[u8]) -> Option<u16> {
    raw_exchange(proxy.addr(), request).map(|r| r.status)
}

#[track_caller]
fn assert_4xx_or_closed(status: Option<u16>, what: &str) {
    if let Some(s) = status {
        assert!((400..500).contains(&s), "{what}: {s}");
    }
}

#[actix_web::test]
async fn garbage_bytes_and_huge_headers_are_refused_and_serving_goes_on() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();

    // Big but reasonable headers (a fat cookie jar) still pass.
    let cookie = format!("jar={}", "c".repeat(16 * 1024));
    let echo = get_echo(
        client()
            .get(proxy.url("/fat"))
            .insert_header(("Cookie", cookie.as_str())),
    )
    .await;
    assert_eq!(echo.all("cookie"), [cookie.as_str()]);

    let tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    assert_4xx_or_closed(raw_status(&proxy, tls_hello), "TLS hello");
    assert_4xx_or_closed(
        raw_status(&proxy, b"\x00\xff\xfe\r\n\r\n\r\n\x01\x02"),
        "binary noise",
    );
    assert_4xx_or_closed(
        raw_status(
            &proxy,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        ),
        "bad Content-Length",
    );
    assert_4xx_or_closed(
        raw_status(
            &proxy,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        "Content-Length with Transfer-Encoding",
    );
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_4xx_or_closed(raw_status(&proxy, big.as_bytes()), "64 KiB header");
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /x HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_4xx_or_closed(raw_status(&proxy, many.as_bytes()), "2000 headers");

    // Nothing of that reached the app, and the next ordinary request is served.
    assert_eq!(app.seen().len(), 1, "{:?}", app.seen());
    let echo = get_echo(client().get(proxy.url("/next"))).await;
    assert_eq!(echo.path, "/next");
    assert!(proxy.is_running());
}

/// Shutdown has begun once the proxy stops accepting new connections.
fn wait_until_not_accepting(proxy: &Proxy, signal: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 10 s after SIG{signal}:\n{}",
            proxy.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn signal_lets_an_in_flight_request_finish_then_exits_0(signal: &str) {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    let size = 4 * 1024 * 1024;
    let mut res = client()
        .get(proxy.url(&format!("/download?bytes={size}&gate={signal}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The first chunk is through: the request is in flight, the app holds the rest.
    let mut got = read_at_least(&mut res, CHUNK, "first chunk").await;

    proxy.signal(signal);
    wait_until_not_accepting(&proxy, signal);
    assert!(proxy.is_running(), "exited with a request in flight");

    app.open_gate(signal);
    got.extend(read_body(&mut res).await);
    assert_eq!(got.len(), size);
    assert_eq!(sha256_hex(&got), sha256_hex(&pattern(size)));

    let status = proxy
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit after SIG{signal}:\n{}", proxy.logs()));
    assert_eq!(status.code(), Some(0), "{}", proxy.logs());
}

#[actix_web::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    signal_lets_an_in_flight_request_finish_then_exits_0("TERM").await;
}

#[actix_web::test]
async fn sigint_is_graceful_too() {
    signal_lets_an_in_flight_request_finish_then_exits_0("INT").await;
}

/// A proxy with one request stuck in flight: the app sent the first chunk and holds the rest
/// behind a gate that is never opened (the fake gives up after 30 s).
async fn stuck_in_flight(
    gate: &str,
) -> (
    FakeApp,
    Proxy,
    awc::ClientResponse<impl futures_util::Stream>,
) {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let mut res = client()
        .get(proxy.url(&format!("/download?bytes={}&gate={gate}", 4 * CHUNK)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    read_at_least(&mut res, CHUNK, "first chunk").await;
    (app, proxy, res)
}

#[actix_web::test]
async fn a_second_signal_stops_at_once() {
    let (_app, mut proxy, _res) = stuck_in_flight("twice").await;
    proxy.signal("TERM");
    // The first signal took effect; now the second.
    wait_until_not_accepting(&proxy, "TERM");
    proxy.signal("TERM");
    // Well inside the 10 s grace the first signal granted the stuck request.
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running after a second SIGTERM:\n{}", proxy.logs()));
    // Not a clean exit: a supervisor should see that requests were cut.
    assert_eq!(status.code(), Some(143), "{}", proxy.logs());
}

#[actix_web::test]
async fn a_request_that_never_ends_delays_shutdown_by_the_grace_only() {
    let (_app, mut proxy, _res) = stuck_in_flight("never").await;
    let signalled = Instant::now();
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(25))
        .unwrap_or_else(|| panic!("no exit 25 s after SIGTERM:\n{}", proxy.logs()));
    // The grace is 10 s: not cut short while the request could still finish, and not exceeded
    // (the app would hold it for 30 s).
    let took = signalled.elapsed();
    assert!(took >= Duration::from_secs(9), "exited after {took:?}");
    assert!(took < Duration::from_secs(20), "exited after {took:?}");
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
}

/// Without a config file there is nothing to reload, but SIGHUP (`systemctl reload`, a
/// habitual `kill -HUP`) must not kill the daemon, whose default action it is.
#[test]
fn sighup_without_a_config_file_is_logged_not_fatal() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    let mark = proxy.mark();
    proxy.signal("HUP");
    proxy
        .wait_line_after(mark, Duration::from_secs(5), |l| {
            l.contains("SIGHUP: no proxy.toml")
        })
        .expect("SIGHUP is answered with a line");
    proxy.assert_alive();
}

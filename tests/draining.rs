//! Draining for load balancers (README, "Running in production"): from SIGTERM, readiness
//! answers 503 at once while everything else is accepted and served as usual for
//! `shutdown_delay`; then the listener closes and requests in flight finish. SIGINT skips the
//! delay.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::app::pattern;
use common::{client, raw_get, read_at_least, read_body, within, FakeApp, Proxy};

const READY: &str = "/.ory/proxy/health/ready";

/// Whether a new connection to `addr` is accepted and answered (`GET path`, within 2 s).
fn served(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let head = String::from_utf8_lossy(&got);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[actix_web::test]
async fn readiness_fails_at_sigterm_while_the_rest_is_served_for_shutdown_delay_then_it_drains() {
    let delay = Duration::from_secs(3);
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url())
        .toml("shutdown_delay = \"3s\"\n")
        .start();
    assert_eq!(raw_get(proxy.addr(), READY, &[]).status, 200);

    // A download under way before the signal, held by the app until the gate opens.
    let n = 1 << 20;
    let mut download = client()
        .get(proxy.url(&format!("/download?bytes={n}&gate=drain")))
        .send()
        .await
        .unwrap();
    let mut got = read_at_least(&mut download, 1, "no first piece").await;

    proxy.sigterm();
    let signalled = Instant::now();
    let flipped = within(Duration::from_secs(1), || {
        served(proxy.addr(), READY) == Some(503)
    });
    assert!(
        flipped.is_some(),
        "readiness did not turn 503:\n{}",
        proxy.logs()
    );

    // Until the delay is over: new connections, the app, liveness, all as usual.
    let mut rounds = 0;
    while signalled.elapsed() < delay - Duration::from_millis(800) {
        assert_eq!(served(proxy.addr(), "/echo"), Some(200), "round {rounds}");
        assert_eq!(served(proxy.addr(), "/.ory/proxy/health/alive"), Some(200));
        assert_eq!(served(proxy.addr(), READY), Some(503));
        rounds += 1;
    }
    assert!(rounds > 0);

    // Then the listener closes: no new connection is served.
    let closed = within(Duration::from_secs(5), || {
        served(proxy.addr(), "/echo").is_none()
    });
    assert!(
        closed.is_some(),
        "still serving after shutdown_delay:\n{}",
        proxy.logs()
    );
    assert!(signalled.elapsed() >= delay - Duration::from_millis(200));
    assert!(
        proxy.is_running(),
        "exited before the request in flight finished"
    );

    // The request in flight finishes, whole, and the process exits 0.
    app.open_gate("drain");
    got.extend(read_body(&mut download).await);
    assert!(got.len() == n && got == pattern(n), "the download was cut");
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("no exit");
    assert!(status.success(), "{status:?}:\n{}", proxy.logs());
    assert!(
        !proxy.lines(|l| l.contains("shutdown_delay")).is_empty(),
        "{}",
        proxy.logs()
    );
}

#[actix_web::test]
async fn sigint_skips_the_delay() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url())
        .toml("shutdown_delay = \"30s\"\n")
        .start();
    assert_eq!(served(proxy.addr(), "/echo"), Some(200));
    let started = Instant::now();
    proxy.signal("INT");
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("no exit");
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

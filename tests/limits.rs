//! The proxy's limits under a hostile or merely slow client: stalled uploads, descriptor
//! exhaustion. The real binary on loopback, with the limits set small.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{assert_error_json, FakeApp, Proxy};

/// Reads whatever `s` gets within `limit` (until the peer closes or the time is up).
fn read_for(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return out
            }
            Err(_) => return out,
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn body_of(answer: &[u8]) -> &[u8] {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    &answer[end..]
}

/// Sends a request head that declares a body of `declared` bytes, then `sent` of them.
fn stalled_upload(addr: SocketAddr, path: &str, declared: usize, sent: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(sent).unwrap();
    s
}

#[test]
fn a_stalled_upload_gets_408_within_the_idle_timeout() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("[limits]\nbody_idle_timeout = \"1s\"\n")
        .start();

    for (declared, sent) in [(1000, &b""[..]), (1000, &b"first bytes"[..])] {
        let started = Instant::now();
        let mut s = stalled_upload(proxy.addr(), "/upload", declared, sent);
        let answer = read_for(&mut s, Duration::from_secs(10));
        let took = started.elapsed();
        assert_eq!(
            status_of(&answer),
            Some(408),
            "after {took:?}: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "408 after {took:?}"
        );
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(text.contains("connection: close"), "{text}");
        assert_error_json(body_of(&answer), 408, "Request Timeout");
    }

    // An upload that is slow but never silent for a whole second goes through.
    let mut s = stalled_upload(proxy.addr(), "/upload", 6, b"");
    for b in b"abcdef" {
        std::thread::sleep(Duration::from_millis(400));
        s.write_all(&[*b]).unwrap();
    }
    let answer = read_for(&mut s, Duration::from_secs(10));
    assert_eq!(
        status_of(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(String::from_utf8_lossy(body_of(&answer)).contains("\"len\":6"));
}

#[test]
fn a_stalled_api_logout_body_gets_408_too() {
    // The one body the proxy reads itself (to learn which session token logs out).
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("[limits]\nbody_idle_timeout = \"1s\"\n")
        .start();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.write_all(
        b"DELETE /.ory/self-service/logout/api HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"session",
    )
    .unwrap();
    let started = Instant::now();
    let answer = read_for(&mut s, Duration::from_secs(10));
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A fresh `GET /` on a new connection: its status, or `None` when no answer came within
/// `wait` (the connection waits to be accepted).
fn fresh_get(addr: SocketAddr, wait: Duration) -> (Option<u16>, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, wait) else {
        return (None, String::new());
    };
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = read_for(&mut s, wait);
    (
        status_of(&answer),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// The proxy's descriptor limit in the test below: small, so a few dozen connections reach it.
const NOFILE: u64 = 128;

#[test]
fn descriptor_exhaustion_delays_new_connections_and_never_fails_accepted_ones() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .nofile(NOFILE)
        .toml("[limits]\nbody_idle_timeout = \"60s\"\n")
        .start();
    assert_eq!(fresh_get(proxy.addr(), Duration::from_secs(5)).0, Some(200));

    // Connections that hold descriptors: stalled uploads (a client socket and an upstream
    // one each) and idle connections (a client socket only), alternately, so that every
    // count of free descriptors is passed through; after each, a fresh request.
    let mut held: Vec<TcpStream> = Vec::new();
    let mut waited = None;
    for i in 0..NOFILE as usize {
        if i % 2 == 0 {
            held.push(stalled_upload(proxy.addr(), "/upload", 1 << 20, b""));
        } else {
            held.push(TcpStream::connect(proxy.addr()).unwrap());
        }
        let (status, answer) = fresh_get(proxy.addr(), Duration::from_millis(1500));
        match status {
            Some(200) => {}
            None => {
                waited = Some(held.len());
                break;
            }
            Some(_) => panic!(
                "with {} connections held, an accepted request failed: {answer}\nproxy stderr:\n{}",
                held.len(),
                proxy.logs()
            ),
        }
    }
    let held_count = waited.unwrap_or_else(|| {
        panic!(
            "{} connections on {NOFILE} descriptors and the proxy still accepts",
            held.len()
        )
    });

    // None of the held connections was answered with an error meanwhile.
    for s in &mut held {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf) {
            let answer = String::from_utf8_lossy(&buf[..n]);
            assert!(
                !answer.starts_with("HTTP/1.1 5"),
                "a held connection got {answer}"
            );
        }
    }
    assert!(
        proxy
            .lines(|l| l.contains("Too many open files"))
            .is_empty(),
        "{}",
        proxy.logs()
    );

    // Once the holders go, new requests are served again.
    drop(held);
    let served = common::within(Duration::from_secs(10), || {
        fresh_get(proxy.addr(), Duration::from_secs(2)).0 == Some(200)
    });
    assert!(
        served.is_some(),
        "not served after {held_count} holders left; stderr:\n{}",
        proxy.logs()
    );
}

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

/// A fake Ory serving one `text/html` page of `size` bytes that names its own URL (so the
/// proxy rewrites it), with a `Content-Length` or chunked, one request per connection, each on
/// a thread of its own.
fn big_page_ory(size: usize, chunked: bool) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let mut page = format!("<a href=\"{url}/self-service/login\">sign in</a>").into_bytes();
    page.resize(size, b' ');
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {size}")
    };
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    if chunked {
        for piece in page.chunks(64 * 1024) {
            answer.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            answer.extend_from_slice(piece);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
    } else {
        answer.extend_from_slice(&page);
    }
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
            });
        }
    });
    url
}

/// A client with a small receive buffer that asks for `path` and reads only the answer's
/// head: a slow reader.
fn slow_reader(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed in the head");
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// One sample of the proxy's metrics listener.
fn metric(metrics: SocketAddr, series: &str) -> f64 {
    let r = common::raw_get(metrics, "/metrics", &[]);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn metrics_addr(p: &Proxy) -> SocketAddr {
    const BANNER: &str = "  metrics      http://";
    let line = p
        .wait_line(Duration::from_secs(10), |l| l.starts_with(BANNER))
        .expect("a metrics line in the banner");
    line[BANNER.len()..]
        .trim_end_matches("/metrics")
        .parse()
        .unwrap()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16)
            .expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Reads the rest of `s`; whether the body names `publish`'s rewritten link (else it must name
/// `ory`'s own, and be the whole page).
fn rewritten(s: &mut TcpStream, chunked: bool, publish: &str, ory: &str, page: usize) -> bool {
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    if chunked {
        body = dechunk(&body);
    }
    let start = String::from_utf8_lossy(&body[..200]).into_owned();
    if start.contains(&format!("href=\"{publish}/.ory/self-service/login\"")) {
        return true;
    }
    assert!(
        start.contains(&format!("href=\"{ory}/self-service/login\"")),
        "{start}"
    );
    assert_eq!(body.len(), page, "an unrewritten page arrives whole");
    false
}

const PAGE: usize = 6_000_000;

#[test]
fn answers_over_the_rewrite_budget_pass_unrewritten_and_the_budget_comes_back() {
    let app = FakeApp::start();
    let ory = big_page_ory(PAGE, false);
    // Room for two pages held at once, not three.
    let proxy = Proxy::to(&app.url())
        .ory(&ory)
        .toml("metrics_listen = \"127.0.0.1:0\"\n[limits]\nrewrite_budget = \"16MiB\"\n")
        .start();
    let metrics = metrics_addr(&proxy);
    let publish = proxy.default_publish();
    assert_eq!(metric(metrics, "ory_proxy_rewrite_buffer_bytes"), 0.0);

    // Five slow readers at once: each answer's head has come, no body has been read.
    let mut readers: Vec<TcpStream> = (0..5)
        .map(|_| {
            let (s, head) = slow_reader(proxy.addr(), "/.ory/ui/login");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            s
        })
        .collect();
    let held = metric(metrics, "ory_proxy_rewrite_buffer_bytes");
    assert!(
        held >= 2.0 * PAGE as f64 && held <= 16.0 * 1024.0 * 1024.0,
        "{held} bytes held for rewriting"
    );
    assert_eq!(metric(metrics, "ory_proxy_rewrite_skipped_total"), 3.0);

    // Every body arrives whole: two rewritten onto the proxy's URL, three as Ory sent them.
    let count: usize = readers
        .iter_mut()
        .map(|s| usize::from(rewritten(s, false, &publish, &ory, PAGE)))
        .sum();
    assert_eq!(count, 2);
    let back = common::within(Duration::from_secs(10), || {
        metric(metrics, "ory_proxy_rewrite_buffer_bytes") == 0.0
    });
    assert!(back.is_some(), "the budget did not come back to zero");

    // With the budget free again, the next answer is rewritten.
    let (mut s, _) = slow_reader(proxy.addr(), "/.ory/ui/login");
    assert!(rewritten(&mut s, false, &publish, &ory, PAGE));
}

#[test]
fn a_chunked_answer_takes_budget_piece_by_piece_and_passes_when_it_runs_out() {
    let app = FakeApp::start();
    let ory = big_page_ory(PAGE, true);
    let proxy = Proxy::to(&app.url())
        .ory(&ory)
        .toml("metrics_listen = \"127.0.0.1:0\"\n[limits]\nrewrite_budget = \"4MiB\"\n")
        .start();
    let metrics = metrics_addr(&proxy);
    let (mut s, head) = slow_reader(proxy.addr(), "/.ory/ui/login");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // What was read before the budget ran out stays held until it has been sent.
    let held = metric(metrics, "ory_proxy_rewrite_buffer_bytes");
    assert!(held > 0.0 && held <= 4.0 * 1024.0 * 1024.0, "{held}");
    assert_eq!(metric(metrics, "ory_proxy_rewrite_skipped_total"), 1.0);
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert!(!rewritten(
        &mut s,
        true,
        &proxy.default_publish(),
        &ory,
        PAGE
    ));
    let back = common::within(Duration::from_secs(10), || {
        metric(metrics, "ory_proxy_rewrite_buffer_bytes") == 0.0
    });
    assert!(back.is_some(), "the budget did not come back to zero");
}

//! Hostile and broken input, black box (docs/behaviour.md throughout): odd request targets, missing
//! or doubled `Host`, request smuggling attempts, `Expect: 100-continue`, odd paths and cookies,
//! pipelining; and upstreams that answer with 1xx heads, truncated or doubly framed bodies,
//! non-ASCII header values and bodies that lie about their encoding.
//!
//! After each attack the proxy must still be the same process and still serve an ordinary
//! request; no request may reach an upstream framed two ways, and no truncated body may be
//! passed off as complete.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{
    answer, assert_error_json, client, get, get_echo, raw_exchange, raw_upstream, respond_path,
    Echo, FakeApp, Proxy, RawResponse,
};

/// How long a raw exchange may take before the proxy is deemed to hang.
const RAW_DEADLINE: Duration = Duration::from_secs(10);

/// What a raw client got: every byte until the server closed, and whether it did close (as
/// opposed to the read deadline passing with the connection still open).
struct RawRead {
    bytes: Vec<u8>,
    closed: bool,
}

impl RawRead {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Writes `request` and reads until the server closes or [`RAW_DEADLINE`] passes.
fn raw_all(addr: SocketAddr, request: &[u8]) -> RawRead {
    let mut s = TcpStream::connect_timeout(&addr, RAW_DEADLINE).expect("connect");
    s.set_read_timeout(Some(RAW_DEADLINE)).unwrap();
    s.set_write_timeout(Some(RAW_DEADLINE)).unwrap();
    let _ = s.write_all(request);
    read_until_close(&mut s)
}

fn read_until_close(s: &mut TcpStream) -> RawRead {
    let mut bytes = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => {
                return RawRead {
                    bytes,
                    closed: true,
                }
            }
            Ok(n) => bytes.extend_from_slice(&tmp[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return RawRead {
                    bytes,
                    closed: false,
                }
            }
            Err(_) => {
                return RawRead {
                    bytes,
                    closed: true,
                }
            }
        }
    }
}

/// One response head parsed off `buf` at `at`: (status, lowercase headers, offset of the body).
/// A parsed response head: status, headers, and where the body starts.
type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(buf: &[u8], at: usize) -> Option<Head> {
    let rel = buf[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[at..at + rel]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, at + rel + 4))
}

fn hval<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits the bytes of several pipelined answers; `head_only[i]` marks answers to HEAD.
/// Interim (1xx) heads are skipped. Panics on framing it cannot follow.
fn split_responses(buf: &[u8], head_only: &[bool]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (status, headers, mut body_at) = parse_head(buf, at).unwrap_or_else(|| {
            panic!("no head at {at}: {:?}", String::from_utf8_lossy(&buf[at..]))
        });
        if (100..200).contains(&status) {
            at = body_at;
            continue;
        }
        let head = head_only.get(out.len()).copied().unwrap_or(false);
        let mut body = Vec::new();
        if head || status == 204 || status == 304 {
        } else if hval(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let eol = buf[body_at..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("chunk size line");
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&buf[body_at..body_at + eol])
                        .split(';')
                        .next()
                        .unwrap()
                        .trim(),
                    16,
                )
                .expect("chunk size");
                body_at += eol + 2;
                if size == 0 {
                    body_at += 2;
                    break;
                }
                body.extend_from_slice(&buf[body_at..body_at + size]);
                body_at += size + 2;
            }
        } else if let Some(n) = hval(&headers, "content-length") {
            let n: usize = n.parse().expect("content-length");
            body.extend_from_slice(&buf[body_at..body_at + n]);
            body_at += n;
        } else {
            body.extend_from_slice(&buf[body_at..]);
            body_at = buf.len();
        }
        out.push(RawResponse {
            status,
            headers,
            body,
        });
        at = body_at;
    }
    out
}

/// The proxy still runs as the same process and still serves an ordinary app request.
async fn assert_still_serving(proxy: &mut Proxy) {
    let echo = get_echo(client().get(proxy.url("/still-serving"))).await;
    assert_eq!(echo.path, "/still-serving");
    proxy.assert_alive();
}

/// The request heads an upstream fake saw whose path starts with `prefix`.
fn seen_under(app: &FakeApp, prefix: &str) -> Vec<Echo> {
    app.seen()
        .into_iter()
        .filter(|e| e.path.starts_with(prefix))
        .collect()
}

// ---- request side ----

/// An absolute-form target (`GET http://evil.example/x`) is routed by its path only: the app
/// gets origin-form `/x`, the forwarding headers come from PUBLISH_URL, and `/.ory` in such a
/// target still goes to Ory. CONNECT and `OPTIONS *` must not open a tunnel or hang.
#[actix_web::test]
async fn absolute_and_authority_form_targets_are_not_an_open_proxy() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    // A short response timeout: the fake app (actix) reads a CONNECT's "body" as a tunnel and
    // never answers, so the proxy's 504 is what ends that exchange.
    let mut proxy = Proxy::to(&app.url())
        .ory(&ory.url())
        .toml("[upstream]\nresponse_timeout = \"2s\"\n")
        .start();
    let host = format!("localhost:{}", proxy.port);

    let req = format!(
        "GET http://evil.example/abs?x=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let r = raw_exchange(proxy.addr(), req.as_bytes()).expect("an answer");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo: Echo = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(echo.path, "/abs?x=1", "the app must get origin-form");
    assert_eq!(echo.all("host").len(), 1, "{:?}", echo.headers);
    assert!(
        !echo.all("host").concat().contains("evil"),
        "{:?}",
        echo.headers
    );
    assert_eq!(echo.one("x-forwarded-host"), Some(host.as_str()));

    let req = format!(
        "GET http://evil.example/.ory/sessions/whoami HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let r = raw_exchange(proxy.addr(), req.as_bytes()).expect("an answer");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo: Echo = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(echo.path, "/sessions/whoami");
    assert_eq!(echo.one("host"), Some(ory.host_port().as_str()));

    // CONNECT: never a tunnel; an answer or a close, within the deadline. (The proxy sends the
    // app `CONNECT / HTTP/1.1`, which is no tunnel either.)
    let r = raw_all(
        proxy.addr(),
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    );
    assert!(r.closed, "CONNECT left hanging: {:?}", r.text());
    if let Some((status, _, _)) = parse_head(&r.bytes, 0) {
        assert!(
            !(200..300).contains(&status),
            "CONNECT was accepted: {}",
            r.text()
        );
    }
    // `OPTIONS *`: answered or refused, within the deadline.
    let r = raw_all(
        proxy.addr(),
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(r.closed, "OPTIONS * left hanging: {:?}", r.text());
    assert!(
        app.seen().iter().all(|e| !e.path.contains("evil")),
        "{:?}",
        app.seen()
    );
    assert_still_serving(&mut proxy).await;
}

/// HTTP/1.1 without `Host`, or with two different ones: refused (RFC 9112 §3.2 says 400), or
/// at least the app gets exactly one `Host`, never the attacker's second one next to the first.
#[actix_web::test]
async fn missing_or_duplicate_host_is_refused_or_normalised() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();

    for (what, req) in [
        (
            "no Host",
            &b"GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        ),
        (
            "two Hosts",
            &b"GET /twohosts HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n"[..],
        ),
    ] {
        let r = raw_all(proxy.addr(), req);
        assert!(r.closed, "{what}: left hanging");
        let Some((status, _, _)) = parse_head(&r.bytes, 0) else {
            continue;
        };
        assert!(status == 200 || (400..500).contains(&status), "{what}: {}", r.text());
    }
    for e in app.seen() {
        assert!(
            e.all("host").len() <= 1,
            "{}: the app got Host {:?}",
            e.path,
            e.all("host")
        );
    }
    assert_still_serving(&mut proxy).await;
}

/// Classic and obfuscated CL.TE / TE.CL attempts, each with a second request hidden in the
/// body. Refused, or normalised: the app never sees a request framed two ways, and never the
/// hidden `/smuggled` request as a request of its own.
#[actix_web::test]
async fn smuggling_attempts_never_reach_the_app_framed_two_ways() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    // Closes the connection if it is ever parsed as a request of its own.
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let chunk = format!("0\r\n\r\n{hidden}");
    let te_variants = [
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding:\tchunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding : chunked",
    ];
    for te in te_variants {
        // CL.TE: Content-Length covers everything, chunked ends early.
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{te}\r\n\r\n{chunk}",
            chunk.len()
        );
        let r = raw_all(proxy.addr(), req.as_bytes());
        assert!(r.closed || !r.bytes.is_empty(), "{te:?}: no answer at all");
        // TE.CL: a small Content-Length, a chunked body holding the hidden request.
        let body = format!("{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len());
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n{te}\r\n\r\n{body}"
        );
        let r = raw_all(proxy.addr(), req.as_bytes());
        assert!(r.closed || !r.bytes.is_empty(), "{te:?}: no answer at all");
    }
    // Transfer-Encoding alone, chunked not last (RFC 9112 §6.3: 400 and close).
    let r = raw_all(
        proxy.addr(),
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{hidden}")
            .as_bytes(),
    );
    let gzip_only = r.text();

    let seen = app.seen();
    for e in &seen {
        assert!(
            e.all("content-length").is_empty() || e.all("transfer-encoding").is_empty(),
            "the app got a request framed two ways: {e:?}"
        );
    }
    // A request whose Transfer-Encoding does not end in `chunked` has no determinable
    // length (RFC 9112 §6.3: respond 400 and close). If the proxy reads it as bodiless and then
    // parses the body as a second request, a front-end that frames it differently is desynced.
    assert!(
        seen.iter().all(|e| e.path != "/smuggled"),
        "a request hidden in a body reached the app: {:?}\nTE: gzip only answer: {gzip_only:?}",
        seen.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    assert_still_serving(&mut proxy).await;
}

/// `Expect: 100-continue`: a client that waits for the interim answer gets it (from the proxy
/// or relayed), then uploads, and the body arrives whole.
#[actix_web::test]
async fn expect_100_continue_upload_goes_through() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(RAW_DEADLINE)).unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            other => panic!(
                "no 100 Continue from the proxy ({other:?}); got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    s.write_all(b"hello world").unwrap();
    let rest = read_until_close(&mut s);
    assert!(rest.closed, "no final answer: {:?}", rest.text());
    let rs = split_responses(&rest.bytes, &[]);
    assert_eq!(rs.len(), 1, "{:?}", rest.text());
    assert_eq!(rs[0].status, 200, "{:?}", rest.text());
    let report: serde_json::Value = serde_json::from_slice(&rs[0].body).unwrap();
    assert_eq!(report["len"], 11, "{report}");
    assert_still_serving(&mut proxy).await;
}

/// Broken percent-encoding is passed on byte for byte (the raw target) or refused with a 400; a 16
/// KiB path reaches the app intact or gets a 4xx; neither crashes anything.
#[actix_web::test]
async fn bad_percent_encoding_and_huge_paths() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).ory(&ory.url()).start();

    for (path, want) in [
        ("/.ory/%zz/%", "/%zz/%"),
        ("/.ory/a%00b%ff?x=%G1&y=%", "/a%00b%ff?x=%G1&y=%"),
        ("/%zz%%/x?%", "/%zz%%/x?%"),
        ("/.ory/%2e%2E/admin", ""),
        ("/.ory/.%2e/admin", ""),
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let Some(r) = raw_exchange(proxy.addr(), req.as_bytes()) else {
            continue;
        };
        if want.is_empty() {
            assert_eq!(r.status, 400, "{path}: dot segments to Ory must be refused");
            continue;
        }
        assert!(
            r.status == 200 || r.status == 400,
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if r.status == 200 {
            let echo: Echo = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(echo.path, want, "{path}");
        }
    }
    assert!(
        seen_under(&ory, "/admin").is_empty() && ory.seen().iter().all(|e| !e.path.contains("..")),
        "{:?}",
        ory.seen()
    );

    let long = format!("/long/{}", "a".repeat(16 * 1024));
    let req = format!("GET {long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = raw_all(proxy.addr(), req.as_bytes());
    assert!(r.closed, "16 KiB path left hanging");
    if let Some((status, _, _)) = parse_head(&r.bytes, 0) {
        assert!(status == 200 || (400..500).contains(&status), "{status}");
        if status == 200 {
            let rs = split_responses(&r.bytes, &[]);
            let echo: Echo = serde_json::from_slice(&rs[0].body).unwrap();
            assert_eq!(echo.path, long);
        }
    }
    assert_still_serving(&mut proxy).await;
}

/// 500 cookies in one header, a session cookie among them, Ory down: the app gets them all,
/// anonymous. A `Cookie` with non-UTF-8 bytes goes through (or is refused) without harm.
#[actix_web::test]
async fn hundreds_of_cookies_and_non_utf8_cookie_bytes() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).start();

    let mut jar: Vec<String> = (0..500).map(|i| format!("c{i}=v{i}")).collect();
    jar.insert(250, "ory_kratos_session=abc".into());
    let jar = jar.join("; ");
    let echo = get_echo(
        client()
            .get(proxy.url("/jar"))
            .insert_header(("Cookie", jar.as_str())),
    )
    .await;
    assert_eq!(echo.all("cookie"), [jar.as_str()]);
    assert!(echo.all("authorization").is_empty());

    let mut req = b"GET /bytes HTTP/1.1\r\nHost: x\r\nCookie: ory_kratos_session=\xff\xfe\x80; a=caf\xc3\xa9\r\nAuthorization: Bearer forged\r\nConnection: close\r\n\r\n".to_vec();
    let r = raw_exchange(proxy.addr(), &req).expect("an answer");
    assert!(r.status == 200 || r.status == 400, "{}", r.status);
    if r.status == 200 {
        let echo: Echo = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(echo.path, "/bytes");
        assert!(
            echo.all("authorization").is_empty(),
            "a forged Authorization reached the app: {:?}",
            echo.headers
        );
    }
    // The same bytes to Ory.
    req.splice(4..10, b"/.ory/sessions/whoami".iter().copied());
    let r = raw_all(proxy.addr(), &req);
    assert!(r.closed && !r.bytes.is_empty(), "{:?}", r.text());
    assert_still_serving(&mut proxy).await;
}

/// 40 requests in one write, app, Ory, the proxy's own routes and HEADs mixed: 40 answers, in
/// order, each framed right.
#[actix_web::test]
async fn pipelined_requests_in_one_write_are_answered_in_order() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    let n = 40;
    let mut wire = String::new();
    let mut heads = Vec::new();
    for i in 0..n {
        let (method, path) = match i % 4 {
            0 => ("GET", format!("/p{i}")),
            1 => ("GET", format!("/.ory/o{i}")),
            2 => ("HEAD", "/sized".to_string()),
            _ => ("GET", "/.ory/proxy/health/alive".to_string()),
        };
        heads.push(method == "HEAD");
        let close = if i == n - 1 {
            "Connection: close\r\n"
        } else {
            ""
        };
        wire.push_str(&format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n"
        ));
    }
    let r = raw_all(proxy.addr(), wire.as_bytes());
    assert!(
        r.closed,
        "pipeline left hanging after {} bytes",
        r.bytes.len()
    );
    let rs = split_responses(&r.bytes, &heads);
    assert_eq!(rs.len(), n, "{}", r.text());
    for (i, res) in rs.iter().enumerate() {
        assert_eq!(res.status, 200, "#{i}");
        match i % 4 {
            0 | 1 => {
                let echo: Echo = serde_json::from_slice(&res.body)
                    .unwrap_or_else(|e| panic!("#{i}: {e}: {:?}", res.body));
                let want = if i % 4 == 0 {
                    format!("/p{i}")
                } else {
                    format!("/o{i}")
                };
                assert_eq!(echo.path, want, "#{i} answered out of order");
            }
            2 => {
                assert!(res.body.is_empty(), "#{i}: HEAD with a body");
                assert_eq!(res.header("content-length"), Some("5"), "#{i}");
            }
            _ => assert!(
                String::from_utf8_lossy(&res.body).contains("ok"),
                "#{i}: {:?}",
                res.body
            ),
        }
    }
    assert_still_serving(&mut proxy).await;
}

// ---- upstream side ----

/// An upstream that sends an interim 1xx (103 Early Hints, an unasked-for 100) before its
/// answer. awc takes the interim answer for the final one, so the proxy cannot relay the
/// final answer: it says so with a 502 instead of passing a bodiless 1xx off as the answer.
#[actix_web::test]
async fn upstream_interim_1xx_before_the_final_answer_is_a_502() {
    for (what, bytes) in [
        (
            "103",
            &b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"[..],
        ),
        (
            "100",
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"[..],
        ),
    ] {
        let up = raw_upstream(bytes);
        let mut proxy = Proxy::to(&format!("http://{up}")).start();
        let r = raw_all(
            proxy.addr(),
            b"GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let rs = split_responses(&r.bytes, &[]);
        let last = rs.last().unwrap_or_else(|| panic!("{what}: no answer: {:?}", r.text()));
        assert_eq!(last.status, 502, "{what}: {:?}", r.text());
        assert!(r.text().contains("interim"), "{what}: {:?}", r.text());
        proxy.assert_alive();
    }
}

/// An app that sends 103 Early Hints, thinks, then answers on the same keep-alive connection.
/// Were that connection reused while the answer is still to come, the next request would read
/// the first request's answer as its own: another visitor's page. (awc 3.11 does not reuse it;
/// this guards the upgrade path.)
#[actix_web::test]
async fn an_early_hints_answer_never_reaches_the_next_request() {
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut first = true;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let hints = std::mem::take(&mut first);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut hinted = !hints;
                // Every request on this connection: the first one ever gets hints, a pause
                // and "first"; any other gets "other".
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let body: &[u8] = if hinted {
                        b"other"
                    } else {
                        hinted = true;
                        let _ = conn.write_all(
                            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                        );
                        std::thread::sleep(Duration::from_millis(400));
                        b"first"
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut proxy = Proxy::to(&format!("http://{up}")).start();
    let hinted = get(&proxy.url("/first")).await;
    assert_eq!(hinted.status, 502, "{}", hinted.text());
    // Sent at once, while the app is still to answer the first request on its connection.
    let next = get(&proxy.url("/next")).await;
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(
        next.text(),
        "other",
        "the next request got the first one's answer"
    );
    proxy.assert_alive();
}

/// A body shorter than its `Content-Length`, or a chunked body cut off before its last chunk:
/// the client must see a broken answer (502, or a cut connection), never a complete-looking
/// one, and the connection must not hang.
#[actix_web::test]
async fn truncated_upstream_bodies_are_not_passed_off_as_complete() {
    let short_cl = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\nshort",
    );
    let mut proxy = Proxy::to(&format!("http://{short_cl}")).start();
    let r = raw_all(
        proxy.addr(),
        b"GET /short HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    );
    assert!(r.closed, "short body: the connection hangs: {:?}", r.text());
    if let Some((status, headers, body_at)) = parse_head(&r.bytes, 0) {
        if status == 200 {
            let got = r.bytes.len() - body_at;
            match hval(&headers, "content-length") {
                Some(n) => assert!(got < n.parse::<usize>().unwrap(), "{:?}", r.text()),
                None => assert!(
                    !r.bytes.ends_with(b"0\r\n\r\n"),
                    "a truncated body was ended as complete: {:?}",
                    r.text()
                ),
            }
        } else {
            assert_eq!(status, 502, "{:?}", r.text());
        }
    }
    proxy.assert_alive();

    let mut failures: Vec<String> = Vec::new();

    // From Ory, textual (so buffered for rewriting): a 502.
    // Was: a `200` with body `{"a":` and a fresh `Content-Length: 5`: the early EOF was taken
    // as the end of the body, and the rewrite re-framed the fragment as a complete answer
    // (a bad upstream answer is a 502).
    let short_json = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
    );
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url())
        .ory(&format!("http://{short_json}"))
        .start();
    let res = answer(
        client()
            .get(proxy.url("/.ory/sessions/whoami"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    if res.status == 502 {
        assert_error_json(&res.body, 502, "Bad Gateway");
    } else {
        failures.push(format!(
            "short Ory JSON: {} {:?} content-length {:?}",
            res.status,
            res.text(),
            res.header("content-length")
        ));
    }
    assert_still_serving(&mut proxy).await;

    assert!(failures.is_empty(), "{failures:#?}");
}

/// Known gap, kept visible: awc ends a chunked body cut before its last chunk as if it were
/// complete (its decoder treats the early EOF as the end), so the proxy's own chunked answer
/// gets a clean terminating chunk. Fixing it needs awc to report the early EOF.
#[actix_web::test]
#[ignore = "awc reports a chunked body cut before its last chunk as complete"]
async fn a_cut_chunked_app_body_is_not_ended_as_complete() {
    let mut failures: Vec<String> = Vec::new();
    let cut_chunked = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    let mut proxy = Proxy::to(&format!("http://{cut_chunked}")).start();
    let r = raw_all(proxy.addr(), b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        r.closed,
        "cut chunked: the connection hangs: {:?}",
        r.text()
    );
    // The upstream closed after `5\r\nhello\r\n`, before its last chunk. Expected a 502 or a
    // connection cut without the terminating chunk; actual: the proxy ends its own chunked
    // answer with `0\r\n\r\n`, so the client takes a truncated download as complete.
    if let Some((status, headers, _)) = parse_head(&r.bytes, 0) {
        if status == 200 {
            assert!(hval(&headers, "content-length").is_none(), "{:?}", r.text());
            if r.bytes.ends_with(b"0\r\n\r\n") {
                failures.push(format!(
                    "a cut chunked body was ended as complete: {:?}",
                    r.text()
                ));
            }
        } else {
            assert_eq!(status, 502, "{:?}", r.text());
        }
    }
    proxy.assert_alive();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// An upstream answer with both `Content-Length` and `Transfer-Encoding: chunked`: chunked wins
/// (RFC 9112 §6.3), so the client gets all of `hello`, or a 502; never `hel`, and never both
/// headers.
#[actix_web::test]
async fn upstream_answer_framed_two_ways() {
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let mut proxy = Proxy::to(&format!("http://{up}")).start();
    let r = raw_all(
        proxy.addr(),
        b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.closed, "hangs: {:?}", r.text());
    let rs = split_responses(&r.bytes, &[]);
    assert_eq!(rs.len(), 1, "{:?}", r.text());
    let (cl, te) = (
        rs[0].header("content-length"),
        rs[0].header("transfer-encoding"),
    );
    assert!(
        cl.is_none() || te.is_none(),
        "framed two ways: {:?}",
        r.text()
    );
    if rs[0].status == 200 {
        // Was: the answer framed by the upstream's Content-Length although the body was
        // chunked: `content-length: 3` and `hel`.
        assert_eq!(rs[0].body, b"hello", "{:?}", r.text());
    } else {
        assert_eq!(rs[0].status, 502, "{:?}", r.text());
    }
    proxy.assert_alive();
}

/// Odd `Location` and `Set-Cookie` values from Ory and from the app: non-ASCII bytes do not stop
/// the cookie and redirect rewrites; protocol-relative and look-alike origins are not turned into
/// redirects to the publish origin's neighbours; a huge Location neither crashes nor is mangled.
#[actix_web::test]
async fn odd_location_and_set_cookie_values() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).ory(&ory.url()).flag("--dev").start();
    let publish = proxy.default_publish();
    let ory_url = ory.url();

    let via = |prefix: &str, status: u16, headers: &[(&str, &str)]| {
        proxy.url(&format!(
            "{prefix}{}",
            respond_path(status, headers, "", false)
        ))
    };

    // Ory: a redirect on its own origin whose query holds raw UTF-8, and its session cookie
    // with a non-ASCII attribute, scoped to Ory's host, Secure + SameSite=None (on http).
    let loc = format!("{ory_url}/self-service/login/browser?return_to=/caf\u{e9}");
    let cookie =
        "ory_kratos_session=x; Domain=127.0.0.1; Path=/; Secure; SameSite=None; Comment=caf\u{e9}";
    let res = get(&via(
        "/.ory",
        303,
        &[("Location", &loc), ("Set-Cookie", cookie)],
    ))
    .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let got_loc = res.location();
    let got_cookie = res.all("set-cookie").concat();
    let want_loc = format!("{publish}/.ory/self-service/login/browser?return_to=/caf\u{e9}");
    let cookie_ok = !got_cookie.to_ascii_lowercase().contains("domain=")
        && !got_cookie.contains("Secure")
        && got_cookie.contains("SameSite=Lax");
    let non_ascii_ok = got_loc == want_loc && cookie_ok;

    // Protocol-relative and look-alike origins from the app: left alone (other hosts),
    // never rewritten onto the publish origin.
    let app_url = app.url();
    for odd in [
        "//evil.example/x".to_string(),
        format!("{app_url}.evil.example/x"),
        format!("{app_url}@evil.example/x"),
        "/\\evil.example/x".to_string(),
    ] {
        let res = get(&via("", 302, &[("Location", &odd)])).await;
        assert_eq!(res.status, 302, "{odd}");
        assert_eq!(res.location(), odd, "a foreign Location was rewritten");
    }
    // From Ory, a protocol-relative Location is not prefixed into a path on the publish origin
    // that a browser would still read as another host.
    let res = get(&via("/.ory", 302, &[("Location", "//evil.example/x")])).await;
    let l = res.location();
    assert!(
        l == "//evil.example/x" || !l.starts_with("//"),
        "Ory's protocol-relative Location became {l:?}"
    );

    // A 60 KiB Location: passed on intact, or a 502; no crash.
    let huge = format!("/landing?{}", "q".repeat(60 * 1024));
    let res = get(&via("", 302, &[("Location", &huge)])).await;
    if res.status == 302 {
        assert_eq!(res.location(), huge);
    } else {
        assert_eq!(res.status, 502, "{}", res.text());
    }
    assert_still_serving(&mut proxy).await;

    // Was: a header value with a non-ASCII byte failed `HeaderValue::to_str` and passed on
    // unrewritten: the browser was sent straight to Ory's own origin, and the
    // session cookie kept Ory's Domain and a Secure flag it cannot use on http.
    assert!(
        non_ascii_ok,
        "Location {got_loc:?} (want {want_loc:?}); Set-Cookie {got_cookie:?}"
    );
}

/// A textual Ory answer that declares `Content-Encoding: gzip` but is plain text: a 502 with the
/// JSON error (or the bytes passed on untouched), never a crash or a hang; and an Ory answer
/// with a stacked encoding passes through.
#[actix_web::test]
async fn ory_body_that_lies_about_its_encoding() {
    let app = FakeApp::start();
    let ory = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).ory(&ory.url()).start();
    let body = format!("{{\"url\":\"{}/x\"}}", ory.url());
    let path = format!(
        "/.ory{}&ct=application/json",
        respond_path(200, &[("Content-Encoding", "gzip")], &body, false)
    );
    let res = get(&proxy.url(&path)).await;
    match res.status.as_u16() {
        502 => assert_error_json(&res.body, 502, "Bad Gateway"),
        200 => assert_eq!(res.text(), body, "bytes changed without being decodable"),
        s => panic!("{s}: {}", res.text()),
    }
    // Truncated gzip.
    let gz = common::app::gzip(body.as_bytes());
    let cut = &gz[..gz.len() / 2];
    let up = raw_upstream(Box::leak(
        [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                cut.len()
            )
            .into_bytes(),
            cut.to_vec(),
        ]
        .concat()
        .into_boxed_slice(),
    ));
    let proxy2 = Proxy::to(&app.url()).ory(&format!("http://{up}")).start();
    let res = get(&proxy2.url("/.ory/x")).await;
    assert!(
        res.status == 502 || (res.status == 200 && res.body == cut),
        "{} {:?}",
        res.status,
        res.body
    );
    assert_still_serving(&mut proxy).await;
}

/// An app that never sends `100 Continue` (HTTP/1.0 servers, Python's http.server, uvicorn for
/// an expectation it does not know): it reads the head, then the body by its length, then
/// answers with what it saw. It reports the head it received.
fn app_without_interim_answers() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(1) => got.push(b[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let read = s.read_exact(&mut body).is_ok();
            let _ = tx.send(head);
            let answer = format!("read={read} len={len}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, rx)
}

/// `Expect` is an expectation of this hop: the proxy answers `100-continue` itself, so the app
/// never sees `Expect`, and an app that sends no interim answer still gets the body. (Relayed,
/// the upstream client held the body back until the app said `100 Continue`, so such an app
/// and the client waited on each other forever, holding the connection.)
#[actix_web::test]
async fn expect_is_answered_by_the_proxy_and_never_reaches_the_app() {
    for expect in ["100-continue", "foo"] {
        let (app, heads) = app_without_interim_answers();
        let mut proxy = Proxy::to(&format!("http://{app}")).start();
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(RAW_DEADLINE)).unwrap();
        // The body goes with the head, as curl does after its short wait and as many clients
        // do at once: the proxy must not hold it back waiting for the app.
        write!(
            s,
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: {expect}\r\nConnection: close\r\n\r\nhello world"
        )
        .unwrap();
        let r = read_until_close(&mut s);
        let text = r.text();
        let rs = split_responses(&r.bytes, &[]);
        let last = rs
            .last()
            .unwrap_or_else(|| panic!("Expect: {expect}: no answer: {text:?}"));
        assert!(
            [200, 417].contains(&last.status),
            "Expect: {expect}: {text:?}"
        );
        if last.status == 200 {
            assert_eq!(last.body, b"read=true len=11", "Expect: {expect}: {text:?}");
            let head = heads.recv_timeout(RAW_DEADLINE).unwrap();
            assert!(
                !head.contains("\r\nexpect:"),
                "Expect reached the app: {head}"
            );
        }
        proxy.assert_alive();
    }
}

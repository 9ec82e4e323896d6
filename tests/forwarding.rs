//! SPEC §4/§5.1 on the application route: raw paths, streaming bodies both ways, WebSockets,
//! hop-by-hop and forwarding headers, Host, and answers without a body.

mod common;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};

use common::app::{pattern, sha256_hex, UploadReport, CHUNK};
use common::{
    client, get_echo, header_all, header_one, raw_exchange, raw_get, raw_upstream, read_at_least,
    read_body, respond_path, FakeApp, Proxy, HTTP_DEADLINE,
};

const MIB: usize = 1024 * 1024;

#[test]
fn raw_path_and_query_reach_the_app_byte_for_byte() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    for target in [
        "/a%2Fb?x=%2F&y=1;z",
        "/a/../b/./c//d?q=%41%zz",
        "/%7Euser/caf%C3%A9?a=b+c&d=%20",
        "/x?",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let res = raw_exchange(proxy.addr(), req.as_bytes()).expect("an answer");
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        let echo: common::Echo = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(echo.path, target);
        assert_eq!(echo.method, "GET");
    }
}

#[actix_web::test]
async fn download_of_20_mib_is_streamed_and_intact() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let want = sha256_hex(&pattern(20 * MIB));
    for chunked in [false, true] {
        let gate = format!("dl-{chunked}");
        let path = format!(
            "/download?bytes={}&gate={gate}{}",
            20 * MIB,
            if chunked { "&chunked=1" } else { "" }
        );
        let mut res = client().get(proxy.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        if chunked {
            assert_eq!(header_one(res.headers(), "content-length"), None);
        } else {
            assert_eq!(
                header_one(res.headers(), "content-length"),
                Some((20 * MIB).to_string())
            );
        }
        // The app holds everything after its first chunk until the gate opens: the first
        // bytes can only arrive now if the proxy streams.
        let mut got = read_at_least(
            &mut res,
            CHUNK,
            "first chunk did not arrive while the upstream was still sending",
        )
        .await;
        assert_eq!(
            got.len(),
            CHUNK,
            "more than the first chunk before the gate"
        );
        app.open_gate(&gate);
        got.extend(read_body(&mut res).await);
        assert_eq!(got.len(), 20 * MIB);
        assert_eq!(sha256_hex(&got), want);
    }
}

#[actix_web::test]
async fn upload_of_20_mib_keeps_content_length_and_is_intact() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let data = Bytes::from(pattern(20 * MIB));
    let mut res = client()
        .post(proxy.url("/upload"))
        .send_body(data.clone())
        .await
        .unwrap();
    let body = read_body(&mut res).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    let r: UploadReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(r.len, data.len() as u64);
    assert_eq!(r.sha256, sha256_hex(&data));
    assert_eq!(r.content_length, Some(data.len().to_string()));
    assert_eq!(r.transfer_encoding, None);
}

#[actix_web::test]
async fn chunked_upload_stays_chunked_and_is_intact() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let data = Bytes::from(pattern(20 * MIB));
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..data.len())
        .step_by(CHUNK)
        .map(|at| Ok(data.slice(at..(at + CHUNK).min(data.len()))))
        .collect();
    let mut res = client()
        .put(proxy.url("/upload"))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    let body = read_body(&mut res).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    let r: UploadReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(r.len, data.len() as u64);
    assert_eq!(r.sha256, sha256_hex(&data));
    assert_eq!(r.content_length, None);
    assert_eq!(r.transfer_encoding.as_deref(), Some("chunked"));
}

#[actix_web::test]
async fn websocket_echo_through_the_proxy() {
    use awc::ws::{Frame, Message};
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let (res, mut ws) =
        tokio::time::timeout(HTTP_DEADLINE, client().ws(proxy.url("/ws")).connect())
            .await
            .expect("handshake deadline")
            .expect("handshake through the proxy");
    assert_eq!(res.status(), 101);

    let binary: Vec<u8> = (0..=255u8).cycle().take(60_000).collect();
    ws.send(Message::Text("hello through the proxy".into()))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from(binary.clone())))
        .await
        .unwrap();
    match next_frame(&mut ws).await {
        Frame::Text(t) => assert_eq!(&t[..], b"hello through the proxy"),
        other => panic!("want text, got {other:?}"),
    }
    match next_frame(&mut ws).await {
        Frame::Binary(b) => assert_eq!(&b[..], &binary[..]),
        other => panic!("want binary, got {other:?}"),
    }
    ws.send(Message::Close(None)).await.unwrap();
}

async fn next_frame<S, T, E>(ws: &mut S) -> T
where
    S: futures_util::Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(HTTP_DEADLINE, ws.next())
        .await
        .expect("echo deadline")
        .expect("socket closed")
        .expect("frame error")
}

#[test]
fn hop_by_hop_headers_are_removed_and_multi_values_kept() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let req = "GET /hop HTTP/1.1\r\n\
        Host: localhost\r\n\
        Connection: close, X-Drop-Me\r\n\
        X-Drop-Me: secret\r\n\
        Keep-Alive: timeout=5\r\n\
        TE: trailers\r\n\
        Trailer: X-Checksum\r\n\
        Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
        Proxy-Connection: keep-alive\r\n\
        Upgrade: h2c\r\n\
        X-Multi: one\r\n\
        X-Multi: two\r\n\
        Accept: text/html\r\n\
        Accept: application/json\r\n\
        \r\n";
    let res = raw_exchange(proxy.addr(), req.as_bytes()).expect("an answer");
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let echo: common::Echo = serde_json::from_slice(&res.body).unwrap();
    for gone in [
        "x-drop-me",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            echo.all(gone).is_empty(),
            "{gone} reached the app: {echo:?}"
        );
    }
    assert!(
        echo.all("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-drop-me")),
        "{echo:?}"
    );
    assert_eq!(echo.all("x-multi"), ["one", "two"]);
    assert_eq!(echo.all("accept"), ["text/html", "application/json"]);
}

#[actix_web::test]
async fn response_multi_values_and_set_cookie_lines_stay_separate() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let path = respond_path(
        200,
        &[
            ("X-Multi", "one"),
            ("X-Multi", "two"),
            ("Set-Cookie", "a=1; Path=/"),
            (
                "Set-Cookie",
                "b=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
            ),
            ("Vary", "Accept"),
            ("Vary", "Cookie"),
        ],
        "ok",
        false,
    );
    let mut res = client().get(proxy.url(&path)).send().await.unwrap();
    assert_eq!(read_body(&mut res).await, b"ok");
    assert_eq!(header_all(res.headers(), "x-multi"), ["one", "two"]);
    assert_eq!(
        header_all(res.headers(), "set-cookie"),
        [
            "a=1; Path=/",
            "b=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT"
        ]
    );
    // The CORS layer adds its own Vary tokens; the app's must all survive.
    let vary: Vec<String> = header_all(res.headers(), "vary")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        vary.contains(&"Accept".to_string()) && vary.contains(&"Cookie".to_string()),
        "{vary:?}"
    );
}

#[actix_web::test]
async fn forwarding_headers_come_from_the_peer_and_publish_url_never_the_client() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .publish("https://www.example.org")
        .start();
    let echo = get_echo(
        client()
            .get(proxy.url("/fwd"))
            .insert_header(("X-Forwarded-For", "6.6.6.6"))
            .append_header(("X-Forwarded-For", "7.7.7.7"))
            .insert_header(("X-Forwarded-Host", "evil.example"))
            .insert_header(("X-Forwarded-Proto", "gopher"))
            .insert_header(("X-Forwarded-Port", "1"))
            .insert_header(("Forwarded", "for=6.6.6.6;host=evil.example;proto=http")),
    )
    .await;
    assert_eq!(echo.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo.all("x-forwarded-proto"), ["https"]);
    assert_eq!(echo.all("x-forwarded-host"), ["www.example.org"]);
    assert!(echo.all("x-forwarded-port").is_empty(), "{echo:?}");
    assert!(echo.all("forwarded").is_empty(), "{echo:?}");
}

#[actix_web::test]
async fn forwarded_host_keeps_a_non_default_publish_port() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let echo = get_echo(client().get(proxy.url("/fwd"))).await;
    assert_eq!(echo.all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echo.all("x-forwarded-host"),
        [format!("localhost:{}", proxy.port)]
    );
}

#[actix_web::test]
async fn inbound_host_reaches_the_app_unless_rewrite_host() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let echo = get_echo(
        client()
            .get(proxy.url("/host"))
            .insert_header(("Host", "www.example.org")),
    )
    .await;
    assert_eq!(echo.all("host"), ["www.example.org"]);

    let proxy = Proxy::to(&app.url()).flag("--rewrite-host").start();
    let echo = get_echo(
        client()
            .get(proxy.url("/host"))
            .insert_header(("Host", "www.example.org")),
    )
    .await;
    assert_eq!(echo.all("host"), [app.host_port()]);
}

#[actix_web::test]
async fn answers_without_a_body_stay_without_one() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let c = client();

    let mut res = c
        .get(proxy.url(&respond_path(204, &[("X-A", "1")], "", false)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header_one(res.headers(), "x-a").as_deref(), Some("1"));
    assert!(read_body(&mut res).await.is_empty());

    let mut res = c
        .get(proxy.url(&respond_path(304, &[("ETag", "\"v1\"")], "", false)))
        .insert_header(("If-None-Match", "\"v1\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(header_one(res.headers(), "etag").as_deref(), Some("\"v1\""));
    assert!(read_body(&mut res).await.is_empty());

    // HEAD: the GET's length, no body: the next bytes on the connection are the next answer.
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    std::io::Write::write_all(&mut s, b"HEAD /sized HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let head_answer = read_head(&mut s);
    assert!(head_answer.starts_with("http/1.1 200"), "{head_answer}");
    assert!(head_answer.contains("content-length: 5"), "{head_answer}");
    std::io::Write::write_all(
        &mut s,
        b"GET /sized HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.ends_with("\r\n\r\nhello"), "{rest}");

    // The same, pipelined: both requests in one write, before the first answer.
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"HEAD /sized HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /sized HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut both = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut both).unwrap();
    let both = String::from_utf8_lossy(&both).to_ascii_lowercase();
    let answers: Vec<&str> = both.split("http/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{both}");
    assert!(answers[0].starts_with("200"), "{both}");
    assert!(answers[0].contains("content-length: 5\r\n"), "{both}");
    assert!(
        answers[0].ends_with("\r\n\r\n"),
        "the HEAD answer has no body: {both}"
    );
    assert!(answers[1].starts_with("200"), "{both}");
    assert!(answers[1].ends_with("\r\n\r\nhello"), "{both}");
}

/// A 304 keeps the entity's Content-Length (RFC 9110 §15.4.5) and has no body: the proxy must
/// answer it, and the connection must stay usable.
#[test]
fn not_modified_with_a_content_length_is_answered() {
    let up = raw_upstream(
        b"HTTP/1.1 304 Not Modified\r\n\
          ETag: \"v1\"\r\n\
          Content-Length: 5\r\n\
          \r\n",
    );
    let proxy = Proxy::to(&format!("http://{up}")).start();
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("http/1.1 304"), "{head}");
    assert!(head.contains("content-length: 5\r\n"), "{head}");
    assert!(head.contains("etag: \"v1\"\r\n"), "{head}");
}

/// Reads one response head (up to the blank line) byte by byte, lowercased.
fn read_head(s: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = std::io::Read::read(s, &mut b).expect("read head");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[test]
fn websocket_handshake_answer_is_a_clean_101() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).start();
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // RFC 6455 §1.3's example key and answer.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    // `close` here makes clients (awc, and browsers that check) abort the handshake.
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(!head.contains("close"), "{head}");
    assert!(!head.contains("\r\ncontent-type:"), "{head}");
}

/// The request headers of a WebSocket handshake (RFC 6455 §1.3's example key).
const WS_UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// A fake upstream that answers each connection with `answer` and then keeps the connection
/// open (for 30 s): the answer must be framed by its own head, not by the connection's end.
fn holding_upstream(answer: Vec<u8>) -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
                std::thread::sleep(std::time::Duration::from_secs(30));
            });
        }
    });
    addr
}

#[test]
fn a_declined_websocket_upgrade_keeps_its_answer() {
    // An app that answers the upgrade with an ordinary page: 200 and 407 bytes of JSON.
    let json = format!("{{\"error\":\"{}\"}}", "x".repeat(395));
    assert_eq!(json.len(), 407);
    let up = holding_upstream(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-App: yes\r\nContent-Length: 407\r\n\r\n{json}"
        )
        .into_bytes(),
    );
    let proxy = Proxy::to(&format!("http://{up}")).start();
    let r = raw_get(proxy.addr(), "/ws", &WS_UPGRADE);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("content-length"), Some("407"), "{r:?}");
    assert_eq!(r.header("x-app"), Some("yes"), "{r:?}");
    assert_eq!(r.body, json.as_bytes());

    // A refusal with a body and the header that says why.
    let body = "{\"error\":\"sign in first\"}";
    let up = holding_upstream(
        format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"hmr\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let proxy = Proxy::to(&format!("http://{up}")).start();
    let r = raw_get(proxy.addr(), "/ws", &WS_UPGRADE);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"hmr\""));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, body.as_bytes());

    // A chunked refusal.
    let up = holding_upstream(
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nnope \r\n9\r\nnot here.\r\n0\r\n\r\n"
            .to_vec(),
    );
    let proxy = Proxy::to(&format!("http://{up}")).start();
    // Without a length, the body ends with the connection (no chunked framing is possible on
    // an upgrade request's connection), so read to the end.
    let mut req = String::from("GET /ws HTTP/1.1\r\nHost: localhost\r\n");
    for (n, v) in WS_UPGRADE {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let r = raw_exchange(proxy.addr(), req.as_bytes()).expect("an answer");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("transfer-encoding"), None, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert_eq!(r.body, b"nope not here.");

    // A bodiless refusal stays bodiless.
    let up = holding_upstream(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
    let proxy = Proxy::to(&format!("http://{up}")).start();
    let r = raw_get(proxy.addr(), "/ws", &WS_UPGRADE);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.is_empty());
}

#[actix_web::test]
async fn hop_by_hop_response_headers_are_removed() {
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\n\
          Connection: close, X-Resp-Hop\r\n\
          X-Resp-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Authenticate: Basic realm=x\r\n\
          Trailer: X-Sum\r\n\
          X-Multi: a\r\n\
          X-Multi: b\r\n\
          Content-Length: 2\r\n\
          \r\n\
          ok",
    );
    let proxy = Proxy::to(&format!("http://{up}")).start();
    let mut res = client().get(proxy.url("/")).send().await.unwrap();
    assert_eq!(read_body(&mut res).await, b"ok");
    assert_eq!(res.status(), 200);
    for gone in ["x-resp-hop", "keep-alive", "proxy-authenticate", "trailer"] {
        assert!(
            header_all(res.headers(), gone).is_empty(),
            "{gone} reached the client: {:?}",
            res.headers()
        );
    }
    assert_eq!(header_all(res.headers(), "x-multi"), ["a", "b"]);
}

#[actix_web::test]
async fn trusted_proxies_forwarding_headers_are_kept_and_extended() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .toml("trusted_proxies = [\"127.0.0.0/8\"]\n")
        .publish("https://www.example.org")
        .start();
    let echo = get_echo(
        client()
            .get(proxy.url("/fwd"))
            .insert_header(("X-Forwarded-For", "203.0.113.9"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "shop.example.org")),
    )
    .await;
    assert_eq!(echo.all("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(echo.all("x-forwarded-proto"), ["https"]);
    assert_eq!(echo.all("x-forwarded-host"), ["shop.example.org"]);
}

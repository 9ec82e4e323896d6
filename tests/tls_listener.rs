//! The HTTPS listener (README, "TLS and HTTP/2"): what the proxy does over plain HTTP it does
//! the same over HTTPS, in HTTP/1.1 and in HTTP/2 (ALPN); WebSocket stays on HTTP/1.1; and what
//! a hostile HTTP/2 client or a stalled handshake can hold is bounded.
//!
//! Certificate renewals are in `tests/tls_reload.rs`; the files' permission rules there too.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ory_emulator::{Emulator, EmulatorConfig};

use common::app::{pattern, sha256_hex, UploadReport};
use common::tls::{client_config, write_pair, Http, TestCa};
use common::{
    answer, header_all, read_at_least, read_body, run_cli, Echo, FakeApp, Proxy, HTTP_DEADLINE,
};

/// A CA and the proxy's certificate files, signed by it.
struct Site {
    ca: TestCa,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

fn site() -> Site {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), &ca.leaf("proxy"));
    Site {
        ca,
        cert,
        key,
        _dir: dir,
    }
}

impl Site {
    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    fn proxy(&self, app: &FakeApp, ory: &str) -> Proxy {
        let flags = self.flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Proxy::to(&app.url()).ory(ory).flags(&flags).start()
    }

    fn client(&self, http: Http) -> awc::Client {
        common::tls::client(&self.ca.pem(), http)
    }
}

/// The app's echo of a GET through `c`.
async fn echo(c: &awc::Client, url: &str, headers: &[(&str, &str)]) -> Echo {
    common::get_echo(common::with_headers(c.get(url), headers)).await
}

/// Verifies `token` with the JWKS `proxy` serves (fetched with `c`): its claims.
async fn verified(c: &awc::Client, proxy: &Proxy, token: &str) -> serde_json::Value {
    let res = common::send(c.get(proxy.https_url("/.ory/jwks.json"))).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let set: JwkSet = serde_json::from_slice(&res.body).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the token's key in the JWKS");
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("a JWT the JWKS verifies")
        .claims
}

#[actix_web::test]
async fn forwarding_streaming_cors_jwt_and_rewriting_are_the_same_over_http1_and_http2() {
    let site = site();
    let app = FakeApp::start();
    let ory = Emulator::start(EmulatorConfig::default()).unwrap();
    let proxy = site.proxy(&app, ory.url());
    let publish = format!("https://localhost:{}", proxy.port);
    let session = ory.create_session("tls@example.org");

    for http in Http::BOTH {
        let c = site.client(http);
        let url = |p: &str| proxy.https_url(p);

        // The protocol ALPN chose is the one asked for.
        let res = c.get(url("/.ory/proxy/health/alive")).send().await.unwrap();
        assert_eq!(res.version(), http.version(), "{http:?}");

        // Forwarding: the raw path and query, every value of a repeated header, the client's
        // host (`:authority` over HTTP/2), where users reach the app, and no forged forwarding.
        let e = echo(
            &c,
            &url("/echo/a%2Fb/..%2f?q=%20x&y"),
            &[
                ("accept", "text/html"),
                ("accept", "application/json"),
                ("x-forwarded-for", "6.6.6.6"),
                ("remote-user", "eve"),
            ],
        )
        .await;
        assert_eq!(e.path, "/echo/a%2Fb/..%2f?q=%20x&y", "{http:?}");
        assert_eq!(
            e.all("accept"),
            ["text/html", "application/json"],
            "{http:?}"
        );
        let host = format!("localhost:{}", proxy.port);
        assert_eq!(e.one("host"), Some(host.as_str()), "{http:?}: {e:?}");
        assert_eq!(e.one("x-forwarded-proto"), Some("https"), "{http:?}");
        assert_eq!(e.one("x-forwarded-host"), Some(host.as_str()), "{http:?}");
        let xff = e.one("x-forwarded-for").unwrap_or_default();
        assert!(xff == "127.0.0.1" || xff == "::1", "{http:?}: {xff}");
        assert!(e.all("remote-user").is_empty(), "{http:?}");
        assert!(e.all("authorization").is_empty(), "{http:?}: anonymous");

        // Streaming both ways: a 3 MiB upload arrives whole, a download's first piece comes
        // before the app has sent the rest.
        let body = pattern(3 << 20);
        let mut res = c
            .post(url("/upload"))
            .send_body(body.clone())
            .await
            .unwrap();
        let report: UploadReport = serde_json::from_slice(&read_body(&mut res).await).unwrap();
        assert_eq!(report.len, body.len() as u64, "{http:?}");
        assert_eq!(report.sha256, sha256_hex(&body), "{http:?}");
        let gate = format!("stream-{http:?}");
        let n = 1 << 20;
        let mut res = c
            .get(url(&format!("/download?bytes={n}&gate={gate}")))
            .send()
            .await
            .unwrap();
        let first = read_at_least(&mut res, 1, "the first piece never came").await;
        app.open_gate(&gate);
        let mut all = first;
        all.extend(read_body(&mut res).await);
        assert_eq!(all, pattern(n), "{http:?}");

        // CORS: the publish origin gets it with credentials, another origin does not.
        let res = common::send(
            c.request(awc::http::Method::OPTIONS, url("/api"))
                .insert_header(("Origin", publish.as_str()))
                .insert_header(("Access-Control-Request-Method", "POST")),
        )
        .await;
        assert_eq!(res.status, 204, "{http:?}");
        assert_eq!(res.all("access-control-allow-origin"), [publish.as_str()]);
        assert_eq!(res.all("access-control-allow-credentials"), ["true"]);
        let res = common::send(
            c.get(url("/echo"))
                .insert_header(("Origin", "https://evil.example")),
        )
        .await;
        assert_eq!(res.status, 200);
        assert!(
            res.all("access-control-allow-origin").is_empty(),
            "{http:?}"
        );

        // JWT: a session's request reaches the app with a token the JWKS verifies.
        let e = echo(&c, &url("/echo"), &[("cookie", session.cookie.as_str())]).await;
        let auth = e.one("authorization").expect("a JWT for an active session");
        let claims = verified(&c, &proxy, auth.strip_prefix("Bearer ").unwrap()).await;
        assert_eq!(claims["sub"], session.identity_id, "{http:?}");

        // Rewriting: Ory's redirect, cookie and body come back on the publish URL.
        let res = common::send(
            c.get(url("/.ory/self-service/login/browser"))
                .insert_header(("Accept", "text/html")),
        )
        .await;
        assert_eq!(res.status, 303, "{http:?}: {}", res.text());
        let loc = res.location();
        let prefix = format!("{publish}/.ory/ui/login?flow=");
        assert!(loc.starts_with(&prefix), "{http:?}: {loc}");
        let cookie = header_all(&res.headers, "set-cookie")
            .into_iter()
            .find(|l| l.starts_with("csrf_token"))
            .expect("Ory's CSRF cookie");
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
        let flow = &loc[prefix.len()..];
        let csrf = cookie.split(';').next().unwrap();
        let res = common::send(
            c.get(url(&format!("/.ory/self-service/login/flows?id={flow}")))
                .insert_header(("Accept", "application/json"))
                .insert_header(("Accept-Encoding", "identity"))
                .insert_header(("Cookie", csrf)),
        )
        .await;
        assert_eq!(res.status, 200, "{http:?}: {}", res.text());
        let text = res.text();
        assert!(
            text.contains(&format!("{publish}/.ory/")),
            "{http:?}: {text}"
        );
        assert!(
            !text.contains(ory.url()),
            "{http:?}: Ory's origin left in {text}"
        );

        // An app redirect to its own origin moves onto the publish URL.
        let res = common::send(c.get(url("/redirect/absolute"))).await;
        assert!(res.location().starts_with(&publish), "{http:?}");
    }
}

#[actix_web::test]
async fn curl_over_http2_reaches_the_app_with_the_jwt() {
    let site = site();
    let app = FakeApp::start();
    let ory = Emulator::start(EmulatorConfig::default()).unwrap();
    let proxy = site.proxy(&app, ory.url());
    let session = ory.create_session("curl@example.org");
    let ca_file = site.cert.with_file_name("ca.pem");
    std::fs::write(&ca_file, site.ca.pem()).unwrap();
    let out = std::process::Command::new("curl")
        .args(["--http2", "--silent", "--show-error", "--max-time", "20"])
        .args(["--cacert", ca_file.to_str().unwrap()])
        .args(["-H", &format!("Cookie: {}", session.cookie)])
        .args(["--write-out", "\n%{http_version} %{http_code}"])
        .arg(proxy.https_url("/whoever"))
        .output()
        .expect("curl (Debian's curl, with HTTP/2)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(tail, "2 200", "{stdout}");
    let e: Echo = serde_json::from_str(body).unwrap();
    assert_eq!(e.path, "/whoever");
    let token = e
        .one("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let claims = verified(&site.client(Http::V2), &proxy, token).await;
    assert_eq!(claims["sub"], session.identity_id);
}

#[actix_web::test]
async fn websocket_works_over_http1_on_the_tls_port() {
    use awc::ws::{Frame, Message};
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let c = site.client(Http::V1);
    let (res, mut ws) = tokio::time::timeout(HTTP_DEADLINE, c.ws(proxy.https_url("/ws")).connect())
        .await
        .expect("handshake deadline")
        .expect("handshake through the proxy");
    assert_eq!(res.status(), 101);
    ws.send(Message::Text("over TLS".into())).await.unwrap();
    let frame = tokio::time::timeout(HTTP_DEADLINE, ws.next())
        .await
        .expect("echo deadline")
        .expect("socket closed")
        .expect("frame error");
    match frame {
        Frame::Text(t) => assert_eq!(&t[..], b"over TLS"),
        other => panic!("want text, got {other:?}"),
    }
    ws.send(Message::Close(None)).await.unwrap();
}

/// A raw HTTP/2 connection to the proxy, for what awc does not send.
async fn h2_connection(port: u16, ca_pem: &str) -> h2::client::SendRequest<Bytes> {
    let config = client_config(ca_pem, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Windows large enough that bodies not read yet never hold up the one being read.
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 28)
        .handshake(tls)
        .await
        .expect("h2 handshake");
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn h2_get(port: u16, path: &str, headers: &[(&str, &str)]) -> http02::Request<()> {
    let mut b = http02::Request::builder().uri(format!("https://localhost:{port}{path}"));
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

/// Sends a GET on `send`: the answer's status and body.
async fn h2_exchange(
    send: &h2::client::SendRequest<Bytes>,
    req: http02::Request<()>,
) -> (u16, Vec<u8>) {
    let ready = send.clone().ready();
    let mut ready = tokio::time::timeout(HTTP_DEADLINE, ready)
        .await
        .unwrap()
        .unwrap();
    let (res, _) = ready.send_request(req, true).unwrap();
    let res = tokio::time::timeout(HTTP_DEADLINE, res)
        .await
        .unwrap()
        .unwrap();
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(HTTP_DEADLINE, body.data())
        .await
        .unwrap()
    {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, out)
}

/// Over HTTP/2 a client names the host in `:authority`; a `Host` header naming another host as
/// well is a malformed request (RFC 9113, 8.3.1), refused before the app sees it.
#[actix_web::test]
async fn http2_authority_is_the_host_and_a_second_host_is_refused() {
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let h2 = h2_connection(proxy.port, &site.ca.pem()).await;
    let (status, body) = h2_exchange(&h2, h2_get(proxy.port, "/echo", &[])).await;
    assert_eq!(status, 200);
    let e: Echo = serde_json::from_slice(&body).unwrap();
    let authority = format!("localhost:{}", proxy.port);
    assert_eq!(e.one("host"), Some(authority.as_str()), "{e:?}");

    // The same host in both: fine.
    let same = h2_get(proxy.port, "/echo", &[("host", &authority)]);
    assert_eq!(h2_exchange(&h2, same).await.0, 200);
    let seen = app.seen().len();
    for host in ["evil.example", "localhost:1"] {
        let req = h2_get(proxy.port, "/echo", &[("host", host)]);
        let (status, body) = h2_exchange(&h2, req).await;
        assert_eq!(
            status,
            400,
            "Host {host}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(String::from_utf8_lossy(&body).contains(":authority"));
    }
    assert_eq!(
        app.seen().len(),
        seen,
        "a request with two hosts reached the app"
    );
}

/// A header list too large for the app (64 KiB, as over HTTP/1.1) gets 431, also when HPACK
/// made it cheap to send; nothing reaches the app.
#[actix_web::test]
async fn http2_oversized_header_lists_get_431() {
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let h2 = h2_connection(proxy.port, &site.ca.pem()).await;
    let value = "v".repeat(100);
    let names: Vec<String> = (0..1000).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let (status, _) = h2_exchange(&h2, h2_get(proxy.port, "/echo", &headers)).await;
    assert_eq!(status, 431);
    assert!(app.seen().is_empty(), "{:?}", app.seen().len());
    // The connection serves on.
    assert_eq!(
        h2_exchange(&h2, h2_get(proxy.port, "/echo", &[])).await.0,
        200
    );
}

/// One HTTP/2 connection cannot hold more than 256 requests in flight (actix-http sets no
/// stream limit): the others get 503 at once and never reach the app; the connection serves on.
#[actix_web::test]
async fn http2_streams_beyond_the_connection_bound_get_503() {
    const STREAMS: usize = 300;
    const BOUND: usize = 256;
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let send = h2_connection(proxy.port, &site.ca.pem()).await;
    // Each download sends its first piece, then waits for the gate: in flight until it opens.
    let mut pending = Vec::new();
    for i in 0..STREAMS {
        let mut ready = tokio::time::timeout(HTTP_DEADLINE, send.clone().ready())
            .await
            .unwrap()
            .unwrap();
        let req = h2_get(
            proxy.port,
            &format!("/download?bytes=200000&gate=flood{i}"),
            &[],
        );
        pending.push(ready.send_request(req, true).unwrap().0);
    }
    let mut ok = Vec::new();
    let mut busy = 0;
    for res in pending {
        let res = tokio::time::timeout(HTTP_DEADLINE, res)
            .await
            .unwrap()
            .unwrap();
        match res.status().as_u16() {
            200 => ok.push(res.into_body()),
            503 => {
                assert_eq!(res.headers()["retry-after"], "1");
                busy += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!((ok.len(), busy), (BOUND, STREAMS - BOUND));
    let downloads = app
        .seen()
        .iter()
        .filter(|e| e.path.starts_with("/download"))
        .count();
    assert_eq!(downloads, BOUND);
    // Full, the connection refuses more work, but never the health probes: an orchestrator
    // must not restart a proxy for being busy.
    assert_eq!(
        h2_exchange(&send, h2_get(proxy.port, "/echo", &[])).await.0,
        503
    );
    for probe in ["/.ory/proxy/health/alive", "/.ory/proxy/health/ready"] {
        assert_eq!(
            h2_exchange(&send, h2_get(proxy.port, probe, &[])).await.0,
            200,
            "{probe}"
        );
    }
    for i in 0..STREAMS {
        app.open_gate(&format!("flood{i}"));
    }
    for mut body in ok {
        let mut n = 0;
        while let Some(chunk) = tokio::time::timeout(HTTP_DEADLINE, body.data())
            .await
            .unwrap()
        {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            n += chunk.len();
        }
        assert_eq!(n, 200_000);
    }
    // Released with the bodies: the connection takes new streams again.
    assert_eq!(
        h2_exchange(&send, h2_get(proxy.port, "/echo", &[])).await.0,
        200
    );
}

/// Clients that connect and never start their handshake: each is cut after 5 s, and while they
/// wait, they do not hold up other clients' handshakes (actix-tls alone takes 256 handshakes
/// at once per worker and leaves the rest waiting).
#[actix_web::test]
async fn stalled_tls_handshakes_neither_block_others_nor_stay() {
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stalled: Vec<std::net::TcpStream> = (0..256 * workers + 100)
        .map(|_| std::net::TcpStream::connect(proxy.addr()).expect("connect"))
        .collect();
    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(2),
        site.client(Http::V1).get(proxy.https_url("/echo")).send(),
    )
    .await
    .expect("a handshake waited behind the stalled ones")
    .unwrap();
    assert_eq!(answer(res).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));

    // The stalled ones are cut: the last one connected, within the timeout and a margin.
    let last = stalled.last().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut &*last, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server wrote to a client that said nothing");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "cut after {waited:?}"
    );
}

#[actix_web::test]
async fn plain_http_on_the_tls_port_gets_no_http_answer() {
    use std::io::{Read as _, Write as _};
    let site = site();
    let app = FakeApp::start();
    let proxy = site.proxy(&app, common::NO_ORY);
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP was answered on the TLS port: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(app.seen().is_empty());
}

#[actix_web::test]
async fn tls_comes_from_flags_env_or_the_file_and_half_a_pair_is_an_error() {
    let site = site();
    let app = FakeApp::start();
    let (cert, key) = (site.cert.to_str().unwrap(), site.key.to_str().unwrap());
    let by_env = Proxy::to(&app.url())
        .env("ORY_PROXY_TLS__CERT_FILE", cert)
        .env("ORY_PROXY_TLS__KEY_FILE", key)
        .start();
    let by_file = Proxy::to(&app.url())
        .toml(&format!(
            "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ))
        .start();
    for proxy in [&by_env, &by_file] {
        // PUBLISH_URL defaults to https, and the banner says where it listens.
        let open = format!("https://localhost:{}", proxy.port);
        assert!(
            !proxy.lines(|l| l.trim() == open).is_empty(),
            "{}",
            proxy.logs()
        );
        assert!(!proxy
            .lines(|l| l.contains("listening    https://"))
            .is_empty());
        let tls_row = proxy.wait_line(Duration::from_secs(5), |l| {
            l.trim_start().starts_with("tls ")
        });
        assert!(
            tls_row.is_some_and(|r| r.contains("HTTP/2")),
            "{}",
            proxy.logs()
        );
        let res = common::send(site.client(Http::V2).get(proxy.https_url("/echo"))).await;
        assert_eq!(res.status, 200);
    }

    let half = run_cli(
        &[
            "--sdk-url",
            common::NO_ORY,
            "--tls-cert",
            cert,
            "http://127.0.0.1:1",
        ],
        &[],
        &[],
    );
    assert_eq!(half.code, Some(2), "{}", half.stderr);
    assert!(
        half.stderr.contains("`tls.cert_file`") && half.stderr.contains("--tls-key"),
        "{}",
        half.stderr
    );

    // A key of another certificate: the start fails, naming both files.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = write_pair(other.path(), &site.ca.leaf("other"));
    let out = run_cli(
        &[
            "--sdk-url",
            common::NO_ORY,
            "--port",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            other_key.to_str().unwrap(),
            "http://127.0.0.1:1",
        ],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("does not belong") && out.stderr.contains(cert),
        "{}",
        out.stderr
    );
}

//! The fake application (and, started a second time, a fake Ory whose answers a test
//! dictates byte for byte): an actix-web server on 127.0.0.1:0 in its own thread with its own
//! actix System.
//!
//! Endpoints:
//! - `/ws`: WebSocket echo (text and binary).
//! - `/upload`: reads the body and answers `{"len","sha256","content_length","transfer_encoding"}`.
//! - `/download?bytes=N[&chunked=1][&gate=ID][&ct=T]`: [`pattern`]`(N)` in 64 KiB chunks, of
//!   type `T` (default `application/octet-stream`); with a gate,
//!   the first chunk goes out and the rest waits until the test calls [`FakeApp::open_gate`].
//! - `/respond?status=S&h=Name:%20value&...&body=B[&gzip=1][&ct=T]`: an answer made to order;
//!   `x-body-sha256` is the hash of the bytes sent.
//! - `/cookies`: two `Set-Cookie` lines, one with `Domain=<app host>`.
//! - `/redirect/{absolute,relative,other,welcome}`: 302s with the matching `Location`.
//! - `/welcome`: `302 Location: /.ory/ui/welcome` plus [`WELCOME_COOKIE`], scoped to the app host
//!   (what the hot-reload tests read the live settings from).
//! - `/slow-head?gate=ID`: the response head waits for the gate (for timeouts).
//! - `/sized`: `hello` with `Content-Length: 5` (for HEAD).
//! - anything else: the request head as JSON ([`Echo`]).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

/// The cookie `/welcome` sets: scoped to the application URL's host, so the proxy rewrites its
/// `Domain`.
pub const WELCOME_COOKIE: &str = "a=1; Domain=127.0.0.1; Path=/";

/// Download chunk size.
pub const CHUNK: usize = 64 * 1024;

/// How long a gated handler waits at most, so a failing test cannot hang the fake forever.
const GATE_SAFETY: Duration = Duration::from_secs(30);

/// Deterministic pseudo-random bytes (xorshift64): the same `len` always gives the same bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every value of header `name` (any case) in a list of header lines.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The request head as the fake app saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echo {
    pub method: String,
    /// Raw path and query, as received.
    pub path: String,
    /// Every header line, in order, names lowercase.
    pub headers: Vec<(String, String)>,
}

impl Echo {
    pub fn all(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }
}

/// What `/upload` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadReport {
    pub len: u64,
    pub sha256: String,
    pub content_length: Option<String>,
    pub transfer_encoding: Option<String>,
}

#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Gates {
    fn get(&self, id: &str) -> Arc<Notify> {
        self.0
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    async fn wait(&self, id: &str) {
        let n = self.get(id);
        let _ = tokio::time::timeout(GATE_SAFETY, n.notified()).await;
    }
}

#[derive(Clone)]
struct State {
    url: String,
    host: String,
    gates: Gates,
    seen: Arc<Mutex<Vec<Echo>>>,
}

/// A running fake app; stopped on drop.
pub struct FakeApp {
    pub addr: SocketAddr,
    state: State,
    handle: actix_web::dev::ServerHandle,
    system: actix_rt::System,
}

impl FakeApp {
    pub fn start() -> FakeApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake app");
        let addr = listener.local_addr().unwrap();
        let state = State {
            url: format!("http://{addr}"),
            host: addr.ip().to_string(),
            gates: Gates::default(),
            seen: Arc::default(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::new(st);
                let server = HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(data.clone())
                        .route("/ws", web::get().to(ws_echo))
                        .route("/upload", web::to(upload))
                        .route("/download", web::get().to(download))
                        .route("/respond", web::to(respond))
                        .route("/cookies", web::get().to(cookies))
                        .route("/redirect/{kind}", web::get().to(redirect))
                        .route("/welcome", web::get().to(welcome))
                        .route("/slow-head", web::get().to(slow_head))
                        .route("/sized", web::to(sized))
                        .default_service(web::to(echo))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen fake app")
                .run();
                tx.send((server.handle(), actix_rt::System::current()))
                    .unwrap();
                let _ = server.await;
            });
        });
        let (handle, system) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake app did not start");
        FakeApp {
            addr,
            state,
            handle,
            system,
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        self.state.url.clone()
    }

    /// `127.0.0.1:<port>`
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Lets a gated handler go on.
    pub fn open_gate(&self, id: &str) {
        self.state.gates.get(id).notify_one();
    }

    /// Every request head seen so far (the WebSocket and upload endpoints included).
    pub fn seen(&self) -> Vec<Echo> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        self.system.stop();
    }
}

fn head_of(req: &HttpRequest) -> Echo {
    Echo {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_string()),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    }
}

fn record(req: &HttpRequest, st: &State) -> Echo {
    let e = head_of(req);
    st.seen.lock().unwrap().push(e.clone());
    e
}

fn params(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn param(req: &HttpRequest, name: &str) -> Option<String> {
    params(req)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn echo(req: HttpRequest, st: web::Data<State>, mut body: web::Payload) -> HttpResponse {
    let e = record(&req, &st);
    // Drain the body so the connection stays usable.
    while let Some(Ok(_)) = body.next().await {}
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("x-fake", "app"))
        .body(serde_json::to_string(&e).unwrap())
}

async fn ws_echo(
    req: HttpRequest,
    st: web::Data<State>,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    record(&req, &st);
    let (res, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = stream.recv().await {
            let ok = match msg {
                actix_ws::Message::Text(t) => session.text(t).await.is_ok(),
                actix_ws::Message::Binary(b) => session.binary(b).await.is_ok(),
                actix_ws::Message::Ping(p) => session.pong(&p).await.is_ok(),
                actix_ws::Message::Close(reason) => {
                    let _ = session.close(reason).await;
                    return;
                }
                _ => true,
            };
            if !ok {
                return;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(res)
}

async fn upload(req: HttpRequest, st: web::Data<State>, mut body: web::Payload) -> HttpResponse {
    record(&req, &st);
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                len += c.len() as u64;
                hasher.update(&c);
            }
            Err(e) => return HttpResponse::BadRequest().body(format!("upload broke: {e}")),
        }
    }
    let h = |n: header::HeaderName| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap_or("?").to_string())
    };
    let report = UploadReport {
        len,
        sha256: hex(&hasher.finalize()),
        content_length: h(header::CONTENT_LENGTH),
        transfer_encoding: h(header::TRANSFER_ENCODING),
    };
    HttpResponse::Ok().json(report)
}

async fn download(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    let n: usize = param(&req, "bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let chunked = param(&req, "chunked").as_deref() == Some("1");
    let gate = param(&req, "gate");
    let data = Bytes::from(pattern(n));
    let gates = st.gates.clone();
    let stream = futures_util::stream::unfold(
        (data, 0usize, gate, gates),
        |(data, at, gate, gates)| async move {
            if at >= data.len() {
                return None;
            }
            if at > 0 {
                if let Some(g) = &gate {
                    if at == CHUNK.min(data.len()) {
                        gates.wait(g).await;
                    }
                }
            }
            let end = (at + CHUNK).min(data.len());
            let chunk = data.slice(at..end);
            Some((
                Ok::<Bytes, actix_web::Error>(chunk),
                (data, end, gate, gates),
            ))
        },
    );
    let mut res = HttpResponse::Ok();
    res.content_type(param(&req, "ct").unwrap_or_else(|| "application/octet-stream".into()));
    if chunked {
        res.streaming(stream)
    } else {
        res.body(actix_web::body::SizedStream::new(n as u64, stream))
    }
}

async fn respond(req: HttpRequest, st: web::Data<State>, mut body: web::Payload) -> HttpResponse {
    record(&req, &st);
    while let Some(Ok(_)) = body.next().await {}
    let p = params(&req);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let status = get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    for (k, v) in &p {
        if k == "h" {
            let (name, value) = v.split_once(':').expect("h=Name: value");
            res.append_header((name.trim(), value.trim_start()));
        }
    }
    if let Some(ct) = get("ct") {
        res.insert_header((header::CONTENT_TYPE, ct));
    }
    let mut bytes = get("body").unwrap_or_default().into_bytes();
    if get("gzip").as_deref() == Some("1") {
        bytes = gzip(&bytes);
        res.insert_header((header::CONTENT_ENCODING, "gzip"));
    }
    res.insert_header(("x-body-sha256", sha256_hex(&bytes)));
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return res.finish();
    }
    res.body(bytes)
}

async fn cookies(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    HttpResponse::Ok()
        .append_header((
            header::SET_COOKIE,
            format!("app_scoped=1; Path=/; Domain={}; HttpOnly", st.host),
        ))
        .append_header((
            header::SET_COOKIE,
            "elsewhere=2; Path=/x; Domain=other.example; Secure; SameSite=None",
        ))
        .body("cookies")
}

async fn redirect(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    let location = match req.match_info().get("kind").unwrap_or("") {
        "absolute" => format!("{}/landing/?q=%2F#frag", st.url),
        "relative" => "/landing/?q=1".to_string(),
        "other" => "https://other.example/x?y=1".to_string(),
        "welcome" => "/.ory/ui/welcome".to_string(),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn welcome(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/.ory/ui/welcome"))
        .insert_header((header::SET_COOKIE, WELCOME_COOKIE))
        .finish()
}

async fn slow_head(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    let gate = param(&req, "gate").unwrap_or_default();
    st.gates.wait(&gate).await;
    HttpResponse::Ok().body("late")
}

async fn sized(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    record(&req, &st);
    HttpResponse::Ok().content_type("text/plain").body("hello")
}

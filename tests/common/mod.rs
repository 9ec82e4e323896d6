//! Shared helpers for the integration tests: the real `ory-proxy` binary as a child process,
//! an awc client, a raw HTTP/1.1 client for byte-level control, and the fake app ([`app`]).
//!
//! Each test file uses a different subset of these.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod mounts;
pub mod tls;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use app::{Echo, FakeApp};

/// An Ory URL nothing listens on.
pub const NO_ORY: &str = "http://127.0.0.1:1";

/// How long the proxy may take to print its banner.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Deadline for one HTTP exchange in the tests.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ory-proxy")
}

/// A command for the proxy binary with a clean environment (no stray `ORY_*`, `PORT`,
/// `SSL_CERT_FILE`, `RUST_LOG`) and an empty working directory (no stray `./proxy.toml`).
fn command(dir: &Path, env: &[(String, String)]) -> Command {
    wrapped_command(&[], dir, env)
}

/// [`command`], run through `wrap` (a program and its arguments that ends by running the
/// binary named last: `unshare … sh -c '…; exec "$0" "$@"'`).
fn wrapped_command(wrap: &[String], dir: &Path, env: &[(String, String)]) -> Command {
    let mut c = match wrap.split_first() {
        None => Command::new(bin()),
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin());
            c
        }
    };
    c.env_clear().current_dir(dir);
    if let Ok(path) = std::env::var("PATH") {
        c.env("PATH", path);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The outcome of a run of the binary that is expected to end by itself.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Runs the binary to completion (bounded); `files` are written into its working directory.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], files: &[(&str, &str)]) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut child = command(dir.path(), &env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ory-proxy");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_deadline(&mut child, Duration::from_secs(20));
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ory-proxy {args:?} did not exit within 20s; stderr:\n{}",
                t_err.join().unwrap()
            );
        }
    };
    Finished {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Polls `try_wait` until the child exits or the deadline passes.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How to start a proxy.
pub struct ProxyBuilder {
    app: Option<String>,
    publish: Option<String>,
    ory: Option<String>,
    config: Option<PathBuf>,
    flags: Vec<String>,
    env: Vec<(String, String)>,
    toml: Option<String>,
    /// Written to the proxy's stdin, which is then closed (`-c /dev/stdin`: a pipe).
    stdin: Option<String>,
    /// `RLIMIT_NOFILE` (soft and hard) of the child.
    nofile: Option<u64>,
    /// A program (and arguments) that runs the binary, given as its last argument.
    wrap: Vec<String>,
}

impl ProxyBuilder {
    pub fn ory(mut self, url: &str) -> Self {
        self.ory = Some(url.to_string());
        self
    }

    /// The second positional argument.
    pub fn publish(mut self, url: &str) -> Self {
        self.publish = Some(url.to_string());
        self
    }

    pub fn flag(mut self, f: &str) -> Self {
        self.flags.push(f.to_string());
        self
    }

    pub fn flags(mut self, fs: &[&str]) -> Self {
        self.flags.extend(fs.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Feeds `text` to the proxy's stdin through a pipe, closed after it.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// Starts the proxy with `RLIMIT_NOFILE` lowered to `n`, soft and hard (so the proxy
    /// cannot raise it).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Runs the binary through `wrap`: `wrap[0] wrap[1..] <ory-proxy> <args>` (the wrapper
    /// must end by executing its next argument with the rest).
    pub fn wrap(mut self, wrap: &[&str]) -> Self {
        self.wrap = wrap.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Writes `proxy.toml` and passes `-c` with its path.
    pub fn toml(mut self, text: &str) -> Self {
        self.toml = Some(text.to_string());
        self
    }

    pub fn start(self) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec!["--port".into(), "0".into()];
        if let Some(ory) = &self.ory {
            args.push("--sdk-url".into());
            args.push(ory.clone());
        }
        if let Some(t) = &self.toml {
            let p = dir.path().join("proxy.toml");
            std::fs::write(&p, t).unwrap();
            args.push("-c".into());
            args.push(p.display().to_string());
        }
        if let Some(p) = &self.config {
            args.push("-c".into());
            args.push(p.display().to_string());
        }
        args.extend(self.flags.iter().cloned());
        args.extend(self.app.iter().cloned());
        args.extend(self.publish.iter().cloned());
        Proxy::spawn_with(
            dir,
            &args,
            &self.env,
            self.stdin.as_deref(),
            self.nofile,
            &self.wrap,
        )
    }
}

/// What the proxy wrote to stderr so far, line by line; `closed` once the pipe ended.
#[derive(Default)]
struct StderrLog {
    lines: Vec<String>,
    closed: bool,
}

/// A running `ory-proxy` child process, killed on drop.
pub struct Proxy {
    child: Child,
    pub port: u16,
    pid: u32,
    log: Arc<(Mutex<StderrLog>, Condvar)>,
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
}

/// The start of the banner line that names the port (`http://` or `https://`).
const BANNER: &str = "  listening    http";
/// The same in the JSON banner record.
const JSON_BANNER: &str = "\"listening\":\"http";

impl Proxy {
    /// `Proxy::to(app_url)`: a builder with Ory unreachable unless [`ProxyBuilder::ory`] is
    /// given.
    pub fn to(app_url: &str) -> ProxyBuilder {
        ProxyBuilder {
            app: Some(app_url.to_string()),
            ory: Some(NO_ORY.to_string()),
            ..Proxy::with_config_file(None)
        }
    }

    /// `ory-proxy --port 0 -c <config> [flags]`: everything else (the application URL, Ory)
    /// comes from the file, so no key is pinned by a flag unless the test adds one.
    pub fn with_config(config: &Path) -> ProxyBuilder {
        Proxy::with_config_file(Some(config.to_path_buf()))
    }

    fn with_config_file(config: Option<PathBuf>) -> ProxyBuilder {
        ProxyBuilder {
            app: None,
            publish: None,
            ory: None,
            config,
            flags: Vec::new(),
            env: Vec::new(),
            toml: None,
            stdin: None,
            nofile: None,
            wrap: Vec::new(),
        }
    }

    fn spawn_with(
        dir: tempfile::TempDir,
        args: &[String],
        env: &[(String, String)],
        stdin: Option<&str>,
        nofile: Option<u64>,
        wrap: &[String],
    ) -> Proxy {
        let mut cmd = wrapped_command(wrap, dir.path(), env);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        match stdin {
            None => cmd.stdin(Stdio::null()),
            Some(text) => {
                let (reader, mut writer) = std::io::pipe().expect("pipe");
                // Small enough for the pipe's buffer: written now, closed on drop.
                writer.write_all(text.as_bytes()).expect("write the pipe");
                cmd.stdin(reader)
            }
        };
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn ory-proxy");
        let stderr = child.stderr.take().unwrap();
        let log: Arc<(Mutex<StderrLog>, Condvar)> = Arc::default();
        let sink = log.clone();
        // Drains stderr for the whole life of the child (a full pipe would block it).
        std::thread::spawn(move || {
            let (log, cv) = &*sink;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().lines.push(line);
                cv.notify_all();
            }
            log.lock().unwrap().closed = true;
            cv.notify_all();
        });
        let mut proxy = Proxy {
            pid: child.id(),
            child,
            port: 0,
            log,
            dir: dir.path().to_path_buf(),
            _dir: dir,
        };
        // `http://[::]:PORT` (dual stack) or `http://0.0.0.0:PORT`.
        let port = proxy
            .wait_line(START_DEADLINE, |l| {
                l.starts_with(BANNER) || l.contains(JSON_BANNER)
            })
            .and_then(|l| {
                // With `log_format = "json"` the banner is one record.
                let listening = match serde_json::from_str::<serde_json::Value>(&l) {
                    Ok(v) => v["listening"].as_str()?.to_string(),
                    Err(_) => l,
                };
                listening.rsplit(':').next()?.trim().parse::<u16>().ok()
            });
        match port {
            Some(port) => proxy.port = port,
            None => panic!(
                "ory-proxy {args:?} printed no banner within {START_DEADLINE:?}; stderr:\n{}",
                proxy.logs()
            ),
        }
        proxy
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `https://localhost:<port><path>` (the name the test certificates carry).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The default PUBLISH_URL: `http://localhost:<port>`.
    pub fn default_publish(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// Everything the proxy wrote to stderr so far, a `\n` after every line.
    pub fn logs(&self) -> String {
        let log = self.log.0.lock().unwrap();
        log.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The stderr lines matching `pred`, so far.
    pub fn lines(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let log = self.log.0.lock().unwrap();
        log.lines.iter().filter(|l| pred(l)).cloned().collect()
    }

    /// Number of stderr lines so far; pass to [`Proxy::wait_line_after`].
    pub fn mark(&self) -> usize {
        self.log.0.lock().unwrap().lines.len()
    }

    /// The first stderr line matching `pred`, waiting up to `timeout`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_line_after(0, timeout, pred)
    }

    /// The first stderr line from index `mark` on that matches `pred`, waiting up to `timeout`
    /// (`None` at once when stderr has closed without one).
    pub fn wait_line_after(
        &self,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (log, cv) = &*self.log;
        let mut guard = log.lock().unwrap();
        loop {
            if let Some(l) = guard.lines.iter().skip(mark).find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if guard.closed || now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends `SIG<name>` (e.g. "TERM", "INT", "HUP", "USR1") to the proxy.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_deadline(&mut self.child, limit)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics unless the process is still the one started (same PID, still running, one
    /// banner).
    pub fn assert_alive(&mut self) {
        assert_eq!(self.child.id(), self.pid);
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the proxy exited; stderr:\n{}",
            self.logs()
        );
        assert_eq!(
            self.lines(|l| l.starts_with(BANNER) || l.contains(JSON_BANNER))
                .len(),
            1,
            "the proxy restarted"
        );
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An awc client for tests: no redirects, no decompression, no default headers, a deadline.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .no_default_headers()
        .timeout(HTTP_DEADLINE)
        .finish()
}

/// All values of a response header, as strings.
pub fn header_all(h: &awc::http::header::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

pub fn header_one(h: &awc::http::header::HeaderMap, name: &str) -> Option<String> {
    let all = header_all(h, name);
    assert!(
        all.len() <= 1,
        "{name} appears {} times: {all:?}",
        all.len()
    );
    all.into_iter().next()
}

/// Reads a whole awc response body (no size limit) within the deadline.
pub async fn read_body<S>(res: &mut awc::ClientResponse<S>) -> Vec<u8>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    use futures_util::StreamExt as _;
    let deadline = tokio::time::Instant::now() + HTTP_DEADLINE;
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, res.next()).await {
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => panic!("body broke after {} bytes: {e}", out.len()),
            Ok(None) => return out,
            Err(_) => panic!(
                "body not complete after {HTTP_DEADLINE:?} ({} bytes)",
                out.len()
            ),
        }
    }
}

/// Reads `res` until at least `n` bytes have come, each chunk within [`HTTP_DEADLINE`]; panics
/// with `late` when a chunk does not arrive in time, and when the body ends first.
pub async fn read_at_least<S>(res: &mut awc::ClientResponse<S>, n: usize, late: &str) -> Vec<u8>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    use futures_util::StreamExt as _;
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = tokio::time::timeout(HTTP_DEADLINE, res.next())
            .await
            .expect(late)
            .expect("body ended early")
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    got
}

/// GETs `url` and parses the fake app's echo.
pub async fn get_echo(req: awc::ClientRequest) -> Echo {
    let mut res = req.send().await.expect("request failed");
    let body = read_body(&mut res).await;
    assert_eq!(
        res.status(),
        200,
        "expected the echo, got {}: {}",
        res.status(),
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not an echo ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A whole answer read through an awc client: status, headers and the complete body.
#[derive(Debug)]
pub struct Answer {
    pub status: awc::http::StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text (lossy), for assertions and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header's only value (panics when it appears more than once).
    pub fn header(&self, name: &str) -> Option<String> {
        header_one(&self.headers, name)
    }

    /// All values of the header.
    pub fn all(&self, name: &str) -> Vec<String> {
        header_all(&self.headers, name)
    }

    /// The `Location` of a redirect; panics when there is none.
    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer", self.status))
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Reads the rest of `res` (its whole body, within the deadline) into an [`Answer`].
pub async fn answer<S>(mut res: awc::ClientResponse<S>) -> Answer
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = read_body(&mut res).await;
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

/// Sends `req` (no body) and reads the whole answer.
pub async fn send(req: awc::ClientRequest) -> Answer {
    answer(req.send().await.expect("request failed")).await
}

/// GET `url` with [`client`], each of `headers` appended.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    send(with_headers(client().get(url), headers)).await
}

/// GET `url` with [`client`].
pub async fn get(url: &str) -> Answer {
    get_with(url, &[]).await
}

/// `req` with each of `headers` appended (a name given twice is sent twice).
pub fn with_headers(mut req: awc::ClientRequest, headers: &[(&str, &str)]) -> awc::ClientRequest {
    for (k, v) in headers {
        req = req.append_header((*k, *v));
    }
    req
}

/// GET `path` through `proxy` with `headers`; the fake app's echo.
pub async fn echo_via(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Echo {
    get_echo(with_headers(client().get(proxy.url(path)), headers)).await
}

/// A path on the fake's `/respond` endpoint answering `status` with `headers` and `body`.
pub fn respond_path(status: u16, headers: &[(&str, &str)], body: &str, gzip: bool) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("status", &status.to_string());
    for (n, v) in headers {
        q.append_pair("h", &format!("{n}: {v}"));
    }
    if !body.is_empty() {
        q.append_pair("body", body);
    }
    if gzip {
        q.append_pair("gzip", "1");
    }
    format!("/respond?{}", q.finish())
}

/// A fake upstream that answers every connection with the bytes `answer` and closes it.
pub fn raw_upstream(answer: &'static [u8]) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer);
        }
    });
    addr
}

/// A parsed raw HTTP/1.1 response (header names lowercase).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        app::values(&self.headers, name)
    }
}

/// Writes `request` as is and reads until the server closes (send `Connection: close`).
/// `None` when the server closed without answering.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Option<RawResponse> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_DEADLINE).expect("connect");
    s.set_read_timeout(Some(HTTP_DEADLINE)).unwrap();
    s.set_write_timeout(Some(HTTP_DEADLINE)).unwrap();
    // The server may close early on a bad request; what it answered still counts.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionReset
                    || e.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                break
            }
            Err(e) => panic!("raw read: {e} after {} bytes", buf.len()),
        }
    }
    if buf.is_empty() {
        return None;
    }
    Some(parse_raw(&buf))
}

fn parse_raw(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_str:?}"));
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A keep-alive HTTP/1.1 connection for `GET`s; reconnects when the server closes it.
pub struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, reader: None }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<RawResponse> {
        if self.reader.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(HTTP_DEADLINE))?;
            s.set_nodelay(true)?;
            self.reader = Some(BufReader::new(s));
        }
        let result = self.exchange(path, headers);
        match &result {
            Ok(r)
                if r.header("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close")) =>
            {
                self.reader = None
            }
            Ok(_) => {}
            Err(_) => self.reader = None,
        }
        result
    }

    fn exchange(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<RawResponse> {
        let reader = self
            .reader
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        reader.get_mut().write_all(req.as_bytes())?;
        read_response(reader)
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads one response (by `Content-Length` or chunked) off a keep-alive connection.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<RawResponse> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header {l:?}")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut res = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if res
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            res.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = res.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        res.body.resize(len, 0);
        r.read_exact(&mut res.body)?;
    }
    Ok(res)
}

/// One `GET` on a fresh keep-alive connection (no `Connection: close` needed).
pub fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    Conn::new(addr)
        .get(path, headers)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `check` until it holds or `timeout` passes; returns how long it took.
pub fn within(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts the shape of the proxy's own error answers (docs/behaviour.md, "The proxy's own
/// answers").
pub fn assert_error_json(body: &[u8], code: u16, status: &str) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {v}"
    );
}

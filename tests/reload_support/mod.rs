//! Helpers for `tests/reload.rs`: the real binary as a child process with its stderr collected,
//! a tiny app, a raw HTTP/1.1 client (one-shot and keep-alive), the save styles of editors and
//! Kubernetes, and polling with a deadline.
//!
//! Kept apart from `tests/common` so the two sets of helpers can change independently.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where Ory would be: nothing listens there, and these tests never need it.
pub const NO_ORY: &str = "http://127.0.0.1:1";

/// SPEC-level promise of this issue: an edit is live within 2 s.
pub const APPLY_DEADLINE: Duration = Duration::from_secs(2);

/// The app's cookie is scoped to the application URL's host, so the proxy rewrites its Domain.
pub const APP_COOKIE: &str = "a=1; Domain=127.0.0.1; Path=/";

/// A tiny app: `/welcome` answers `302 Location: /.ory/ui/welcome` plus a cookie scoped to the
/// app host; anything else answers 200.
pub struct App {
    pub addr: SocketAddr,
}

impl App {
    pub fn start() -> App {
        use actix_web::{web, App as ActixApp, HttpResponse, HttpServer};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(|| {
                    ActixApp::new()
                        .route(
                            "/welcome",
                            web::get().to(|| async {
                                HttpResponse::Found()
                                    .insert_header(("Location", "/.ory/ui/welcome"))
                                    .insert_header(("Set-Cookie", APP_COOKIE))
                                    .finish()
                            }),
                        )
                        .default_service(web::to(|| async { HttpResponse::Ok().body("app") }))
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap()
            })
        });
        App { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The live keys the tests change, as they go into `proxy.toml`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub origins: Vec<String>,
    pub redirect: String,
    pub cookie_domain: String,
}

impl Keys {
    pub fn new(origins: &[&str], redirect: &str, cookie_domain: &str) -> Keys {
        Keys {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            redirect: redirect.into(),
            cookie_domain: cookie_domain.into(),
        }
    }

    /// A variant named `tag`: origin `https://<tag>.example`, redirect to it, cookie domain it.
    pub fn tagged(tag: &str) -> Keys {
        Keys::new(
            &[&format!("https://{tag}.example")],
            &format!("https://{tag}.example/home"),
            &format!("{tag}.example"),
        )
    }

    /// A whole `proxy.toml` for `app`, plus `extra` top-level lines.
    pub fn toml(&self, app: &App, extra: &str) -> String {
        let origins: Vec<String> = self.origins.iter().map(|o| format!("{o:?}")).collect();
        format!(
            "application_url = \"{}\"\nsdk_url = \"{NO_ORY}\"\n{extra}\n\n[cookies]\ndomain = {:?}\n\n[cors]\nallowed_origins = [{}]\n\n[redirects]\ndefault_redirect_url = {:?}\n",
            app.url(),
            self.cookie_domain,
            origins.join(", "),
            self.redirect,
        )
    }
}

/// The proxy binary, running. Killed on drop.
pub struct Proxy {
    pub child: Child,
    pub port: u16,
    pub pid: u32,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    _cwd: tempfile::TempDir,
}

impl Proxy {
    /// Starts `ory-proxy -c <config> --port 0 <args>` with a clean environment and waits for the
    /// banner's `listening` line.
    pub fn start(config: &Path, args: &[&str]) -> Proxy {
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ory-proxy"));
        cmd.env_clear().current_dir(cwd.path());
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd
            .arg("-c")
            .arg(config)
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ory-proxy");
        let pid = child.id();
        let log: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lines, cv) = &*sink;
                lines.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut p = Proxy {
            child,
            port: 0,
            pid,
            log,
            _cwd: cwd,
        };
        let banner = p
            .wait_line(Duration::from_secs(20), |l| {
                l.starts_with("  listening    http://")
            })
            .unwrap_or_else(|| panic!("no banner; stderr:\n{}", p.stderr()));
        p.port = banner
            .rsplit(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .expect("port in the banner");
        p
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// All stderr so far.
    pub fn stderr(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// The stderr lines matching `pred`, so far.
    pub fn lines(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let lines = self.log.0.lock().unwrap();
        lines.iter().filter(|l| pred(l)).cloned().collect()
    }

    /// Number of stderr lines so far; pass to [`Proxy::wait_line_after`].
    pub fn mark(&self) -> usize {
        self.log.0.lock().unwrap().len()
    }

    /// The first stderr line matching `pred`, waiting up to `timeout`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_line_after(0, timeout, pred)
    }

    /// The first stderr line from index `mark` on that matches `pred`, waiting up to `timeout`.
    pub fn wait_line_after(
        &self,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lines, cv) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(l) = guard.iter().skip(mark).find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Panics unless the process is still the one started (same PID, still running, one
    /// banner).
    pub fn assert_alive(&mut self) {
        assert_eq!(self.child.id(), self.pid);
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the proxy exited; stderr:\n{}",
            self.stderr()
        );
        assert_eq!(
            self.lines(|l| l.starts_with("  listening    ")).len(),
            1,
            "the proxy restarted"
        );
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Domain` attribute of the first `Set-Cookie`: `Some("")` when there is none.
    pub fn cookie_domain(&self) -> Option<String> {
        let cookie = self.header("set-cookie")?;
        Some(
            cookie
                .split(';')
                .map(str::trim)
                .find_map(|a| {
                    a.split_once('=')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("domain"))
                        .map(|(_, v)| v.to_string())
                })
                .unwrap_or_default(),
        )
    }
}

/// What one `GET /welcome` with an `Origin` says about the live settings it ran on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub acao: Option<String>,
    pub location: Option<String>,
    pub cookie_domain: Option<String>,
}

impl Seen {
    pub fn of(r: &Response) -> Seen {
        Seen {
            acao: r.header("access-control-allow-origin").map(str::to_string),
            location: r.header("location").map(str::to_string),
            cookie_domain: r.cookie_domain(),
        }
    }

    /// Whether this is exactly what `keys` give for a request from `origin`.
    pub fn matches(&self, keys: &Keys, origin: &str) -> bool {
        let allowed = keys.origins.iter().any(|o| o == origin);
        self.acao.as_deref() == allowed.then_some(origin)
            && self.location.as_deref() == Some(keys.redirect.as_str())
            && self.cookie_domain.as_deref() == Some(keys.cookie_domain.as_str())
    }
}

/// A keep-alive HTTP/1.1 connection; reconnects when the server closes it.
pub struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, reader: None }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        if self.reader.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
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

    fn exchange(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
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

fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<Response> {
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
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
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
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One `GET` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    Conn::new(addr)
        .get(path, headers)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `GET /welcome` from `origin`: what the proxy's live settings did to the app's answer.
pub fn observe(addr: SocketAddr, origin: &str) -> Seen {
    let r = get(addr, "/welcome", &[("Origin", origin)]);
    assert_eq!(r.status, 302, "{r:?}");
    Seen::of(&r)
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

/// How a program replaces the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStyle {
    /// `open(O_TRUNC)` + write on the same inode.
    InPlace,
    /// Write `.proxy.toml.tmp` next to it, then rename over (most editors, atomic writers).
    TempRename,
    /// vim's backup dance: rename to `proxy.toml~`, write a new file, remove the backup.
    Vim,
    /// Truncate, a visible empty moment, then write.
    TruncateThenWrite,
    /// Remove, a moment without the file, then create it again.
    DeleteThenRecreate,
    /// Kubernetes ConfigMap: `proxy.toml -> ..data/proxy.toml`, `..data` swapped atomically to a
    /// new directory. The file must have been set up with [`k8s_setup`].
    SymlinkSwap,
}

/// Writes `text` to `path` in `style`.
pub fn save(path: &Path, text: &str, style: SaveStyle) {
    let dir = path.parent().unwrap();
    match style {
        SaveStyle::InPlace => std::fs::write(path, text).unwrap(),
        SaveStyle::TempRename => {
            let tmp = dir.join(".proxy.toml.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        SaveStyle::Vim => {
            let backup = dir.join("proxy.toml~");
            std::fs::rename(path, &backup).unwrap();
            std::fs::write(path, text).unwrap();
            std::fs::remove_file(&backup).unwrap();
        }
        SaveStyle::TruncateThenWrite => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .unwrap();
            f.flush().unwrap();
            // Longer than the debounce, so a reload does see the empty file.
            std::thread::sleep(Duration::from_millis(250));
            f.write_all(text.as_bytes()).unwrap();
        }
        SaveStyle::DeleteThenRecreate => {
            std::fs::remove_file(path).unwrap();
            std::thread::sleep(Duration::from_millis(250));
            std::fs::write(path, text).unwrap();
        }
        SaveStyle::SymlinkSwap => k8s_swap(dir, text),
    }
}

/// Lays out a Kubernetes-style mounted ConfigMap in `dir` holding `text`; returns the path to
/// use as the config file.
pub fn k8s_setup(dir: &Path, text: &str) -> PathBuf {
    let data = dir.join("..2024_01_01_v0");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("proxy.toml"), text).unwrap();
    std::os::unix::fs::symlink("..2024_01_01_v0", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/proxy.toml", dir.join("proxy.toml")).unwrap();
    dir.join("proxy.toml")
}

/// The kubelet's update: a new timestamped directory, a temp symlink to it renamed over
/// `..data`, then the old directory removed.
fn k8s_swap(dir: &Path, text: &str) {
    let old = std::fs::read_link(dir.join("..data")).unwrap();
    let name = format!(
        "..2024_01_01_v{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    std::fs::create_dir(dir.join(&name)).unwrap();
    std::fs::write(dir.join(&name).join("proxy.toml"), text).unwrap();
    std::os::unix::fs::symlink(&name, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join(old)).unwrap();
}

//! Hot reload of `proxy.toml` (README, "`proxy.toml`"), end to end: the real binary, a real app, a
//! temp dir, and edits made the way editors, scripts and Kubernetes make them. Every check is on
//! HTTP behaviour (CORS, the welcome redirect, the cookie domain) or on the proxy's stderr, polled
//! with a deadline; the PID never changes.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::{raw_get, within, Conn, FakeApp, Proxy, RawResponse, NO_ORY};

/// The promise to users: an edit is live within 2 s.
const APPLY_DEADLINE: Duration = Duration::from_secs(2);

/// The load test measures; the other tests (each a proxy and an app) stay out of its way.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())
}

/// A temp dir with `proxy.toml` holding `keys` (+ `extra`), a running app and proxy.
struct Setup {
    dir: tempfile::TempDir,
    path: PathBuf,
    app: FakeApp,
    proxy: Proxy,
}

fn setup(keys: &Keys, extra: &str, args: &[&str]) -> Setup {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, keys.toml(&app, extra)).unwrap();
    let proxy = Proxy::with_config(&path).flags(args).start();
    Setup {
        dir,
        path,
        app,
        proxy,
    }
}

/// Waits until requests from every origin in `probe` see exactly `keys`.
fn applies(p: &Proxy, keys: &Keys, probe: &[&str]) -> Option<Duration> {
    within(APPLY_DEADLINE, || {
        probe.iter().all(|o| observe(p.addr(), o).matches(keys, o))
    })
}

/// `GET /welcome` from `origin`: what the proxy's live settings did to the app's answer.
fn observe(addr: std::net::SocketAddr, origin: &str) -> Seen {
    let r = raw_get(addr, "/welcome", &[("Origin", origin)]);
    assert_eq!(r.status, 302, "{r:?}");
    Seen::of(&r)
}

/// The live keys the tests change, as they go into `proxy.toml`.
#[derive(Debug, Clone)]
struct Keys {
    origins: Vec<String>,
    redirect: String,
    cookie_domain: String,
}

impl Keys {
    fn new(origins: &[&str], redirect: &str, cookie_domain: &str) -> Keys {
        Keys {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            redirect: redirect.into(),
            cookie_domain: cookie_domain.into(),
        }
    }

    /// A variant named `tag`: origin `https://<tag>.example`, redirect to it, cookie domain it.
    fn tagged(tag: &str) -> Keys {
        Keys::new(
            &[&format!("https://{tag}.example")],
            &format!("https://{tag}.example/home"),
            &format!("{tag}.example"),
        )
    }

    /// A whole `proxy.toml` for `app`, plus `extra` top-level lines.
    fn toml(&self, app: &FakeApp, extra: &str) -> String {
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

/// What one `GET /welcome` with an `Origin` says about the live settings it ran on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    acao: Option<String>,
    location: Option<String>,
    cookie_domain: Option<String>,
}

impl Seen {
    fn of(r: &RawResponse) -> Seen {
        Seen {
            acao: r.header("access-control-allow-origin").map(str::to_string),
            location: r.header("location").map(str::to_string),
            cookie_domain: cookie_domain(r),
        }
    }

    /// Whether this is exactly what `keys` give for a request from `origin`.
    fn matches(&self, keys: &Keys, origin: &str) -> bool {
        let allowed = keys.origins.iter().any(|o| o == origin);
        self.acao.as_deref() == allowed.then_some(origin)
            && self.location.as_deref() == Some(keys.redirect.as_str())
            && self.cookie_domain.as_deref() == Some(keys.cookie_domain.as_str())
    }
}

/// The `Domain` attribute of the first `Set-Cookie`: `Some("")` when there is none.
fn cookie_domain(r: &RawResponse) -> Option<String> {
    let cookie = r.header("set-cookie")?;
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

/// How a program replaces the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaveStyle {
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
fn save(path: &Path, text: &str, style: SaveStyle) {
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
fn k8s_setup(dir: &Path, text: &str) -> PathBuf {
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

const A: &str = "https://a.example";
const B: &str = "https://b.example";

fn save_style(style: SaveStyle) {
    let _g = shared();
    let (a, b) = (Keys::tagged("a"), Keys::tagged("b"));
    let mut s = setup(&a, "", &[]);
    if style == SaveStyle::SymlinkSwap {
        // Re-lay the file out as a mounted ConfigMap before the proxy looks at it.
        drop(s.proxy);
        std::fs::remove_file(&s.path).unwrap();
        s.path = k8s_setup(s.dir.path(), &a.toml(&s.app, ""));
        s.proxy = Proxy::with_config(&s.path).start();
    }
    assert!(observe(s.proxy.addr(), A).matches(&a, A));

    for (i, next) in [&b, &a].into_iter().enumerate() {
        let mark = s.proxy.mark();
        save(&s.path, &next.toml(&s.app, ""), style);
        let took = applies(&s.proxy, next, &[A, B]).unwrap_or_else(|| {
            panic!(
                "{style:?} save #{i} not applied within {APPLY_DEADLINE:?}; stderr:\n{}",
                s.proxy.logs()
            )
        });
        eprintln!("{style:?} save #{i} applied after {took:?}");
        let line = s
            .proxy
            .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains("reloaded "))
            .unwrap();
        assert!(
            line.ends_with(
                ": cookies.domain, cors.allowed_origins, redirects.default_redirect_url"
            ),
            "{line}"
        );
        // One reload per save: the empty or missing moment is neither applied nor reported.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            s.proxy
                .lines(|l| l.contains("reloaded ") || l.contains(" WARN ") || l.contains(" ERROR "))
                .len(),
            i + 1,
            "{}",
            s.proxy.logs()
        );
    }
    s.proxy.assert_alive();
}

#[test]
fn in_place_write_applies() {
    save_style(SaveStyle::InPlace);
}

#[test]
fn temp_file_rename_applies() {
    save_style(SaveStyle::TempRename);
}

#[test]
fn vim_backup_dance_applies() {
    save_style(SaveStyle::Vim);
}

#[test]
fn truncate_then_write_applies() {
    save_style(SaveStyle::TruncateThenWrite);
}

#[test]
fn delete_then_recreate_applies() {
    save_style(SaveStyle::DeleteThenRecreate);
}

#[test]
fn kubernetes_symlink_swap_applies() {
    save_style(SaveStyle::SymlinkSwap);
}

#[test]
fn cookie_domain_cors_and_redirect_change_live_with_the_same_pid() {
    let _g = shared();
    let before = Keys::new(&[A, B], "/before", "");
    let mut s = setup(&before, "", &[]);
    let seen = observe(s.proxy.addr(), B);
    assert_eq!(seen.acao.as_deref(), Some(B));
    assert_eq!(seen.location.as_deref(), Some("/before"));
    // Empty domain = host-only: the app's Domain=127.0.0.1 is removed.
    assert_eq!(seen.cookie_domain.as_deref(), Some(""));

    let after = Keys::new(&[A], "https://after.example/home", "after.example");
    save(&s.path, &after.toml(&s.app, ""), SaveStyle::InPlace);
    applies(&s.proxy, &after, &[A, B]).expect("applied");
    let seen = observe(s.proxy.addr(), B);
    assert_eq!(seen.acao, None, "a removed origin gets no ACAO");
    assert_eq!(seen.location.as_deref(), Some("https://after.example/home"));
    assert_eq!(seen.cookie_domain.as_deref(), Some("after.example"));
    assert_eq!(observe(s.proxy.addr(), A).acao.as_deref(), Some(A));
    s.proxy.assert_alive();
}

#[test]
fn invalid_files_keep_the_running_settings() {
    let _g = shared();
    let good = Keys::tagged("a");
    let mut s = setup(&good, "", &[]);
    let text = good.toml(&s.app, "");
    let cases = [
        // (file text, what the error line must name)
        (
            text.replace("[cors]", "[cors"),
            vec!["proxy.toml:8", "`cors`"],
        ),
        (
            text.replace("allowed_origins", "allowed_origin"),
            vec!["proxy.toml:9", "cors.allowed_origin"],
        ),
        (
            text.replace("https://a.example/home", "ht!tp://nope"),
            vec!["proxy.toml:12", "redirects.default_redirect_url"],
        ),
    ];
    for (bad, names) in cases {
        let mark = s.proxy.mark();
        save(&s.path, &bad, SaveStyle::InPlace);
        let line = s
            .proxy
            .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains(" ERROR "))
            .unwrap_or_else(|| panic!("no error for:\n{bad}\nstderr:\n{}", s.proxy.logs()));
        for n in &names {
            assert!(line.contains(n), "{line:?} should name {n}");
        }
        assert!(line.contains("keeping the running settings"), "{line}");
        // Still the old behaviour, and only one error for one bad write.
        std::thread::sleep(Duration::from_millis(500));
        assert!(observe(s.proxy.addr(), A).matches(&good, A));
        let since: Vec<String> = s.proxy.lines(|_| true).split_off(mark);
        assert_eq!(
            since.iter().filter(|l| l.contains(" ERROR ")).count(),
            1,
            "{}",
            since.join("\n")
        );
        s.proxy.assert_alive();
    }

    // The next good write applies.
    let next = Keys::tagged("b");
    save(&s.path, &next.toml(&s.app, ""), SaveStyle::InPlace);
    applies(&s.proxy, &next, &[A, B]).expect("the good write after the bad ones applies");
    s.proxy.assert_alive();
}

#[test]
fn a_deleted_file_keeps_the_running_settings() {
    let _g = shared();
    let a = Keys::tagged("a");
    let mut s = setup(&a, "", &[]);
    let mark = s.proxy.mark();
    std::fs::remove_file(&s.path).unwrap();
    let warn = s
        .proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains(" WARN "))
        .expect("a warning about the deleted file");
    assert!(warn.contains("proxy.toml is gone"), "{warn}");
    assert!(observe(s.proxy.addr(), A).matches(&a, A));

    let b = Keys::tagged("b");
    std::fs::write(&s.path, b.toml(&s.app, "")).unwrap();
    applies(&s.proxy, &b, &[A, B]).expect("the recreated file applies");
    s.proxy.assert_alive();
}

#[test]
fn a_key_pinned_by_a_flag_ignores_file_edits() {
    let _g = shared();
    let a = Keys::tagged("a");
    let mut s = setup(&a, "", &["--cookie-domain", "pinned.example"]);
    assert_eq!(
        observe(s.proxy.addr(), A).cookie_domain.as_deref(),
        Some("pinned.example")
    );
    let mark = s.proxy.mark();
    let b = Keys::tagged("b");
    save(&s.path, &b.toml(&s.app, ""), SaveStyle::InPlace);
    // The rest of the edit applies; the pinned key keeps the flag's value.
    let pinned_b = Keys {
        cookie_domain: "pinned.example".into(),
        ..b
    };
    applies(&s.proxy, &pinned_b, &[A, B]).expect("the unpinned keys apply");
    let warn = s
        .proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains(" WARN "))
        .expect("a pinned warning");
    assert!(
        warn.ends_with(
            "cookies.domain is pinned by flag --cookie-domain; the file's value is ignored"
        ),
        "{warn}"
    );
    let reloaded = s
        .proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains("reloaded "))
        .unwrap();
    assert!(
        reloaded.ends_with(": cors.allowed_origins, redirects.default_redirect_url"),
        "{reloaded}"
    );
    s.proxy.assert_alive();
}

#[test]
fn a_restart_only_key_is_reported_and_not_applied() {
    let _g = shared();
    let keys = Keys::new(&[], "/home", "");
    let mut s = setup(&keys, "", &[]);
    const ELSEWHERE: &str = "https://elsewhere.example";
    assert_eq!(observe(s.proxy.addr(), ELSEWHERE).acao, None);

    // `dev = true` with no origins would echo every origin; a new sdk_url would send Ory
    // traffic elsewhere. Both need a restart. The redirect is live and changes with them.
    let mark = s.proxy.mark();
    let next = Keys::new(&[], "/next", "");
    let text = next
        .toml(&s.app, "dev = true")
        .replace(NO_ORY, "http://127.0.0.1:2");
    save(&s.path, &text, SaveStyle::InPlace);
    applies(&s.proxy, &next, &[ELSEWHERE]).expect("the live key applies");
    let warn = s
        .proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains(" WARN "))
        .expect("a restart warning");
    assert!(
        warn.contains("sdk_url, dev changed but need a restart; not applied"),
        "{warn}"
    );
    // Not applied: still only the publish origin may call cross-origin.
    assert_eq!(observe(s.proxy.addr(), ELSEWHERE).acao, None);
    s.proxy.assert_alive();
}

#[test]
fn sighup_reloads_even_with_watching_off() {
    let _g = shared();
    let a = Keys::tagged("a");
    let mut s = setup(&a, "watch = \"off\"", &[]);
    let b = Keys::tagged("b");
    save(
        &s.path,
        &b.toml(&s.app, "watch = \"off\""),
        SaveStyle::InPlace,
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        observe(s.proxy.addr(), A).matches(&a, A),
        "watch = off must not watch"
    );

    s.proxy.signal("HUP");
    applies(&s.proxy, &b, &[A, B]).expect("SIGHUP applies the file");
    s.proxy.assert_alive();
}

#[test]
fn poll_mode_applies_edits() {
    let _g = shared();
    let a = Keys::tagged("a");
    let mut s = setup(&a, "watch = \"poll\"", &[]);
    let b = Keys::tagged("b");
    save(
        &s.path,
        &b.toml(&s.app, "watch = \"poll\""),
        SaveStyle::InPlace,
    );
    applies(&s.proxy, &b, &[A, B]).expect("polling sees the edit");
    save(
        &s.path,
        &a.toml(&s.app, "watch = \"poll\""),
        SaveStyle::TempRename,
    );
    applies(&s.proxy, &a, &[A, B]).expect("polling sees the rename");
    s.proxy.assert_alive();
}

/// The reload's own read of the file must not schedule another reload.
#[test]
fn the_reloads_own_read_does_not_retrigger() {
    let _g = shared();
    let a = Keys::tagged("a");
    let mut s = setup(&a, "", &["--debug"]);
    let b = Keys::tagged("b");
    save(&s.path, &b.toml(&s.app, ""), SaveStyle::InPlace);
    applies(&s.proxy, &b, &[A]).expect("applied");
    // Log lines are written a moment after the fact: the reload's own line first.
    s.proxy
        .wait_line(Duration::from_secs(10), |l| {
            l.contains("] reloaded ") && l.contains(": cookies.domain")
        })
        .expect("the reload is logged");
    let reloaded = s.proxy.mark();
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<String> = s.proxy.lines(|_| true).split_off(reloaded);
    let watcher_lines: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("ory_proxy::watcher"))
        .collect();
    assert!(
        watcher_lines.is_empty(),
        "{watcher_lines:#?}\n{}",
        s.proxy
            .lines(|l| l.contains("ory_proxy::watcher"))
            .join("\n")
    );
    s.proxy.assert_alive();
}

/// 5,000 requests at concurrency 32 while the file is rewritten 10 times between two settings:
/// no request fails, and every response is entirely old or entirely new. Each response shows
/// three live keys at once (the CORS decision, the welcome redirect, the cookie domain); a
/// response that took one from each settings would match neither.
///
/// The clients run flat out, without pauses, until both 5,000 requests are answered and all
/// 10 rewrites are applied; the writer writes the next version as soon as the previous one is
/// applied. So every swap lands amid full traffic whatever the speed of the machine, and the
/// total is at least 5,000.
#[test]
fn load_during_rewrites_never_fails_and_never_mixes() {
    let _g = EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner());
    const TOTAL: usize = 5_000;
    const CLIENTS: usize = 32;
    const REWRITES: usize = 10;

    let (a, b) = (Keys::tagged("a"), Keys::tagged("b"));
    let s = setup(&a, "", &[]);
    let addr = s.proxy.addr();
    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let writer_done = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let mixed = Arc::new(Mutex::new(Vec::<String>::new()));
    let per_variant = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let start = Instant::now();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (issued, completed, writer_done, failed, mixed, per_variant) = (
                issued.clone(),
                completed.clone(),
                writer_done.clone(),
                failed.clone(),
                mixed.clone(),
                per_variant.clone(),
            );
            let variants = [a.clone(), b.clone()];
            std::thread::spawn(move || {
                let mut conn = Conn::new(addr);
                while issued.load(Ordering::SeqCst) < TOTAL || !writer_done.load(Ordering::SeqCst) {
                    let n = issued.fetch_add(1, Ordering::SeqCst);
                    let origin = if (n + c) % 2 == 0 { A } else { B };
                    match conn.get("/welcome", &[("Origin", origin)]) {
                        Ok(r) if r.status == 302 => {
                            let seen = Seen::of(&r);
                            match variants.iter().position(|v| seen.matches(v, origin)) {
                                Some(i) => {
                                    per_variant[i].fetch_add(1, Ordering::SeqCst);
                                }
                                None => mixed
                                    .lock()
                                    .unwrap()
                                    .push(format!("#{n} from {origin}: {seen:?}")),
                            }
                        }
                        Ok(r) => failed
                            .lock()
                            .unwrap()
                            .push(format!("#{n}: status {}", r.status)),
                        Err(e) => failed.lock().unwrap().push(format!("#{n}: {e}")),
                    }
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Let every client get going before the first swap.
    while completed.load(Ordering::SeqCst) < 4 * CLIENTS {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut reload_times = Vec::new();
    // Requests answered between a write and its reload line: traffic across each swap.
    let mut during = Vec::new();
    for k in 1..=REWRITES {
        let next = if k % 2 == 1 { &b } else { &a };
        let mark = s.proxy.mark();
        let t = Instant::now();
        let before = completed.load(Ordering::SeqCst);
        save(&s.path, &next.toml(&s.app, ""), SaveStyle::TempRename);
        let seen = s
            .proxy
            .wait_line_after(mark, Duration::from_secs(5), |l| l.contains("reloaded "));
        if seen.is_none() {
            writer_done.store(true, Ordering::SeqCst);
            panic!("rewrite {k} not applied; stderr:\n{}", s.proxy.logs());
        }
        reload_times.push(t.elapsed());
        during.push(completed.load(Ordering::SeqCst) - before);
    }
    let writes_done_at = completed.load(Ordering::SeqCst);
    writer_done.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let elapsed = start.elapsed();
    let total = completed.load(Ordering::SeqCst);
    let failed = failed.lock().unwrap();
    let mixed = mixed.lock().unwrap();
    let counts = [
        per_variant[0].load(Ordering::SeqCst),
        per_variant[1].load(Ordering::SeqCst),
    ];
    eprintln!(
        "load: {total} requests, {CLIENTS} clients, {REWRITES} rewrites (all applied by request \
         {writes_done_at}) in {elapsed:?} ({:.0} req/s); failed {}, mixed {}; old/new split \
         {counts:?}; write→applied {:?}..{:?}; requests answered across each swap {during:?}",
        total as f64 / elapsed.as_secs_f64(),
        failed.len(),
        mixed.len(),
        reload_times.iter().min().unwrap(),
        reload_times.iter().max().unwrap(),
    );
    assert!(
        failed.is_empty(),
        "failed requests: {:#?}",
        &failed[..failed.len().min(20)]
    );
    assert!(
        mixed.is_empty(),
        "mixed responses: {:#?}",
        &mixed[..mixed.len().min(20)]
    );
    assert!(total >= TOTAL);
    assert_eq!(counts[0] + counts[1], total);
    assert!(counts[0] > 0 && counts[1] > 0);
    assert!(
        during.iter().all(|&d| d >= CLIENTS),
        "a swap without traffic: {during:?}"
    );
    assert_eq!(s.proxy.lines(|l| l.contains("reloaded ")).len(), REWRITES);
}

/// The load test's detector: a response with the CORS decision of one settings and the
/// redirect or cookie domain of the other matches neither.
#[test]
fn a_mixed_response_matches_neither_settings() {
    let (a, b) = (Keys::tagged("a"), Keys::tagged("b"));
    let whole_a = Seen {
        acao: Some(A.into()),
        location: Some(a.redirect.clone()),
        cookie_domain: Some(a.cookie_domain.clone()),
    };
    assert!(whole_a.matches(&a, A) && !whole_a.matches(&b, A));
    for mixed in [
        Seen {
            location: Some(b.redirect.clone()),
            ..whole_a.clone()
        },
        Seen {
            cookie_domain: Some(b.cookie_domain.clone()),
            ..whole_a.clone()
        },
        Seen {
            acao: None,
            ..whole_a.clone()
        },
    ] {
        assert!(!mixed.matches(&a, A) && !mixed.matches(&b, A), "{mixed:?}");
    }
}

#[test]
fn log_level_changes_live() {
    let _g = shared();
    let keys = Keys::new(&[A], "/home", "");
    let s = setup(&keys, "log_level = \"info\"", &[]);
    let mark = s.proxy.mark();
    assert_eq!(raw_get(s.proxy.addr(), "/echo?n=1", &[]).status, 200);
    s.proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains("GET /echo 200"))
        .expect("an access line at info");

    save(
        &s.path,
        &keys.toml(&s.app, "log_level = \"warn\""),
        SaveStyle::InPlace,
    );
    s.proxy
        .wait_line_after(mark, APPLY_DEADLINE, |l| l.contains("log_level"))
        .unwrap_or_else(|| panic!("no reload line:\n{}", s.proxy.logs()));
    let quiet = s.proxy.mark();
    assert_eq!(raw_get(s.proxy.addr(), "/quiet", &[]).status, 200);
    // A request after it: once its line would have been written, the quiet one would be too.
    save(
        &s.path,
        &keys.toml(&s.app, "log_level = \"info\""),
        SaveStyle::InPlace,
    );
    s.proxy
        .wait_line_after(quiet, APPLY_DEADLINE, |l| l.contains("log_level"))
        .unwrap_or_else(|| panic!("no second reload line:\n{}", s.proxy.logs()));
    assert_eq!(raw_get(s.proxy.addr(), "/loud", &[]).status, 200);
    s.proxy
        .wait_line_after(quiet, APPLY_DEADLINE, |l| l.contains("GET /loud 200"))
        .unwrap_or_else(|| panic!("info is back, no access line:\n{}", s.proxy.logs()));
    assert!(
        s.proxy.lines(|l| l.contains("GET /quiet")).is_empty(),
        "logged at warn:\n{}",
        s.proxy.logs()
    );
}

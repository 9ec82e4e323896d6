//! The operator's files as a careless operator or a hostile neighbour leaves them: a FIFO at
//! the config or keys path, the config given as a pipe (`-c <(cat proxy.toml)`), a keys file
//! or keys directory that others can write. The real binary, real files, real signals.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{raw_get, within, FakeApp, Proxy, NO_ORY};

/// How long a proxy with nothing in flight may take to stop on SIGTERM.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// How long an edit or a keys-file change may take to be noticed (keys: polled every 2 s).
const NOTICE: Duration = Duration::from_secs(6);

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Replaces `path` with a FIFO, atomically (a rename over it, as a hostile or careless
/// script would).
fn replace_with_fifo(path: &Path) {
    let tmp = path.with_extension("fifo-tmp");
    mkfifo(&tmp);
    std::fs::rename(&tmp, path).unwrap();
}

/// Replaces `path` with a regular file holding `text`, atomically.
fn replace_with_file(path: &Path, text: &str) {
    let tmp = path.with_extension("file-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn config(app: &FakeApp, redirect: &str, extra: &str) -> String {
    format!(
        "application_url = \"{}\"\nsdk_url = \"{NO_ORY}\"\n{extra}\n[redirects]\ndefault_redirect_url = \"{redirect}\"\n",
        app.url()
    )
}

/// Where the app's welcome redirect lands: what the live `default_redirect_url` says.
fn welcome(p: &Proxy) -> String {
    let r = raw_get(p.addr(), "/welcome", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    r.header("location").unwrap_or_default().to_string()
}

fn errors_since(p: &Proxy, mark: usize) -> Vec<String> {
    p.lines(|_| true)
        .split_off(mark)
        .into_iter()
        .filter(|l| l.contains(" ERROR "))
        .collect()
}

fn stops_promptly(p: &mut Proxy) {
    p.sigterm();
    assert!(
        p.wait_exit(PROMPT_EXIT).is_some(),
        "SIGTERM did not stop the proxy within {PROMPT_EXIT:?}; stderr:\n{}",
        p.logs()
    );
}

#[test]
fn a_fifo_at_the_config_path_is_one_error_not_a_hang() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config(&app, "/first", "")).unwrap();
    let mut p = Proxy::with_config(&path).start();
    assert_eq!(welcome(&p), "/first");

    let mark = p.mark();
    replace_with_fifo(&path);
    let err = p
        .wait_line_after(mark, NOTICE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error about the FIFO; stderr:\n{}", p.logs()));
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("keeping the running settings"), "{err}");
    // SIGHUP is still handled (the control thread is not stuck in open()), and the same
    // FIFO is not reported again.
    p.signal("HUP");
    p.wait_line_after(mark, NOTICE, |l| l.contains("SIGHUP: reloading"))
        .expect("SIGHUP handled");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(errors_since(&p, mark).len(), 1, "{}", p.logs());
    assert_eq!(welcome(&p), "/first", "the running settings stay");

    // A good file in the FIFO's place applies.
    replace_with_file(&path, &config(&app, "/second", ""));
    within(NOTICE, || welcome(&p) == "/second").expect("the good edit after the FIFO applies");

    // And with a FIFO there again, SIGTERM stops the proxy at once.
    let mark = p.mark();
    replace_with_fifo(&path);
    p.wait_line_after(mark, NOTICE, |l| l.contains("not a regular file"))
        .expect("the second FIFO is reported");
    stops_promptly(&mut p);
}

#[test]
fn a_fifo_at_the_keys_path_keeps_the_keys_and_signals_work() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("jwks.json");
    let path = dir.path().join("proxy.toml");
    let extra = format!("[jwt]\nkeys_file = {:?}\n", keys.display().to_string());
    std::fs::write(&path, config(&app, "/first", &extra)).unwrap();
    let mut p = Proxy::with_config(&path).start();
    let jwks = raw_get(p.addr(), "/.ory/jwks.json", &[]).body;

    let mark = p.mark();
    replace_with_fifo(&keys);
    let err = p
        .wait_line_after(mark, NOTICE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error about the FIFO; stderr:\n{}", p.logs()));
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("keeping the keys in use"), "{err}");
    assert_eq!(raw_get(p.addr(), "/.ory/jwks.json", &[]).body, jwks);
    // Another poll or two: still one error, and config edits still apply.
    replace_with_file(&path, &config(&app, "/second", &extra));
    within(NOTICE, || welcome(&p) == "/second").expect("a config edit applies");
    assert_eq!(errors_since(&p, mark).len(), 1, "{}", p.logs());
    stops_promptly(&mut p);
}

#[test]
fn a_config_read_from_a_pipe_starts_clean_and_is_not_reloaded() {
    let app = FakeApp::start();
    // `-c <(cat proxy.toml)` names a pipe under /dev/fd; /dev/stdin is one too.
    let mut p = Proxy::with_config(Path::new("/dev/stdin"))
        .stdin(&config(&app, "/piped", ""))
        .start();
    assert_eq!(welcome(&p), "/piped");
    let note = p
        .wait_line(NOTICE, |l| l.contains("read once at start"))
        .expect("a note that the pipe is not watched");
    assert!(note.contains(" INFO "), "{note}");
    let mark = p.mark();
    p.signal("HUP");
    p.wait_line_after(mark, NOTICE, |l| {
        l.contains("restart to change the settings")
    })
    .expect("SIGHUP says why nothing is reloaded");
    assert_eq!(welcome(&p), "/piped");
    assert!(
        p.lines(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .is_empty(),
        "{}",
        p.logs()
    );
    p.assert_alive();
}

#[test]
fn a_config_pipe_with_port_0_is_read_once() {
    // Port 0 makes start-up load the settings twice (the second time with the bound port):
    // the second load must use the text already read.
    let app = FakeApp::start();
    let text = format!("port = 0\n{}", config(&app, "/piped", ""));
    let p = Proxy::with_config(Path::new("/dev/stdin"))
        .stdin(&text)
        .start();
    assert_eq!(welcome(&p), "/piped");
}

/// A keys file made by a proxy in `dir`, then stopped: a valid JWKS with private keys.
fn made_keys_file(dir: &Path, app: &FakeApp) -> (PathBuf, String) {
    let keys = dir.join("jwks.json");
    let mut p = Proxy::to(&app.url())
        .flags(&["-c", &write_keys_config(dir, &keys)])
        .start();
    let kid = kid_of(&p);
    stops_promptly(&mut p);
    (keys, kid)
}

fn write_keys_config(dir: &Path, keys: &Path) -> String {
    let path = dir.join("keys.toml");
    std::fs::write(
        &path,
        format!("[jwt]\nkeys_file = {:?}\n", keys.display().to_string()),
    )
    .unwrap();
    path.display().to_string()
}

fn kid_of(p: &Proxy) -> String {
    let body = raw_get(p.addr(), "/.ory/jwks.json", &[]).body;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["keys"][0]["kid"].as_str().unwrap().to_string()
}

fn start_fails(app: &FakeApp, config: &str, needle: &str) {
    let out = common::run_cli(&["-c", config, "--sdk-url", NO_ORY, &app.url()], &[], &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains(needle), "{}", out.stderr);
}

#[test]
fn a_keys_file_or_directory_others_can_write_is_refused_at_start() {
    let app = FakeApp::start();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let (keys, kid) = made_keys_file(&dir, &app);
    // The config beside, not in, the keys directory: a writable directory refuses it too.
    let config = write_keys_config(base.path(), &keys);

    for mode in [0o666, 0o620, 0o602] {
        chmod(&keys, mode);
        start_fails(&app, &config, "writable by");
    }
    // Readable by others: a warning, and the proxy starts with the file's key.
    chmod(&keys, 0o644);
    let p = Proxy::to(&app.url()).flags(&["-c", &config]).start();
    assert_eq!(kid_of(&p), kid);
    assert!(
        p.wait_line(NOTICE, |l| l.contains("readable by others"))
            .is_some(),
        "{}",
        p.logs()
    );
    drop(p);

    // A directory others can write (where they could swap the file) is refused, unless sticky.
    chmod(&keys, 0o600);
    chmod(&dir, 0o777);
    start_fails(&app, &config, "without the sticky bit");
    chmod(&dir, 0o1777);
    let p = Proxy::to(&app.url()).flags(&["-c", &config]).start();
    assert_eq!(kid_of(&p), kid);
    drop(p);
    chmod(&dir, 0o700);
}

#[test]
fn a_key_planted_in_a_writable_keys_file_is_never_published() {
    let app = FakeApp::start();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    // The attacker's JWKS: a valid keys file made elsewhere.
    let other = base.path().join("other");
    std::fs::create_dir(&other).unwrap();
    chmod(&other, 0o700);
    let (planted, planted_kid) = made_keys_file(&other, &app);

    let (keys, kid) = made_keys_file(&dir, &app);
    let config = write_keys_config(&dir, &keys);
    let mut p = Proxy::to(&app.url()).flags(&["-c", &config]).start();
    assert_eq!(kid_of(&p), kid);

    // Someone replaces the shared file with theirs, left world-writable.
    let mark = p.mark();
    let tmp = dir.join("planted.tmp");
    std::fs::copy(&planted, &tmp).unwrap();
    chmod(&tmp, 0o666);
    std::fs::rename(&tmp, &keys).unwrap();
    let err = p
        .wait_line_after(mark, NOTICE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error about the writable file; stderr:\n{}", p.logs()));
    assert!(err.contains("writable by"), "{err}");
    assert!(err.contains("keeping the keys in use"), "{err}");
    let jwks = String::from_utf8(raw_get(p.addr(), "/.ory/jwks.json", &[]).body).unwrap();
    assert!(
        !jwks.contains(&planted_kid),
        "planted key published: {jwks}"
    );
    assert_eq!(kid_of(&p), kid);
    p.assert_alive();
}

/// A keys file refused for its mode is read again once the operator fixes the mode: `chmod`
/// changes neither its modification time nor its length, so a stamp of those two alone left
/// the instance on its old key for good while other instances signed with the new one.
#[test]
fn a_keys_file_refused_for_its_mode_is_adopted_once_the_mode_is_fixed() {
    let app = FakeApp::start();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let other = base.path().join("other");
    std::fs::create_dir(&other).unwrap();
    chmod(&other, 0o700);
    let (rotated, rotated_kid) = made_keys_file(&other, &app);

    let (keys, kid) = made_keys_file(&dir, &app);
    let config = write_keys_config(&dir, &keys);
    let mut p = Proxy::to(&app.url()).flags(&["-c", &config]).start();
    assert_eq!(kid_of(&p), kid);

    let mark = p.mark();
    let tmp = dir.join("rotated.tmp");
    std::fs::copy(&rotated, &tmp).unwrap();
    chmod(&tmp, 0o666);
    std::fs::rename(&tmp, &keys).unwrap();
    p.wait_line_after(mark, NOTICE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error about the writable file; stderr:\n{}", p.logs()));
    chmod(&keys, 0o600);
    let deadline = std::time::Instant::now() + NOTICE;
    while kid_of(&p) != rotated_kid {
        assert!(
            std::time::Instant::now() < deadline,
            "the fixed keys file was never adopted; stderr:\n{}",
            p.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p.assert_alive();
}

/// `ca_file` is read like the other operator files: a FIFO there (nothing writing to it) is a
/// clear error at start, not a start-up that hangs in `open`.
#[test]
fn a_fifo_as_ca_file_is_an_error_not_a_hang() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.pem");
    mkfifo(&fifo);
    let out = common::run_cli(
        &["--sdk-url", NO_ORY, &app.url()],
        &[("ORY_PROXY_CA_FILE", fifo.to_str().unwrap())],
        &[],
    );
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("regular file"), "{}", out.stderr);
}

#[test]
fn a_config_file_or_directory_others_can_write_is_refused_at_start() {
    let app = FakeApp::start();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("conf");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let path = dir.join("proxy.toml");
    std::fs::write(&path, config(&app, "/first", "")).unwrap();
    let cfg = path.display().to_string();
    let refused = |needle: &str| {
        let out = common::run_cli(&["-c", &cfg], &[], &[]);
        assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
        assert!(out.stderr.contains(needle), "{}", out.stderr);
        assert!(out.stderr.contains("proxy.toml"), "{}", out.stderr);
    };
    for mode in [0o666, 0o620, 0o602] {
        chmod(&path, mode);
        refused("writable by");
    }
    chmod(&path, 0o644);
    // Only root can give a file away: as anyone else, that case cannot be set up.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        refused("owned by uid 4242");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    }
    chmod(&dir, 0o777);
    refused("without the sticky bit");
    // Sticky (as /tmp): others cannot replace a file they do not own.
    chmod(&dir, 0o1777);
    let p = Proxy::with_config(&path).start();
    assert_eq!(welcome(&p), "/first");
    drop(p);
    chmod(&dir, 0o700);
}

#[test]
fn a_reload_that_makes_the_config_writable_by_others_keeps_the_running_settings() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config(&app, "/first", "")).unwrap();
    let mut p = Proxy::with_config(&path).start();
    assert_eq!(welcome(&p), "/first");

    // Someone's edit, left world-writable: one error, and the running settings stay.
    let mark = p.mark();
    let tmp = path.with_extension("planted");
    std::fs::write(&tmp, config(&app, "/planted", "")).unwrap();
    chmod(&tmp, 0o666);
    std::fs::rename(&tmp, &path).unwrap();
    let err = p
        .wait_line_after(mark, NOTICE, |l| l.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no error about the writable file; stderr:\n{}", p.logs()));
    assert!(err.contains("writable by group and others"), "{err}");
    assert!(err.contains("keeping the running settings"), "{err}");
    p.signal("HUP");
    p.wait_line_after(mark, NOTICE, |l| l.contains("SIGHUP: reloading"))
        .expect("SIGHUP handled");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(welcome(&p), "/first", "the planted settings were applied");
    assert_eq!(errors_since(&p, mark).len(), 1, "{}", p.logs());

    // Once the operator fixes the mode, the (same) content applies.
    chmod(&path, 0o600);
    p.signal("HUP");
    within(NOTICE, || welcome(&p) == "/planted").expect("the file applies once it is 0600");
    stops_promptly(&mut p);
}

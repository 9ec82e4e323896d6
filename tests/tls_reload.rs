//! Live certificates (README, "TLS and HTTP/2"): the certificate and key files are followed
//! like `proxy.toml`. A renewal (a Kubernetes Secret's `..data` swap, certbot re-pointing its
//! links) reaches new handshakes within 2 s without dropping open connections; a pair that
//! does not load or does not match keeps the running one with one error; and the files must
//! be the operator's (a world-writable key is refused), which a Kubernetes Secret mount is.

mod common;

use std::path::Path;
use std::time::Duration;

use common::app::pattern;
use common::tls::{served_fingerprint, write_mode, Http, KubeMount, Leaf, TestCa};
use common::{read_at_least, read_body, run_cli, within, FakeApp, Proxy};

/// The renewal deadline the README promises.
const PICKED_UP: Duration = Duration::from_secs(2);

fn start(app: &FakeApp, cert: &Path, key: &Path) -> Proxy {
    Proxy::to(&app.url())
        .flags(&[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .start()
}

/// Waits until new handshakes get `leaf`; how long it took.
fn serves(proxy: &Proxy, ca: &TestCa, leaf: &Leaf, within_: Duration) -> Option<Duration> {
    let ca = ca.pem();
    within(within_, || {
        served_fingerprint(proxy.port, &ca).is_ok_and(|fp| fp == leaf.fingerprint)
    })
}

fn errors(proxy: &Proxy) -> Vec<String> {
    proxy.lines(|l| l.contains("ERROR"))
}

#[actix_web::test]
async fn a_kubernetes_secret_swap_reaches_new_connections_while_an_old_one_streams_on() {
    let ca = TestCa::new();
    let (old, new) = (ca.leaf("old"), ca.leaf("new"));
    let dir = tempfile::tempdir().unwrap();
    let mut mount = KubeMount::new(&dir.path().join("tls"), &old);
    let app = FakeApp::start();
    let proxy = start(&app, &mount.cert(), &mount.key());
    assert!(serves(&proxy, &ca, &old, PICKED_UP).is_some());

    // A slow download on a connection set up with the old certificate.
    let c = common::tls::client(&ca.pem(), Http::V1);
    let n = 4 << 20;
    let mut download = c
        .get(proxy.https_url(&format!("/download?bytes={n}&gate=big")))
        .send()
        .await
        .unwrap();
    let mut got = read_at_least(&mut download, 1, "no first piece").await;

    mount.swap(&new);
    let took = serves(&proxy, &ca, &new, PICKED_UP);
    assert!(
        took.is_some(),
        "the new certificate was not served within {PICKED_UP:?}:\n{}",
        proxy.logs()
    );
    assert!(
        proxy
            .wait_line(Duration::from_secs(5), |l| l
                .contains("renewed certificate")
                && l.contains(&new.fingerprint))
            .is_some(),
        "{}",
        proxy.logs()
    );

    // The old connection is still there and finishes its download with the right bytes.
    app.open_gate("big");
    got.extend(read_body(&mut download).await);
    assert_eq!(got.len(), n);
    assert!(got == pattern(n), "the download's bytes differ");
    assert!(errors(&proxy).is_empty(), "{}", proxy.logs());
}

/// certbot renews into new files under `archive/` and re-points the links in `live/` one at a
/// time: for a moment the certificate is new and the key old. That moment is not an error.
#[actix_web::test]
async fn a_certbot_renewal_is_picked_up_without_an_error_in_between() {
    let ca = TestCa::new();
    let (old, new) = (ca.leaf("old"), ca.leaf("new"));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive/example.org");
    let live = dir.path().join("live/example.org");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let publish = |n: u32, leaf: &Leaf| {
        write_mode(
            &archive.join(format!("fullchain{n}.pem")),
            &leaf.cert_pem,
            0o644,
        );
        write_mode(
            &archive.join(format!("privkey{n}.pem")),
            &leaf.key_pem,
            0o600,
        );
    };
    // Re-points `live/<name>.pem` to `archive/<name><n>.pem`, as one rename.
    let link = |name: &str, n: u32| {
        let tmp = live.join(format!("{name}.pem.new"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("../../archive/example.org/{name}{n}.pem"), &tmp)
            .unwrap();
        std::fs::rename(&tmp, live.join(format!("{name}.pem"))).unwrap();
    };
    publish(1, &old);
    link("fullchain", 1);
    link("privkey", 1);
    let app = FakeApp::start();
    let proxy = start(&app, &live.join("fullchain.pem"), &live.join("privkey.pem"));
    assert!(serves(&proxy, &ca, &old, PICKED_UP).is_some());

    publish(2, &new);
    link("fullchain", 2);
    // Longer than the watch's debounce: the half-renewed state is seen on its own.
    std::thread::sleep(Duration::from_millis(200));
    link("privkey", 2);
    assert!(
        serves(&proxy, &ca, &new, PICKED_UP).is_some(),
        "{}",
        proxy.logs()
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(errors(&proxy).is_empty(), "{}", proxy.logs());
}

#[actix_web::test]
async fn a_bad_pair_keeps_the_running_certificate_with_one_error() {
    let ca = TestCa::new();
    let (good, other, next) = (ca.leaf("good"), ca.leaf("other"), ca.leaf("next"));
    let dir = tempfile::tempdir().unwrap();
    let mut mount = KubeMount::new(&dir.path().join("tls"), &good);
    let app = FakeApp::start();
    let proxy = start(&app, &mount.cert(), &mount.key());
    assert!(serves(&proxy, &ca, &good, PICKED_UP).is_some());

    // A key of another certificate, published twice (two swaps, many events): one error.
    let mismatched = Leaf {
        key_pem: other.key_pem.clone(),
        ..next.clone()
    };
    let mark = proxy.mark();
    mount.swap(&mismatched);
    let err = proxy.wait_line_after(mark, Duration::from_secs(5), |l| l.contains("ERROR"));
    let err = err.unwrap_or_else(|| panic!("no error for a mismatched pair:\n{}", proxy.logs()));
    assert!(
        err.contains("does not belong")
            && err.contains("tls.key")
            && err.contains("running certificate"),
        "{err}"
    );
    mount.swap(&mismatched);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(errors(&proxy).len(), 1, "{}", proxy.logs());
    assert_eq!(
        served_fingerprint(proxy.port, &ca.pem()).unwrap(),
        good.fingerprint,
        "a mismatched pair replaced the running one"
    );

    // Not PEM at all: another error, once; still the running certificate.
    let garbage = Leaf {
        cert_pem: "not a certificate\n".into(),
        ..next.clone()
    };
    mount.swap(&garbage);
    assert!(
        within(Duration::from_secs(5), || errors(&proxy).len() == 2).is_some(),
        "{}",
        proxy.logs()
    );
    assert!(
        errors(&proxy)[1].contains("no PEM certificate"),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        served_fingerprint(proxy.port, &ca.pem()).unwrap(),
        good.fingerprint
    );

    // A good pair again: served.
    mount.swap(&next);
    assert!(
        serves(&proxy, &ca, &next, PICKED_UP).is_some(),
        "{}",
        proxy.logs()
    );
    assert_eq!(errors(&proxy).len(), 2, "{}", proxy.logs());
}

/// A Secret mounted the way the kubelet does it (a 1777 root, links through `..data`, files
/// 0644 by default, or 0440 with an `fsGroup`) is accepted; a key file any user could write is
/// not, at start (exit 1) or on a renewal (the running pair stays).
#[actix_web::test]
async fn kubernetes_secret_modes_are_accepted_and_a_world_writable_key_is_refused() {
    let ca = TestCa::new();
    let (first, second) = (ca.leaf("first"), ca.leaf("second"));
    let dir = tempfile::tempdir().unwrap();
    let app = FakeApp::start();

    // The default defaultMode (0644): served, with a warning that every local user can read
    // the key.
    let mut mount = KubeMount::new(&dir.path().join("default"), &first);
    let proxy = start(&app, &mount.cert(), &mount.key());
    assert!(serves(&proxy, &ca, &first, PICKED_UP).is_some());
    let warning = proxy.wait_line(Duration::from_secs(5), |l| {
        l.contains("readable by every local user")
    });
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", proxy.logs()));
    assert!(warning.contains("defaultMode"), "{warning}");

    // A renewal with a world-writable key (defaultMode: 0666): refused, the running pair
    // stays.
    mount.swap_with_mode(&second, 0o666);
    let err = proxy.wait_line(Duration::from_secs(5), |l| l.contains("ERROR"));
    let err = err.unwrap_or_else(|| panic!("no error:\n{}", proxy.logs()));
    assert!(err.contains("writable by"), "{err}");
    assert_eq!(
        served_fingerprint(proxy.port, &ca.pem()).unwrap(),
        first.fingerprint
    );
    drop(proxy);

    // defaultMode 0440 and an fsGroup: the kubelet makes the root setgid and the files the
    // group's. No warning.
    let mut grouped = KubeMount::new(&dir.path().join("grouped"), &first);
    grouped.swap_with_mode(&first, 0o440);
    set_mode(&grouped.root, 0o3777);
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        for p in [grouped.cert(), grouped.key()] {
            std::os::unix::fs::chown(std::fs::canonicalize(&p).unwrap(), None, Some(2000)).unwrap();
        }
    }
    let proxy = start(&app, &grouped.cert(), &grouped.key());
    assert!(serves(&proxy, &ca, &first, PICKED_UP).is_some());
    assert!(
        proxy.lines(|l| l.contains("readable by")).is_empty(),
        "{}",
        proxy.logs()
    );
    drop(proxy);

    // At start: a world-writable key, and a key in a directory anyone may write to.
    let mut writable = KubeMount::new(&dir.path().join("writable"), &first);
    writable.swap_with_mode(&first, 0o666);
    let plain = dir.path().join("open");
    std::fs::create_dir(&plain).unwrap();
    let (cert, key) = common::tls::write_pair(&plain, &first);
    set_mode(&plain, 0o777);
    for (cert, key, why) in [
        (
            writable.cert(),
            writable.key(),
            "writable by group and others",
        ),
        (cert, key, "without the sticky bit"),
    ] {
        let out = run_cli(
            &[
                "--sdk-url",
                common::NO_ORY,
                "--port",
                "0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
                "http://127.0.0.1:1",
            ],
            &[],
            &[],
        );
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        let dir = key.parent().unwrap().to_str().unwrap();
        assert!(
            out.stderr.contains(why) && out.stderr.contains(dir),
            "{}",
            out.stderr
        );
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

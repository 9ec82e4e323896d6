//! `deploy/` held to the proxy: the ConfigMap's `proxy.toml` is valid, the Deployment probes the
//! proxy's health routes, mounts what `proxy.toml` names and waits longer than the proxy
//! drains, the systemd unit signals what the proxy handles; and the files of a Kubernetes
//! volume, with the modes and the read-only mount the kubelet gives them, pass the proxy's
//! checks on who may change its files (README, "Who may change the proxy's files"), which still
//! refuse the same layout when it is writable. (The schemas are checked by `.ci/run` with
//! `kubernetes-validate`, the unit by `systemd-analyze verify`.)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::mounts::{chmod, Mount};
use common::{raw_get, run_cli, FakeApp, Proxy, NO_ORY};
use ory_proxy::server::local_routes::{HEALTH_ALIVE, HEALTH_READY};
use ory_proxy::server::SHUTDOWN_GRACE;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The block scalar `key: |` of a YAML text, unindented.
fn yaml_block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().unwrap_or_else(|| panic!("no `{key}: |`"));
    let indent = head.len() - head.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
        .collect()
}

/// The value after `key:` on the first line that has it, after the first line with `after`.
fn yaml_value(text: &str, after: &str, key: &str) -> String {
    let start = text.find(after).unwrap_or_else(|| panic!("no {after}"));
    text[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} after {after}"))
        .trim()
        .trim_matches('"')
        .to_string()
}

fn configmap_toml() -> String {
    yaml_block(&deploy_file("kubernetes/configmap.yaml"), "proxy.toml")
}

#[test]
fn the_configmap_proxy_toml_is_valid_and_follows_the_secret_read_only() {
    let toml = configmap_toml();
    let out = run_cli(
        &["--check-config", "-c", "proxy.toml"],
        &[],
        &[("proxy.toml", &toml)],
    );
    assert_eq!(out.code, Some(0), "{}\n{toml}", out.stderr);
    assert!(
        out.stdout.contains("keys_file_read_only = true"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_deployment_probes_mounts_and_waits_as_the_proxy_needs() {
    let d = deploy_file("kubernetes/deployment.yaml");
    assert_eq!(yaml_value(&d, "readinessProbe:", "path"), HEALTH_READY);
    assert_eq!(yaml_value(&d, "livenessProbe:", "path"), HEALTH_ALIVE);
    // proxy.toml where --config says, and the keys file where proxy.toml says.
    assert!(d.contains(r#"args: ["--config", "/etc/ory-proxy/config/proxy.toml"]"#));
    assert_eq!(
        yaml_value(&d, "- name: config\n              mountPath", "mountPath"),
        "/etc/ory-proxy/config"
    );
    let keys_dir = yaml_value(&d, "- name: keys\n              mountPath", "mountPath");
    let toml = configmap_toml();
    assert!(
        toml.contains(&format!("keys_file = \"{keys_dir}/jwks.json\"")),
        "{toml}"
    );
    assert_eq!(
        yaml_value(&d, "secretName: ory-proxy-keys", "defaultMode"),
        "0440"
    );
    // SIGKILL only after shutdown_delay and the whole drain.
    let grace: u64 = yaml_value(&d, "spec:", "terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    let delay =
        humantime::parse_duration(&yaml_value(&d, "ORY_PROXY_SHUTDOWN_DELAY", "value")).unwrap();
    assert!(
        Duration::from_secs(grace) > delay + SHUTDOWN_GRACE,
        "{grace}"
    );
    let replicas: u32 = yaml_value(&d, "spec:", "replicas").parse().unwrap();
    assert!(replicas >= 2);
}

#[test]
fn the_systemd_unit_reloads_and_stops_as_the_proxy_expects() {
    let u = deploy_file("systemd/ory-proxy.service");
    let value = |key: &str| {
        u.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}="))
            .to_string()
    };
    assert!(value("ExecStart").ends_with("--config /etc/ory-proxy/proxy.toml"));
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("KillSignal"), "SIGTERM");
    let stop = humantime::parse_duration(&value("TimeoutStopSec").replace(' ', ""))
        .or_else(|_| value("TimeoutStopSec").parse().map(Duration::from_secs))
        .unwrap();
    assert!(stop > SHUTDOWN_GRACE);
    // The one setting that would break the ownership check: root's files would look like
    // nobody's.
    assert!(!u.contains("PrivateUsers=yes"));
}

/// Whether this test can make read-only bind mounts and drop to another user: root, with
/// `unshare` and `setpriv` (util-linux).
fn can_mount_and_drop() -> bool {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let works = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success())
    };
    works(&["unshare", "--mount", "--propagation", "private", "true"])
        && works(&[
            "setpriv",
            "--reuid=65532",
            "--regid=65532",
            "--clear-groups",
            "true",
        ])
}

/// A pod's view of its volumes: `config` (a ConfigMap: the volume's directory 0777, files
/// 0644) and `keys` (a Secret: a tmpfs, 1777, files 0440), both owned by root, files of group
/// `GID` (the pod's `fsGroup`), mounted read-only, the proxy running as `UID`.
struct Pod {
    base: tempfile::TempDir,
    config: Mount,
    keys: Mount,
    staged: PathBuf,
}

const UID: &str = "65532";
const GID: u32 = 65532;

impl Pod {
    fn new(app: &FakeApp) -> Pod {
        let base = tempfile::tempdir().unwrap();
        chmod(base.path(), 0o755);
        // The proxy's user must reach the binary: a link beside the volumes.
        let bin = base.path().join("ory-proxy");
        if std::fs::hard_link(common::bin(), &bin).is_err() {
            std::fs::copy(common::bin(), &bin).unwrap();
        }
        let staging = base.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        chmod(&staging, 0o700);
        let staged = staging.join("jwks.json");
        let out = run_cli(
            &["keys", "generate", "--out", staged.to_str().unwrap()],
            &[],
            &[],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let mut config = Mount::new(&base.path().join("config"));
        chmod(&config.dir, 0o777);
        let mut keys = Mount::new(&base.path().join("keys"));
        chmod(&keys.dir, 0o1777);
        let toml = format!(
            "application_url = \"{}\"\nsdk_url = \"{NO_ORY}\"\n[jwt]\nkeys_file = \"{}\"\nkeys_file_read_only = true\n",
            app.url(),
            keys.path("jwks.json").display()
        );
        config.publish(&[("proxy.toml", toml.as_bytes())], 0o644, Some(GID));
        keys.publish(
            &[("jwks.json", &std::fs::read(&staged).unwrap())],
            0o440,
            Some(GID),
        );
        Pod {
            base,
            config,
            keys,
            staged,
        }
    }

    /// `unshare … sh -c '<mounts>; exec setpriv … <binary> "$@"'`; `read_only` mounts the
    /// volumes read-only as the kubelet does, otherwise they stay as they are.
    fn wrap(&self, read_only: bool) -> Vec<String> {
        let mut script = String::new();
        if read_only {
            for dir in [&self.config.dir, &self.keys.dir] {
                let d = dir.display();
                script +=
                    &format!("mount --bind '{d}' '{d}' && mount -o remount,bind,ro '{d}' && ");
            }
        }
        script += &format!(
            "exec setpriv --reuid={UID} --regid={GID} --clear-groups '{}' \"$@\"",
            self.base.path().join("ory-proxy").display()
        );
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]
        .map(String::from)
        .to_vec()
    }

    fn args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            self.config.path("proxy.toml").display().to_string(),
        ]
    }
}

fn kids(p: &Proxy) -> Vec<String> {
    let body = raw_get(p.addr(), "/.ory/jwks.json", &[]).body;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kubernetes_volumes_pass_the_file_checks_only_when_mounted_read_only() {
    if !can_mount_and_drop() {
        eprintln!("skipped: needs root, unshare and setpriv to mount volumes read-only");
        return;
    }
    let app = FakeApp::start();
    let mut pod = Pod::new(&app);

    // Writable, the ConfigMap's 0777 directory lets anyone swap proxy.toml: refused.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$@\"")
        .arg("sh")
        .args(pod.wrap(false))
        .arg(common::bin())
        .arg("--check-config")
        .args(pod.args())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("without the sticky bit"), "{stderr}");

    // Mounted read-only, as in a pod: the proxy starts, as a user of the files' group.
    let ro: Vec<String> = pod.wrap(true);
    let ro: Vec<&str> = ro.iter().map(String::as_str).collect();
    let pod_args = pod.args();
    let p = Proxy::to(&app.url())
        .wrap(&ro)
        .flags(&pod_args.iter().map(String::as_str).collect::<Vec<_>>())
        .start();
    let old = kids(&p);
    assert_eq!(old.len(), 1, "{}", p.logs());
    assert!(
        p.lines(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .is_empty(),
        "{}",
        p.logs()
    );

    // The Secret updated by the kubelet after an offline rotation: followed.
    let out = run_cli(
        &[
            "keys",
            "rotate",
            pod.staged.to_str().unwrap(),
            "--publish-ahead",
            "1s",
        ],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let new = out.stdout.trim().to_string();
    let secret = std::fs::read(&pod.staged).unwrap();
    pod.keys
        .publish(&[("jwks.json", &secret)], 0o440, Some(GID));
    let deadline = Instant::now() + Duration::from_secs(20);
    while kids(&p).first() != Some(&new) {
        assert!(Instant::now() < deadline, "never switched:\n{}", p.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kids(&p).contains(&old[0]), "the old key left at once");
    assert_eq!(raw_get(p.addr(), HEALTH_READY, &[]).status, 200);

    // A group-writable file stays refused on a read-only mount: the files' own modes count.
    pod.keys
        .publish(&[("jwks.json", &secret)], 0o460, Some(GID));
    let mark = p.mark();
    p.wait_line_after(mark, Duration::from_secs(20), |l| l.contains("writable by"))
        .unwrap_or_else(|| panic!("a group-writable keys file was not refused:\n{}", p.logs()));
}

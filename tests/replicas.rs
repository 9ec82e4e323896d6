//! Three replicas laid out as on Kubernetes (README, "Running in production"): one
//! `proxy.toml` in a ConfigMap-like volume that all three read, each replica its own
//! Secret-like volume holding the keys file (`keys_file_read_only`), clients spread over them,
//! the sessions in the fake Ory. Volumes change as the kubelet changes them: a `..data` swap.
//!
//! - a `proxy.toml` edit reaches all three;
//! - a key rotation (`ory-proxy keys rotate`, publish-ahead 5 s) that reaches one replica 3 s
//!   after the others: every token any replica mints verifies against every replica's JWKS,
//!   checked continuously from before the rotation until the old key has left everywhere;
//! - a logout through one replica stops the JWTs on the others within `cache_ttl`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use common::mounts::Mount;
use common::{echo_via, get, get_with, run_cli, FakeApp, Proxy};
use ory_emulator::{Emulator, EmulatorConfig};

/// Scaled down from minutes: the late replica sees the rotated file `LAG` after the others,
/// well within the publish-ahead.
const PUBLISH_AHEAD: &str = "5s";
const LAG: Duration = Duration::from_secs(3);
const TTL_SECS: u64 = 3;
const CACHE_TTL: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(60);

/// One cluster at a time: the rotation test measures seconds, and three clusters at once on a
/// small machine would measure the machine.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    ory: Emulator,
    _app: FakeApp,
    config: Mount,
    keys: Vec<Mount>,
    replicas: Vec<Proxy>,
    /// The operator's copy of the keys file, which `ory-proxy keys` works on.
    staged: PathBuf,
    _base: tempfile::TempDir,
}

fn proxy_toml(app: &FakeApp, ory: &Emulator, issuer: &str) -> String {
    format!(
        "application_url = \"{}\"\nsdk_url = \"{}\"\n\
         [jwt]\nttl = \"{TTL_SECS}s\"\nissuer = \"{issuer}\"\nkeys_file_read_only = true\n\
         [session]\ncache_ttl = \"{}s\"\n",
        app.url(),
        ory.url(),
        CACHE_TTL.as_secs()
    )
}

impl Cluster {
    fn start() -> Cluster {
        let ory = Emulator::start(EmulatorConfig::default()).expect("start the Ory emulator");
        let app = FakeApp::start();
        let base = tempfile::tempdir().unwrap();
        let staged = base.path().join("jwks.json");
        let out = run_cli(
            &["keys", "generate", "--out", staged.to_str().unwrap()],
            &[],
            &[],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let mut config = Mount::new(&base.path().join("config"));
        let text = proxy_toml(&app, &ory, "https://one.example");
        config.publish(&[("proxy.toml", text.as_bytes())], 0o644, None);
        let secret = std::fs::read(&staged).unwrap();
        let keys: Vec<Mount> = (0..3)
            .map(|i| {
                let mut m = Mount::new(&base.path().join(format!("keys-{i}")));
                m.publish(&[("jwks.json", &secret)], 0o600, None);
                m
            })
            .collect();
        let replicas = keys
            .iter()
            .map(|m| {
                Proxy::with_config(&config.path("proxy.toml"))
                    .env(
                        "ORY_PROXY_JWT__KEYS_FILE",
                        m.path("jwks.json").to_str().unwrap(),
                    )
                    .start()
            })
            .collect();
        Cluster {
            ory,
            _app: app,
            config,
            keys,
            replicas,
            staged,
            _base: base,
        }
    }

    /// A token freshly minted by replica `i` (a new session: no cached token).
    async fn mint(&self, i: usize) -> String {
        let s = self.ory.create_session("spread@example.org");
        jwt_for(&self.replicas[i], &s.cookie)
            .await
            .unwrap_or_else(|| panic!("replica {i} sent no JWT for an active session"))
    }
}

async fn jwt_for(p: &Proxy, cookie: &str) -> Option<String> {
    let e = echo_via(p, "/echo", &[("cookie", cookie)]).await;
    e.one("authorization").map(|v| {
        v.strip_prefix("Bearer ")
            .expect("a Bearer token")
            .to_string()
    })
}

async fn jwks(p: &Proxy) -> JwkSet {
    let res = get(&p.url("/.ory/jwks.json")).await;
    assert_eq!(res.status, 200, "{}", res.text());
    serde_json::from_slice(&res.body).expect("a JWKS")
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

/// The claims, read without verification.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS payload");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}

/// Verifies the signature as an app would, with the key `set` lists under the token's kid.
/// Expiry is the caller's business (only unexpired tokens are checked).
fn verify(token: &str, set: &JwkSet) -> Result<(), String> {
    let kid = kid_of(token);
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS {:?}", kids(set)))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK: {e}"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// SIGUSR1 cannot rotate a keys file the replica only reads: it says where to rotate, and
/// changes nothing.
#[actix_web::test]
async fn sigusr1_on_a_read_only_replica_says_where_to_rotate() {
    let _one = ONE_CLUSTER.lock().await;
    let mut c = Cluster::start();
    let before = kids(&jwks(&c.replicas[1]).await);
    let mark = c.replicas[1].mark();
    c.replicas[1].signal("USR1");
    let line = c.replicas[1]
        .wait_line_after(mark, Duration::from_secs(10), |l| l.contains("SIGUSR1"))
        .unwrap_or_else(|| panic!("nothing said; stderr:\n{}", c.replicas[1].logs()));
    assert!(line.contains("ory-proxy keys rotate"), "{line}");
    assert_eq!(kids(&jwks(&c.replicas[1]).await), before);
    c.replicas[1].assert_alive();
    let staged: Value = serde_json::from_slice(&std::fs::read(&c.staged).unwrap()).unwrap();
    assert_eq!(staged["keys"].as_array().unwrap().len(), 1);
    let mounted = std::fs::read(c.keys[1].path("jwks.json")).unwrap();
    assert_eq!(
        mounted,
        std::fs::read(&c.staged).unwrap(),
        "the mounted file was written"
    );
}

#[actix_web::test]
async fn a_proxy_toml_edit_reaches_every_replica() {
    let _one = ONE_CLUSTER.lock().await;
    let mut c = Cluster::start();
    for i in 0..3 {
        assert_eq!(claims(&c.mint(i).await)["iss"], "https://one.example");
    }
    let text = proxy_toml(&c._app, &c.ory, "https://two.example");
    c.config
        .publish(&[("proxy.toml", text.as_bytes())], 0o644, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..3 {
        while claims(&c.mint(i).await)["iss"] != "https://two.example" {
            assert!(
                Instant::now() < deadline,
                "replica {i} never applied the edit; stderr:\n{}",
                c.replicas[i].logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A token some replica minted.
struct Minted {
    replica: usize,
    token: String,
    kid: String,
    iat: u64,
    exp: u64,
}

/// What the continuous check saw.
#[derive(Default)]
struct Watch {
    live: Vec<Minted>,
    minted_new_by: [bool; 3],
    violations: Vec<String>,
    rounds: u32,
    /// A round in which some replica published the new key and another did not yet.
    saw_lag: bool,
    /// Tokens with the new key signed before its sign_from.
    early: Vec<String>,
}

impl Watch {
    /// Each replica mints a token; then every replica's JWKS must verify every unexpired
    /// token minted so far.
    async fn round(&mut self, c: &Cluster, new_kid: Option<&str>, sign_from: u64) {
        for i in 0..3 {
            let token = c.mint(i).await;
            let cl = claims(&token);
            let m = Minted {
                replica: i,
                kid: kid_of(&token),
                iat: cl["iat"].as_u64().expect("iat"),
                exp: cl["exp"].as_u64().expect("exp"),
                token,
            };
            if Some(m.kid.as_str()) == new_kid {
                self.minted_new_by[i] = true;
                if m.iat < sign_from {
                    self.early.push(format!("replica {i} at {}", m.iat));
                }
            }
            self.live.push(m);
        }
        let mut sets = Vec::new();
        for p in &c.replicas {
            sets.push(jwks(p).await);
        }
        // Tokens within a second of their expiry may expire while the round runs.
        let now = unix_now();
        self.live.retain(|m| m.exp > now + 1);
        for m in &self.live {
            for (j, set) in sets.iter().enumerate() {
                if let Err(e) = verify(&m.token, set) {
                    self.violations.push(format!(
                        "a token of replica {} (kid {}) fails at replica {j}: {e}",
                        m.replica, m.kid
                    ));
                }
            }
        }
        if let Some(new) = new_kid {
            let has: Vec<bool> = sets.iter().map(|s| s.find(new).is_some()).collect();
            self.saw_lag |= has.iter().any(|h| *h) && has.iter().any(|h| !*h);
        }
        self.rounds += 1;
    }
}

#[actix_web::test]
async fn a_rotation_seen_late_by_one_replica_rejects_no_token_anywhere() {
    let _one = ONE_CLUSTER.lock().await;
    let mut c = Cluster::start();
    let old = kids(&jwks(&c.replicas[0]).await);
    assert_eq!(old.len(), 1);
    let mut w = Watch::default();
    for _ in 0..3 {
        w.round(&c, None, 0).await;
    }

    // The operator rotates the file and updates the Secret; two pods see it now, one late.
    let staged = c.staged.to_str().unwrap().to_string();
    let out = run_cli(
        &["keys", "rotate", &staged, "--publish-ahead", PUBLISH_AHEAD],
        &[],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let new = out.stdout.trim().to_string();
    let secret = std::fs::read(&c.staged).unwrap();
    let file: Value = serde_json::from_slice(&secret).unwrap();
    assert_eq!(file["keys"][0]["kid"], new.as_str());
    let sign_from = file["keys"][0]["sign_from"].as_u64().expect("sign_from");
    c.keys[0].publish(&[("jwks.json", &secret)], 0o600, None);
    c.keys[1].publish(&[("jwks.json", &secret)], 0o600, None);
    // The late pod's kubelet, on a clock of its own (not delayed by the rounds below).
    let mut late = c.keys.pop().expect("three mounts");
    let late_secret = secret.clone();
    let late_kubelet = std::thread::spawn(move || {
        std::thread::sleep(LAG);
        late.publish(&[("jwks.json", &late_secret)], 0o600, None);
        late
    });

    let deadline = Instant::now() + DEADLINE;
    loop {
        let late_done = late_kubelet.is_finished();
        w.round(&c, Some(&new), sign_from).await;
        let mut old_listed = false;
        for p in &c.replicas {
            old_listed |= kids(&jwks(p).await).contains(&old[0]);
        }
        if late_done && w.minted_new_by.iter().all(|m| *m) && !old_listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation never completed (new key minted by {:?}, old key still listed: {old_listed}); stderr of the late replica:\n{}",
            w.minted_new_by,
            c.replicas[2].logs()
        );
    }
    late_kubelet.join().expect("the late kubelet's update");
    assert!(
        w.violations.is_empty(),
        "{} failed verifications, first: {:?}",
        w.violations.len(),
        &w.violations[..w.violations.len().min(5)]
    );
    assert!(w.early.is_empty(), "signed before sign_from: {:?}", w.early);
    for (i, p) in c.replicas.iter().enumerate() {
        let late = p.lines(|l| l.contains("signs at once"));
        assert!(
            late.is_empty(),
            "replica {i} read the new key late: {late:?}"
        );
    }
    assert!(
        w.saw_lag,
        "never saw a replica without the new key while another had it: the lag was not tested"
    );
    assert!(w.rounds >= 10, "only {} rounds", w.rounds);
}

/// A browser logout through `p`: the logout URL from Ory's browser flow, then the logout.
async fn logout_through(p: &Proxy, cookie: &str) {
    let res = get_with(
        &p.url("/.ory/self-service/logout/browser"),
        &[
            ("cookie", cookie),
            ("accept", "application/json"),
            ("accept-encoding", "identity"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let url = url::Url::parse(v["logout_url"].as_str().unwrap()).unwrap();
    let pq = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    let res = get_with(&p.url(&pq), &[("cookie", cookie)]).await;
    assert_eq!(res.status, 303, "{}", res.text());
}

#[actix_web::test]
async fn a_logout_through_one_replica_stops_jwts_everywhere_within_cache_ttl() {
    let _one = ONE_CLUSTER.lock().await;
    let c = Cluster::start();
    let s = c.ory.create_session("leaving@example.org");
    // Each replica's cached answer is at most as old as the moment its first request returned.
    let mut filled_by = Vec::new();
    for p in &c.replicas {
        assert!(jwt_for(p, &s.cookie).await.is_some(), "{}", p.logs());
        filled_by.push(Instant::now());
    }
    logout_through(&c.replicas[0], &s.cookie).await;
    assert!(
        jwt_for(&c.replicas[0], &s.cookie).await.is_none(),
        "the replica that saw the logout still sends a JWT"
    );
    // The others learn it from Ory once their cached answer expires: within cache_ttl (and
    // the time of one request).
    for (i, p) in c.replicas.iter().enumerate().skip(1) {
        while jwt_for(p, &s.cookie).await.is_some() {
            let age = filled_by[i].elapsed();
            assert!(
                age < CACHE_TTL + Duration::from_secs(1),
                "replica {i} still sends a JWT {age:?} after its cache was filled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        c.ory.whoami_calls() >= 5,
        "each replica asked Ory again: {}",
        c.ory.whoami_calls()
    );
}

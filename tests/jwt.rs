//! Sessions and the JWT end to end (docs/behaviour.md, "Sessions and the JWT"; README, "How the app
//! verifies the JWT"). Every token is checked the way an app would check it: with a decoder built
//! only from the JWKS the proxy serves.
//!
//! The fake Ory is the crate's emulator; the app is the shared fake app, whose echo shows the
//! exact request head the proxy sent it.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use common::{client, echo_via, get, get_echo, get_with, Echo, FakeApp, Proxy, NO_ORY};
use ory_emulator::{Emulator, EmulatorConfig, TestSession};

// ---- helpers ----

/// Generous bound for anything the tests poll for.
const POLL_DEADLINE: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(25);

fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).expect("start the Ory emulator")
}

fn default_emulator() -> Emulator {
    emulator(EmulatorConfig::default())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The JWT the app received, `None` when it received no `Authorization` at all. Panics on an
/// `Authorization` that is not the proxy's `Bearer` (a client value leaked through).
fn jwt_of(e: &Echo) -> Option<String> {
    e.one("authorization").map(|v| {
        v.strip_prefix("Bearer ")
            .unwrap_or_else(|| panic!("the app got a non-Bearer Authorization: {v:?}"))
            .to_string()
    })
}

/// Asserts the app got no `Authorization` header at all.
fn assert_anonymous(e: &Echo, why: &str) {
    assert!(
        e.all("authorization").is_empty(),
        "{why}: the app got Authorization {:?}",
        e.all("authorization")
    );
}

/// The JWT for a request carrying `cookie`; panics when the app got none.
async fn jwt_for_cookie(proxy: &Proxy, cookie: &str) -> String {
    let e = echo_via(proxy, "/echo", &[("cookie", cookie)]).await;
    jwt_of(&e).unwrap_or_else(|| panic!("no JWT for an active session: {e:?}"))
}

/// A fresh session and a freshly minted token for it (no cached token can be reused).
async fn fresh_jwt(proxy: &Proxy, ory: &Emulator) -> String {
    let s = ory.create_session("fresh@example.org");
    jwt_for_cookie(proxy, &s.cookie).await
}

/// The body as the client reads it: the proxy may pass on Ory's gzip (a request without
/// `Accept-Encoding` accepts any coding, RFC 9110 §12.5.3).
fn decoded(headers: &awc::http::header::HeaderMap, body: Vec<u8>) -> Vec<u8> {
    use std::io::Read as _;
    match common::header_one(headers, "content-encoding").as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("gzip body");
            out
        }
        None => body,
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
}

/// The JWKS as served at `/.ory/jwks.json`.
async fn jwks(proxy: &Proxy) -> JwkSet {
    let res = get(&proxy.url("/.ory/jwks.json")).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.all("content-type")
            .iter()
            .any(|v| v.starts_with("application/json")),
        "{:?}",
        res.headers
    );
    serde_json::from_slice(&res.body).unwrap_or_else(|e| panic!("not a JWKS ({e}): {}", res.text()))
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().expect("a JWK without kid"))
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a JWT without kid")
}

/// Verifies `token` as an app would: the key is the JWK whose `kid` matches the token's, the
/// algorithm is ES256 only, and `iss`, `sub`, `exp`, `nbf` are required and checked (no leeway).
/// Returns the claims.
fn verify(token: &str, set: &JwkSet, issuer: &str) -> Result<Value, String> {
    verify_for(token, set, issuer, &[])
}

/// [`verify`] for an app that also checks `aud` (required when `audience` is not empty).
fn verify_for(token: &str, set: &JwkSet, issuer: &str, audience: &[&str]) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some("JWT") {
        return Err(format!("header {header:?}"));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS {:?}", kids(set)))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK: {e}"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.leeway = 0;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[issuer]);
    if audience.is_empty() {
        v.set_required_spec_claims(&["iss", "sub", "exp", "nbf"]);
    } else {
        v.set_audience(audience);
        v.set_required_spec_claims(&["iss", "sub", "exp", "nbf", "aud"]);
    }
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| format!("{e:?}"))
}

/// The `session` claim exactly as it sits in the token (not re-serialised).
fn raw_session_claim(token: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Payload {
        session: Box<serde_json::value::RawValue>,
    }
    let payload = token.split('.').nth(1).expect("a JWS payload");
    let bytes = B64.decode(payload).expect("base64url payload");
    let p: Payload = serde_json::from_slice(&bytes).expect("a payload with `session`");
    p.session.get().to_string()
}

/// The whoami body the emulator sends for this session (asked directly, not via the proxy).
async fn whoami_body(ory: &Emulator, s: &TestSession) -> String {
    let url = format!("{}/sessions/whoami", ory.url());
    let res = get_with(&url, &[("x-session-token", &s.token)]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    String::from_utf8(res.body).unwrap()
}

/// Waits until the proxy's log has `n` lines containing `needle`; returns the whole log.
async fn wait_log(proxy: &Proxy, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let logs = proxy.logs();
        if logs.lines().filter(|l| l.contains(needle)).count() >= n {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} log lines with {needle:?}:\n{logs}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A JWT signed by a key the proxy never saw, claiming the proxy's `kid`, issuer and a subject.
fn forged_jwt(kid: &str, issuer: &str) -> String {
    let key = ory_proxy::keys::jwk::EcKey::generate();
    let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
    h.kid = Some(kid.to_string());
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": issuer, "sub": "attacker", "iat": now, "nbf": now, "exp": now + 600,
        "session": {"active": true, "identity": {"id": "attacker"}},
    });
    jsonwebtoken::encode(&h, &claims, &key.encoding_key().unwrap()).unwrap()
}

// ---- the token and the JWKS ----

#[actix_web::test]
async fn token_verifies_with_only_the_served_jwks_and_carries_the_session() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("alice@example.org");

    let set = jwks(&proxy).await;
    // The JWKS shape, and public parts only.
    let raw = get(&proxy.url("/.ory/jwks.json")).await.body;
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{v}");
    for k in keys {
        assert_eq!(k["kty"], "EC", "{k}");
        assert_eq!(k["crv"], "P-256", "{k}");
        assert_eq!(k["alg"], "ES256", "{k}");
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["x"].is_string() && k["y"].is_string(), "{k}");
        assert!(k.get("d").is_none(), "private key material served: {k}");
    }
    // The legacy path serves the same set.
    let legacy = get(&proxy.url("/.ory/proxy/jwks.json")).await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.body, raw);

    let token = jwt_for_cookie(&proxy, &s.cookie).await;
    // Header exactly {"alg":"ES256","kid":..,"typ":"JWT"}.
    let header: Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    let header_keys: Vec<&String> = header.as_object().unwrap().keys().collect();
    assert_eq!(header_keys, ["alg", "kid", "typ"], "{header}");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(kids(&set), [kid_of(&token)]);

    let claims = verify(&token, &set, ory.url()).expect("the token verifies with the JWKS");
    assert_eq!(claims["iss"], ory.url());
    assert_eq!(claims["sub"], s.identity_id.as_str());
    let (iat, nbf, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(nbf, iat);
    assert_eq!(exp, iat + 60, "default ttl 1m");
    assert!(iat.abs_diff(unix_now()) <= 5, "iat {iat}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims.get("aud").is_none(), "no audience configured");
    // `session` is the whoami JSON exactly as Ory sent it, byte for byte.
    assert_eq!(raw_session_claim(&token), whoami_body(&ory, &s).await);
    assert_eq!(claims["session"]["identity"]["id"], s.identity_id.as_str());

    // A second session gets its own token with its own jti and subject.
    let other = ory.create_session("bob@example.org");
    let token2 = jwt_for_cookie(&proxy, &other.cookie).await;
    let claims2 = verify(&token2, &set, ory.url()).unwrap();
    assert_eq!(claims2["sub"], other.identity_id.as_str());
    assert_ne!(claims2["jti"], claims["jti"]);

    // A token altered in any byte of its payload no longer verifies.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut payload: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = "someone-else".into();
    parts[1] = B64.encode(serde_json::to_vec(&payload).unwrap());
    assert!(verify(&parts.join("."), &set, ory.url()).is_err());
}

#[actix_web::test]
async fn jwt_settings_shape_the_claims() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .toml(
            "[jwt]\nttl = \"30s\"\nissuer = \"https://auth.example.org\"\n\
             audience = [\"app-a\", \"app-b\"]\n",
        )
        .start();
    let s = ory.create_session("carol@example.org");
    let token = jwt_for_cookie(&proxy, &s.cookie).await;
    let set = jwks(&proxy).await;
    assert!(
        verify(&token, &set, ory.url()).is_err(),
        "the configured issuer replaces the Ory URL"
    );
    assert!(
        verify_for(&token, &set, "https://auth.example.org", &["app-c"]).is_err(),
        "another app's audience"
    );
    let claims = verify_for(&token, &set, "https://auth.example.org", &["app-b"])
        .expect("verifies with the configured issuer and audience");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        30
    );
    assert_eq!(claims["aud"], serde_json::json!(["app-a", "app-b"]));
    assert_eq!(claims["sub"], s.identity_id.as_str());
}

// ---- which credentials count, and what the app receives ----

#[actix_web::test]
async fn session_token_header_and_bearer_session_token_are_credentials() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let s = ory.create_session("dave@example.org");

    let by_token = echo_via(&proxy, "/echo", &[("x-session-token", &s.token)]).await;
    let jwt = jwt_of(&by_token).expect("X-Session-Token is a credential");
    let claims = verify(&jwt, &set, ory.url()).unwrap();
    assert_eq!(claims["sub"], s.identity_id.as_str());

    let bearer = format!("Bearer {}", s.token);
    let by_bearer = echo_via(&proxy, "/echo", &[("authorization", &bearer)]).await;
    let jwt = jwt_of(&by_bearer).expect("a bearer session token is a credential");
    assert_ne!(
        by_bearer.one("authorization"),
        Some(bearer.as_str()),
        "the Ory session token must be replaced by the proxy's JWT"
    );
    let claims = verify(&jwt, &set, ory.url()).unwrap();
    assert_eq!(claims["sub"], s.identity_id.as_str());
    assert_eq!(ory.whoami_calls(), 2, "one lookup per distinct credential");
}

#[actix_web::test]
async fn no_credentials_means_no_lookup() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("erin@example.org");
    let csrf = format!("{}=abc; theme=dark", ory.csrf_cookie_name());
    for headers in [
        vec![],
        vec![("cookie", csrf.as_str())],
        vec![("cookie", "ory_kratos_session_not=1; ory_sessionx=2")],
        vec![("x-session", "nope")],
    ] {
        let e = echo_via(&proxy, "/echo", &headers).await;
        assert_anonymous(&e, &format!("{headers:?}"));
    }
    // Ory-bound requests are never looked up, even with a valid session cookie.
    let res = get_with(&proxy.url("/.ory/health/alive"), &[("cookie", &s.cookie)]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    // The JWKS route is the proxy's own.
    jwks(&proxy).await;
    assert_eq!(ory.whoami_calls(), 0);
}

#[actix_web::test]
async fn ory_bound_requests_keep_the_clients_authorization() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("frank@example.org");
    let bearer = format!("Bearer {}", s.token);
    let res = get_with(
        &proxy.url("/.ory/sessions/whoami"),
        &[("authorization", &bearer)],
    )
    .await;
    let body = decoded(&res.headers, res.body);
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["identity"]["id"], s.identity_id.as_str());
    let seen: Vec<_> = ory
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.starts_with("/sessions/whoami"))
        .collect();
    assert_eq!(seen.len(), 1, "only the client's own call: {seen:?}");
    assert_eq!(seen[0].header("authorization"), Some(bearer.as_str()));
    assert_eq!(ory.whoami_calls(), 1);
}

#[actix_web::test]
async fn a_forged_authorization_never_reaches_the_app() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let forged = format!("Bearer {}", forged_jwt(&kids(&set)[0], ory.url()));
    assert!(verify(&forged[7..], &set, ory.url()).is_err());

    // No session at all.
    let e = echo_via(&proxy, "/echo", &[("authorization", &forged)]).await;
    assert_anonymous(&e, "forged Authorization alone");
    let e = echo_via(
        &proxy,
        "/echo",
        &[("authorization", "Basic YWRtaW46YWRtaW4=")],
    )
    .await;
    assert_anonymous(&e, "Basic credentials without a session");
    // An invalid session cookie.
    let e = echo_via(
        &proxy,
        "/echo",
        &[
            ("cookie", "ory_kratos_session=not-a-session"),
            ("authorization", &forged),
        ],
    )
    .await;
    assert_anonymous(&e, "invalid cookie");
    // A revoked session.
    let s = ory.create_session("grace@example.org");
    ory.expire_session(&s.token);
    let e = echo_via(
        &proxy,
        "/echo",
        &[("cookie", &s.cookie), ("authorization", &forged)],
    )
    .await;
    assert_anonymous(&e, "revoked session");
    // A real session next to the forged header: the app gets the proxy's token, once.
    let s = ory.create_session("heidi@example.org");
    let e = echo_via(
        &proxy,
        "/echo",
        &[("x-session-token", &s.token), ("authorization", &forged)],
    )
    .await;
    let jwt = jwt_of(&e).expect("an active session");
    assert_ne!(format!("Bearer {jwt}"), forged);
    let claims = verify(&jwt, &set, ory.url()).unwrap();
    assert_eq!(claims["sub"], s.identity_id.as_str());

    // Ory down.
    let down = Proxy::to(&app.url()).ory(NO_ORY).start();
    let e = echo_via(
        &down,
        "/echo",
        &[("cookie", &s.cookie), ("authorization", &forged)],
    )
    .await;
    assert_anonymous(&e, "Ory unreachable");
    let e = echo_via(&down, "/echo", &[("authorization", &forged)]).await;
    assert_anonymous(&e, "Ory unreachable, forged header alone");
}

#[actix_web::test]
async fn ory_5xx_is_anonymous_and_warned_once_per_outage() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let forged = format!("Bearer {}", forged_jwt(&kids(&set)[0], ory.url()));
    const WARNING: &str = "cannot check sessions with Ory";
    const N: usize = 8;
    // A session the cache knows from before the outage: its hits are not Ory answering.
    let cached = ory.create_session("ivan@example.org");
    jwt_for_cookie(&proxy, &cached.cookie).await;
    let s = ory.create_session("judy@example.org");

    ory.set_whoami_failure(Some(503));
    for _ in 0..N {
        let e = echo_via(
            &proxy,
            "/outage-1",
            &[("cookie", &s.cookie), ("authorization", &forged)],
        )
        .await;
        assert_anonymous(&e, "Ory answers 503");
        // Cached sessions go on being recognised during the outage.
        jwt_for_cookie(&proxy, &cached.cookie).await;
    }
    assert!(ory.whoami_calls() >= 2);
    // Every access line is in the log, so every warning written before them is too.
    let logs = wait_log(&proxy, "GET /outage-1 200", N).await;
    assert_eq!(
        logs.lines().filter(|l| l.contains(WARNING)).count(),
        1,
        "one warning per outage, not per request:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains(WARNING) && l.contains("WARN")),
        "{logs}"
    );

    // Ory is back: sessions are recognised again (a failure was not cached) as soon as the
    // next probe reaches Ory — while Ory fails, misses probe it once a second.
    ory.set_whoami_failure(None);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let jwt = loop {
        let e = echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await;
        if let Some(jwt) = jwt_of(&e) {
            break jwt;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions not recognised after Ory came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    verify(&jwt, &set, ory.url()).unwrap();

    // A second outage is a second warning. (New credentials: the first ones are cached now.)
    let s2 = ory.create_session("kate@example.org");
    ory.set_whoami_failure(Some(500));
    for _ in 0..N {
        let e = echo_via(&proxy, "/outage-2", &[("cookie", &s2.cookie)]).await;
        assert_anonymous(&e, "Ory answers 500");
    }
    let logs = wait_log(&proxy, "GET /outage-2 200", N).await;
    assert_eq!(
        logs.lines().filter(|l| l.contains(WARNING)).count(),
        2,
        "{logs}"
    );
}

/// A hung Ory costs a few whoami timeouts, not one per signed-in request: once whoami has failed
/// three times in a row over at least half a second, misses stop asking it and go on anonymous
/// at once, one probe at a time excepted; an answer closes the breaker again.
#[actix_web::test]
async fn a_hung_ory_is_probed_not_waited_for_by_every_request() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let first: Vec<_> = (0..3)
        .map(|i| ory.create_session(&format!("hung-{i}@example.org")))
        .collect();
    let b = ory.create_session("hung-b@example.org");
    ory.set_whoami_delay(Duration::from_secs(30));

    // Three misses, 300 ms apart: each waits for the whoami timeout and goes on anonymous; their
    // failures span 600 ms, so the proxy asks Ory itself with a whoami without credentials,
    // which hangs too (a real outage): the breaker opens.
    let misses = first.iter().enumerate().map(|(i, s)| {
        let proxy = &proxy;
        async move {
            tokio::time::sleep(Duration::from_millis(300) * i as u32).await;
            echo_via(proxy, "/echo", &[("cookie", &s.cookie)]).await
        }
    });
    for e in futures_util::future::join_all(misses).await {
        assert_anonymous(&e, "Ory hangs");
    }
    wait_log(&proxy, "Ory failed 3 times in a row", 1).await;
    let calls = ory.whoami_calls();
    // Right after, other sessions' misses do not ask the hung Ory, nor wait; the proxy's own
    // probe (at most one a second, one at a time) is the only whoami sent.
    let asked = Instant::now();
    for _ in 0..5 {
        let e = echo_via(&proxy, "/echo", &[("cookie", &b.cookie)]).await;
        assert_anonymous(&e, "Ory hangs");
    }
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        ory.whoami_calls() <= calls + 1,
        "misses asked the hung Ory while the breaker was open: {} calls after {calls}",
        ory.whoami_calls()
    );

    // Ory answers again: the next probe finds it, closes the breaker, and sessions are
    // recognised.
    ory.set_whoami_delay(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = echo_via(&proxy, "/echo", &[("cookie", &b.cookie)]).await;
        if jwt_of(&e).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions not recognised after Ory recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_log(&proxy, "Ory answers whoami again", 1).await;
}

// ---- the cache ----

#[actix_web::test]
async fn fifty_sequential_requests_of_one_session_make_at_most_two_lookups() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let s = ory.create_session("ken@example.org");
    let mut tokens = std::collections::BTreeSet::new();
    for i in 0..50 {
        let e = echo_via(&proxy, &format!("/seq/{i}"), &[("cookie", &s.cookie)]).await;
        let jwt = jwt_of(&e).expect("a JWT on every request");
        tokens.insert(jwt);
    }
    assert!(ory.whoami_calls() <= 2, "{} calls", ory.whoami_calls());
    assert!(ory.whoami_calls() >= 1);
    // A token is reused while half its lifetime remains.
    assert!(tokens.len() <= 2, "{} distinct tokens", tokens.len());
    for t in &tokens {
        let c = verify(t, &set, ory.url()).unwrap();
        assert_eq!(c["sub"], s.identity_id.as_str());
    }
}

#[actix_web::test]
async fn fifty_concurrent_first_requests_of_a_new_session_make_one_lookup() {
    let ory = emulator(EmulatorConfig {
        whoami_delay: Duration::from_millis(300),
        ..EmulatorConfig::default()
    });
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let s = ory.create_session("leo@example.org");
    let c = client();
    let requests = (0..50).map(|i| {
        let req = c
            .get(proxy.url(&format!("/concurrent/{i}")))
            .insert_header(("cookie", s.cookie.as_str()));
        get_echo(req)
    });
    let echoes = futures_util::future::join_all(requests).await;
    assert_eq!(echoes.len(), 50);
    for e in &echoes {
        let jwt = jwt_of(e).expect("a JWT on every request");
        let claims = verify(&jwt, &set, ory.url()).unwrap();
        assert_eq!(claims["sub"], s.identity_id.as_str());
    }
    assert_eq!(ory.whoami_calls(), 1, "single-flight");
}

/// A browser logout through the proxy: the logout URL from Ory's browser flow, then the
/// logout itself, which deletes the session cookie.
async fn logout_through(proxy: &Proxy, cookie: &str) {
    let res = get_with(
        &proxy.url("/.ory/self-service/logout/browser"),
        &[("cookie", cookie), ("accept", "application/json")],
    )
    .await;
    let body = decoded(&res.headers, res.body);
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let logout_url = url::Url::parse(v["logout_url"].as_str().unwrap()).unwrap();
    assert!(
        logout_url.path().starts_with("/.ory/self-service/logout"),
        "{logout_url}"
    );
    let pq = format!("{}?{}", logout_url.path(), logout_url.query().unwrap_or(""));
    let res = get_with(&proxy.url(&pq), &[("cookie", cookie)]).await;
    assert_eq!(res.status, 303);
    assert!(
        res.all("set-cookie")
            .iter()
            .any(|c| c.starts_with("ory_kratos_session=;")),
        "{:?}",
        res.headers
    );
}

#[actix_web::test]
async fn logout_through_the_proxy_makes_the_next_request_anonymous() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("mallory@example.org");
    jwt_for_cookie(&proxy, &s.cookie).await;
    jwt_for_cookie(&proxy, &s.cookie).await;
    assert_eq!(ory.whoami_calls(), 1, "cached");

    logout_through(&proxy, &s.cookie).await;

    // The browser may still send the old cookie: the cached session must be gone at once
    // (cache_ttl is 10 s, far longer than this test).
    let e = echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await;
    assert_anonymous(&e, "after logout");
    assert_eq!(
        ory.whoami_calls(),
        2,
        "the logout evicted the cached session"
    );
}

/// `DELETE /.ory/self-service/logout/api` with `{"session_token": ...}` through the proxy.
async fn api_logout(proxy: &Proxy, token: &str) -> u16 {
    let res = client()
        .delete(proxy.url("/.ory/self-service/logout/api"))
        .insert_header(("content-type", "application/json"))
        .send_body(serde_json::json!({ "session_token": token }).to_string())
        .await
        .unwrap();
    res.status().as_u16()
}

/// A native app logs out with `DELETE /self-service/logout/api`, naming its session token in the
/// body rather than a header: the token's cached session goes at once, whether the token was
/// sent as `X-Session-Token` or as a bearer token, and only when Ory confirms.
#[actix_web::test]
async fn api_logout_through_the_proxy_drops_the_token_at_once() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("nia@example.org");
    let bearer = format!("Bearer {}", s.token);
    let by_token = [("x-session-token", s.token.as_str())];
    let by_bearer = [("authorization", bearer.as_str())];
    for _ in 0..2 {
        assert!(jwt_of(&echo_via(&proxy, "/echo", &by_token).await).is_some());
        assert!(jwt_of(&echo_via(&proxy, "/echo", &by_bearer).await).is_some());
    }
    assert_eq!(ory.whoami_calls(), 2, "cached");

    // Refused by Ory: nothing is dropped.
    assert_eq!(api_logout(&proxy, "ory_st_not_a_session").await, 403);
    assert!(jwt_of(&echo_via(&proxy, "/echo", &by_token).await).is_some());
    assert_eq!(ory.whoami_calls(), 2, "still cached");

    assert_eq!(api_logout(&proxy, &s.token).await, 204);
    // cache_ttl is 10 s: only the eviction explains the new lookups.
    assert_anonymous(
        &echo_via(&proxy, "/echo", &by_token).await,
        "X-Session-Token after the API logout",
    );
    assert_anonymous(
        &echo_via(&proxy, "/echo", &by_bearer).await,
        "bearer token after the API logout",
    );
    assert_eq!(ory.whoami_calls(), 4);
}

/// Ory looked the session up before the logout, but its answer arrives after the logout evicted
/// the entry: that answer must not put the session back in the cache for `cache_ttl`.
#[actix_web::test]
async fn a_lookup_under_way_during_logout_does_not_bring_the_session_back() {
    let ory = emulator(EmulatorConfig {
        whoami_delay: Duration::from_millis(800),
        ..EmulatorConfig::default()
    });
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("trudy@example.org");

    let c = client();
    let under_way = actix_web::rt::spawn(get_echo(
        c.get(proxy.url("/during-logout"))
            .insert_header(("cookie", s.cookie.as_str())),
    ));
    let deadline = Instant::now() + POLL_DEADLINE;
    while ory.whoami_calls() == 0 {
        assert!(Instant::now() < deadline, "the proxy never asked whoami");
        actix_web::rt::time::sleep(POLL_EVERY).await;
    }
    // Ory has decided "active"; its answer is 800 ms away.
    logout_through(&proxy, &s.cookie).await;
    assert!(
        !under_way.is_finished(),
        "the logout must land while the answer is on its way"
    );
    assert_eq!(ory.whoami_calls(), 1);
    under_way.await.unwrap();

    // cache_ttl is 10 s: without the fix the old session would be served from the cache here.
    ory.set_whoami_delay(Duration::ZERO);
    let e = echo_via(&proxy, "/after-logout", &[("cookie", &s.cookie)]).await;
    assert_anonymous(&e, "after logout, with a lookup under way during it");
}

#[actix_web::test]
async fn a_session_expiring_in_2s_bounds_the_token_and_then_goes_anonymous() {
    let ory = emulator(EmulatorConfig {
        session_lifespan: Duration::from_secs(2),
        ..EmulatorConfig::default()
    });
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let set = jwks(&proxy).await;
    let s = ory.create_session("nina@example.org");
    let expires_at = humantime::parse_rfc3339_weak(&s.expires_at).unwrap();

    let token = jwt_for_cookie(&proxy, &s.cookie).await;
    let claims = verify(&token, &set, ory.url()).unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        exp <= unix(expires_at),
        "exp {exp} is past the session's expiry {}",
        s.expires_at
    );
    assert!(exp < claims["iat"].as_u64().unwrap() + 60);

    // Wait out the expiry (a polled deadline, not a guess).
    let deadline = Instant::now() + POLL_DEADLINE;
    while SystemTime::now() <= expires_at || unix_now() <= exp {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(POLL_EVERY).await;
    }
    let e = echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await;
    assert_anonymous(&e, "after the session expired");
    assert!(
        verify(&token, &set, ory.url()).is_err_and(|e| e.contains("ExpiredSignature")),
        "the token expired with the session"
    );
}

// ---- keys ----

#[actix_web::test]
async fn keys_file_keeps_the_kid_across_restarts_and_is_shared() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwt-keys.json");
    let toml = format!("[jwt]\nkeys_file = '{}'\n", path.display());
    let s = ory.create_session("oscar@example.org");

    let first = Proxy::to(&app.url()).ory(ory.url()).toml(&toml).start();
    let kid = kids(&jwks(&first).await);
    assert_eq!(kid.len(), 1);
    let token_first = jwt_for_cookie(&first, &s.cookie).await;
    assert_eq!(kid_of(&token_first), kid[0]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the keys file holds a private key");
    }
    drop(first);

    // Restart: same key.
    let a = Proxy::to(&app.url()).ory(ory.url()).toml(&toml).start();
    let set_a = jwks(&a).await;
    assert_eq!(kids(&set_a), kid, "the kid survives a restart");
    verify(&token_first, &set_a, ory.url()).expect("a token from before the restart verifies");

    // A second instance on the same file: each accepts the other's tokens.
    let b = Proxy::to(&app.url()).ory(ory.url()).toml(&toml).start();
    let set_b = jwks(&b).await;
    assert_eq!(kids(&set_b), kid);
    let s2 = ory.create_session("peggy@example.org");
    let token_a = jwt_for_cookie(&a, &s2.cookie).await;
    let token_b = jwt_for_cookie(&b, &s2.cookie).await;
    verify(&token_a, &set_b, ory.url()).expect("B accepts A's token");
    verify(&token_b, &set_a, ory.url()).expect("A accepts B's token");

    // Without a keys file every start is a new key.
    let c = Proxy::to(&app.url()).ory(ory.url()).start();
    assert_ne!(kids(&jwks(&c).await), kid);
}

/// SIGUSR1: the new key is published ahead of signing (min(ttl/2, 30 s) = 2 s here), new
/// tokens then carry it, and the old key stays in the JWKS until every token it signed has
/// expired, then leaves.
#[actix_web::test]
async fn sigusr1_rotation_publishes_ahead_and_keeps_the_old_key_until_its_tokens_expire() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .toml("[jwt]\nttl = \"4s\"\n")
        .start();
    let iss = ory.url().to_string();
    let before = jwks(&proxy).await;
    let old_kid = kids(&before)[0].clone();
    let first = fresh_jwt(&proxy, &ory).await;
    assert_eq!(kid_of(&first), old_kid);

    proxy.signal("USR1");
    let deadline = Instant::now() + POLL_DEADLINE;
    let (t_published, published) = loop {
        let set = jwks(&proxy).await;
        if set.keys.len() == 2 {
            break (Instant::now(), set);
        }
        assert_eq!(kids(&set), std::slice::from_ref(&old_kid));
        assert!(Instant::now() < deadline, "the new key was never published");
        tokio::time::sleep(POLL_EVERY).await;
    };
    let new_kid = kids(&published)
        .into_iter()
        .find(|k| *k != old_kid)
        .expect("a new kid");
    assert!(kids(&published).contains(&old_kid));

    // Fresh tokens until one carries the new kid; remember the last one the old key signed.
    let mut last_old = first.clone();
    let (t_signing, new_token) = loop {
        let t = fresh_jwt(&proxy, &ory).await;
        if kid_of(&t) == new_kid {
            break (Instant::now(), t);
        }
        assert_eq!(kid_of(&t), old_kid, "a kid from nowhere");
        last_old = t;
        assert!(Instant::now() < deadline, "never signed with the new key");
        tokio::time::sleep(POLL_EVERY).await;
    };
    let ahead = t_signing - t_published;
    assert!(
        ahead >= Duration::from_secs(1),
        "the new key signed {ahead:?} after it was published: verifiers that cached the \
         JWKS just before cannot know it (expected ~2 s publish-ahead for ttl 4s)"
    );
    // A verifier holding the JWKS from the moment of publication verifies the new tokens.
    verify(&new_token, &published, &iss).expect("new token vs the JWKS fetched at publication");

    // The old key's tokens verify against every JWKS served until they expire; then the old
    // kid leaves.
    let last_old_exp = verify(&last_old, &before, &iss).expect("the last old-key token")["exp"]
        .as_u64()
        .unwrap();
    let first_exp = verify(&first, &before, &iss).unwrap()["exp"]
        .as_u64()
        .unwrap();
    let old_exp = last_old_exp.max(first_exp);
    let mut verified_after_rotation = 0;
    loop {
        let now = unix_now();
        let set = jwks(&proxy).await;
        if !kids(&set).contains(&old_kid) {
            assert!(
                now >= old_exp,
                "the old key left at {now}, before its last token expired at {old_exp}"
            );
            break;
        }
        assert!(kids(&set).contains(&new_kid));
        if unix_now() < last_old_exp {
            verify(&last_old, &set, &iss).expect("an old token after the rotation");
            verified_after_rotation += 1;
        }
        assert!(Instant::now() < deadline, "the old key never left the JWKS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        verified_after_rotation > 0,
        "never checked an unexpired old token after the rotation"
    );
    let after = jwks(&proxy).await;
    assert_eq!(kids(&after), std::slice::from_ref(&new_kid));
    assert!(verify(&last_old, &after, &iss).is_err());
    verify(&fresh_jwt(&proxy, &ory).await, &after, &iss).unwrap();
}

/// The SIGUSR1 handler exists once the banner is out: a signal sent at once must rotate, not
/// meet the default action (terminate).
#[actix_web::test]
async fn sigusr1_right_after_the_banner_rotates_and_does_not_kill() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url())
        .ory(NO_ORY)
        .toml("[jwt]\nttl = \"2s\"\n")
        .start();
    proxy.signal("USR1");
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        assert!(
            proxy.is_running(),
            "SIGUSR1 killed the proxy:\n{}",
            proxy.logs()
        );
        if jwks(&proxy).await.keys.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation:\n{}", proxy.logs());
        tokio::time::sleep(POLL_EVERY).await;
    }
    wait_log(&proxy, "rotated the JWT signing key", 1).await;
    assert!(proxy.is_running());
}

/// An operator's `kill -USR1` (rotate the keys) must not take down a `--no-jwt` proxy, which
/// has no keys: the signal's default action would kill the process (exit 138).
#[actix_web::test]
async fn sigusr1_does_not_kill_a_no_jwt_proxy() {
    let app = FakeApp::start();
    let mut proxy = Proxy::to(&app.url()).ory(NO_ORY).flag("--no-jwt").start();
    echo_via(&proxy, "/before", &[]).await;
    proxy.signal("USR1");
    // The next request is served only if the process is still there.
    echo_via(&proxy, "/after", &[]).await;
    assert!(proxy.is_running(), "{}", proxy.logs());
}

#[actix_web::test]
async fn no_jwt_means_no_lookup_no_authorization_and_no_jwks() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .flag("--no-jwt")
        .start();
    let s = ory.create_session("quinn@example.org");
    for headers in [
        vec![("cookie", s.cookie.as_str())],
        vec![("x-session-token", s.token.as_str())],
    ] {
        let e = echo_via(&proxy, "/echo", &headers).await;
        assert_anonymous(&e, "--no-jwt");
    }
    // The proxy adds nothing and, like the Go proxy with --no-jwt, leaves a client's own
    // Authorization alone: with --no-jwt the proxy vouches for nothing.
    let e = echo_via(&proxy, "/echo", &[("authorization", "Bearer client-value")]).await;
    assert_eq!(e.all("authorization"), ["Bearer client-value"]);
    for path in ["/.ory/jwks.json", "/.ory/proxy/jwks.json"] {
        let res = get(&proxy.url(path)).await;
        assert_eq!(res.status, 404, "{path}: {}", res.text());
        // The proxy's own answers share one shape, and none of them is cached: a restart
        // without --no-jwt serves the JWKS at once.
        common::assert_error_json(&res.body, 404, "Not Found");
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    }
    assert_eq!(ory.whoami_calls(), 0);
    assert!(
        ory.requests()
            .iter()
            .all(|r| !r.path_and_query.contains("jwks")),
        "the JWKS paths are not proxied to Ory"
    );
}

#[actix_web::test]
async fn an_ory_network_session_cookie_and_configured_cookie_names_get_a_jwt() {
    let app = FakeApp::start();
    // Ory Network names the cookie after the project: `ory_session_<slug>`, matched by the
    // default `ory_session_*` entry.
    let network = emulator(EmulatorConfig {
        session_cookie_name: "ory_session_playfulsnyder".to_owned(),
        ..EmulatorConfig::default()
    });
    let proxy = Proxy::to(&app.url()).ory(network.url()).start();
    let s = network.create_session("network@example.org");
    assert!(
        s.cookie.starts_with("ory_session_playfulsnyder="),
        "{}",
        s.cookie
    );
    let set = jwks(&proxy).await;
    let jwt = jwt_for_cookie(&proxy, &s.cookie).await;
    let claims = verify(&jwt, &set, network.url()).unwrap();
    assert_eq!(claims["sub"], s.identity_id.as_str());

    // A deployment with its own cookie name lists it; the defaults then no longer apply.
    let custom = emulator(EmulatorConfig {
        session_cookie_name: "app_sess".to_owned(),
        ..EmulatorConfig::default()
    });
    let proxy = Proxy::to(&app.url())
        .ory(custom.url())
        .toml("[session]\ncookie_names = [\"app_sess\"]\n")
        .start();
    let s = custom.create_session("custom@example.org");
    assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());
    let calls = custom.whoami_calls();
    let e = echo_via(
        &proxy,
        "/echo",
        &[("cookie", &format!("ory_kratos_session={}", s.token))],
    )
    .await;
    assert_anonymous(&e, "a cookie name that is not configured");
    assert_eq!(
        custom.whoami_calls(),
        calls,
        "an unlisted cookie was looked up"
    );
}

#[actix_web::test]
async fn a_session_revoked_in_ory_stops_getting_jwts_within_cache_ttl() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .toml("[session]\ncache_ttl = \"1s\"\n")
        .start();
    let s = ory.create_session("revoked-elsewhere@example.org");
    assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());
    // Revoked in Ory directly (another device, the admin API): the proxy cannot know until its
    // cached answer expires.
    ory.expire_session(&s.token);
    let revoked_at = Instant::now();
    let mut last = None;
    while revoked_at.elapsed() < POLL_DEADLINE {
        let e = echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await;
        last = jwt_of(&e);
        if last.is_none() {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert!(
        last.is_none(),
        "still a JWT {:?} after revocation",
        revoked_at.elapsed()
    );
    // 1 s of cache_ttl, plus room for a slow machine; below the 10 s default.
    assert!(
        revoked_at.elapsed() < Duration::from_secs(8),
        "took {:?}",
        revoked_at.elapsed()
    );
}

#[actix_web::test]
async fn cache_ttl_zero_looks_every_request_up() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .toml("[session]\ncache_ttl = \"0s\"\n")
        .start();
    let s = ory.create_session("no-cache@example.org");
    let before = ory.whoami_calls();
    for _ in 0..3 {
        assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());
    }
    assert_eq!(ory.whoami_calls() - before, 3);
}

/// The claims of `token`, unverified (the reload test checks what changed, `verify` the rest).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS payload");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

#[actix_web::test]
async fn jwt_issuer_audience_and_ttl_follow_a_proxy_toml_edit_without_a_restart() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let file = |issuer: &str, audience: &str, ttl: &str| {
        format!(
            "application_url = \"{}\"\nsdk_url = \"{}\"\n\n[jwt]\nissuer = \"{issuer}\"\naudience = [\"{audience}\"]\nttl = \"{ttl}\"\n",
            app.url(),
            ory.url()
        )
    };
    std::fs::write(&path, file("https://one.example", "app-one", "1m")).unwrap();
    let proxy = Proxy::with_config(&path).start();
    let pid = proxy.pid();
    let s = ory.create_session("reload@example.org");
    let before = claims_of(&jwt_for_cookie(&proxy, &s.cookie).await);
    assert_eq!(before["iss"], "https://one.example", "{before}");
    assert_eq!(before["aud"], "app-one", "{before}");
    assert_eq!(
        before["exp"].as_u64().unwrap() - before["iat"].as_u64().unwrap(),
        60
    );

    std::fs::write(&path, file("https://two.example", "app-two", "30s")).unwrap();
    let deadline = Instant::now() + POLL_DEADLINE;
    let after = loop {
        let c = claims_of(&jwt_for_cookie(&proxy, &s.cookie).await);
        if c["iss"] == "https://two.example" || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    // The cached token of the old settings is not reused: every claim is the new file's.
    assert_eq!(after["iss"], "https://two.example", "{after}");
    assert_eq!(after["aud"], "app-two", "{after}");
    assert_eq!(
        after["exp"].as_u64().unwrap() - after["iat"].as_u64().unwrap(),
        30
    );
    assert_eq!(after["sub"], s.identity_id.as_str());
    assert_eq!(proxy.pid(), pid);
}

#[actix_web::test]
async fn the_banner_names_what_a_user_needs_to_start() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    // Printed in one piece: once its last line is there, all of it is.
    proxy
        .wait_line(POLL_DEADLINE, |l| l.starts_with("  cors "))
        .unwrap_or_else(|| panic!("no banner:\n{}", proxy.logs()));
    let logs = proxy.logs();
    let line = |prefix: &str| {
        logs.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{logs}"))
            .to_string()
    };
    let publish = proxy.default_publish();
    assert!(
        logs.contains(&format!("open:\n\n\t{publish}")),
        "the URL to open: {logs}"
    );
    assert!(line("  application ").ends_with(&app.url()), "{logs}");
    assert!(line("  ory ").ends_with(ory.url()), "{logs}");
    let jwt = line("  jwt ");
    let kid = kids(&jwks(&proxy).await).remove(0);
    assert!(
        jwt.contains("on, ES256") && jwt.contains(&kid),
        "{jwt} vs kid {kid}"
    );
    assert!(jwt.contains(&format!("{publish}/.ory/jwks.json")), "{jwt}");
    assert!(line("  config ").contains("none"), "{logs}");
    // How to allow more CORS origins.
    assert!(line("  cors ").contains("--allowed-cors-origins"), "{logs}");
}

#[actix_web::test]
async fn the_access_line_names_method_path_status_duration_upstream_and_auth() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("logged@example.org");
    jwt_for_cookie(&proxy, &s.cookie).await;
    let _ = get(&proxy.url("/.ory/sessions/whoami?token=secret")).await;
    let _ = get(&proxy.url("/echo?q=1")).await;
    let wait = |pred: &dyn Fn(&str) -> bool| {
        proxy
            .wait_line(POLL_DEADLINE, pred)
            .unwrap_or_else(|| panic!("no such access line in:\n{}", proxy.logs()))
    };
    let signed_in = wait(&|l| l.contains("GET /echo 200") && l.contains("auth=jwt"));
    assert!(signed_in.contains("upstream=app"), "{signed_in}");
    let ms = signed_in
        .split_whitespace()
        .find_map(|w| w.strip_suffix("ms")?.parse::<f64>().ok());
    assert!(ms.is_some_and(|ms| ms >= 0.0), "no duration: {signed_in}");
    let ory_line = wait(&|l| l.contains("GET /.ory/sessions/whoami 401"));
    assert!(ory_line.contains("upstream=ory"), "{ory_line}");
    // The query is left out: it can carry flow ids and tokens.
    assert!(!proxy.logs().contains("secret"), "{}", proxy.logs());
    let anonymous = wait(&|l| l.contains("GET /echo 200") && l.contains("auth=none"));
    assert!(anonymous.contains("upstream=app"), "{anonymous}");
}

#[actix_web::test]
async fn ory_saying_401_or_403_is_an_answer_not_an_outage() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    for status in [401, 403] {
        ory.set_whoami_failure(Some(status));
        let s = ory.create_session(&format!("denied-{status}@example.org"));
        let e = echo_via(
            &proxy,
            &format!("/denied-{status}"),
            &[("cookie", &s.cookie)],
        )
        .await;
        assert_anonymous(&e, "whoami said no");
    }
    ory.set_whoami_failure(None);
    // Not degraded: the next session is looked up at once, no outage probe interval.
    let s = ory.create_session("after@example.org");
    assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());
    let logs = wait_log(&proxy, "GET /denied-403 200", 1).await;
    assert!(
        !logs.contains("cannot check sessions with Ory"),
        "a 401/403 was reported as an outage:\n{logs}"
    );
}

#[actix_web::test]
async fn a_lowered_cache_ttl_holds_for_sessions_already_cached() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let file = |ttl: &str| {
        format!(
            "application_url = \"{}\"\nsdk_url = \"{}\"\n\n[session]\ncache_ttl = \"{ttl}\"\n",
            app.url(),
            ory.url()
        )
    };
    std::fs::write(&path, file("10m")).unwrap();
    let proxy = Proxy::with_config(&path).start();
    let s = ory.create_session("cached-long@example.org");
    assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());
    ory.expire_session(&s.token);
    // Cached for 10 minutes: the revocation is not seen yet.
    assert!(jwt_of(&echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await).is_some());

    std::fs::write(&path, file("1s")).unwrap();
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let e = echo_via(&proxy, "/echo", &[("cookie", &s.cookie)]).await;
        if jwt_of(&e).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 10 min entry outlived a reload to 1 s:\n{}",
            proxy.logs()
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[actix_web::test]
async fn a_whoami_body_that_never_finishes_costs_a_request_the_timeout_only() {
    let ory = default_emulator();
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url()).ory(ory.url()).start();
    let s = ory.create_session("stalled@example.org");
    // Ory's head arrives at once, its body a byte a second for a minute.
    ory.set_whoami_trickle(true);
    let asked = Instant::now();
    let e = echo_via(&proxy, "/stalled", &[("cookie", &s.cookie)]).await;
    let took = asked.elapsed();
    assert_anonymous(&e, "whoami never finished");
    // The whole whoami, body included, is bounded by its 5 s timeout: not the minute the body
    // would take (a head-only timeout would have waited for all of it).
    assert!(took < Duration::from_secs(20), "took {took:?}");
    wait_log(&proxy, "cannot check sessions with Ory", 1).await;
}

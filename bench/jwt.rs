//! Micro-benchmarks of the session → JWT path (SPEC §6):
//!
//! - `authorize/cache_hit`: `SessionCache::authorize` for credentials already cached with a
//!   reusable token: what every authenticated request pays after the first.
//! - `mint`: signing one JWT (`sessions::mint::mint`), paid once per session and half-ttl.
//! - `credentials/extract`: picking the session credentials out of a browser-like request.
//!
//!     cargo bench --bench jwt -- --warm-up-time 1 --measurement-time 3
//!
//! awc is `!Send`, so the hot path runs inside one actix `System`; the emulator answers the
//! single whoami that fills the cache.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use clap::Parser as _;
use criterion::{criterion_group, criterion_main, Criterion};

use ory_proxy::cli::Cli;
use ory_proxy::config::{Live, LiveSettings, Loader};
use ory_proxy::emulator::{Emulator, EmulatorConfig};
use ory_proxy::keys::KeyHandle;
use ory_proxy::sessions::whoami::{self, Whoami};
use ory_proxy::sessions::{credentials, mint, Auth, SessionCache};

/// The live settings a default proxy in front of `ory` would run with, except that neither
/// the cache entry nor the token can go stale during a run.
fn live_for(ory: &str) -> Arc<Live> {
    let cli = Cli::try_parse_from(["ory-proxy", "--sdk-url", ory, "http://127.0.0.1:3000"])
        .expect("flags");
    let loader = Loader::new(cli, Arc::new(|_: &str| None));
    let mut live = (*loader.load().expect("settings").settings.live).clone();
    live.jwt.ttl = Duration::from_secs(3600);
    live.session.cache_ttl = Duration::from_secs(3600);
    Arc::new(live)
}

/// A browser request's headers: the session cookie among a CSRF and two app cookies.
fn browser_headers(session_cookie: &str, csrf_name: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let cookie = format!("theme=dark; {csrf_name}=Q2hhbmdlTWU; {session_cookie}; _ga=GA1.1.42");
    h.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
    h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
    h.insert(
        header::USER_AGENT,
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) bench"),
    );
    h.insert(
        HeaderName::from_static("accept-language"),
        HeaderValue::from_static("en-GB,en;q=0.9"),
    );
    h
}

fn bench(c: &mut Criterion) {
    let ory = Emulator::start(EmulatorConfig::default()).expect("emulator");
    ory.set_recording(false);
    let session = ory.create_session("bench@example.org");
    let headers = browser_headers(&session.cookie, ory.csrf_cookie_name());
    let live = live_for(ory.url());

    let system = actix_rt::System::new();
    let (cache, client, ring_source) = system.block_on(async {
        let keys = KeyHandle::start(None, || Duration::from_secs(3600)).expect("keys");
        let cache = SessionCache::start(
            LiveSettings::new(live.clone()),
            keys.clone(),
            ory.url(),
            Default::default(),
        );
        let client = awc::Client::default();
        // The one whoami; afterwards every call is a hit with a reusable token.
        for _ in 0..2 {
            let auth = cache.authorize(&headers, &live, &client).await;
            assert!(matches!(auth, Auth::Jwt(_)), "no JWT: {auth:?}");
        }
        (cache, client, keys)
    });
    assert_eq!(ory.whoami_calls(), 1);

    c.bench_function("authorize/cache_hit", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let auth = cache.authorize(black_box(&headers), &live, &client).await;
                    black_box(auth.header().map(HeaderValue::len));
                }
                start.elapsed()
            })
        })
    });
    assert_eq!(ory.whoami_calls(), 1, "the measured loop went to Ory");

    // One mint, on a session exactly as whoami described it.
    let active = system.block_on(async {
        let creds = credentials::extract(&headers, &live.session).expect("credentials");
        let url = format!("{}/sessions/whoami", ory.url());
        match whoami::call(&client, &url, &creds).await.expect("whoami") {
            Whoami::Active(s) => s,
            other => panic!("the session is not active: {other:?}"),
        }
    });
    let ring = ring_source.ring();
    c.bench_function("mint", |b| {
        b.iter(|| mint::mint(black_box(&active), &ring, &live).expect("mint"))
    });

    c.bench_function("credentials/extract", |b| {
        b.iter(|| credentials::extract(black_box(&headers), &live.session))
    });

    drop(ring);
    system.block_on(async move { drop((cache, client, ring_source)) });
}

criterion_group!(benches, bench);
criterion_main!(benches);

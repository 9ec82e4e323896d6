//! Metrics (README, "Metrics"), end to end: the real binary with
//! `--metrics-listen 127.0.0.1:0`, the Ory emulator and the fake app. Each test does known
//! things through the proxy, then scrapes the metrics listener as Prometheus would and checks
//! the counters say exactly that.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{get, get_with, raw_get, within, FakeApp, Proxy, NO_ORY};
use ory_emulator::{Emulator, EmulatorConfig};

/// Generous bound for anything the tests poll for.
const POLL_DEADLINE: Duration = Duration::from_secs(30);

/// The metrics listener's address, from the banner.
fn metrics_addr(proxy: &Proxy) -> SocketAddr {
    let line = proxy
        .wait_line(POLL_DEADLINE, |l| l.starts_with(BANNER_METRICS))
        .unwrap_or_else(|| panic!("no metrics line in the banner:\n{}", proxy.logs()));
    line[BANNER_METRICS.len()..]
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|_| panic!("not an address: {line:?}"))
}

const BANNER_METRICS: &str = "  metrics      http://";

/// One scrape: series (name with labels, as written) → value. Panics on a line that is not
/// a comment, a blank or `series value`, so a malformed exposition fails the test.
async fn scrape(proxy: &Proxy) -> HashMap<String, f64> {
    let answer = get(&format!("http://{}/metrics", metrics_addr(proxy))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let content_type = common::header_one(&answer.headers, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&answer.text())
}

fn parse(text: &str) -> HashMap<String, f64> {
    let mut series = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not `series value`: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        assert!(
            series.insert(name.to_string(), value).is_none(),
            "series twice: {name}"
        );
    }
    series
}

fn at(series: &HashMap<String, f64>, name: &str) -> f64 {
    *series
        .get(name)
        .unwrap_or_else(|| panic!("no series {name}; have {:?}", series.keys()))
}

#[actix_web::test]
async fn counts_requests_by_who_answered_and_sessions_by_outcome() {
    let ory = Emulator::start(EmulatorConfig::default()).expect("start the Ory emulator");
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .ory(ory.url())
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let session = ory.create_session("metrics@example.org");

    // A fresh proxy has counted nothing yet; scrapes are not requests through the proxy.
    let before = scrape(&proxy).await;
    assert_eq!(
        at(
            &before,
            r#"ory_proxy_requests_total{upstream="app",code="2xx"}"#
        ),
        0.0
    );

    // App: one anonymous request, two with the session (one whoami, one mint, one reuse).
    assert_eq!(get(&proxy.url("/echo")).await.status, 200);
    for _ in 0..2 {
        let a = get_with(&proxy.url("/echo"), &[("cookie", &session.cookie)]).await;
        assert_eq!(a.status, 200);
        assert!(
            a.text().contains("Bearer "),
            "no JWT reached the app: {}",
            a.text()
        );
    }
    // Ory: whoami without a session is Ory's 401.
    assert_eq!(get(&proxy.url("/.ory/sessions/whoami")).await.status, 401);
    // The proxy itself: the JWKS (also by a percent-encoded spelling actix routes alike), a
    // path it refuses to forward, and a CORS preflight (answered whatever its verdict).
    assert_eq!(get(&proxy.url("/.ory/jwks.json")).await.status, 200);
    assert_eq!(get(&proxy.url("/.ory/jwks%2Ejson")).await.status, 200);
    assert_eq!(get(&proxy.url("/.ory/a/%2e%2e/admin")).await.status, 400);
    // On the proxy's port, the metrics path is Ory's like any other `/.ory/` path.
    assert_eq!(get(&proxy.url("/.ory/proxy/metrics")).await.status, 404);
    let preflight = common::client()
        .request(awc::http::Method::OPTIONS, proxy.url("/echo"))
        .insert_header(("Origin", "https://elsewhere.example"))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .send()
        .await
        .expect("preflight");
    let preflight_class = format!("{}xx", preflight.status().as_u16() / 100);

    let m = scrape(&proxy).await;
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="app",code="2xx"}"#),
        3.0
    );
    // whoami's 401, and Ory's 404 for /proxy/metrics.
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="ory",code="4xx"}"#),
        2.0
    );
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="ory",code="2xx"}"#),
        0.0
    );
    // The proxy's own: two JWKS (2xx), the refused dot segment (4xx), and the preflight.
    let preflight_in = |class: &str| if preflight_class == class { 1.0 } else { 0.0 };
    assert_eq!(
        at(
            &m,
            r#"ory_proxy_requests_total{upstream="proxy",code="2xx"}"#
        ),
        2.0 + preflight_in("2xx")
    );
    assert_eq!(
        at(
            &m,
            r#"ory_proxy_requests_total{upstream="proxy",code="4xx"}"#
        ),
        1.0 + preflight_in("4xx")
    );
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="app",code="4xx"}"#),
        0.0
    );

    assert_eq!(at(&m, r#"ory_proxy_app_auth_total{auth="none"}"#), 1.0);
    assert_eq!(at(&m, r#"ory_proxy_app_auth_total{auth="jwt"}"#), 2.0);
    assert_eq!(at(&m, r#"ory_proxy_app_auth_total{auth="anonymous"}"#), 0.0);
    assert_eq!(at(&m, r#"ory_proxy_whoami_total{outcome="active"}"#), 1.0);
    assert_eq!(at(&m, r#"ory_proxy_whoami_total{outcome="error"}"#), 0.0);
    assert_eq!(at(&m, "ory_proxy_jwt_minted_total"), 1.0);

    // The histogram: one observation per app request, cumulative buckets ending at the count.
    let count = at(
        &m,
        r#"ory_proxy_response_head_seconds_count{upstream="app"}"#,
    );
    assert_eq!(count, 3.0);
    assert_eq!(
        at(
            &m,
            r#"ory_proxy_response_head_seconds_bucket{upstream="app",le="+Inf"}"#
        ),
        count
    );
    assert!(at(&m, r#"ory_proxy_response_head_seconds_sum{upstream="app"}"#) > 0.0);
    let started = at(&m, "ory_proxy_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && now - started < 600.0,
        "{started} vs {now}"
    );
}

#[actix_web::test]
async fn an_unreachable_app_and_an_unreachable_ory_are_counted_as_such() {
    // Nothing listens on port 1: the app's answer is the proxy's 502, and the session lookup
    // fails, so the request goes on anonymous with the outage counted.
    let proxy = Proxy::to(NO_ORY)
        .ory(NO_ORY)
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let a = get_with(&proxy.url("/"), &[("cookie", "ory_kratos_session=abc")]).await;
    assert_eq!(a.status, 502, "{}", a.text());
    let m = scrape(&proxy).await;
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="app",code="5xx"}"#),
        1.0
    );
    assert_eq!(at(&m, r#"ory_proxy_whoami_total{outcome="error"}"#), 1.0);
    assert_eq!(
        at(&m, r#"ory_proxy_app_auth_total{auth="ory-unavailable"}"#),
        1.0
    );
}

#[actix_web::test]
async fn the_metrics_listener_serves_metrics_only_and_is_off_by_default() {
    let app = FakeApp::start();
    let proxy = Proxy::to(&app.url())
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let addr = metrics_addr(&proxy);
    for path in ["/", "/echo", "/.ory/jwks.json", "/metrics/x"] {
        let a = get(&format!("http://{addr}{path}")).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text());
        common::assert_error_json(&a.body, 404, "Not Found");
    }
    let post = common::client()
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("POST /metrics");
    assert_eq!(post.status(), 404);
    // No CORS processing there: an Origin gets no Access-Control-* back.
    let cross = get_with(
        &format!("http://{addr}/metrics"),
        &[("Origin", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(cross.status, 200);
    assert!(
        !cross
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        cross.headers
    );
    assert!(
        app.seen().is_empty(),
        "the metrics listener proxied: {:?}",
        app.seen()
    );
    let m = scrape(&proxy).await;
    assert_eq!(
        at(&m, r#"ory_proxy_requests_total{upstream="app",code="4xx"}"#),
        0.0
    );

    // Without the flag: no metrics line in the banner (it is printed with the rest of the
    // banner, before the `cors` line).
    let plain = Proxy::to(&app.url()).start();
    assert!(
        plain
            .wait_line(POLL_DEADLINE, |l| l.starts_with("  cors "))
            .is_some(),
        "{}",
        plain.logs()
    );
    assert!(
        plain.lines(|l| l.starts_with(BANNER_METRICS)).is_empty(),
        "{}",
        plain.logs()
    );
}

#[test]
fn reloads_are_counted_by_outcome() {
    let app = FakeApp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let file = |origin: &str| {
        format!(
            "application_url = \"{}\"\nsdk_url = \"{NO_ORY}\"\n\n[cors]\nallowed_origins = [\"{origin}\"]\n",
            app.url()
        )
    };
    std::fs::write(&path, file("https://one.example")).unwrap();
    let proxy = Proxy::with_config(&path)
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let addr = metrics_addr(&proxy);
    let scrape = || {
        let r = raw_get(addr, "/metrics", &[]);
        assert_eq!(r.status, 200);
        parse(&String::from_utf8_lossy(&r.body))
    };
    let reloads = |m: &HashMap<String, f64>, result: &str| {
        at(
            m,
            &format!(r#"ory_proxy_config_reloads_total{{result="{result}"}}"#),
        )
    };
    // Start-up's reading is not a reload.
    let m = scrape();
    assert_eq!(
        (reloads(&m, "applied"), reloads(&m, "rejected")),
        (0.0, 0.0)
    );

    std::fs::write(&path, file("https://two.example")).unwrap();
    let mut last = HashMap::new();
    let applied = within(POLL_DEADLINE, || {
        last = scrape();
        reloads(&last, "applied") >= 1.0
    });
    assert!(applied.is_some(), "no applied reload counted: {last:?}");

    std::fs::write(&path, "application_url = 42\n").unwrap();
    let rejected = within(POLL_DEADLINE, || {
        last = scrape();
        reloads(&last, "rejected") >= 1.0
    });
    assert!(rejected.is_some(), "no rejected reload counted: {last:?}");
    assert_eq!(reloads(&last, "applied"), 1.0);
    // The proxy still serves, on the settings it had.
    assert_eq!(raw_get(proxy.addr(), "/echo", &[]).status, 200);
}

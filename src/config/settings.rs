//! Validation: turns the merged key tree into typed settings, split into the part fixed at
//! start ([`Fixed`]) and the part a reload may swap ([`Live`]). The top-level keys are checked
//! here; each section checks its own keys in its file under [`super::keys`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::check::{text, value, Check, Effective};
use super::cors_policy::CorsPolicy;
use super::error::ConfigError;
use super::keys::Tree;
use super::layers::Layered;

pub use super::keys::cookies::CookiesLive;
pub use super::keys::jwt::JwtLive;
pub use super::keys::limits::LimitsFixed;
pub use super::keys::redirects::RedirectsLive;
pub use super::keys::session::SessionLive;
pub use super::keys::tls::TlsFiles;
use crate::access::Policy;
use crate::header_names::HeaderList;

/// Where Ory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrySource {
    Project(String),
    SdkUrl,
}

/// How the watcher should notice file edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify/kqueue/… via notify.
    Auto,
    /// Periodic polling, for filesystems where events never arrive (NFS, some container mounts).
    Poll,
    /// No watching.
    Off,
}

/// Settings that need a restart to change.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    pub application_url: Url,
    /// `scheme://host[:port]` of the app, as it appears in absolute URLs.
    pub app_origin: String,
    pub publish_url: Url,
    /// `scheme://host[:port]` of the publish URL, no trailing slash.
    pub publish_origin: String,
    pub port: u16,
    pub ory_url: Url,
    /// The Ory URL as written in bodies/Location (`scheme://host[:port]` + base path).
    pub ory_base: String,
    pub ory_source: OrySource,
    pub dev: bool,
    pub no_jwt: bool,
    pub rewrite_host: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub ca_file: Option<PathBuf>,
    pub keys_file: Option<PathBuf>,
    /// The keys file is followed, never created or written.
    pub keys_file_read_only: bool,
    pub watch: WatchMode,
    /// Where `/metrics` is served, on a listener of its own; `None` = not served.
    pub metrics_listen: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// `[limits]`: the stalled-body timeout and the rewrite budget.
    pub limits: LimitsFixed,
    pub api_key: Option<String>,
    /// `[tls]`: the certificate and key files when the port serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// From SIGTERM until the listener closes: readiness answers 503, the rest as usual.
    pub shutdown_delay: Duration,
}

/// The longest `shutdown_delay`: a load balancer updates its endpoints in seconds, and an
/// orchestrator kills a pod that takes longer than its grace period anyway.
pub const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(300);

/// Settings the running proxy reads per request from one swappable snapshot, a field per
/// section of the key tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub cookies: CookiesLive,
    pub cors: CorsPolicy,
    pub redirects: RedirectsLive,
    pub jwt: JwtLive,
    pub session: SessionLive,
    pub log_level: log::LevelFilter,
    pub log_format: super::log_format::LogFormat,
    /// Client headers never sent to the app, in any spelling (`strip_request_headers`).
    pub strip_request_headers: HeaderList,
    /// `[access]`: the route protection rules, compiled.
    pub access: Arc<Policy>,
}

/// Validated settings, with the merged tree they came from (what a reload compares against).
#[derive(Debug, Clone)]
pub struct Settings {
    pub fixed: Arc<Fixed>,
    pub live: Arc<Live>,
    pub tree: Arc<Tree>,
}

pub fn origin_of_url(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// Validates `l.merged`. `bound_port` replaces the configured port in the default publish URL
/// once the listener is bound (it differs only for port 0). Also returns what `--check-config`
/// shows where it differs from the tree.
pub fn validate(
    l: &Layered,
    bound_port: Option<u16>,
) -> Result<(Settings, Effective), ConfigError> {
    let effective = RefCell::default();
    let origin = |key: &str| l.origin_of(key);
    let c = Check::new(&origin, &effective);
    let fixed = validate_fixed(&c, &l.merged, bound_port, l.api_key.clone())?;
    let live = validate_live(&c, &l.merged, &fixed)?;
    let settings = Settings {
        fixed: Arc::new(fixed),
        live: Arc::new(live),
        tree: Arc::new(l.merged.clone()),
    };
    Ok((settings, effective.into_inner()))
}

fn validate_fixed(
    c: &Check<'_>,
    t: &Tree,
    bound_port: Option<u16>,
    api_key: Option<String>,
) -> Result<Fixed, ConfigError> {
    if text(&t.application_url).is_empty() {
        return Err(ConfigError::Rule(
            "APPLICATION_URL is required (e.g. `ory-proxy http://localhost:3000`), or set `application_url` in proxy.toml".into(),
        ));
    }
    let application_url = c.origin_url("application_url", text(&t.application_url))?;
    let port = value(&t.port);
    let tls = t.tls.fixed(&c.section("tls"))?;
    let publish_url = match text(&t.publish_url) {
        "" => {
            let p = bound_port.unwrap_or(port);
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = Url::parse(&format!("{scheme}://localhost:{p}"))
                .map_err(|e| c.err("publish_url", e.to_string()))?;
            c.show("publish_url", origin_of_url(&url));
            url
        }
        given => c.origin_url("publish_url", given)?,
    };
    let (ory_url, ory_source) = ory(c, t)?;
    let ory_base = format!(
        "{}{}",
        origin_of_url(&ory_url),
        ory_url.path().trim_end_matches('/')
    );
    let upstream = t.upstream.fixed(&c.section("upstream"))?;
    Ok(Fixed {
        app_origin: origin_of_url(&application_url),
        publish_origin: origin_of_url(&publish_url),
        application_url,
        publish_url,
        port,
        ory_base,
        ory_url,
        ory_source,
        dev: value(&t.dev),
        no_jwt: value(&t.no_jwt),
        rewrite_host: value(&t.rewrite_host),
        trusted_proxies: trusted_proxies(c, t)?,
        ca_file: Some(text(&t.ca_file))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        keys_file: t.jwt.keys_file(),
        keys_file_read_only: t.jwt.keys_file_read_only(&c.section("jwt"))?,
        watch: watch(c, t)?,
        metrics_listen: metrics_listen(c, t, port)?,
        connect_timeout: upstream.connect_timeout,
        response_timeout: upstream.response_timeout,
        limits: t.limits.fixed(&c.section("limits"))?,
        api_key,
        tls,
        shutdown_delay: shutdown_delay(c, t)?,
    })
}

fn shutdown_delay(c: &Check<'_>, t: &Tree) -> Result<Duration, ConfigError> {
    let d = c.duration("shutdown_delay", text(&t.shutdown_delay))?;
    if d > MAX_SHUTDOWN_DELAY {
        return Err(c.err(
            "shutdown_delay",
            "is longer than the maximum of 5m (a few seconds is what load balancers need)",
        ));
    }
    Ok(d)
}

/// The Ory URL, from a project slug or given directly (layering left at most one set).
fn ory(c: &Check<'_>, t: &Tree) -> Result<(Url, OrySource), ConfigError> {
    match (text(&t.project), text(&t.sdk_url)) {
        ("", "") => Err(ConfigError::Rule(
            "no Ory upstream: set --project <SLUG> (or ORY_PROJECT_SLUG / ORY_PROJECT) for Ory Network, or --sdk-url <URL> (or ORY_SDK_URL / ORY_KRATOS_URL) for self-hosted Kratos or a local emulator".into(),
        )),
        (slug, "") => {
            if !slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(c.err(
                    "project",
                    format!("{slug:?} is not a project slug (lowercase letters, digits and dashes)"),
                ));
            }
            let url = Url::parse(&format!("https://{slug}.projects.oryapis.com"))
                .map_err(|e| c.err("project", e.to_string()))?;
            c.note("project", format!("Ory at {}", origin_of_url(&url)));
            Ok((url, OrySource::Project(slug.to_string())))
        }
        (_, sdk) => {
            let url = c.http_url("sdk_url", sdk)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(c.err("sdk_url", "must not have a query or fragment"));
            }
            c.show("sdk_url", url.as_str());
            Ok((url, OrySource::SdkUrl))
        }
    }
}

fn trusted_proxies(c: &Check<'_>, t: &Tree) -> Result<Vec<IpNet>, ConfigError> {
    value(&t.trusted_proxies)
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    c.err(
                        "trusted_proxies",
                        format!("{s:?} is not an IP address or CIDR"),
                    )
                })
        })
        .collect()
}

fn watch(c: &Check<'_>, t: &Tree) -> Result<WatchMode, ConfigError> {
    match text(&t.watch) {
        "auto" => Ok(WatchMode::Auto),
        "poll" => Ok(WatchMode::Poll),
        "off" => Ok(WatchMode::Off),
        other => Err(c.err(
            "watch",
            format!("{other:?}: expected \"auto\", \"poll\" or \"off\""),
        )),
    }
}

fn metrics_listen(c: &Check<'_>, t: &Tree, port: u16) -> Result<Option<SocketAddr>, ConfigError> {
    let addr = text(&t.metrics_listen);
    if addr.is_empty() {
        return Ok(None);
    }
    let a = addr.parse::<SocketAddr>().map_err(|_| {
        c.err(
            "metrics_listen",
            format!("{addr:?} is not an IP address with a port, like \"127.0.0.1:9464\" or \"0.0.0.0:9464\""),
        )
    })?;
    // Some systems would let both binds succeed and split the traffic between them.
    if port != 0 && a.port() == port {
        return Err(c.err(
            "metrics_listen",
            format!("{addr:?} uses the proxy's own port {port}; pick another port"),
        ));
    }
    Ok(Some(a))
}

/// The live part of `t` against `fixed`: the CORS policy holds the publish origin and `dev`,
/// and the default redirect and JWT issuer default to fixed URLs.
fn validate_live(c: &Check<'_>, t: &Tree, fixed: &Fixed) -> Result<Live, ConfigError> {
    let log_level = text(&t.log_level)
        .parse::<log::LevelFilter>()
        .map_err(|_| {
            c.err(
                "log_level",
                format!(
                    "{:?}: expected error, warn, info, debug or trace",
                    text(&t.log_level)
                ),
            )
        })?;
    let log_format = text(&t.log_format)
        .parse()
        .map_err(|m| c.err("log_format", m))?;
    let strip_request_headers = HeaderList::parse(&value(&t.strip_request_headers))
        .map_err(|m| c.err("strip_request_headers", m))?;
    Ok(Live {
        cookies: t.cookies.live(&c.section("cookies"))?,
        cors: t
            .cors
            .policy(&c.section("cors"), &fixed.publish_origin, fixed.dev)?,
        redirects: t
            .redirects
            .live(&c.section("redirects"), &fixed.publish_url)?,
        jwt: t.jwt.live(&c.section("jwt"), &fixed.ory_base)?,
        session: t.session.live(&c.section("session"))?,
        log_level,
        log_format,
        strip_request_headers,
        access: t
            .access
            .policy(&c.section("access"), &fixed.publish_origin, fixed.no_jwt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::layers::layer;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut a = vec!["ory-proxy"];
        a.extend_from_slice(args);
        let l = layer(&Cli::parse_from(a), &|_| None, None)?;
        validate(&l, None).map(|(s, _)| s)
    }

    #[test]
    fn defaults() {
        let s = settings(&[
            "--sdk-url",
            "http://127.0.0.1:4433/",
            "http://localhost:3000",
        ])
        .unwrap();
        assert_eq!(s.fixed.publish_origin, "http://localhost:4000");
        assert_eq!(s.fixed.ory_base, "http://127.0.0.1:4433");
        assert_eq!(
            s.live.redirects.default_redirect_url,
            "http://localhost:4000"
        );
        assert_eq!(s.live.jwt.issuer, "http://127.0.0.1:4433");
        assert_eq!(s.live.jwt.ttl, Duration::from_secs(60));
        assert!(s.live.session.is_session_cookie("ory_session_abc"));
        assert!(s.live.session.is_session_cookie("ory_kratos_session"));
        assert!(!s.live.session.is_session_cookie("csrf_token_x"));
    }

    #[test]
    fn tls_makes_the_default_publish_url_https_and_shutdown_delay_is_bounded() {
        let base = ["--sdk-url", "http://k", "http://app"];
        let s = settings(&[&base[..], &["--tls-cert", "c.pem", "--tls-key", "k.pem"]].concat())
            .unwrap();
        assert_eq!(s.fixed.publish_origin, "https://localhost:4000");
        assert_eq!(s.fixed.tls.as_ref().unwrap().key, PathBuf::from("k.pem"));
        assert_eq!(s.fixed.shutdown_delay, Duration::ZERO);
        // An explicit PUBLISH_URL stands (TLS may end at a load balancer in front, too).
        let s = settings(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--sdk-url",
            "http://k",
            "http://app",
            "http://www.example.org",
        ])
        .unwrap();
        assert_eq!(s.fixed.publish_origin, "http://www.example.org");
        let e = settings(&[&base[..], &["--tls-cert", "c.pem"]].concat())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("flag --tls-cert: `tls.cert_file`"), "{e}");
        for (delay, ok) in [("5s", true), ("5m", true), ("301s", false), ("soon", false)] {
            let f = crate::config::file::parse(
                std::path::Path::new("proxy.toml"),
                &format!("shutdown_delay = \"{delay}\"\n"),
            )
            .unwrap();
            let l = layer(
                &Cli::parse_from(["ory-proxy"].iter().chain(&base)),
                &|_| None,
                Some(f),
            )
            .unwrap();
            assert_eq!(validate(&l, None).is_ok(), ok, "{delay}");
        }
    }

    #[test]
    fn project_slug_gives_ory_network_url() {
        let s = settings(&["--project", "my-slug", "http://localhost:3000"]).unwrap();
        assert_eq!(
            s.fixed.ory_url.as_str(),
            "https://my-slug.projects.oryapis.com/"
        );
        assert_eq!(s.fixed.ory_base, "https://my-slug.projects.oryapis.com");
    }

    #[test]
    fn publish_url_rules() {
        for bad in [
            "http://l:4000/app",
            "http://l:4000/?q",
            "http://l:4000/#f",
            "localhost:4000",
            "ftp://x",
        ] {
            let e = settings(&["--sdk-url", "http://k", "http://app", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("PUBLISH_URL"), "{bad}: {e}");
        }
        assert!(settings(&["--sdk-url", "http://k", "http://app", "https://a.example/"]).is_ok());
    }

    #[test]
    fn missing_app_and_upstream() {
        assert!(settings(&["--sdk-url", "http://k"])
            .unwrap_err()
            .to_string()
            .contains("APPLICATION_URL"));
        let e = settings(&["http://app"]).unwrap_err().to_string();
        assert!(e.contains("--project") && e.contains("--sdk-url"), "{e}");
    }

    #[test]
    fn bare_star_origin_is_refused() {
        let e = settings(&[
            "--sdk-url",
            "http://k",
            "--allowed-cors-origins",
            "*",
            "http://app",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--allowed-cors-origins") && e.contains("--dev"),
            "{e}"
        );
    }

    #[test]
    fn relative_default_redirect_allowed() {
        let s = settings(&[
            "--sdk-url",
            "http://k",
            "--default-redirect-url",
            "/home",
            "http://app",
        ])
        .unwrap();
        assert_eq!(s.live.redirects.default_redirect_url, "/home");
        assert!(settings(&[
            "--sdk-url",
            "http://k",
            "--default-redirect-url",
            "home",
            "http://app"
        ])
        .is_err());
    }
}

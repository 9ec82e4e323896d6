//! Stage three: validation. Turns the layered raw values into typed settings, split into the
//! part fixed at start ([`Fixed`]) and the part that a reload may swap ([`Live`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::cors_policy::{normalize_origin, CorsPolicy};
use super::error::ConfigError;
use super::layering::Layered;
use crate::proxy::client_headers::HeaderList;

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
    pub watch: WatchMode,
    /// Where `/metrics` is served, on a listener of its own; `None` = not served.
    pub metrics_listen: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// No byte of a request body for this long while the proxy waits for one: 408.
    pub body_idle_timeout: Duration,
    /// Bytes of Ory answers held for rewriting at once, across all requests.
    pub rewrite_budget: u64,
    pub api_key: Option<String>,
}

/// Settings the running proxy reads per request from one swappable snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// `None` = host-only cookies.
    pub cookie_domain: Option<String>,
    pub cors: CorsPolicy,
    /// Where a welcome redirect goes: the configured URL or the publish URL.
    pub default_redirect_url: String,
    pub jwt: JwtLive,
    pub session: SessionLive,
    pub log_level: log::LevelFilter,
    /// Client headers never sent to the app, in any spelling (`strip_request_headers`).
    pub strip_request_headers: HeaderList,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwtLive {
    pub ttl: Duration,
    pub issuer: String,
    pub audience: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionLive {
    /// Cookie names that carry a session; an entry ending in `*` matches by prefix.
    pub cookie_names: Vec<String>,
    pub cache_ttl: Duration,
    pub cache_max_entries: u64,
}

impl SessionLive {
    pub fn is_session_cookie(&self, name: &str) -> bool {
        self.cookie_names.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => n == name,
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub fixed: Arc<Fixed>,
    pub live: Arc<Live>,
}

struct V<'a> {
    l: &'a Layered,
}

impl V<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            origin: self.l.origin_of(key),
            message: message.into(),
        }
    }

    /// An absolute http(s) URL with a host.
    fn http_url(&self, key: &str, raw: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(raw.trim()).map_err(|e| {
            self.err(
                key,
                format!("{raw:?} is not a URL ({e}); write it like http://localhost:3000"),
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(self.err(key, format!("{raw:?}: the scheme must be http or https")));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(self.err(key, format!("{raw:?} has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.err(
                key,
                format!("{raw:?}: credentials in URLs are not supported"),
            ));
        }
        Ok(url)
    }

    /// A URL that must be an origin: no path other than `/`, no query, no fragment.
    fn origin_url(&self, key: &str, raw: &str) -> Result<Url, ConfigError> {
        let url = self.http_url(key, raw)?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(self.err(
                key,
                format!(
                    "{raw:?} must not have a path, query or fragment (use scheme://host[:port])"
                ),
            ));
        }
        Ok(url)
    }

    /// A size in bytes: a number, or one with a binary unit (`"512KiB"`, `"64MiB"`, `"1GiB"`).
    fn size(&self, key: &str, raw: &str) -> Result<u64, ConfigError> {
        let t = raw.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => 0,
        };
        n.parse::<u64>()
            .ok()
            .filter(|_| scale != 0)
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "{raw:?} is not a size like \"64MiB\", \"512KiB\" or a number of bytes"
                    ),
                )
            })
    }

    /// A duration of at most [`MAX_DURATION`]: larger ones are typos, and unbounded values
    /// would overflow time arithmetic later.
    fn duration(&self, key: &str, raw: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(raw.trim()).map_err(|e| {
            self.err(
                key,
                format!("{raw:?} is not a duration like \"10s\" or \"1m\" ({e})"),
            )
        })?;
        if d > MAX_DURATION {
            return Err(self.err(key, format!("{raw:?} is longer than the maximum of 24h")));
        }
        Ok(d)
    }
}

/// The longest duration any setting accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub fn origin_of_url(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// Validates `layered`. `bound_port` replaces the configured port in the default publish URL
/// once the listener is bound (it differs only for port 0).
pub fn validate(l: &Layered, bound_port: Option<u16>) -> Result<Settings, ConfigError> {
    let v = V { l };
    let r = &l.raw;

    if r.application_url.trim().is_empty() {
        return Err(ConfigError::Rule(
            "APPLICATION_URL is required (e.g. `ory-proxy http://localhost:3000`), or set `application_url` in proxy.toml".into(),
        ));
    }
    let application_url = v.origin_url("application_url", &r.application_url)?;
    let port = r.port;
    let publish_url = if r.publish_url.trim().is_empty() {
        let p = bound_port.unwrap_or(port);
        Url::parse(&format!("http://localhost:{p}"))
            .map_err(|e| v.err("publish_url", e.to_string()))?
    } else {
        v.origin_url("publish_url", &r.publish_url)?
    };

    let (ory_url, ory_source) = match (r.project.trim(), r.sdk_url.trim()) {
        ("", "") => {
            return Err(ConfigError::Rule(
                "no Ory upstream: set --project <SLUG> (or ORY_PROJECT_SLUG / ORY_PROJECT) for Ory Network, or --sdk-url <URL> (or ORY_SDK_URL / ORY_KRATOS_URL) for self-hosted Kratos or a local emulator".into(),
            ))
        }
        (slug, "") => {
            if !slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(v.err(
                    "project",
                    format!("{slug:?} is not a project slug (lowercase letters, digits and dashes)"),
                ));
            }
            let url = Url::parse(&format!("https://{slug}.projects.oryapis.com"))
                .map_err(|e| v.err("project", e.to_string()))?;
            (url, OrySource::Project(slug.to_string()))
        }
        (_, sdk) => {
            let url = v.http_url("sdk_url", sdk)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(v.err("sdk_url", "must not have a query or fragment"));
            }
            (url, OrySource::SdkUrl)
        }
    };
    let ory_base = format!(
        "{}{}",
        origin_of_url(&ory_url),
        ory_url.path().trim_end_matches('/')
    );

    let mut trusted_proxies = Vec::new();
    for t in &r.trusted_proxies {
        let net = t
            .parse::<IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                v.err(
                    "trusted_proxies",
                    format!("{t:?} is not an IP address or CIDR"),
                )
            })?;
        trusted_proxies.push(net);
    }

    let path_or_none = |s: &str| (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()));
    let watch = match r.watch.as_str() {
        "auto" => WatchMode::Auto,
        "poll" => WatchMode::Poll,
        "off" => WatchMode::Off,
        other => {
            return Err(v.err(
                "watch",
                format!("{other:?}: expected \"auto\", \"poll\" or \"off\""),
            ))
        }
    };

    let metrics_listen = match r.metrics_listen.trim() {
        "" => None,
        addr => {
            let a = addr.parse::<SocketAddr>().map_err(|_| {
                v.err(
                    "metrics_listen",
                    format!("{addr:?} is not an IP address with a port, like \"127.0.0.1:9464\" or \"0.0.0.0:9464\""),
                )
            })?;
            // Some systems would let both binds succeed and split the traffic between them.
            if port != 0 && a.port() == port {
                return Err(v.err(
                    "metrics_listen",
                    format!("{addr:?} uses the proxy's own port {port}; pick another port"),
                ));
            }
            Some(a)
        }
    };

    let fixed = Fixed {
        app_origin: origin_of_url(&application_url),
        publish_origin: origin_of_url(&publish_url),
        application_url,
        publish_url,
        port,
        ory_base,
        ory_url,
        ory_source,
        dev: r.dev,
        no_jwt: r.no_jwt,
        rewrite_host: r.rewrite_host,
        trusted_proxies,
        ca_file: path_or_none(&r.ca_file),
        keys_file: path_or_none(&r.jwt.keys_file),
        watch,
        metrics_listen,
        connect_timeout: v.duration("upstream.connect_timeout", &r.upstream.connect_timeout)?,
        response_timeout: v.duration("upstream.response_timeout", &r.upstream.response_timeout)?,
        body_idle_timeout: {
            let d = v.duration("limits.body_idle_timeout", &r.limits.body_idle_timeout)?;
            if d < Duration::from_secs(1) {
                return Err(v.err("limits.body_idle_timeout", "must be at least 1s"));
            }
            d
        },
        rewrite_budget: v.size("limits.rewrite_budget", &r.limits.rewrite_budget)?,
        api_key: l.api_key.clone(),
    };
    let live = validate_live(&v, &fixed)?;
    Ok(Settings {
        fixed: Arc::new(fixed),
        live: Arc::new(live),
    })
}

/// The live part of `l` computed against `fixed` (the running fixed settings) instead of the
/// fixed part `l` itself yields. A reload whose restart-only keys changed must not leak them into
/// the live settings: the CORS policy holds the publish origin and `dev`, and the default
/// redirect and JWT issuer default to fixed URLs.
pub fn live_for(l: &Layered, fixed: &Fixed) -> Result<Live, ConfigError> {
    validate_live(&V { l }, fixed)
}

fn validate_live(v: &V<'_>, fixed: &Fixed) -> Result<Live, ConfigError> {
    let r = &v.l.raw;
    let cookie_domain = {
        let d = r
            .cookies
            .domain
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase();
        if d.is_empty() {
            None
        } else if d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            Some(d)
        } else {
            return Err(v.err(
                "cookies.domain",
                format!("{d:?} is not a domain (no scheme, port or path: e.g. example.org)"),
            ));
        }
    };

    let mut origins = Vec::new();
    for o in &r.cors.allowed_origins {
        if o.trim().is_empty() {
            continue;
        }
        origins.push(normalize_origin(o).map_err(|m| v.err("cors.allowed_origins", m))?);
    }
    for h in &r.cors.additional_headers {
        let h = h.trim();
        if h != "*" && actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(v.err(
                "cors.additional_headers",
                format!("{h:?} is not a header name"),
            ));
        }
    }
    let cors = CorsPolicy::new(
        &fixed.publish_origin,
        &origins,
        &r.cors.additional_headers,
        fixed.dev,
    );

    let default_redirect_url = match r.redirects.default_redirect_url.trim() {
        "" => fixed.publish_url.as_str().trim_end_matches('/').to_string(),
        rel if rel.starts_with('/') && !rel.starts_with("//") => rel.to_string(),
        abs => v
            .http_url("redirects.default_redirect_url", abs)
            .map(|u| {
                // Keep the user's spelling apart from normalization of an empty path.
                if abs.ends_with('/') || u.path() != "/" {
                    u.to_string()
                } else {
                    u.as_str().trim_end_matches('/').to_string()
                }
            })
            .map_err(|_| {
                v.err(
                    "redirects.default_redirect_url",
                    format!("{abs:?} must be an http(s) URL or a path starting with /"),
                )
            })?,
    };

    let ttl = v.duration("jwt.ttl", &r.jwt.ttl)?;
    if ttl < Duration::from_secs(1) {
        return Err(v.err("jwt.ttl", "must be at least 1s"));
    }
    let issuer = match r.jwt.issuer.trim() {
        "" => fixed.ory_base.clone(),
        s => s.to_string(),
    };
    let cookie_names: Vec<String> = r
        .session
        .cookie_names
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if cookie_names
        .iter()
        .any(|n| n.contains([';', '=', ' ', ',']))
    {
        return Err(v.err(
            "session.cookie_names",
            "cookie names cannot contain ; = , or spaces",
        ));
    }
    if r.session.cache_max_entries == 0 {
        return Err(v.err("session.cache_max_entries", "must be at least 1"));
    }
    let strip_request_headers = HeaderList::parse(&r.strip_request_headers)
        .map_err(|m| v.err("strip_request_headers", m))?;
    let log_level = r.log_level.parse::<log::LevelFilter>().map_err(|_| {
        v.err(
            "log_level",
            format!(
                "{:?}: expected error, warn, info, debug or trace",
                r.log_level
            ),
        )
    })?;

    Ok(Live {
        cookie_domain,
        cors,
        default_redirect_url,
        jwt: JwtLive {
            ttl,
            issuer,
            audience: r.jwt.audience.clone(),
        },
        session: SessionLive {
            cookie_names,
            cache_ttl: v.duration("session.cache_ttl", &r.session.cache_ttl)?,
            cache_max_entries: r.session.cache_max_entries,
        },
        log_level,
        strip_request_headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::layering::layer;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut a = vec!["ory-proxy"];
        a.extend_from_slice(args);
        let l = layer(&Cli::parse_from(a), &|_| None, None)?;
        validate(&l, None)
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
        assert_eq!(s.live.default_redirect_url, "http://localhost:4000");
        assert_eq!(s.live.jwt.issuer, "http://127.0.0.1:4433");
        assert_eq!(s.live.jwt.ttl, Duration::from_secs(60));
        assert!(s.live.session.is_session_cookie("ory_session_abc"));
        assert!(s.live.session.is_session_cookie("ory_kratos_session"));
        assert!(!s.live.session.is_session_cookie("csrf_token_x"));
    }

    fn with_file(text: &str) -> Result<Settings, ConfigError> {
        let cli = Cli::parse_from(["ory-proxy", "--sdk-url", "http://k", "http://app"]);
        let path = std::path::PathBuf::from("proxy.toml");
        let file = crate::config::file::parse(&path, text)?;
        validate(
            &layer(&cli, &|_| None, Some((path, file, text.into())))?,
            None,
        )
    }

    #[test]
    fn limits_take_durations_and_binary_sizes() {
        let s = with_file("").unwrap();
        assert_eq!(s.fixed.body_idle_timeout, Duration::from_secs(30));
        assert_eq!(s.fixed.rewrite_budget, 64 << 20);
        let s = with_file("[limits]\nbody_idle_timeout = \"1s\"\nrewrite_budget = \"512KiB\"\n")
            .unwrap();
        assert_eq!(s.fixed.body_idle_timeout, Duration::from_secs(1));
        assert_eq!(s.fixed.rewrite_budget, 512 << 10);
        for (ok, budget) in [
            (true, "0"),
            (true, "1000"),
            (true, "2GiB"),
            (false, "64MB"),
            (false, "-1"),
            (false, "MiB"),
            (false, "99999999999GiB"),
        ] {
            let r = with_file(&format!("[limits]\nrewrite_budget = {budget:?}\n"));
            assert_eq!(r.is_ok(), ok, "{budget}: {r:?}");
        }
        let e = with_file("[limits]\nbody_idle_timeout = \"0s\"\n").unwrap_err();
        assert!(e.to_string().contains("limits.body_idle_timeout"), "{e}");
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
        assert_eq!(s.live.default_redirect_url, "/home");
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

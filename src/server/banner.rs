//! The start-up banner (SPEC §7) and `--check-config`'s print-out of the effective settings.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Fixed, Live, OrySource, Settings, WatchMode};

/// What the banner needs beyond the settings.
pub struct BannerFacts<'a> {
    pub listen: std::net::SocketAddr,
    /// The bound metrics listener, if any.
    pub metrics: Option<std::net::SocketAddr>,
    pub jwt: Option<&'a str>,
    pub config_file: Option<&'a Path>,
}

/// The banner's facts, in order, as (name, value).
fn rows(s: &Settings, facts: &BannerFacts<'_>) -> Vec<(&'static str, String)> {
    let (f, l) = (&*s.fixed, &*s.live);
    let mut rows = vec![
        ("listening", format!("http://{}", facts.listen)),
        ("application", f.app_origin.clone()),
        ("ory", ory_line(f)),
        (
            "jwt",
            match facts.jwt {
                Some(kid) => format!(
                    "on, ES256 key id {kid}, JWKS at {}/.ory/jwks.json",
                    f.publish_origin
                ),
                None => "off (--no-jwt)".into(),
            },
        ),
        (
            "config",
            match (facts.config_file, f.watch) {
                (Some(p), WatchMode::Off) => format!("{} (not watched)", p.display()),
                (Some(p), _) => format!("{} (watched for changes)", p.display()),
                (None, _) => "none (flags and defaults)".into(),
            },
        ),
    ];
    if let Some(m) = facts.metrics {
        rows.push(("metrics", format!("http://{m}/metrics")));
    }
    rows.push(("cors", cors_line(f, l)));
    rows.push(("version", crate::version::LONG.to_string()));
    rows
}

/// The banner as text, for a terminal.
pub fn banner(s: &Settings, facts: &BannerFacts<'_>) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "\nTo access your application via the Ory Proxy, open:\n\n\t{}\n",
        s.fixed.publish_origin
    );
    for (name, value) in rows(s, facts) {
        let _ = writeln!(b, "  {name:<12} {value}");
    }
    b
}

/// The banner as one JSON log record: `msg` says where to open the app, one key per fact
/// (`publish_url`, `listening`, `application`, `ory`, `jwt`, `config`, `metrics`, `cors`,
/// `version`).
pub fn banner_json(s: &Settings, facts: &BannerFacts<'_>) -> String {
    let publish = &s.fixed.publish_origin;
    let mut fields = vec![("publish_url", publish.clone())];
    fields.extend(rows(s, facts));
    super::logging::json_record(
        log::Level::Info,
        "ory_proxy::banner",
        &format!("To access your application via the Ory Proxy, open {publish}"),
        &fields,
    )
}

fn ory_line(f: &Fixed) -> String {
    match &f.ory_source {
        OrySource::Project(slug) => format!("{} (project {slug})", f.ory_base),
        OrySource::SdkUrl => f.ory_base.clone(),
    }
}

fn cors_line(f: &Fixed, l: &Live) -> String {
    if l.cors.any_origin {
        return "any origin is echoed with credentials (--dev); do not use --dev in production"
            .into();
    }
    if l.cors.exact.len() == 1 && l.cors.wildcards.is_empty() {
        return format!(
            "only {} may call cross-origin; allow more with --allowed-cors-origins or [cors].allowed_origins",
            f.publish_origin
        );
    }
    let mut all = l.cors.exact.clone();
    all.extend(l.cors.wildcards.iter().map(|(p, s)| format!("{p}*{s}")));
    all.join(", ")
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", v.join(", "))
}

/// The effective configuration as `proxy.toml` would spell it.
pub fn effective_config(s: &Settings) -> String {
    let (f, l) = (&*s.fixed, &*s.live);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "# effective configuration (defaults < proxy.toml < env < flags)"
    );
    let _ = writeln!(b, "application_url = {}", toml_str(&f.app_origin));
    let _ = writeln!(b, "publish_url = {}", toml_str(&f.publish_origin));
    let _ = writeln!(b, "port = {}", f.port);
    match &f.ory_source {
        OrySource::Project(slug) => {
            let _ = writeln!(b, "project = {}   # Ory at {}", toml_str(slug), f.ory_base);
        }
        OrySource::SdkUrl => {
            let _ = writeln!(b, "sdk_url = {}", toml_str(f.ory_url.as_str()));
        }
    }
    let _ = writeln!(
        b,
        "dev = {}\nno_jwt = {}\nrewrite_host = {}",
        f.dev, f.no_jwt, f.rewrite_host
    );
    let nets: Vec<String> = f.trusted_proxies.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(b, "trusted_proxies = {}", toml_list(&nets));
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let _ = writeln!(b, "ca_file = {}", toml_str(&path(&f.ca_file)));
    let watch = match f.watch {
        WatchMode::Auto => "auto",
        WatchMode::Poll => "poll",
        WatchMode::Off => "off",
    };
    let _ = writeln!(b, "watch = {}", toml_str(watch));
    let metrics = f.metrics_listen.map(|a| a.to_string()).unwrap_or_default();
    let _ = writeln!(b, "metrics_listen = {}", toml_str(&metrics));
    let _ = writeln!(
        b,
        "log_level = {}",
        toml_str(&l.log_level.to_string().to_lowercase())
    );
    let _ = writeln!(
        b,
        "strip_request_headers = {}",
        toml_list(l.strip_request_headers.entries())
    );
    let _ = writeln!(
        b,
        "\n[cookies]\ndomain = {}",
        toml_str(l.cookie_domain.as_deref().unwrap_or(""))
    );
    let mut origins: Vec<String> = l.cors.exact.iter().skip(1).cloned().collect();
    origins.extend(l.cors.wildcards.iter().map(|(p, s)| format!("{p}*{s}")));
    let mut extra: Vec<String> = l
        .cors
        .headers
        .iter()
        .skip(crate::config::cors_policy::BASE_HEADERS.len())
        .cloned()
        .collect();
    if l.cors.any_header {
        extra.push("*".into());
    }
    let _ = writeln!(
        b,
        "\n[cors]\nallowed_origins = {}\nadditional_headers = {}",
        toml_list(&origins),
        toml_list(&extra)
    );
    let _ = writeln!(
        b,
        "\n[redirects]\ndefault_redirect_url = {}",
        toml_str(&l.default_redirect_url)
    );
    let _ = writeln!(
        b,
        "\n[jwt]\nttl = {}\nkeys_file = {}\nissuer = {}\naudience = {}",
        toml_str(&humantime::format_duration(l.jwt.ttl).to_string()),
        toml_str(&path(&f.keys_file)),
        toml_str(&l.jwt.issuer),
        toml_list(&l.jwt.audience)
    );
    let _ = writeln!(
        b,
        "\n[session]\ncookie_names = {}\ncache_ttl = {}\ncache_max_entries = {}",
        toml_list(&l.session.cookie_names),
        toml_str(&humantime::format_duration(l.session.cache_ttl).to_string()),
        l.session.cache_max_entries
    );
    let _ = writeln!(
        b,
        "\n[upstream]\nconnect_timeout = {}\nresponse_timeout = {}",
        toml_str(&humantime::format_duration(f.connect_timeout).to_string()),
        toml_str(&humantime::format_duration(f.response_timeout).to_string())
    );
    let _ = writeln!(
        b,
        "\n[limits]\nbody_idle_timeout = {}\nrewrite_budget = {}",
        toml_str(&humantime::format_duration(f.body_idle_timeout).to_string()),
        toml_str(&size(f.rewrite_budget))
    );
    b
}

/// A byte count in the largest binary unit that divides it, as `proxy.toml` takes it.
fn size(n: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n != 0 && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

//! The start-up banner: where to open the proxy, what it forwards to, and how it is set up.

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
    /// The SHA-256 fingerprint of the certificate served at start (HTTPS only).
    pub certificate: Option<&'a str>,
}

/// The banner's facts, in order, as (name, value).
fn rows(s: &Settings, facts: &BannerFacts<'_>) -> Vec<(&'static str, String)> {
    let (f, l) = (&*s.fixed, &*s.live);
    let scheme = if f.tls.is_some() { "https" } else { "http" };
    let mut rows = vec![
        ("listening", format!("{scheme}://{}", facts.listen)),
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
    if let (Some(files), Some(fp)) = (&f.tls, facts.certificate) {
        rows.push((
            "tls",
            format!(
                "HTTP/2 and HTTP/1.1; {} (SHA-256 {fp}) and {}, followed for renewals",
                files.cert.display(),
                files.key.display()
            ),
        ));
    }
    if let Some(m) = facts.metrics {
        rows.push(("metrics", format!("http://{m}/metrics")));
    }
    rows.push(("cors", cors_line(f, l)));
    rows.push(("access", access_line(l)));
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
/// `access`, `version`).
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

/// How many access rules are active, and what the others meet.
fn access_line(l: &Live) -> String {
    let a = &l.access;
    let default = a.rules.default_rule().require.as_str();
    let mut line = match a.len() {
        0 => format!("no rules: every app request is {default} (README: \"Protecting routes\")"),
        1 => format!("1 rule active, otherwise {default}"),
        n => format!("{n} rules active, otherwise {default}"),
    };
    if !a.identity.is_empty() {
        let names: Vec<&str> = a.identity.pairs().map(|(n, _)| n).collect();
        line.push_str(&format!("; identity headers {}", names.join(", ")));
    }
    line
}

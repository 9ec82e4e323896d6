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
}

pub fn banner(s: &Settings, facts: &BannerFacts<'_>) -> String {
    let (f, l) = (&*s.fixed, &*s.live);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "\nTo access your application via the Ory Proxy, open:\n\n\t{}\n",
        f.publish_origin
    );
    let _ = writeln!(b, "  listening    http://{}", facts.listen);
    let _ = writeln!(b, "  application  {}", f.app_origin);
    let _ = writeln!(b, "  ory          {}", ory_line(f));
    let _ = writeln!(
        b,
        "  jwt          {}",
        match facts.jwt {
            Some(kid) => format!(
                "on, ES256 key id {kid}, JWKS at {}/.ory/jwks.json",
                f.publish_origin
            ),
            None => "off (--no-jwt)".into(),
        }
    );
    let _ = writeln!(
        b,
        "  config       {}",
        match (facts.config_file, f.watch) {
            (Some(p), WatchMode::Off) => format!("{} (not watched)", p.display()),
            (Some(p), _) => format!("{} (watched for changes)", p.display()),
            (None, _) => "none (flags and defaults)".into(),
        }
    );
    if let Some(m) = facts.metrics {
        let _ = writeln!(b, "  metrics      http://{m}/metrics");
    }
    let _ = writeln!(b, "  cors         {}", cors_line(f, l));
    let _ = writeln!(b, "  version      {}", crate::version::LONG);
    b
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

//! Command-line flags, named as `ory proxy` names them (the README's flag table lists them).
//!
//! clap only parses here: no flag carries a default, so an absent flag is `None`/`false` and
//! the layering in [`crate::config`] can tell "not given" from "given". [`Cli::key_flags`] is
//! the one place a flag is tied to its key. Environment variables are read by the layering
//! too, so that "pinned by env" and "pinned by flag" are reported with the right name.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// `ory-proxy [OPTIONS] <APPLICATION_URL> [PUBLISH_URL]`
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "ory-proxy",
    version = crate::version::LONG,
    about = "Identity-aware reverse proxy: your app and Ory on one domain, sessions as ES256 JWTs",
    long_about = "Identity-aware reverse proxy, a drop-in for `ory proxy`.\n\n\
        Everything goes to APPLICATION_URL except /.ory/*, which goes to Ory with cookies, \
        redirects and bodies rewritten onto PUBLISH_URL. Requests with an active Ory session \
        reach the app with `Authorization: Bearer <ES256 JWT>`, verifiable at /.ory/jwks.json.",
    // `keys` is a subcommand only in the first place: no APPLICATION_URL is named `keys`
    // (it needs a scheme), and after any flag or URL a word is an argument again.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The app to protect, e.g. http://localhost:3000 [or `application_url` in proxy.toml]
    #[arg(value_name = "APPLICATION_URL")]
    pub application_url: Option<String>,

    /// The URL users open [default: http://localhost:<port>, https:// with TLS]; no path, query or fragment
    #[arg(value_name = "PUBLISH_URL")]
    pub publish_url: Option<String>,

    /// Ory Network project slug: Ory = https://<SLUG>.projects.oryapis.com [env: ORY_PROJECT_SLUG, ORY_PROJECT]
    #[arg(long, value_name = "SLUG")]
    pub project: Option<String>,

    /// Ory public URL given directly (self-hosted Kratos, a local emulator) [env: ORY_SDK_URL, ORY_KRATOS_URL]
    #[arg(long, value_name = "URL")]
    pub sdk_url: Option<String>,

    /// Listen port on all interfaces [env: PORT] [default: 4000]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Local development: any CORS origin is echoed unless origins are configured, and
    /// browsers get proxy errors as pages with a hint
    #[arg(long)]
    pub dev: bool,

    /// Debug logging, CORS decisions included
    #[arg(long)]
    pub debug: bool,

    /// No session lookups, no JWT, no JWKS
    #[arg(long)]
    pub no_jwt: bool,

    /// Open PUBLISH_URL in the default browser once listening
    #[arg(long)]
    pub open: bool,

    /// Domain= for Ory's cookies; empty = host-only
    #[arg(long, value_name = "DOMAIN")]
    pub cookie_domain: Option<String>,

    /// Allowed CORS origins; repeatable and/or comma-separated; one `*` per origin
    #[arg(long, value_name = "ORIGIN", value_delimiter = ',')]
    pub allowed_cors_origins: Vec<String>,

    /// Extra allowed CORS request headers; repeatable and/or comma-separated
    #[arg(long, value_name = "HEADER", value_delimiter = ',')]
    pub additional_cors_headers: Vec<String>,

    /// Where Ory's default ("welcome") redirects go [default: PUBLISH_URL]; relative allowed
    #[arg(long, value_name = "URL")]
    pub default_redirect_url: Option<String>,

    /// Send the app `Host: <application host>` instead of the inbound Host
    #[arg(long)]
    pub rewrite_host: bool,

    /// Log lines as `text` or `json` (one object per line) [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 [default: off]
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Serve HTTPS (HTTP/1.1 and HTTP/2): PEM certificate chain, the server's certificate first;
    /// needs --tls-key. Renewals are picked up without a restart
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,

    /// PEM private key of --tls-cert (PKCS#8, SEC1 or RSA)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,

    /// proxy.toml [env: ORY_PROXY_CONFIG] [default: ./proxy.toml when it exists]
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate flags and file, print the effective configuration, exit 0 (valid) or 1
    #[arg(long)]
    pub check_config: bool,

    /// With --check-config (implied): which access rule a request meets and what happens to it
    /// signed out, with aal1 and with aal2, e.g. "GET /admin/users"
    #[arg(long, value_name = "REQUEST")]
    pub explain: Option<String>,

    /// No effect: ory-proxy never prompts or signs in
    #[arg(short = 'q', long, help_heading = COMPAT)]
    pub quiet: bool,

    /// No effect: ory-proxy never asks for confirmation
    #[arg(short = 'y', long, help_heading = COMPAT)]
    pub yes: bool,

    /// Ignored with a warning: ory-proxy creates no API keys
    #[arg(long, value_name = "DURATION", help_heading = COMPAT)]
    pub api_key_expiry: Option<String>,

    /// Ignored with a warning: ory-proxy does not look projects up; --project takes the slug
    #[arg(long, value_name = "WORKSPACE", help_heading = COMPAT)]
    pub workspace: Option<String>,

    /// Print the completion script for SHELL and exit (hidden: for packagers, see the README)
    #[arg(long, value_name = "SHELL", hide = true, exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit (hidden: for packagers, see the README)
    #[arg(long, hide = true, exclusive = true)]
    pub man: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `ory-proxy` does instead of proxying.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Make, rotate and list the JWT keys file offline (for instances that only read it, such
    /// as Kubernetes pods with the file in a Secret)
    // Without a subcommand: clap's one-line "requires a subcommand", not the help text.
    #[command(subcommand, arg_required_else_help = false)]
    Keys(KeysCommand),
}

/// `ory-proxy keys …`
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a keys file with one new signing key (mode 0600); never replaces a file
    Generate {
        /// The keys file to create
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Add a new key to FILE that every instance publishes at once and signs with after
    /// --publish-ahead; drop keys that stopped signing longer than --prune-after ago
    Rotate {
        /// The keys file, replaced atomically (mode 0600)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// How long the new key is published before any instance signs with it: longer than
        /// the new file takes to reach every instance (a Kubernetes Secret: 1-2 min), plus 30 s
        /// for verifiers' cached JWKS
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
        publish_ahead: Duration,
        /// Drop keys that stopped signing longer ago than this; must exceed [jwt].ttl (at most
        /// 24h)
        #[arg(long, value_name = "DURATION", default_value = "25h", value_parser = duration)]
        prune_after: Duration,
    },
    /// Show the key ids of FILE and what each does now (no private part)
    List {
        /// The keys file
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// A duration like `10m` or `90s`.
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like \"10m\" or \"90s\" ({e})"))
}

/// Flags of the Go `ory proxy` that only concern its Ory Network sign-in, accepted so that a
/// copied command line starts.
const COMPAT: &str = "Accepted from `ory proxy`";

impl Cli {
    /// The keys the flags set, as `(dotted key, flag, value)`: the flags layer of the key tree
    /// (see [`crate::config::keys`]). A flag not given sets nothing.
    pub fn key_flags(&self) -> Vec<(&'static str, &'static str, toml::Value)> {
        let mut out = Vec::new();
        let mut set = |key, flag, value: Option<toml::Value>| {
            if let Some(v) = value {
                out.push((key, flag, v));
            }
        };
        let text = |v: &Option<String>| v.clone().map(toml::Value::from);
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| toml::Value::from(v.clone()));
        let on = |v: bool| v.then_some(toml::Value::Boolean(true));
        set(
            "application_url",
            "APPLICATION_URL",
            text(&self.application_url),
        );
        set("publish_url", "PUBLISH_URL", text(&self.publish_url));
        set("project", "--project", text(&self.project));
        set("sdk_url", "--sdk-url", text(&self.sdk_url));
        set("port", "--port", self.port.map(|p| i64::from(p).into()));
        set("dev", "--dev", on(self.dev));
        set("no_jwt", "--no-jwt", on(self.no_jwt));
        set("rewrite_host", "--rewrite-host", on(self.rewrite_host));
        set("log_level", "--debug", self.debug.then(|| "debug".into()));
        set("log_format", "--log-format", text(&self.log_format));
        set(
            "metrics_listen",
            "--metrics-listen",
            text(&self.metrics_listen),
        );
        set("tls.cert_file", "--tls-cert", text(&self.tls_cert));
        set("tls.key_file", "--tls-key", text(&self.tls_key));
        set(
            "cookies.domain",
            "--cookie-domain",
            text(&self.cookie_domain),
        );
        set(
            "cors.allowed_origins",
            "--allowed-cors-origins",
            list(&self.allowed_cors_origins),
        );
        set(
            "cors.additional_headers",
            "--additional-cors-headers",
            list(&self.additional_cors_headers),
        );
        set(
            "redirects.default_redirect_url",
            "--default-redirect-url",
            text(&self.default_redirect_url),
        );
        out
    }

    /// Warnings for the accepted-but-ignored Go flags that a user may expect to act.
    pub fn ignored_flag_warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.api_key_expiry.is_some() {
            out.push("--api-key-expiry is ignored: ory-proxy creates no API keys (set ORY_PROJECT_API_KEY yourself if Ory needs one)");
        }
        if self.workspace.is_some() {
            out.push("--workspace is ignored: ory-proxy does not look projects up; --project takes the project slug");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag clap knows (but the hidden ones), given: `key_flags` names each one that sets a key by its real
    /// name, and each key it names is one of the tree's.
    #[test]
    fn key_flags_name_real_flags_and_keys() {
        let cmd = Cli::command();
        let mut args = vec!["ory-proxy".to_string()];
        let mut names = Vec::new();
        for a in cmd.get_arguments() {
            // The hidden packaging flags stand alone (`exclusive`) and set no key.
            if a.is_hide_set() {
                assert!(a.is_exclusive_set(), "{:?}", a.get_id());
                continue;
            }
            match a.get_long() {
                Some(long) => {
                    names.push(format!("--{long}"));
                    args.push(format!("--{long}"));
                    if a.get_action().takes_values() {
                        args.push("1".into());
                    }
                }
                None => names.push(a.get_id().as_str().to_ascii_uppercase()),
            }
        }
        args.extend(["http://app".into(), "http://pub".into()]);
        let cli = Cli::try_parse_from(&args).unwrap();
        let flags = cli.key_flags();
        assert!(flags.len() >= 14, "{flags:?}");
        let keys = crate::config::Tree::keys();
        for (key, flag, _) in flags {
            assert!(names.iter().any(|n| n == flag), "{flag} is not a flag");
            assert!(keys.iter().any(|k| k == key), "{key} is not a key");
        }
    }
}

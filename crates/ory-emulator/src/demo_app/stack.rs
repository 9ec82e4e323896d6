//! [`DemoStack`]: the emulator, the demo app and the proxy wired together in one process, the
//! way a developer runs `ory proxy` in front of an app on a laptop, with a `proxy.toml` that
//! protects two of the app's pages ([`DEMO_ACCESS_RULES`]).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use tokio::task::JoinHandle;

use ory_proxy::cli::Cli;
use ory_proxy::config::Loader;
use ory_proxy::server::{Proxy, StartError};

use super::AppConfig;
use crate::{Emulator, EmulatorConfig};

/// The identity header with the signed-in user's email.
pub(crate) const EMAIL_HEADER: &str = "X-Forwarded-Email";
/// The identity header with the signed-in user's identity id.
pub(crate) const USER_HEADER: &str = "X-Forwarded-User";

/// The demo's `proxy.toml`: `/account` needs a session, `/admin` a second factor, and the app
/// gets identity headers besides the JWT. Everything else goes to the app as before (the
/// default `optional`). The flags set the rest, so only the rules are in the file, which the
/// proxy watches: edit it while the demo runs and the rules change at once.
pub const DEMO_ACCESS_RULES: &str = r#"# ory-proxy demo: access rules. Edit and save: the proxy reloads them live.
[access]
identity_headers = { "X-Forwarded-Email" = "identity.traits.email", "X-Forwarded-User" = "identity.id" }

[[access.rules]]
name = "account"
paths = ["/account", "/account/**"]
require = "session"

[[access.rules]]
name = "admin"
paths = ["/admin", "/admin/**"]
require = "aal2"
# allow_emails = ["*@example.org"] would refuse everyone here: it reads verified addresses
# only, and the emulator verifies none.
"#;

/// Where the demo listens.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// The proxy's port; `None` = its default (4000), `Some(0)` = any free port.
    pub port: Option<u16>,
    /// The proxy's `PUBLISH_URL`; `None` = its default, `http://localhost:<port>`.
    pub publish_url: Option<String>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the Ory emulator: {0}")]
    Emulator(#[source] io::Error),
    #[error("cannot start the demo app: {0}")]
    App(#[source] io::Error),
    #[error("cannot write the demo's proxy.toml: {0}")]
    Config(#[source] io::Error),
    #[error("cannot start the proxy: {0}")]
    Proxy(#[from] StartError),
}

/// A running demo. The proxy and the app run as tasks of the caller's actix `System`; the
/// emulator on its own thread.
pub struct DemoStack {
    emulator: Emulator,
    url: String,
    proxy_addr: SocketAddr,
    app_url: String,
    proxy: ServerHandle,
    proxy_task: JoinHandle<io::Result<()>>,
    app: ServerHandle,
    app_task: JoinHandle<io::Result<()>>,
    config_path: PathBuf,
    /// Holds `proxy.toml`; removed when the demo stops.
    _config_dir: tempfile::TempDir,
}

impl DemoStack {
    /// Starts the three pieces; must be called inside an actix `System` (`#[actix_web::main]`,
    /// `#[actix_web::test]`). They serve as soon as the caller awaits something.
    pub fn start(options: DemoOptions) -> Result<DemoStack, DemoError> {
        // awc's client needs a process-wide rustls provider once it meets https; the proxy's
        // binary installs it in main, the demo has no such main.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // The emulator writes its own URL everywhere, like self-hosted Kratos; the proxy
        // rewrites it onto PUBLISH_URL and turns its "welcome" redirect into PUBLISH_URL.
        let emulator = Emulator::start(EmulatorConfig::default()).map_err(DemoError::Emulator)?;
        // The app's port must be known before the proxy starts, its settings before it serves.
        let app_listener = TcpListener::bind("127.0.0.1:0").map_err(DemoError::App)?;
        let app_url = format!(
            "http://{}",
            app_listener.local_addr().map_err(DemoError::App)?
        );
        let (config_dir, config_path) = write_config().map_err(DemoError::Config)?;
        let cli = Cli {
            application_url: Some(app_url.clone()),
            publish_url: options.publish_url,
            sdk_url: Some(emulator.url().to_owned()),
            port: options.port,
            dev: true,
            config: Some(config_path.clone()),
            ..Cli::default()
        };
        // Flags only: ORY_* or PORT variables of the caller's shell must not change the demo.
        let proxy = Proxy::start(Loader::new(cli, Arc::new(|_: &str| None)))?;
        let url = proxy.settings.fixed.publish_origin.clone();
        // Like a self-hosted Kratos configured for this app: flows return to the app only.
        emulator.set_allowed_return_urls(Some(vec![format!("{url}/")]));
        let proxy_addr = proxy.addr;
        let app = super::serve(
            app_listener,
            AppConfig {
                publish_url: url.clone(),
                // The proxy listens on all interfaces; loopback always reaches it.
                ory_url: format!("http://127.0.0.1:{}/.ory", proxy_addr.port()),
                issuer: proxy.settings.live.jwt.issuer.clone(),
            },
        )
        .map_err(DemoError::App)?;
        let (app_handle, proxy_handle) = (app.handle(), proxy.handle());
        Ok(DemoStack {
            emulator,
            url,
            proxy_addr,
            app_url,
            proxy: proxy_handle,
            proxy_task: actix_rt::spawn(proxy.run()),
            app: app_handle,
            app_task: actix_rt::spawn(app),
            config_path,
            _config_dir: config_dir,
        })
    }

    /// The `proxy.toml` with the demo's access rules, watched by the proxy.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The URL to open: the proxy's `PUBLISH_URL`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy's listening address (all interfaces).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// The app's own URL, bypassing the proxy.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// The Ory emulator behind the proxy.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Serves until the proxy stops — on SIGINT or SIGTERM, which it handles like the binary —
    /// then stops the app and the emulator.
    pub async fn wait(self) -> io::Result<()> {
        let DemoStack {
            emulator,
            proxy_task,
            app,
            app_task,
            ..
        } = self;
        let proxy_result = joined(proxy_task.await);
        // The proxy is gone, so nothing reaches the app any more: stop it, then Ory.
        app.stop(true).await;
        let app_result = joined(app_task.await);
        emulator.stop();
        proxy_result.and(app_result)
    }

    /// Stops the proxy (letting in-flight requests finish), then the app and the emulator.
    pub async fn stop(self) -> io::Result<()> {
        self.proxy.stop(true).await;
        self.wait().await
    }
}

/// A private directory with `proxy.toml` holding [`DEMO_ACCESS_RULES`].
fn write_config() -> io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("ory-proxy-demo-")
        .tempdir()?;
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, DEMO_ACCESS_RULES)?;
    Ok((dir, path))
}

fn joined(r: Result<io::Result<()>, tokio::task::JoinError>) -> io::Result<()> {
    r.map_err(io::Error::other)?
}

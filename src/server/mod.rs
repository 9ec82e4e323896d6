//! Wiring: binds the socket (plain, or HTTPS with the certificate of [`crate::tls`]), builds the
//! per-worker clients and the route table, prints the banner, runs until SIGINT/SIGTERM and then
//! drains in-flight requests ([`signals`]).

pub mod access_log;
pub mod banner;
mod check_config;
mod edge;
pub mod limits;
pub mod local_routes;
mod log_fields;
pub mod log_sink;
pub mod logging;
pub mod signals;
pub mod streams;

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{guard, web, App, HttpServer};

use crate::cli::Cli;
use crate::config::{ConfigError, Fixed, LiveSettings, Loader, Settings};
use crate::keys::{KeyError, KeyHandle, KeysFile};
use crate::metrics::Metrics;
use crate::proxy::trust_store::TlsSetupError;
use crate::proxy::upstream_client;
use crate::proxy::{cors, forward, OutboundConstants, ProxyState, Upstreams};
use crate::sessions::SessionCache;
use crate::tls::pair::{self, PairError};
use crate::tls::LiveCertificate;
pub use signals::SHUTDOWN_GRACE;

/// Response write buffer per client connection, see `Proxy::start`.
const H1_WRITE_BUFFER: usize = 8 * 1024;

/// How long a client may take over its TLS handshake: as long as it has for its first request
/// head once connected. (actix-tls' default is 3 s.)
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Certificate(#[from] PairError),
    #[error("TLS: {0}")]
    ServerTls(#[from] rustls::Error),
    #[error("invalid header value derived from the configuration: {0}")]
    Header(#[from] actix_web::http::header::InvalidHeaderValue),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

impl StartError {
    /// The README's exit codes: 2 for bad input, 1 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// The route table (docs/behaviour.md, "Routing"): the proxy's own paths, then everything else to
/// the forwarder. One static resource per path: a pattern list would compile to a regex set that
/// every request is matched against.
fn routes(cfg: &mut web::ServiceConfig) {
    use local_routes::{HEALTH_ALIVE, HEALTH_READY, JWKS, JWKS_PROXY};
    cfg.service(web::resource(JWKS).to(local_routes::jwks))
        .service(web::resource(JWKS_PROXY).to(local_routes::jwks))
        // HEAD too: some load balancers probe with it.
        .service(web::resource(HEALTH_ALIVE).route(get_or_head().to(local_routes::health)))
        .service(web::resource(HEALTH_READY).route(get_or_head().to(local_routes::ready)))
        .default_service(web::to(forward::forward));
}

fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Listens on every interface, IPv6 and IPv4 alike (a dual-stack `[::]` socket), so that
/// `localhost` works whether a client resolves it to `::1` or `127.0.0.1`. Falls back to
/// IPv4 only where the host has no IPv6.
fn bind_all_interfaces(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let dual_stack = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        socket.set_only_v6(false)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    };
    match dual_stack() {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(e),
        Err(_) => TcpListener::bind(("0.0.0.0", port)),
        ok => ok,
    }
}

/// Loads the settings and binds the public port. With port 0 the settings are loaded again
/// with the port the system chose, so that `PUBLISH_URL` and everything derived from it name it.
fn bind_public(loader: &mut Loader) -> Result<(TcpListener, SocketAddr, Settings), StartError> {
    let loaded = loader.load()?;
    let port = loaded.settings.fixed.port;
    let listener = bind_all_interfaces(port).map_err(|source| StartError::Bind { port, source })?;
    let addr = listener.local_addr()?;
    let settings = if port == 0 {
        loader.set_bound_port(addr.port());
        // The text already read, not a second read: a pipe (`-c <(cat proxy.toml)`) has
        // nothing left to give.
        let text = loaded.layered.file.map(|f| f.text);
        loader.load_text(text.as_deref())?.settings
    } else {
        loaded.settings
    };
    Ok((listener, addr, settings))
}

/// What every worker shares: the settings, the session actor (and through it the key actor)
/// unless `--no-jwt`, the counters.
fn shared_state(
    fixed: Arc<Fixed>,
    live: &LiveSettings,
    metrics_addr: Option<SocketAddr>,
) -> Result<web::Data<ProxyState>, StartError> {
    let metrics = Arc::new(Metrics::default());
    let sessions = if fixed.no_jwt {
        None
    } else {
        let ttl_source = live.clone();
        let keys_file = fixed.keys_file.clone().map(|path| KeysFile {
            path,
            read_only: fixed.keys_file_read_only,
            notify: fixed.watch == crate::config::WatchMode::Auto,
        });
        let keys = KeyHandle::start(keys_file, move || ttl_source.snapshot().jwt.ttl)?;
        Some(SessionCache::start(
            live.clone(),
            keys,
            &fixed.ory_base,
            metrics.clone(),
        ))
    };
    Ok(web::Data::new(ProxyState {
        constants: OutboundConstants::new(&fixed)?,
        live: live.clone(),
        sessions,
        rewrite_budget: crate::proxy::rewrite_budget::RewriteBudget::new(
            fixed.limits.rewrite_budget,
            metrics.clone(),
        ),
        fixed,
        metrics,
        metrics_addr,
        draining: false.into(),
    }))
}

/// The listeners: the public one, HTTPS when `tls` is given; the metrics one, plain.
struct Listeners {
    public: TcpListener,
    tls: Option<rustls::ServerConfig>,
    metrics: Option<TcpListener>,
}

/// The running server on `listeners`: per worker, its own upstream clients (awc is `!Send`)
/// and the route table behind the edge layer.
fn serve(
    state: web::Data<ProxyState>,
    live: LiveSettings,
    tls: Arc<rustls::ClientConfig>,
    listeners: Listeners,
) -> std::io::Result<actix_web::dev::Server> {
    let connect_timeout = state.fixed.connect_timeout;
    let workers = limits::workers();
    let max_connections = limits::connection_cap_now(workers);
    let server = HttpServer::new(move || {
        // Runs on each worker's thread: the bound of its requests in flight (see `streams`).
        streams::set_worker_cap(max_connections);
        let upstreams = web::Data::new(Upstreams {
            app: upstream_client::build(tls.clone(), connect_timeout),
            ory: upstream_client::build(tls.clone(), connect_timeout),
        });
        // Requests with an Origin go through actix-cors; the others skip its work (and its
        // Access-Control-* headers on answers no browser will read as CORS).
        let has_origin = guard::fn_guard(|ctx| ctx.head().headers().contains_key(header::ORIGIN));
        App::new()
            .app_data(state.clone())
            .app_data(upstreams)
            .service(
                web::scope("")
                    .guard(has_origin)
                    .configure(routes)
                    .wrap(cors::actual_requests(live.clone())),
            )
            .configure(routes)
            .wrap(from_fn(edge::edge))
    })
    .workers(workers)
    // Accepted connections always have room for their upstream ones (see `limits`).
    .max_connections(max_connections)
    .tcp_nodelay(true)
    // The dispatcher appends another body piece while its buffer holds less than this, and
    // awc hands over pieces of up to 32 KiB: so a connection's buffer peaks near this plus
    // one piece. At 8 KiB instead of 16 KiB, 256 concurrent 1 MiB downloads alone peaked at
    // ~35 MiB RSS instead of ~41, with the same throughput (one write per piece either way).
    .h1_write_buffer_size(H1_WRITE_BUFFER)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    let mut server = match listeners.tls {
        Some(config) => server
            // A stalled handshake holds a connection for at most this long ...
            .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
            // ... and handshakes in progress are bounded like connections, not by actix-tls'
            // 256 per worker, which clients that connect and never say hello would fill,
            // holding up everyone's handshakes.
            .max_connection_rate(max_connections)
            .on_connect(streams::on_connect)
            .listen_rustls_0_23(listeners.public, config)?,
        None => server.listen(listeners.public)?,
    };
    if let Some(metrics) = listeners.metrics {
        server = server.listen(metrics)?;
    }
    Ok(server.run())
}

/// A bound, not yet running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The settings at start (the live part may since have been swapped in `live`).
    pub settings: Settings,
    /// The live settings the request path reads; the watcher swaps them.
    pub live: LiveSettings,
    loader: Loader,
    server: actix_web::dev::Server,
    state: web::Data<ProxyState>,
    /// The certificate served (HTTPS only), and its SHA-256 fingerprint at start.
    certificate: Option<(LiveCertificate, String)>,
}

impl Proxy {
    /// Loads the settings, binds the port and builds the server. Nothing is served until
    /// [`Proxy::run`] is awaited.
    pub fn start(mut loader: Loader) -> Result<Proxy, StartError> {
        let (listener, addr, settings) = bind_public(&mut loader)?;
        let fixed = settings.fixed.clone();
        let metrics_listener = fixed
            .metrics_listen
            .map(|addr| {
                TcpListener::bind(addr).map_err(|source| StartError::MetricsBind { addr, source })
            })
            .transpose()?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let live = LiveSettings::new(settings.live.clone());
        crate::config::apply_log_level(settings.live.log_level);
        settings.live.log_format.set_current();
        let tls = upstream_client::tls_config(fixed.ca_file.as_deref())?;
        let certificate = match &fixed.tls {
            Some(files) => {
                let p = pair::load(files)?;
                if p.key_readable_by_others {
                    pair::warn_world_readable(&files.key);
                }
                Some((LiveCertificate::new(p.certified), p.fingerprint))
            }
            None => None,
        };
        let state = shared_state(fixed, &live, metrics_addr)?;
        let listeners = Listeners {
            public: listener,
            tls: certificate
                .as_ref()
                .map(|(c, _)| c.server_config())
                .transpose()?,
            metrics: metrics_listener,
        };
        let server = serve(state.clone(), live.clone(), tls, listeners)?;
        Ok(Proxy {
            addr,
            settings,
            live,
            loader,
            server,
            state,
            certificate,
        })
    }

    /// The certificate served, `None` without `[tls]`.
    pub fn certificate(&self) -> Option<&LiveCertificate> {
        self.certificate.as_ref().map(|(c, _)| c)
    }

    /// The loader, for the watcher: reloads use the same flags and environment.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The JWT signing key id, `None` with `--no-jwt`.
    pub fn key_id(&self) -> Option<String> {
        self.state
            .sessions
            .as_ref()
            .map(|s| s.keys().ring().signing.kid.clone())
    }

    /// The counters served on the metrics listener.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Where the metrics listener is bound (`metrics_listen`, with port 0 resolved).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.state.metrics_addr
    }

    /// The session cache (and through it the key actor), `None` with `--no-jwt`.
    pub fn sessions(&self) -> Option<&SessionCache> {
        self.state.sessions.as_ref()
    }

    /// A handle to stop the server from elsewhere (tests, signals).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; SIGINT and SIGTERM stop it gracefully (see [`signals`]).
    pub async fn run(self) -> std::io::Result<()> {
        signals::on_stop_signals(self.server.handle(), self.state.clone());
        self.server.await
    }
}

fn open_browser(url: &str) {
    let cmd = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if std::process::Command::new(cmd)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_err()
    {
        // In order with the log lines, and never blocking on a stuck stderr.
        logging::print(
            "Unable to automatically open the proxy URL in your browser. Please open it manually!\n",
            logging::FLUSH_LIMIT,
        );
    }
}

/// The binary's whole life: returns the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    logging::init(cli.debug);
    // Every way out of here writes the last log lines first.
    let _flush = logging::FlushOnExit;
    limits::raise_nofile_limit();
    for warning in cli.ignored_flag_warnings() {
        log::warn!("{warning}");
    }
    // rustls panics at the first handshake unless exactly one provider is installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let check_only = cli.check_config || cli.explain.is_some();
    let explain = cli.explain.clone();
    let open = cli.open;
    let loader = Loader::from_process(cli);

    if check_only {
        return check_config::run(&loader, explain.as_deref());
    }

    let system = actix_web::rt::System::new();
    let result: Result<(), StartError> = system.block_on(async move {
        let proxy = Proxy::start(loader)?;
        // Hot reload (README, "`proxy.toml`"). Held until the server stops; dropping it stops the
        // actor. With `watch = "off"` the actor still runs, without a file watch, so SIGHUP
        // reloads.
        let _watcher = match crate::watcher::WatcherHandle::spawn(
            proxy.loader().clone(),
            &proxy.settings,
            proxy.live.clone(),
            proxy.metrics(),
        ) {
            Ok(h) => Some(h),
            Err(crate::watcher::WatchError::NoConfigFile) => None,
            Err(e) => {
                log::warn!("{e}; proxy.toml is not reloaded");
                None
            }
        };
        // The TLS certificate and key files, followed for renewals.
        let _certs = match (proxy.certificate(), &proxy.settings.fixed.tls) {
            (Some(live), Some(files)) => Some(crate::watcher::certs::CertWatcher::spawn(
                files.clone(),
                proxy.settings.fixed.watch,
                live.clone(),
            )),
            _ => None,
        };
        // Without a config file or certificate nothing owns SIGHUP; without keys nothing owns
        // SIGUSR1: their default action would kill the daemon.
        signals::ignore_unowned(
            _watcher.is_none() && _certs.is_none(),
            proxy.sessions().is_none(),
        );
        let kid = proxy.key_id();
        let facts = banner::BannerFacts {
            listen: proxy.addr,
            metrics: proxy.metrics_addr(),
            jwt: kid.as_deref(),
            config_file: proxy.loader().path(),
            certificate: proxy.certificate.as_ref().map(|(_, fp)| fp.as_str()),
        };
        let banner = match logging::LogFormat::current() {
            logging::LogFormat::Text => banner::banner(&proxy.settings, &facts),
            logging::LogFormat::Json => banner::banner_json(&proxy.settings, &facts),
        };
        logging::print(&banner, logging::FLUSH_LIMIT);
        if open {
            open_browser(&proxy.settings.fixed.publish_origin);
        }
        proxy.run().await?;
        logging::print_before_exit("ory-proxy: stopped\n");
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::print_before_exit(&format!("ory-proxy: {e}\n"));
            ExitCode::from(e.exit_code())
        }
    }
}

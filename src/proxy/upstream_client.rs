//! The awc clients that talk to the app and to Ory, built once per worker.
//!
//! awc's defaults are wrong for a proxy (stack notes §1.2): it follows redirects, decompresses,
//! caps the pool at 100 and leaves Nagle on. Each of those is switched off or raised here, and
//! TLS goes through rustls with the aws-lc-rs provider (the one the JWT signer uses too).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_service::ServiceExt as _;
use actix_tls::connect::{Connection, Connector as TcpConnector};
use awc::http::Uri;

/// Why TLS could not be set up; a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("CA file {path} holds no PEM certificate")]
    NoCertificates { path: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls client configuration, trusting the CAs that [`super::trust_store`] picks.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let roots = super::trust_store::roots(ca_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 only: awc's h2 client path has a history of reuse bugs (stack notes §1.2.11).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One pooled client. Must be built on the worker that uses it (awc is `!Send`).
/// `connect` bounds the TCP connect (DNS included) and, separately, the TLS handshake. No
/// request timeout here: awc's would include the upload; see [`super::request_body`].
pub fn build(tls: Arc<rustls::ClientConfig>, connect: Duration) -> awc::Client {
    let tcp =
        TcpConnector::default()
            .service()
            .map(|conn: Connection<Uri, actix_rt::net::TcpStream>| {
                // Without this, bodies that cross in pieces stall ~40 ms on Nagle + delayed ACK.
                let _ = conn.io_ref().set_nodelay(true);
                conn
            });
    let connector = awc::Connector::new()
        .connector(tcp)
        // Order matters: `max_http_version` replaces the TLS connector with awc's default one
        // (none with our features: "SSL is not supported"), so ours must be set after it.
        .max_http_version(awc::http::Version::HTTP_11)
        .rustls_0_23(tls)
        .limit(0)
        .timeout(connect)
        .handshake_timeout(connect)
        .conn_keep_alive(Duration::from_secs(4))
        .conn_lifetime(Duration::from_secs(75));
    awc::Client::builder()
        .wrap(super::declined_upgrade::KeepDeclinedUpgrades)
        .disable_redirects()
        .disable_timeout()
        .no_default_headers()
        .connector(connector)
        .finish()
}

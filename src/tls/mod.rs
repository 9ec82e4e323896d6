//! HTTPS on the listening port: the certificate pair read from the operator's PEM files
//! ([`pair`]) and the one that serves now ([`LiveCertificate`]).
//!
//! rustls asks [`LiveCertificate`] for the certificate at every handshake, and it answers with
//! the pair of that moment (one lock-free `ArcSwap` load). A renewal stores a new pair: new
//! handshakes get it, while a connection already set up keeps the keys it agreed on, so nothing
//! open is dropped. Only the certificate watcher ([`crate::watcher`]) stores.

pub mod pair;

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The pair served to new handshakes; clones share it.
#[derive(Clone)]
pub struct LiveCertificate(Arc<ArcSwap<CertifiedKey>>);

impl LiveCertificate {
    pub fn new(first: Arc<CertifiedKey>) -> Self {
        LiveCertificate(Arc::new(ArcSwap::new(first)))
    }

    /// Serves `next` to every handshake from now on.
    pub fn store(&self, next: Arc<CertifiedKey>) {
        self.0.store(next);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.load_full()
    }

    /// The server configuration of the listener: TLS 1.2 and 1.3 with the aws-lc-rs provider,
    /// no client certificates, the certificate from `self`. (actix-web adds the ALPN protocols,
    /// `h2` and `http/1.1`.)
    pub fn server_config(&self) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone())))
    }
}

impl std::fmt::Debug for LiveCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCertificate")
    }
}

impl ResolvesServerCert for LiveCertificate {
    /// The same pair whatever the client names (SNI): the proxy serves one site.
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

//! The proxy's HTTPS listener in tests: a throwaway CA and certificates signed by it (rcgen),
//! certificate files laid out as an operator (or Kubernetes) would, and clients that trust the
//! CA and speak HTTP/1.1 or HTTP/2.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};

use super::HTTP_DEADLINE;

/// A CA for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM text.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate (DER), upper-case hex: what the proxy logs and serves.
    pub fingerprint: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ory-proxy listener test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        TestCa {
            issuer: CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and 127.0.0.1, with `cn` to tell renewals apart.
    pub fn leaf(&self, cn: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Writes `text` to `path` with `mode`.
pub fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `tls.crt` and `tls.key` (mode 0600) in `dir`.
pub fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    write_mode(&cert, &leaf.cert_pem, 0o600);
    write_mode(&key, &leaf.key_pem, 0o600);
    (cert, key)
}

/// A Kubernetes Secret volume as the kubelet lays it out: the files in a timestamped
/// directory, `..data` a link to it, each name a link through `..data`; the volume's root is
/// 1777 and the files 0644, as with the default `defaultMode`. [`KubeMount::swap`] updates it
/// as the kubelet does: a new timestamped directory, then `..data` renamed over in one step.
pub struct KubeMount {
    pub root: PathBuf,
    generation: u32,
}

impl KubeMount {
    pub fn new(root: &Path, leaf: &Leaf) -> KubeMount {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(root).unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mut m = KubeMount {
            root: root.to_path_buf(),
            generation: 0,
        };
        m.swap(leaf);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
        m
    }

    pub fn cert(&self) -> PathBuf {
        self.root.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.root.join("tls.key")
    }

    /// Publishes `leaf` (its certificate and key) with the files' `mode`.
    pub fn swap_with_mode(&mut self, leaf: &Leaf, mode: u32) {
        self.generation += 1;
        let dir_name = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation,
            std::process::id()
        );
        let dir = self.root.join(&dir_name);
        std::fs::create_dir(&dir).unwrap();
        write_mode(&dir.join("tls.crt"), &leaf.cert_pem, mode);
        write_mode(&dir.join("tls.key"), &leaf.key_pem, mode);
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&dir_name, &tmp).unwrap();
        let old = std::fs::read_link(self.root.join("..data")).ok();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        // The kubelet then removes the old generation.
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(self.root.join(old));
        }
    }

    pub fn swap(&mut self, leaf: &Leaf) {
        self.swap_with_mode(leaf, 0o644);
    }
}

/// A rustls client configuration trusting `ca_pem`, offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// The HTTP version a test client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    V1,
    V2,
}

impl Http {
    pub const BOTH: [Http; 2] = [Http::V1, Http::V2];

    pub fn alpn(self) -> &'static [u8] {
        match self {
            Http::V1 => b"http/1.1",
            Http::V2 => b"h2",
        }
    }

    pub fn version(self) -> awc::http::Version {
        match self {
            Http::V1 => awc::http::Version::HTTP_11,
            Http::V2 => awc::http::Version::HTTP_2,
        }
    }
}

/// An awc client like [`super::client`], over TLS trusting `ca_pem`, speaking `http` only.
pub fn client(ca_pem: &str, http: Http) -> awc::Client {
    let connector = awc::Connector::new().rustls_0_23(client_config(ca_pem, &[http.alpn()]));
    awc::Client::builder()
        .disable_redirects()
        .no_default_headers()
        .timeout(HTTP_DEADLINE)
        .connector(connector)
        .finish()
}

/// The SHA-256 fingerprint of the certificate a new handshake with 127.0.0.1:`port` gets.
pub fn served_fingerprint(port: u16, ca_pem: &str) -> std::io::Result<String> {
    let config = client_config(ca_pem, &[b"http/1.1"]);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        b"GET /.ory/proxy/health/alive HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| std::io::Error::other("no certificate"))?;
    Ok(fingerprint(&leaf))
}

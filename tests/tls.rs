//! An https Ory upstream (self-hosted Kratos behind a private CA): the proxy trusts the CA named
//! by `SSL_CERT_FILE` or found in a system certificate directory (`SSL_CERT_DIR`, where
//! `update-ca-certificates` puts it), and without it refuses the upstream with a 502.

mod common;

use std::sync::Arc;

use ory_proxy::emulator::{Emulator, EmulatorConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use common::{assert_error_json, get, get_with, Proxy};

/// A fresh CA (PEM) and a server configuration with a leaf for 127.0.0.1 signed by it.
fn test_pki() -> (String, Arc<rustls::ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ory-proxy integration test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (ca.pem(), Arc::new(server))
}

fn tls_emulator(server: Arc<rustls::ServerConfig>) -> Emulator {
    let ory = Emulator::start(EmulatorConfig {
        tls: Some(server),
        ..Default::default()
    })
    .expect("https emulator");
    assert!(ory.url().starts_with("https://127.0.0.1:"), "{}", ory.url());
    ory
}

#[actix_web::test]
async fn https_ory_behind_a_private_ca_works_with_ssl_cert_file() {
    let (ca_pem, server) = test_pki();
    let ory = tls_emulator(server);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();

    let proxy = Proxy::to("http://127.0.0.1:1")
        .ory(ory.url())
        .env("SSL_CERT_FILE", ca_file.to_str().unwrap())
        .start();
    let res = get(&proxy.url("/.ory/health/alive")).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(v["status"], "ok", "{v}");
    assert!(
        ory.requests()
            .iter()
            .any(|r| r.path_and_query == "/health/alive"),
        "the emulator saw no request"
    );

    // Ory's https URLs are rewritten onto the (http) publish URL.
    let res = get_with(
        &proxy.url("/.ory/self-service/login/browser"),
        &[("Accept", "text/html")],
    )
    .await;
    assert_eq!(res.status, 303);
    let loc = res.location();
    assert!(
        loc.starts_with(&format!("{}/.ory/ui/login?flow=", proxy.default_publish())),
        "{loc}"
    );
}

#[actix_web::test]
async fn https_ory_behind_an_unknown_ca_is_a_502() {
    let (_ca_pem, server) = test_pki();
    let ory = tls_emulator(server);
    let proxy = Proxy::to("http://127.0.0.1:1").ory(ory.url()).start();
    let res = get(&proxy.url("/.ory/health/alive")).await;
    assert_eq!(res.status, 502, "{}", res.text());
    assert_error_json(&res.body, 502, "Bad Gateway");
    let text = res.text().to_lowercase();
    // The refusal is the certificate's, not a client without TLS support.
    assert!(!text.contains("ssl is not supported"), "{text}");
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "{text}"
    );
    assert!(
        ory.requests().is_empty(),
        "a request got through an untrusted TLS handshake"
    );
}

/// The CA only in a throwaway certificate directory standing in for the system's (as
/// `update-ca-certificates` leaves it: a `.pem` file, or the hashed name `openssl rehash`
/// gives), named by `SSL_CERT_DIR` among other directories: Ory is reached.
#[actix_web::test]
async fn https_ory_behind_a_ca_in_the_system_certificate_directory_works() {
    let (ca_pem, server) = test_pki();
    let ory = tls_emulator(server);
    for name in ["company-ca.pem", "5ed36f99.0"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), &ca_pem).unwrap();
        let dirs = format!("/nonexistent-ca-dir:{}", dir.path().display());
        let proxy = Proxy::to("http://127.0.0.1:1")
            .ory(ory.url())
            .env("SSL_CERT_DIR", &dirs)
            .start();
        let res = get(&proxy.url("/.ory/health/alive")).await;
        assert_eq!(res.status, 200, "{name}: {}", res.text());
        assert_eq!(res.json()["status"], "ok");
    }
}

/// A certificate directory holding another CA only: still refused.
#[actix_web::test]
async fn a_certificate_directory_without_the_ca_is_a_502() {
    let (_ca_pem, server) = test_pki();
    let (other_ca, _) = test_pki();
    let ory = tls_emulator(server);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other.pem"), other_ca).unwrap();
    let proxy = Proxy::to("http://127.0.0.1:1")
        .ory(ory.url())
        .env("SSL_CERT_DIR", dir.path().to_str().unwrap())
        .start();
    let res = get(&proxy.url("/.ory/health/alive")).await;
    assert_eq!(res.status, 502, "{}", res.text());
    assert!(ory.requests().is_empty());
}

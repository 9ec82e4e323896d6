//! Reading the listener's certificate pair: the PEM chain and its private key, through the
//! operator-file reader ([`crate::file_read::read_owned`]: regular files only, bounded, and
//! refused when someone else could have written them or could replace them in their
//! directory), checked to belong together before anything serves them.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::config::settings::TlsFiles;
use crate::file_read::{self, Accept, ReadError};

/// Why a pair cannot be served. Each names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("cannot read the TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: ReadError,
    },
    #[error("the TLS certificate file {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate(String),
    #[error("the TLS certificate file {0} is not valid PEM: {1}")]
    BadCertificate(String, String),
    #[error("the TLS key file {0} holds no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")]
    NoKey(String),
    #[error("the TLS key file {0} holds a key that cannot sign: {1}")]
    BadKey(String, String),
    #[error("the TLS key file {key} does not belong to the certificate in {cert} (the certificate names another public key)")]
    Mismatch { key: String, cert: String },
}

/// A pair that loaded: what rustls serves, and facts for the log.
pub struct Pair {
    pub certified: Arc<CertifiedKey>,
    /// SHA-256 of the server's certificate, as `openssl x509 -fingerprint -sha256` prints it
    /// (without the colons): tells the operator which certificate is being served.
    pub fingerprint: String,
    /// Any local user can read the private key (mode `o+r`): worth a warning, not a refusal
    /// (a Kubernetes Secret volume's default mode is 0644).
    pub key_readable_by_others: bool,
}

/// What a writer of either file could do, for the refusal's message.
const STAKE: &str = "serve a certificate of their choosing for the proxy's domain";

/// Reads and checks the pair (blocking: call it off the runtime once the proxy runs).
pub fn load(files: &TlsFiles) -> Result<Pair, PairError> {
    let (cert_path, key_path) = (shown(&files.cert), shown(&files.key));
    let cert_pem = read(&files.cert, "certificate file")?;
    let key_read = read(&files.key, "key file")?;
    let key_readable_by_others = crate::strict_modes::world_readable(&key_read.meta);
    // The key's PEM text is secret: wiped when dropped (the parsed key zeroizes itself).
    let key_pem = Zeroizing::new(key_read.bytes);

    let chain = CertificateDer::pem_slice_iter(&cert_pem.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PairError::BadCertificate(cert_path.clone(), e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(PairError::NoCertificate(cert_path));
    };
    let fingerprint = hex(&Sha256::digest(leaf.as_ref()));
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => return Err(PairError::NoKey(key_path)),
        Err(e) => return Err(PairError::BadKey(key_path, e.to_string())),
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => PairError::Mismatch {
            key: key_path.clone(),
            cert: cert_path.clone(),
        },
        other => PairError::BadKey(key_path.clone(), other.to_string()),
    })?;
    Ok(Pair {
        certified: Arc::new(certified),
        fingerprint,
        key_readable_by_others,
    })
}

/// Identifies a chain: the SHA-256 of its certificates, in order.
pub fn chain_id(certified: &CertifiedKey) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in &certified.cert {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c.as_ref());
    }
    h.finalize().into()
}

/// The warning for a key file that every local user can read.
pub fn warn_world_readable(key: &Path) {
    log::warn!(
        "the TLS key file {} is readable by every local user: chmod o-r it (on Kubernetes, give the Secret volume defaultMode: 0440 and the pod an fsGroup)",
        key.display()
    );
}

fn read(path: &Path, what: &'static str) -> Result<file_read::FileContent, PairError> {
    let described = format!("the TLS {what}");
    file_read::read_owned(path, Accept::Regular, &described, STAKE).map_err(|source| {
        PairError::Read {
            what,
            path: shown(path),
            source,
        }
    })
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A self-signed certificate for `localhost` and its key (PKCS#8 PEM), from `key`.
    fn cert_for(key: &rcgen::KeyPair) -> String {
        rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(key)
            .unwrap()
            .pem()
    }

    /// PEM of `der` under `label`, 64 characters a line.
    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// The content of the OCTET STRING in a PKCS#8 `PrivateKeyInfo`: the algorithm's own key
    /// structure (PKCS#1 for RSA).
    fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
        // (tag, content) of the DER element at the start of `b`, and what follows it.
        fn element(b: &[u8]) -> (u8, &[u8], &[u8]) {
            let (len, at) = match b[1] {
                n if n < 0x80 => (n as usize, 2),
                n => {
                    let k = (n & 0x7f) as usize;
                    let len = b[2..2 + k].iter().fold(0usize, |a, x| a << 8 | *x as usize);
                    (len, 2 + k)
                }
            };
            (b[0], &b[at..at + len], &b[at + len..])
        }
        let (_, info, _) = element(der);
        let (_, _, rest) = element(info); // version
        let (_, _, rest) = element(rest); // algorithm
        let (tag, key, _) = element(rest);
        assert_eq!(tag, 0x04, "an OCTET STRING");
        key.to_vec()
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn files(cert: std::path::PathBuf, key: std::path::PathBuf) -> TlsFiles {
        TlsFiles { cert, key }
    }

    #[test]
    fn pkcs8_sec1_and_rsa_keys_load_and_a_foreign_key_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = rcgen::KeyPair::generate().unwrap();
        let cert = write(d, "ec.crt", &cert_for(&ec));
        let pkcs8 = write(d, "pkcs8.key", &ec.serialize_pem());
        let pair = load(&files(cert.clone(), pkcs8)).unwrap();
        assert_eq!(pair.fingerprint.len(), 64);
        assert!(!pair.key_readable_by_others);

        use p256::pkcs8::DecodePrivateKey as _;
        let secret = p256::SecretKey::from_pkcs8_der(&ec.serialize_der()).unwrap();
        let sec1 = write(
            d,
            "sec1.key",
            &pem("EC PRIVATE KEY", &secret.to_sec1_der().unwrap()),
        );
        assert!(load(&files(cert.clone(), sec1)).is_ok());

        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let rsa_cert = write(d, "rsa.crt", &cert_for(&rsa));
        let pkcs1 = write(
            d,
            "rsa.key",
            &pem("RSA PRIVATE KEY", &pkcs8_inner(&rsa.serialize_der())),
        );
        assert!(load(&files(rsa_cert.clone(), pkcs1.clone())).is_ok());

        // One combined file (chain and key) may be named twice.
        let both = write(
            d,
            "both.pem",
            &format!("{}{}", cert_for(&ec), ec.serialize_pem()),
        );
        assert!(load(&files(both.clone(), both)).is_ok());

        let e = load(&files(cert, pkcs1)).err().unwrap();
        assert!(matches!(e, PairError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not belong"), "{e}");
    }

    #[test]
    fn empty_garbled_and_unsafe_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = rcgen::KeyPair::generate().unwrap();
        let cert = write(d, "c.crt", &cert_for(&ec));
        let key = write(d, "k.key", &ec.serialize_pem());
        let empty = write(d, "empty", "");
        let e = load(&files(empty.clone(), key.clone())).err().unwrap();
        assert!(matches!(e, PairError::NoCertificate(_)), "{e}");
        let e = load(&files(cert.clone(), empty)).err().unwrap();
        assert!(matches!(e, PairError::NoKey(_)), "{e}");
        let e = load(&files(cert.clone(), d.join("missing.key")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("missing.key"), "{e}");

        // World-writable: refused; world-readable: loads, flagged for a warning.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load(&files(cert.clone(), key.clone())).err().unwrap();
        assert!(
            e.to_string().contains("writable by group and others"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&files(cert, key)).unwrap().key_readable_by_others);
    }
}

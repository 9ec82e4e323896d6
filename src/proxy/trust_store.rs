//! Which certificate authorities the upstream client trusts, read once at start.
//!
//! 1. The system's store, as OpenSSL and Go read it: the CA bundle file (`SSL_CERT_FILE`, or
//!    the platform's, e.g. `/etc/ssl/certs/ca-certificates.crt`) plus every file in the CA
//!    directories (`SSL_CERT_DIR`, `:`-separated, or the platform's, e.g. `/etc/ssl/certs`).
//!    So a company CA installed with `update-ca-certificates` is trusted. On macOS and Windows
//!    the system keychain / certificate store instead (unless one of the variables is set).
//! 2. Only when that yields no certificate at all (an image without a CA bundle, such as a
//!    `FROM scratch` container): the Mozilla roots compiled into the binary.
//! 3. On top of either: `ca_file` from proxy.toml, strictly (unreadable or empty = start-up
//!    error, where a broken system store only logs a warning).

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::{pem::PemObject, CertificateDer};

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

/// Where the roots came from, for the start-up log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The system store gave this many certificates.
    System(usize),
    /// The system store was empty: the Mozilla roots compiled in.
    Bundled,
}

/// The roots for the upstream client: system (or bundled) plus `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let (mut roots, base) = base_roots(system_certs());
    match base {
        Base::System(n) => log::debug!("TLS: trusting {n} CA certificates from the system store"),
        Base::Bundled => log::info!(
            "TLS: no CA certificates in the system store; trusting the Mozilla roots built into ory-proxy"
        ),
    }
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    Ok(roots)
}

/// The system certificates, or the bundled roots when there are none.
pub fn base_roots(system: Vec<CertificateDer<'static>>) -> (RootCertStore, Base) {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(system);
    if ignored > 0 {
        log::debug!("TLS: ignored {ignored} unparsable certificates in the system store");
    }
    if added > 0 {
        return (roots, Base::System(added));
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    (roots, Base::Bundled)
}

/// The most read of `ca_file`: a system bundle with every public root is about 200 KiB.
const CA_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Appends every PEM certificate of `path`; none, or an unreadable file, is an error.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let shown = path.display().to_string();
    let ca_error = |e: rustls_pki_types::pem::Error| TlsSetupError::CaFile {
        path: shown.clone(),
        message: e.to_string(),
    };
    // Read like the other operator files: regular files only, bounded, `open` never blocks.
    let bytes = crate::file_read::read(path, CA_FILE_MAX_BYTES, crate::file_read::Accept::Regular)
        .map_err(|e| TlsSetupError::CaFile {
            path: shown.clone(),
            message: e.to_string(),
        })?
        .bytes;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        roots.add(cert.map_err(ca_error)?)?;
        added += 1;
    }
    if added == 0 {
        return Err(TlsSetupError::NoCertificates { path: shown });
    }
    Ok(())
}

/// The OpenSSL/Go locations: the variable when set and not empty, else the platform default.
#[derive(Debug, PartialEq, Eq)]
pub struct Locations {
    pub file: Option<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl Locations {
    /// `env` answers for `SSL_CERT_FILE` and `SSL_CERT_DIR`; `default_file`/`default_dirs` are
    /// the platform's, used only for a variable that is unset or empty.
    pub fn resolve(
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
        default_file: impl FnOnce() -> Option<PathBuf>,
        default_dirs: impl FnOnce() -> Vec<PathBuf>,
    ) -> Locations {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let file = match set("SSL_CERT_FILE") {
            Some(f) => Some(PathBuf::from(f)),
            None => default_file(),
        };
        let dirs = match set("SSL_CERT_DIR") {
            Some(d) => std::env::split_paths(&d)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => default_dirs(),
        };
        Locations { file, dirs }
    }

    /// Reads them; what cannot be read is logged and skipped.
    pub fn load(&self) -> Vec<CertificateDer<'static>> {
        // One call reads the file and the first directory, so that the bundle's usual link
        // inside that directory is read once.
        let mut dirs = self.dirs.iter().map(|d| Some(d.as_path()));
        let first = (self.file.as_deref(), dirs.next().flatten());
        let mut certs = Vec::new();
        for (file, dir) in std::iter::once(first).chain(dirs.map(|d| (None, d))) {
            if file.is_none() && dir.is_none() {
                continue;
            }
            let mut found = rustls_native_certs::load_certs_from_paths(file, dir);
            certs.append(&mut found.certs);
            warn_about(&found.errors);
        }
        certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        certs.dedup();
        certs
    }
}

fn warn_about(errors: &[rustls_native_certs::Error]) {
    for e in errors {
        log::warn!("TLS: system trust store: {e}");
    }
}

/// Linux and the other Unixes: the file and the directories, as OpenSSL and Go find them.
#[cfg(all(unix, not(target_os = "macos")))]
fn system_certs() -> Vec<CertificateDer<'static>> {
    Locations::resolve(
        |name| std::env::var_os(name),
        // With SSL_CERT_FILE unset, probe() gives the first platform bundle that exists.
        || openssl_probe::probe().cert_file,
        || {
            openssl_probe::candidate_cert_dirs()
                .map(Path::to_path_buf)
                .collect()
        },
    )
    .load()
}

/// macOS and Windows: the system's own store (or the variables, when set).
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn system_certs() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    warn_about(&found.errors);
    found.certs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn defaults(vars: &[(&str, &str)]) -> Locations {
        Locations::resolve(
            env(vars),
            || Some(PathBuf::from("/default/bundle.crt")),
            || vec![PathBuf::from("/default/certs")],
        )
    }

    #[test]
    fn each_variable_replaces_only_its_own_default() {
        assert_eq!(
            defaults(&[]),
            Locations {
                file: Some("/default/bundle.crt".into()),
                dirs: vec!["/default/certs".into()],
            }
        );
        // As in OpenSSL and Go: SSL_CERT_DIR replaces the directories, the bundle stays.
        assert_eq!(
            defaults(&[("SSL_CERT_DIR", "/a::/b")]),
            Locations {
                file: Some("/default/bundle.crt".into()),
                dirs: vec!["/a".into(), "/b".into()],
            }
        );
        assert_eq!(
            defaults(&[("SSL_CERT_FILE", "/mine.pem"), ("SSL_CERT_DIR", "")]),
            Locations {
                file: Some("/mine.pem".into()),
                dirs: vec!["/default/certs".into()],
            }
        );
    }

    #[test]
    fn an_empty_system_store_falls_back_to_the_bundled_roots() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Locations {
            file: None,
            dirs: vec![dir.path().to_path_buf()],
        };
        let (roots, base) = base_roots(empty.load());
        assert_eq!(base, Base::Bundled);
        assert_eq!(roots.len(), webpki_roots::TLS_SERVER_ROOTS.len());

        // A missing directory is skipped, not fatal.
        let missing = Locations {
            file: None,
            dirs: vec![dir.path().join("nope")],
        };
        assert!(missing.load().is_empty());
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut roots = RootCertStore::empty();
        assert!(matches!(
            add_ca_file(&mut roots, &path),
            Err(TlsSetupError::NoCertificates { .. })
        ));
        assert!(matches!(
            add_ca_file(&mut roots, &dir.path().join("missing.pem")),
            Err(TlsSetupError::CaFile { .. })
        ));
    }
}

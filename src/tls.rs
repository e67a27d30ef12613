//! TLS client settings: rustls with the `ring` provider only (mixing
//! providers panics at run time), the system's trust anchors, plus an
//! optional operator-supplied CA file for private mail servers.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, pem::PemObject};

fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// Reads every certificate in a PEM file; a file with none is an error
/// (an empty trust anchor list would only fail later, more obscurely).
pub fn read_pem_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading CA file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing CA file {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "CA file {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

/// A client configuration trusting the system roots and `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_pem_certificates(path)? {
            roots
                .add(cert)
                .with_context(|| format!("adding a certificate from {}", path.display()))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

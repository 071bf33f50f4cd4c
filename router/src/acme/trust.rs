//! Checks on a chain the CA gave us: it parses, names the host, and verifies to a root we
//! trust. A stored certificate that stops verifying (a test CA restarted with a new root, a
//! CA distrusted) is renewed instead of served until it expires.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Validity and ARI identity of a leaf.
#[derive(Debug, Clone)]
pub struct LeafInfo {
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

/// The certificates of a PEM chain, leaf first.
pub fn chain_ders(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect();
    let certs = certs.map_err(|e| format!("chain is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("chain holds no certificate".into());
    }
    Ok(certs)
}

/// The leaf's validity.
pub fn leaf_info(leaf: &CertificateDer<'_>) -> Result<LeafInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("leaf does not parse: {e}"))?;
    let v = cert.validity();
    let at = |t: x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0).ok_or("validity out of range")
    };
    Ok(LeafInfo {
        not_before: at(v.not_before)?,
        not_after: at(v.not_after)?,
    })
}

/// The roots issued chains must verify to: the file's when configured (re-read on every
/// call, so a replaced root is noticed), else the system's.
pub fn trusted_roots(file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    match file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in super::client::read_pem_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(roots)
        }
        None => super::client::client_roots(None),
    }
}

/// Whether `chain` is valid now for `name` and verifies to one of `roots`.
pub fn verifies(
    chain: &[CertificateDer<'static>],
    name: &str,
    roots: &rustls::RootCertStore,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider)
        .build()
        .map_err(|e| format!("no usable roots: {e}"))?;
    // A wildcard certificate is checked with a name it covers.
    let host = match name.strip_prefix("*.") {
        Some(base) => format!("wildcard-check.{base}"),
        None => name.to_owned(),
    };
    let server = ServerName::try_from(host).map_err(|e| format!("{name}: {e}"))?;
    let (leaf, rest) = chain.split_first().ok_or("empty chain")?;
    verifier
        .verify_server_cert(leaf, rest, &server, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

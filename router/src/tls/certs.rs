//! Turning PEM into what rustls serves: stored certificates, operator files and the fallback.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tenant_config::certs::StoredCert;

/// A certificate ready to serve, with the names it was stored or found under.
pub struct Loaded {
    /// The chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// End of validity (Unix seconds), for the expiry gauge.
    pub not_after: i64,
}

/// Builds a [`CertifiedKey`] from a chain and key, checking that they belong together.
pub fn certified(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    if chain.is_empty() {
        return Err("no certificate in the chain".into());
    }
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| format!("certificate and key do not match: {e}"))?;
    Ok(Arc::new(ck))
}

/// Parses a stored certificate (chain PEM, opened key PEM).
pub fn from_stored(provider: &CryptoProvider, c: &StoredCert) -> Result<Loaded, String> {
    let chain = CertificateDer::pem_slice_iter(c.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    Ok(Loaded {
        key: certified(provider, chain, key)?,
        not_after: c.not_after.timestamp(),
    })
}

/// The DNS names (lower case) in a leaf certificate's subjectAltName, and its end of
/// validity. Used for operator certificates, whose names come from the certificate itself.
pub fn names_and_expiry(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// A self-signed ECDSA P-256 certificate made at start, served when nothing else matches, so
/// an unknown name gets a handshake that fails verification instead of a connection reset.
pub fn self_signed_fallback(provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let made = rcgen::generate_simple_self_signed(vec!["fallback.invalid".to_owned()])
        .map_err(|e| format!("fallback certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    certified(provider, vec![made.cert.der().clone()], key)
}

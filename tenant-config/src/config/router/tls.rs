//! The `[tls]` table: the key that seals private keys at rest, operator certificates from
//! files, session-ticket rotation and the public HTTPS port redirects point at. The listening
//! address itself is `listen.https`.

use std::net::SocketAddr;
use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::certs::SealKey;

/// The field named in errors about the sealing key.
pub const KEY_FIELD: &str = "tls.encryption_key (CERT_ENCRYPTION_KEY)";

/// The `[tls]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// AES-256-GCM key sealing private keys, ACME credentials and ticket keys in PostgreSQL:
    /// 32 bytes as 64 hex digits or base64 (`CERT_ENCRYPTION_KEY`, or a file named by
    /// `CERT_ENCRYPTION_KEY_FILE`). Required with `listen.https` and a database.
    pub encryption_key: Option<Secret>,
    /// Port in the `Location` of HTTP → HTTPS redirects (`ROUTER_PUBLIC_HTTPS_PORT`): what
    /// clients reach, which behind a balancer or in the local stack differs from the socket.
    pub public_https_port: u16,
    /// Certificates bought or made by the operator (a wildcard for the base domain, say),
    /// served for the names in their subjectAltName; a stored ACME certificate for the exact
    /// name wins over an operator wildcard.
    pub operator_certificates: Vec<CertificateFiles>,
    /// Served when no certificate matches the name (or no name is sent). Without it the router
    /// makes a self-signed ECDSA P-256 certificate at start.
    pub fallback_certificate: Option<CertificateFiles>,
    /// Seconds a session-ticket key encrypts before the next one takes over.
    pub ticket_rotation_secs: u64,
    /// Seconds a ticket stays acceptable after its key stopped encrypting.
    pub ticket_lifetime_secs: u64,
    /// Longest TLS handshake, in milliseconds; slower clients are disconnected.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            encryption_key: None,
            public_https_port: 443,
            operator_certificates: Vec::new(),
            fallback_certificate: None,
            ticket_rotation_secs: 12 * 3600,
            ticket_lifetime_secs: 12 * 3600,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// Leaf first, then intermediates.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

impl CertificateFiles {
    /// Reads both files: the chain (at least one certificate) and the key.
    pub fn read(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let chain: Vec<_> = CertificateDer::pem_file_iter(&self.cert_file)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", self.cert_file.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate", self.cert_file.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| format!("{}: {e}", self.key_file.display()))?;
        Ok((chain, key))
    }
}

impl TlsConfig {
    /// The sealing key, when configured. A malformed key is an error naming the field.
    pub fn seal_key(&self) -> Result<Option<SealKey>, ConfigError> {
        match &self.encryption_key {
            None => Ok(None),
            Some(s) => SealKey::parse(s.expose())
                .map(Some)
                .map_err(|e| ConfigError::invalid(KEY_FIELD, e.to_string())),
        }
    }

    /// Checks the table against the listener and database settings.
    pub fn validate(&self, https: Option<SocketAddr>, database: bool) -> Result<(), ConfigError> {
        let key = self.seal_key()?;
        if https.is_some() && database && key.is_none() {
            return Err(ConfigError::invalid(
                KEY_FIELD,
                "is required with listen.https and a database (32 bytes, hex or base64; \
                 `openssl rand -hex 32` makes one)",
            ));
        }
        if self.public_https_port == 0 {
            return Err(ConfigError::invalid(
                "tls.public_https_port",
                "must be between 1 and 65535",
            ));
        }
        let day = 24 * 3600;
        for (field, v) in [
            ("tls.ticket_rotation_secs", self.ticket_rotation_secs),
            ("tls.ticket_lifetime_secs", self.ticket_lifetime_secs),
        ] {
            if !(300..=7 * day).contains(&v) {
                return Err(ConfigError::invalid(
                    field,
                    "must be between 300 and 604800 seconds",
                ));
            }
        }
        if !(100..=120_000).contains(&self.handshake_timeout_ms) {
            return Err(ConfigError::invalid(
                "tls.handshake_timeout_ms",
                "must be between 100 and 120000",
            ));
        }
        for c in &self.operator_certificates {
            c.read()
                .map_err(|e| ConfigError::invalid("tls.operator_certificates", e))?;
        }
        if let Some(c) = &self.fallback_certificate {
            c.read()
                .map_err(|e| ConfigError::invalid("tls.fallback_certificate", e))?;
        }
        Ok(())
    }
}

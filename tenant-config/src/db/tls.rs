//! TLS to PostgreSQL, with libpq's `sslmode` meanings, for every connection we make (the pool,
//! the migrator, LISTEN sessions, the workers' dedicated sessions).
//!
//! tokio-postgres 0.7 understands only `disable`, `prefer` and `require` and refuses
//! `verify-ca`, `verify-full` and `sslrootcert` in a URL, so [`PgTarget::parse`] takes those
//! out of the URL itself and hands the rest on:
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | if the server offers it | no | no |
//! | `require` | yes | no (yes with `sslrootcert`, as libpq) | no |
//! | `verify-ca` | yes | against the roots | no |
//! | `verify-full` | yes | against the roots | yes |
//!
//! Roots are the system's plus, when given, the `sslrootcert` file (e.g. Amazon RDS's bundle).
//! `verify-full` is what a deployment on a managed database should use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified.
    Prefer,
    /// TLS always, unverified (verified against `sslrootcert` when one is given).
    Require,
    /// TLS, certificate chain verified, any host name.
    VerifyCa,
    /// TLS, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// A database URL split into what tokio-postgres reads and how we secure the connection.
#[derive(Clone)]
pub struct PgTarget {
    /// Connection settings (host, user, database, …) with tokio-postgres's own `sslmode`.
    pub config: tokio_postgres::Config,
    /// The TLS connector (used only when the mode asks for TLS).
    pub tls: MakeRustlsConnect,
    /// The mode as given.
    pub mode: SslMode,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses a `postgres://` URL (or key=value string) with libpq's TLS parameters. Errors name
    /// the problem in one line and never echo the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, mode, root) = split_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| format!("the URL does not parse: {e}"))?;
        config.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        let tls = MakeRustlsConnect::new(client_config(mode, root.as_deref())?);
        Ok(Self { config, tls, mode })
    }
}

/// Removes `sslmode` and `sslrootcert` from the query string of a URL.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<PathBuf>), String> {
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), mode, root));
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "sslmode" => mode = SslMode::parse(&v)?,
            "sslrootcert" => root = Some(PathBuf::from(&*v)),
            _ => {
                kept.append_pair(&k, &v);
                any = true;
            }
        }
    }
    let rest = if any {
        format!("{base}?{}", kept.finish())
    } else {
        base.to_owned()
    };
    Ok((rest, mode, root))
}

/// The system's roots plus those in `extra` (PEM).
pub fn root_store(extra: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        let pem =
            std::fs::read(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: CertificateDer<'static> =
                cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "sslrootcert {}: no certificate in it",
                path.display()
            ));
        }
    }
    Ok(roots)
}

/// Installs aws-lc-rs as the process's rustls provider (the router's too), first thing in
/// `main`; a second call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

fn client_config(mode: SslMode, root: Option<&Path>) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let verify = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => root.is_some(),
        SslMode::Disable | SslMode::Prefer => false,
    };
    let config = if verify {
        let roots = Arc::new(root_store(root)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| format!("TLS roots: {e}"))?;
        if mode == SslMode::VerifyFull {
            builder
                .with_root_certificates(root_store(root)?)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                .with_no_client_auth()
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth()
    };
    Ok(config)
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without roots: encrypted, not authenticated (libpq's meaning). The
/// handshake signatures are still checked, so the session is bound to the presented key.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u:p@db.example:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/app?application_name=x"
        );
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.unwrap(), PathBuf::from("/etc/rds.pem"));
        let (rest, mode, root) = split_tls_params("postgres://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgres://h/db", SslMode::Prefer, None)
        );
        let err = split_tls_params("postgres://h/db?sslmode=sometimes").unwrap_err();
        assert!(err.contains("sslmode \"sometimes\""), "{err}");
        assert!(PgTarget::parse("postgres://h/db?sslmode=require").is_ok());
        let missing =
            PgTarget::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem")
                .unwrap_err();
        assert!(
            missing.starts_with("sslrootcert /nonexistent.pem"),
            "{missing}"
        );
        assert!(!missing.contains("postgres://"));
    }
}

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
//! Roots are the system's plus, when given, the `sslrootcert` file (e.g. Amazon RDS's bundle);
//! `sslrootcert=system` (libpq 16) means the system's roots alone and makes `verify-full` the
//! default. Without `sslmode` in the URL the `PGSSLMODE` variable applies, as with libpq.
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
    /// Parses a `postgres://` URL (or key=value string) with libpq's TLS parameters
    /// (`sslmode`, else the `PGSSLMODE` variable; `sslrootcert`, a file or `system`). Errors
    /// name the problem in one line and never echo the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let env_mode = std::env::var("PGSSLMODE").ok();
        let (rest, mode, root) = split_tls_params(url, env_mode.as_deref())?;
        let root = match root {
            RootCert::File(path) => Some(path),
            RootCert::Unset | RootCert::System => None,
        };
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

/// Where the roots for a verified connection come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootCert {
    /// Not given: the system's roots when the mode verifies.
    Unset,
    /// `sslrootcert=system` (libpq 16): the system's roots, and `verify-full` by default.
    System,
    /// A PEM file whose CAs are trusted besides the system's.
    File(PathBuf),
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query and leaves every other pair exactly as
/// written (`options=-c%20search_path%3Dapp` must reach tokio-postgres with its `%20`, not
/// re-encoded as `+`, which tokio-postgres does not decode). Without `sslmode` in the URL,
/// `env_mode` (the `PGSSLMODE` variable, as libpq) applies; with neither, `prefer`, or
/// `verify-full` for `sslrootcert=system` (which, as in libpq, refuses weaker modes).
fn split_tls_params(
    url: &str,
    env_mode: Option<&str>,
) -> Result<(String, SslMode, RootCert), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "a URL parameter is not UTF-8 once decoded".to_owned())
    };
    let mut url_mode = None;
    let mut root = RootCert::Unset;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(k).ok().as_deref() {
            Some("sslmode") => url_mode = Some(SslMode::parse(&decode(v)?)?),
            Some("sslrootcert") => {
                root = match decode(v)?.as_str() {
                    "system" => RootCert::System,
                    path => RootCert::File(PathBuf::from(path)),
                }
            }
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let mode = match (url_mode, env_mode) {
        (Some(m), _) => m,
        (None, Some(m)) => SslMode::parse(m).map_err(|e| format!("PGSSLMODE: {e}"))?,
        (None, None) if root == RootCert::System => SslMode::VerifyFull,
        (None, None) => SslMode::Prefer,
    };
    if root == RootCert::System && mode != SslMode::VerifyFull {
        return Err(
            "sslrootcert=system needs sslmode=verify-full (the system's roots prove only a \
             checked host name)"
                .into(),
        );
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
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
        let (_, certs) = read_ca_file("sslrootcert", path)?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// Reads a PEM bundle of CA certificates: its bytes and the certificates in it. A file with no
/// PEM certificate (empty, or DER, which looks like a certificate but parses to nothing) is an
/// error here, in one line naming `field` and the path, rather than an empty trust store that
/// fails every connection later.
pub fn read_ca_file(
    field: &str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{field} {shown}: {e}"))?;
    let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
        .collect::<Result<Vec<CertificateDer<'static>>, _>>()
        .map_err(|e| format!("{field} {shown}: not a PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{field} {shown}: no PEM certificate in it (a DER file converts with \
             `openssl x509 -inform der -in ca.der -out ca.pem`)"
        ));
    }
    Ok((pem, certs))
}

/// The CA bundle to hand the redis crate for `url`: `None` without `ca_file`, the file's PEM
/// when it holds at least one certificate. A `ca_file` with a plain `redis://` URL is refused:
/// it would be ignored, and whoever set it expects TLS. Used by the platform and the router so
/// both accept the same settings and `check-config` finds what start would.
pub fn redis_ca(url: &str, ca_file: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = ca_file else {
        return Ok(None);
    };
    if !url.starts_with("rediss://") {
        return Err(
            "redis.ca_file: only used with a rediss:// (TLS) URL; redis.url is plain redis://"
                .into(),
        );
    }
    read_ca_file("redis.ca_file", Path::new(path)).map(|(pem, _)| Some(pem))
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
            None,
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/app?application_name=x"
        );
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root, RootCert::File(PathBuf::from("/etc/rds.pem")));
        let (rest, mode, root) = split_tls_params("postgres://h/db", None).unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgres://h/db", SslMode::Prefer, RootCert::Unset)
        );
        let err = split_tls_params("postgres://h/db?sslmode=sometimes", None).unwrap_err();
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

    /// The other parameters reach tokio-postgres byte for byte: a `%20` stays `%20` (a `+`, as
    /// form encoding would write it, is not a space to tokio-postgres).
    #[test]
    fn other_parameters_are_kept_as_written() {
        let (rest, mode, _) = split_tls_params(
            "postgres://h/db?options=-c%20search_path%3Dapp&sslmode=require&application_name=a+b%2Bc",
            None,
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://h/db?options=-c%20search_path%3Dapp&application_name=a+b%2Bc"
        );
        assert_eq!(mode, SslMode::Require);
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_options(), Some("-c search_path=app"));
    }

    #[test]
    fn system_roots_and_pgsslmode() {
        // libpq 16: `sslrootcert=system` means the system's roots and verify-full.
        let (_, mode, root) = split_tls_params("postgres://h/db?sslrootcert=system", None).unwrap();
        assert_eq!((mode, root), (SslMode::VerifyFull, RootCert::System));
        let weak = split_tls_params("postgres://h/db?sslrootcert=system&sslmode=require", None)
            .unwrap_err();
        assert!(weak.contains("verify-full"), "{weak}");
        assert!(PgTarget::parse("postgres://h/db?sslrootcert=system").is_ok());
        // PGSSLMODE applies when the URL has no sslmode, and never over it.
        let (_, mode, _) = split_tls_params("postgres://h/db", Some("verify-ca")).unwrap();
        assert_eq!(mode, SslMode::VerifyCa);
        let (_, mode, _) =
            split_tls_params("postgres://h/db?sslmode=disable", Some("verify-full")).unwrap();
        assert_eq!(mode, SslMode::Disable);
        let bad = split_tls_params("postgres://h/db", Some("sometimes")).unwrap_err();
        assert!(bad.starts_with("PGSSLMODE: "), "{bad}");
    }
}

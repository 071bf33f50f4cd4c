//! `router check-config`: builds what `serve` builds from the configuration, with the same
//! constructors, and throws it away, so that a configuration that passes the check also
//! starts.
//!
//! Loading the configuration already validated every field (ranges, upstream address syntax,
//! the DNS server address). What only a constructor can find out is checked here: the upstream
//! pools and their DNS resolver (the system resolv.conf must be readable when a pool has a
//! name), the security-header values, the rate limiter and its Redis target (URL, TLS, CA
//! file), and with `listen.https` the operator and fallback certificates as the TLS listener
//! loads them (a DNS name present, the key matching the certificate and of a supported type;
//! the files themselves and the sealing key are read by configuration validation). Nothing is
//! connected to: the check must work on a build machine.

use tenant_config::config::RouterConfig;

use crate::headers::HeaderPolicy;
use crate::limits::Limiter;
use crate::tls::certs;
use crate::upstream::Pool;

/// Runs the start-up constructors on `config`; the error is one line naming the field.
pub fn check(config: &RouterConfig) -> Result<(), String> {
    // Some clients (Redis's connection manager) want a runtime to exist when built, as the
    // helper runtime does at start.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let _guard = rt.enter();
    config.domain.rules().map_err(|e| e.to_string())?;
    let u = &config.upstreams;
    Pool::new("platform", &u.platform, u)?;
    Pool::new("workers", &u.workers, u)?;
    HeaderPolicy::from_config(config).map_err(|e| format!("security_headers: {e}"))?;
    Limiter::new(&config.rate_limits, config.redis.as_ref())?;
    if config.listen.https.is_some() {
        certificates(config)?;
    }
    Ok(())
}

/// The certificate checks `tls::start` makes before it touches the database.
fn certificates(config: &RouterConfig) -> Result<(), String> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    for files in &config.tls.operator_certificates {
        let shown = files.cert_file.display();
        let (chain, key) = files.read()?;
        let leaf = chain
            .first()
            .ok_or_else(|| format!("tls.operator_certificates: {shown}: no certificate"))?;
        let (names, _) = certs::names_and_expiry(leaf)
            .map_err(|e| format!("tls.operator_certificates: {shown}: {e}"))?;
        if names.is_empty() {
            return Err(format!(
                "tls.operator_certificates: {shown} names no DNS subjectAltName"
            ));
        }
        certs::certified(&provider, chain, key)
            .map_err(|e| format!("tls.operator_certificates: {shown}: {e}"))?;
    }
    if let Some(files) = &config.tls.fallback_certificate {
        let (chain, key) = files.read()?;
        certs::certified(&provider, chain, key)
            .map_err(|e| format!("tls.fallback_certificate: {e}"))?;
    }
    Ok(())
}

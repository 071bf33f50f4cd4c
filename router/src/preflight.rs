//! `router check-config`: builds what `serve` builds from the configuration, with the same
//! constructors, and throws it away, so that a configuration that passes the check also
//! starts.
//!
//! Loading the configuration already validated every field (ranges, upstream address syntax,
//! the DNS server address). What only a constructor can find out is checked here: the upstream
//! pools and their DNS resolver (the system resolv.conf must be readable when a pool has a
//! name), the security-header values, the rate limiter and its Redis target (URL, TLS, CA
//! file). Nothing is connected to: the check must work on a build machine.

use tenant_config::config::RouterConfig;

use crate::headers::HeaderPolicy;
use crate::limits::Limiter;
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
    Ok(())
}

//! The router's configuration.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    check_listen, check_secret, var, ConfigError, ConfigFile, DatabaseConfig, DomainConfig,
    EnvKind, EnvVar, LogConfig, Secret, DATABASE_ENV,
};

/// Everything the `router` binary reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Base domain, admin host and custom-domain switches.
    #[serde(default)]
    pub domain: DomainConfig,
    /// Tenant lookups; optional when `static_tenants` is set.
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    /// A TOML file of tenants to serve without a database (demo, edge tests).
    #[serde(default)]
    pub static_tenants: Option<PathBuf>,
    /// Listening sockets.
    #[serde(default)]
    pub listen: RouterListen,
    /// Upstream pools.
    #[serde(default)]
    pub upstreams: Upstreams,
    /// Signing of the tenant context sent upstream.
    pub edge: EdgeSignConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// The router's listening sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterListen {
    /// Plain-HTTP listener (redirects and ACME HTTP-01 in production).
    pub http: String,
    /// Prometheus metrics, on its own socket so it is never exposed through the proxy.
    pub metrics: String,
}

impl Default for RouterListen {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:8000".into(),
            metrics: "127.0.0.1:9100".into(),
        }
    }
}

/// Upstream instances, as `host:port`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// Platform instances (`UPSTREAM_PLATFORM`, comma-separated).
    pub platform: Vec<String>,
    /// Workers instances serving `/api/cron/*` (`UPSTREAM_WORKERS`).
    pub workers: Vec<String>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            platform: vec!["127.0.0.1:8080".into()],
            workers: vec!["127.0.0.1:8090".into()],
        }
    }
}

/// Key for the `x-edge-signature` header the platform verifies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSignConfig {
    /// Shared HMAC-SHA256 secret (`EDGE_SIGNING_SECRET`), at least 32 characters.
    pub signing_secret: Secret,
}

impl ConfigFile for RouterConfig {
    const ENV: &'static [EnvVar] = &[
        DATABASE_ENV[0],
        DATABASE_ENV[1],
        DATABASE_ENV[2],
        var("ROUTER_STATIC_TENANTS", "static_tenants", EnvKind::Str),
        var("ROUTER_HTTP_LISTEN", "listen.http", EnvKind::Str),
        var("ROUTER_METRICS_LISTEN", "listen.metrics", EnvKind::Str),
        var("UPSTREAM_PLATFORM", "upstreams.platform", EnvKind::List),
        var("UPSTREAM_WORKERS", "upstreams.workers", EnvKind::List),
        var("EDGE_SIGNING_SECRET", "edge.signing_secret", EnvKind::Str),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        self.domain.rules()?;
        if let Some(db) = &self.database {
            db.validate()?;
        }
        if self.database.is_none() && self.static_tenants.is_none() {
            return Err(ConfigError::invalid(
                "database",
                "either database.url or static_tenants is required to resolve tenants",
            ));
        }
        check_listen("listen.http", &self.listen.http)?;
        check_listen("listen.metrics", &self.listen.metrics)?;
        if self.upstreams.platform.is_empty() {
            return Err(ConfigError::invalid(
                "upstreams.platform",
                "at least one platform instance is required",
            ));
        }
        for u in &self.upstreams.platform {
            check_listen("upstreams.platform", u)?;
        }
        for u in &self.upstreams.workers {
            check_listen("upstreams.workers", u)?;
        }
        check_secret("edge.signing_secret", &self.edge.signing_secret, 32)
    }
}

//! The router's configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

mod acme;
mod client_limits;
mod rate_limits;
mod tls;
mod upstream;

use super::{
    check_secret, var, ConfigError, ConfigFile, DatabaseConfig, DomainConfig, EnvKind, EnvVar,
    LogConfig, RedisConfig, Secret, DATABASE_ENV,
};
pub use acme::{
    AcmeConfig, Dns01Config, ExternalAccountBinding, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING,
};
pub use client_limits::ClientLimits;
pub use rate_limits::{HostClass, LimitKey, LimitZone, PlanLimit, Rate, RateLimits};
pub use tls::{CertificateFiles, TlsConfig};
pub use upstream::UpstreamAddr;

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
    /// Tenant cache.
    #[serde(default)]
    pub cache: TenantCacheConfig,
    /// Peers whose `X-Forwarded-*` headers are believed (a load balancer in front of us), as
    /// addresses or CIDR blocks (`ROUTER_TRUSTED_PROXIES`). Everyone else's are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Response headers added to every answer.
    #[serde(default)]
    pub security_headers: SecurityHeaders,
    /// `Cache-Control` set by path prefix (first match wins).
    #[serde(default = "default_cache_rules")]
    pub cache_control: Vec<CacheRule>,
    /// gzip/brotli compression of text responses.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// Threads, shutdown and upgrade.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// One JSON access-log line per request.
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Redis holding the shared rate-limit state (`REDIS_URL`, `REDIS_CA_FILE`). Without it
    /// every instance limits on its own (`rate_limits.instances` divides the limits).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// nginx `limit_req` zones, per-plan tenant limits and the Redis time budget.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Request-head size limits, client deadlines, pipelining and the per-address connection
    /// cap.
    #[serde(default)]
    pub client_limits: ClientLimits,
    /// ACME issuance and renewal of custom-domain certificates (off by default).
    #[serde(default)]
    pub acme: AcmeConfig,
    /// TLS: the key sealing private keys at rest, operator certificates, session tickets.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

fn yes() -> bool {
    true
}

/// The router's listening sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterListen {
    /// Plain-HTTP listener (`ROUTER_HTTP_LISTEN`).
    pub http: SocketAddr,
    /// TLS listener (`ROUTER_HTTPS_LISTEN`), HTTP/2 and HTTP/1.1 by ALPN; off when unset.
    pub https: Option<SocketAddr>,
    /// Answer plain HTTP with a `308` to HTTPS (except ACME challenges and the health path).
    /// Off until a TLS listener is configured; on in production.
    pub redirect_http_to_https: bool,
    /// The private operator listener: `/metrics`, `/ready` and the full `/health`, on their own
    /// socket so they are never exposed through the proxy (`ROUTER_OPERATOR_LISTEN`, or the
    /// older `ROUTER_METRICS_LISTEN`; `listen.operator` in a file). Loopback by default; never a
    /// public listener's port.
    #[serde(alias = "operator")]
    pub metrics: SocketAddr,
}

impl Default for RouterListen {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8000)),
            https: None,
            redirect_http_to_https: false,
            metrics: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

/// Upstream pools and how they are checked and used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// Platform instances, `ip:port` or `name:port` (`UPSTREAM_PLATFORM`, comma-separated). A
    /// name stands for every address it resolves to, re-resolved while running.
    pub platform: Vec<UpstreamAddr>,
    /// Workers instances serving `/api/cron/*` on the apex and admin hosts (`UPSTREAM_WORKERS`).
    pub workers: Vec<UpstreamAddr>,
    /// Path probed on every instance: the status-only `/api/health` every service answers on
    /// its public port (200 when ready, 503 when not).
    pub health_path: String,
    /// Milliseconds between active health checks.
    pub health_interval_ms: u64,
    /// Failed requests within `fail_timeout_secs` that take an instance out (nginx `max_fails`).
    pub max_fails: u32,
    /// Window for counting failures, and how long an instance then stays out (nginx
    /// `fail_timeout`).
    pub fail_timeout_secs: u64,
    /// Connect timeout per attempt, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest wait for upstream bytes on an ordinary request, in milliseconds.
    pub read_timeout_ms: u64,
    /// How long an idle upstream keep-alive connection is kept for reuse, in seconds.
    pub keepalive_idle_secs: u64,
    /// Idle timeout of an upgraded (WebSocket) connection, in seconds.
    pub websocket_idle_secs: u64,
    /// Further instances tried when connecting fails, for idempotent requests.
    pub connect_retries: u32,
    /// DNS server for upstream names, `ip:port` (`UPSTREAM_DNS_SERVER`); the system's
    /// resolv.conf when unset. Not used when every upstream is a literal address.
    pub dns_server: Option<SocketAddr>,
    /// Shortest time between resolutions of a name, in seconds: a TTL below it (0 included)
    /// is raised to it, and a failed resolution is retried after it.
    pub dns_min_ttl_secs: u64,
    /// Longest time a resolved set is used before asking again, in seconds, whatever the TTL.
    pub dns_max_ttl_secs: u64,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            platform: vec![SocketAddr::from(([127, 0, 0, 1], 8080)).into()],
            workers: vec![SocketAddr::from(([127, 0, 0, 1], 8090)).into()],
            health_path: "/api/health".into(),
            health_interval_ms: 1_000,
            max_fails: 3,
            fail_timeout_secs: 30,
            connect_timeout_ms: 1_000,
            read_timeout_ms: 60_000,
            keepalive_idle_secs: 60,
            websocket_idle_secs: 3_600,
            connect_retries: 2,
            dns_server: None,
            dns_min_ttl_secs: 5,
            dns_max_ttl_secs: 60,
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

/// How long tenant lookups are trusted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantCacheConfig {
    /// Seconds a found tenant is served without asking the database again. Changes arrive
    /// sooner through `NOTIFY`; this bounds staleness if a notification is lost.
    pub ttl_secs: u64,
    /// Seconds an unknown name is remembered as unknown.
    pub negative_ttl_secs: u64,
    /// Seconds past expiry an entry may still be served while the database is unreachable.
    pub stale_if_error_secs: u64,
    /// Most names kept of each kind (tenant subdomains, custom domains).
    pub max_entries: u64,
}

impl Default for TenantCacheConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            negative_ttl_secs: 30,
            stale_if_error_secs: 86_400,
            max_entries: 500_000,
        }
    }
}

/// Response security headers; an empty string disables one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`, sent on HTTPS only.
    pub strict_transport_security: String,
    /// `X-Content-Type-Options`.
    pub x_content_type_options: String,
    /// `X-Frame-Options`.
    pub x_frame_options: String,
    /// `Referrer-Policy`.
    pub referrer_policy: String,
    /// `Permissions-Policy`.
    pub permissions_policy: String,
    /// `Content-Security-Policy` for HTML responses that carry none (the platform sends its
    /// own, stricter one per page); empty: none added.
    pub content_security_policy: String,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            strict_transport_security: "max-age=63072000; includeSubDomains".into(),
            x_content_type_options: "nosniff".into(),
            x_frame_options: "SAMEORIGIN".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            permissions_policy: "camera=(), microphone=(), geolocation=(), payment=(self)".into(),
            content_security_policy:
                "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'self'"
                    .into(),
        }
    }
}

/// One `Cache-Control` rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Path prefix, starting with `/`.
    pub prefix: String,
    /// Header value to set (replacing the upstream's).
    pub value: String,
}

/// Fingerprinted build output is immutable for a year; `/static/` (names that do not change
/// with the content) gets the seed's one day.
fn default_cache_rules() -> Vec<CacheRule> {
    let immutable = "public, max-age=31536000, immutable";
    [
        ("/_next/static/", immutable),
        ("/static/", "public, max-age=86400"),
        ("/assets/", immutable),
    ]
    .into_iter()
    .map(|(p, v)| CacheRule {
        prefix: p.into(),
        value: v.into(),
    })
    .collect()
}

/// Response compression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Compress text responses the client accepts compressed.
    pub enabled: bool,
    /// Compression level (1–9 for gzip; brotli uses the same number).
    pub level: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            level: 5,
        }
    }
}

/// Process lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// Worker threads for the proxy (`ROUTER_THREADS`).
    pub threads: usize,
    /// Let the proxy's threads steal each other's tasks (one shared Tokio runtime) instead of
    /// giving each thread its own single-threaded runtime. Off by default: stealing evens out
    /// uneven connections, but costs cross-thread synchronisation on every wake-up, which the
    /// router benchmark measured (docs/benchmarks.md).
    pub work_stealing: bool,
    /// Seconds in-flight requests get to finish after SIGTERM (or after a graceful-upgrade
    /// hand-over) before the process exits; it exits sooner once nothing is in flight.
    pub shutdown_timeout_secs: u64,
    /// Unix socket for the graceful-upgrade hand-over (`router serve --upgrade`).
    pub upgrade_sock: String,
    /// PID file of the running instance.
    pub pid_file: String,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            threads: 2,
            work_stealing: false,
            shutdown_timeout_secs: 30,
            upgrade_sock: "/tmp/platform-router-upgrade.sock".into(),
            pid_file: "/tmp/platform-router.pid".into(),
        }
    }
}

/// An address block: `10.0.0.0/8`, `::1`, `192.0.2.7/32`. Read from its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses an address or `address/prefix`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.trim().parse().ok()?
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Cidr::parse(&s).ok_or_else(|| format!("{s:?} is not an address or CIDR block"))
    }
}

impl ConfigFile for RouterConfig {
    const ENV: &'static [EnvVar] = &[
        DATABASE_ENV[0],
        DATABASE_ENV[1],
        DATABASE_ENV[2],
        var("ROUTER_STATIC_TENANTS", "static_tenants", EnvKind::Str),
        var("ROUTER_HTTP_LISTEN", "listen.http", EnvKind::Str),
        var("ROUTER_HTTPS_LISTEN", "listen.https", EnvKind::Str),
        var("CERT_ENCRYPTION_KEY", "tls.encryption_key", EnvKind::Str),
        var(
            "ROUTER_PUBLIC_HTTPS_PORT",
            "tls.public_https_port",
            EnvKind::Int,
        ),
        var("ROUTER_METRICS_LISTEN", "listen.metrics", EnvKind::Str),
        var("ROUTER_OPERATOR_LISTEN", "listen.metrics", EnvKind::Str),
        var("ROUTER_THREADS", "lifecycle.threads", EnvKind::Int),
        var("ROUTER_TRUSTED_PROXIES", "trusted_proxies", EnvKind::List),
        var(
            "ROUTER_UPGRADE_SOCK",
            "lifecycle.upgrade_sock",
            EnvKind::Str,
        ),
        var("ROUTER_PID_FILE", "lifecycle.pid_file", EnvKind::Str),
        var("UPSTREAM_PLATFORM", "upstreams.platform", EnvKind::List),
        var("UPSTREAM_WORKERS", "upstreams.workers", EnvKind::List),
        var("UPSTREAM_DNS_SERVER", "upstreams.dns_server", EnvKind::Str),
        var("EDGE_SIGNING_SECRET", "edge.signing_secret", EnvKind::Str),
        var("REDIS_URL", "redis.url", EnvKind::Str),
        var("REDIS_CA_FILE", "redis.ca_file", EnvKind::Str),
        var("ACME_ENABLED", "acme.enabled", EnvKind::Bool),
        var("ACME_DIRECTORY_URL", "acme.directory_url", EnvKind::Str),
        var("ACME_CONTACT", "acme.contact", EnvKind::List),
        var("ACME_CA_ROOT_FILE", "acme.server_root_file", EnvKind::Str),
        var(
            "ACME_TRUSTED_ROOTS_FILE",
            "acme.trusted_roots_file",
            EnvKind::Str,
        ),
        var(
            "ROUTER_RATE_LIMIT_INSTANCES",
            "rate_limits.instances",
            EnvKind::Int,
        ),
        var("ROUTER_RATE_LIMITS", "rate_limits.enabled", EnvKind::Bool),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        self.domain.rules()?;
        let public: Vec<SocketAddr> = [Some(self.listen.http), self.listen.https]
            .into_iter()
            .flatten()
            .collect();
        super::check_operator_listen("listen.metrics", &self.listen.metrics.to_string(), &public)?;
        if let Some(db) = &self.database {
            db.validate()?;
        }
        self.tls
            .validate(self.listen.https, self.database.is_some())?;
        if self.database.is_none() && self.static_tenants.is_none() {
            return Err(ConfigError::invalid(
                "database",
                "either database.url or static_tenants is required to resolve tenants",
            ));
        }
        let u = &self.upstreams;
        if u.platform.is_empty() {
            return Err(ConfigError::invalid(
                "upstreams.platform",
                "at least one platform instance is required",
            ));
        }
        if !u.health_path.starts_with('/') {
            return Err(ConfigError::invalid(
                "upstreams.health_path",
                "must start with /",
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 6] = [
            (
                "upstreams.health_interval_ms",
                u.health_interval_ms,
                100,
                60_000,
            ),
            ("upstreams.fail_timeout_secs", u.fail_timeout_secs, 1, 3_600),
            (
                "upstreams.connect_timeout_ms",
                u.connect_timeout_ms,
                10,
                60_000,
            ),
            (
                "upstreams.read_timeout_ms",
                u.read_timeout_ms,
                100,
                3_600_000,
            ),
            (
                "upstreams.keepalive_idle_secs",
                u.keepalive_idle_secs,
                1,
                3_600,
            ),
            (
                "upstreams.websocket_idle_secs",
                u.websocket_idle_secs,
                1,
                86_400,
            ),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        if !(1..=100).contains(&u.max_fails) {
            return Err(ConfigError::invalid(
                "upstreams.max_fails",
                "must be between 1 and 100",
            ));
        }
        if !(1..=3_600).contains(&u.dns_min_ttl_secs) {
            return Err(ConfigError::invalid(
                "upstreams.dns_min_ttl_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(u.dns_min_ttl_secs..=86_400).contains(&u.dns_max_ttl_secs) {
            return Err(ConfigError::invalid(
                "upstreams.dns_max_ttl_secs",
                "must be between dns_min_ttl_secs and 86400",
            ));
        }
        if u.connect_retries > 10 {
            return Err(ConfigError::invalid(
                "upstreams.connect_retries",
                "must be at most 10",
            ));
        }
        check_secret("edge.signing_secret", &self.edge.signing_secret, 32)?;
        if self.cache.ttl_secs == 0 || self.cache.max_entries == 0 {
            return Err(ConfigError::invalid(
                "cache",
                "ttl_secs and max_entries must be positive",
            ));
        }
        for r in &self.cache_control {
            if !r.prefix.starts_with('/') || r.value.is_empty() || !r.value.is_ascii() {
                return Err(ConfigError::invalid(
                    "cache_control",
                    format!("rule for {:?} needs a /prefix and an ASCII value", r.prefix),
                ));
            }
        }
        let s = &self.security_headers;
        for v in [
            &s.strict_transport_security,
            &s.x_content_type_options,
            &s.x_frame_options,
            &s.referrer_policy,
            &s.permissions_policy,
            &s.content_security_policy,
        ] {
            if !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                return Err(ConfigError::invalid(
                    "security_headers",
                    "values must be printable ASCII",
                ));
            }
        }
        if !(1..=9).contains(&self.compression.level) {
            return Err(ConfigError::invalid(
                "compression.level",
                "must be between 1 and 9",
            ));
        }
        if !(1..=3_600).contains(&self.lifecycle.shutdown_timeout_secs) {
            return Err(ConfigError::invalid(
                "lifecycle.shutdown_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=256).contains(&self.lifecycle.threads) {
            return Err(ConfigError::invalid(
                "lifecycle.threads",
                "must be between 1 and 256",
            ));
        }
        if let Some(r) = &self.redis {
            r.validate()?;
        }
        self.rate_limits.validate()?;
        self.client_limits.validate()?;
        self.acme.validate()?;
        if self.acme.enabled && self.database.is_none() {
            return Err(ConfigError::invalid(
                "acme.enabled",
                "ACME needs database.url (challenges, accounts and certificates are shared there)",
            ));
        }
        if self.acme.enabled && self.listen.https.is_none() {
            return Err(ConfigError::invalid(
                "acme.enabled",
                "ACME needs listen.https (ROUTER_HTTPS_LISTEN) and tls.encryption_key: certificates are served and sealed there",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
    }
}

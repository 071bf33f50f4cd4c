//! Configuration: TOML files with environment overrides, validated before anything starts.
//!
//! Each binary has one top-level struct ([`RouterConfig`], [`PlatformConfig`],
//! [`WorkersConfig`]) built from shared sections defined here. Loading goes: file → TOML table →
//! environment overrides (the seeds' variable names, see each struct's `ENV` table) → serde with
//! `deny_unknown_fields` → `validate()`. Every failure is one line naming the field at fault.

pub mod env;
mod platform;
mod router;
mod workers;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use env::{Env, MapEnv, ProcessEnv};
pub use platform::{DnsConfig, EdgeVerifyConfig, PlatformConfig, PublicUrlConfig, StripeConfig};
pub use router::{
    AcmeConfig, Dns01Config, ExternalAccountBinding, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING,
};
pub use router::{
    CacheRule, Cidr, CompressionConfig, EdgeSignConfig, HostClass, Lifecycle, LimitKey, LimitZone,
    PlanLimit, Rate, RateLimits, RouterConfig, RouterListen, SecurityHeaders, TenantCacheConfig,
    UpstreamAddr, Upstreams,
};
pub use router::{CertificateFiles, TlsConfig};
pub use workers::{CronConfig, QueueConfig, SmtpConfig, WorkerStripeConfig, WorkersConfig};

use crate::domain::DomainPolicy;
use crate::host::HostRules;

/// Exit code for bad configuration (`EX_CONFIG` would be 78; the house rule is `EX_USAGE`, 64).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// A configuration problem, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error.
    #[error("{path}: line {line}: {message}")]
    Syntax {
        /// File path as given.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// Parser message.
        message: String,
    },
    /// An environment override could not be used.
    #[error("environment variable {0}")]
    Env(String),
    /// A field is missing, unknown or of the wrong type.
    #[error("{field}: {message}")]
    Shape {
        /// Dotted path of the field.
        field: String,
        /// What serde reported.
        message: String,
    },
    /// A field has a value of the right type that is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken verbatim.
    Str,
    /// Parsed as a signed integer.
    Int,
    /// Parsed as a decimal number.
    Float,
    /// `true`/`false`/`1`/`0`/`yes`/`no`.
    Bool,
    /// Comma-separated strings, blanks dropped.
    List,
}

/// One environment override: variable name, dotted config path, value kind.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// Variable name, e.g. `DATABASE_URL`.
    pub name: &'static str,
    /// Dotted path in the config, e.g. `database.url`.
    pub path: &'static str,
    /// How to convert the text.
    pub kind: EnvKind,
}

const fn var(name: &'static str, path: &'static str, kind: EnvKind) -> EnvVar {
    EnvVar { name, path, kind }
}

/// Overrides every binary understands.
pub const COMMON_ENV: &[EnvVar] = &[
    var("TENANT_BASE_DOMAIN", "domain.base_domain", EnvKind::Str),
    var("ADMIN_HOST", "domain.admin_host", EnvKind::Str),
    var(
        "ENABLE_CUSTOM_DOMAINS",
        "domain.enable_custom_domains",
        EnvKind::Bool,
    ),
    var(
        "ALLOW_SPECIAL_USE_DOMAINS",
        "domain.allow_special_use_domains",
        EnvKind::Bool,
    ),
    var("LOG_LEVEL", "log.level", EnvKind::Str),
    var("LOG_FORMAT", "log.format", EnvKind::Str),
];

/// Database overrides, shared by the binaries that use PostgreSQL.
pub const DATABASE_ENV: &[EnvVar] = &[
    var("DATABASE_URL", "database.url", EnvKind::Str),
    var(
        "DATABASE_MIGRATION_URL",
        "database.migration_url",
        EnvKind::Str,
    ),
    var(
        "DATABASE_MAX_CONNECTIONS",
        "database.max_connections",
        EnvKind::Int,
    ),
];

/// A binary's top-level configuration.
pub trait ConfigFile: DeserializeOwned {
    /// Environment overrides for this binary, beyond [`COMMON_ENV`].
    const ENV: &'static [EnvVar];

    /// Checks values serde cannot: ranges, URL schemes, cross-field rules.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads, overrides and validates a configuration.
///
/// `path` is optional: with no file, defaults and the environment must be enough.
pub fn load<T: ConfigFile>(path: Option<&Path>, env: &dyn Env) -> Result<T, ConfigError> {
    let mut table = match path {
        None => toml::Table::new(),
        Some(p) => {
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            parse_table(&shown, &text)?
        }
    };
    for v in COMMON_ENV.iter().chain(T::ENV) {
        if let Some(text) = env.lookup(v.name).map_err(ConfigError::Env)? {
            let value = env_value(v, &text)?;
            set_path(&mut table, v.path, value).map_err(|m| ConfigError::invalid(v.path, m))?;
        }
    }
    let config: T = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let field = e.path().to_string();
        ConfigError::Shape {
            field: if field == "." { "config".into() } else { field },
            message: one_line(e.into_inner().message()),
        }
    })?;
    config.validate()?;
    Ok(config)
}

fn parse_table(path: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            message: one_line(e.message()),
        }
    })
}

/// Joins a multi-line parser message into one line, so every config error is one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn env_value(v: &EnvVar, text: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::Env(format!("{}: {what}", v.name));
    Ok(match v.kind {
        EnvKind::Str => toml::Value::String(text.to_owned()),
        EnvKind::Int => toml::Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| bad("expected an integer"))?,
        ),
        EnvKind::Float => {
            toml::Value::Float(text.trim().parse().map_err(|_| bad("expected a number"))?)
        }
        EnvKind::Bool => toml::Value::Boolean(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("expected true or false")),
        }),
        EnvKind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut parts = path.split('.').peekable();
    let mut cur = table;
    while let Some(key) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(key.to_owned(), value);
            return Ok(());
        }
        let entry = cur
            .entry(key.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key} is not a table in the config file"))?;
    }
    Ok(())
}

/// A secret string (password, API key, signing key). Never printed: `Debug` shows a placeholder
/// and there is deliberately no `Display` or `Serialize`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The domains a deployment serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainConfig {
    /// Base domain: tenants live at `<slug>.<base_domain>`, the marketing site at the base itself.
    pub base_domain: String,
    /// Admin console host; defaults to `admin.<base_domain>`.
    pub admin_host: Option<String>,
    /// Whether tenants may attach their own domains (`ENABLE_CUSTOM_DOMAINS`).
    pub enable_custom_domains: bool,
    /// Accept `.localhost`/`.test` custom domains (`ALLOW_SPECIAL_USE_DOMAINS`). For the local
    /// demo and tests only.
    pub allow_special_use_domains: bool,
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            base_domain: "platform.localhost".into(),
            admin_host: None,
            enable_custom_domains: true,
            allow_special_use_domains: false,
        }
    }
}

impl DomainConfig {
    /// The host-classification rules for these domains.
    pub fn rules(&self) -> Result<HostRules, ConfigError> {
        let admin = self
            .admin_host
            .clone()
            .unwrap_or_else(|| format!("admin.{}", self.base_domain));
        crate::host::normalize_host(&self.base_domain)
            .map_err(|e| ConfigError::invalid("domain.base_domain", e.to_string()))?;
        HostRules::new(&self.base_domain, &admin).map_err(|e| {
            let field = if crate::host::normalize_host(&admin).is_err() {
                "domain.admin_host"
            } else {
                "domain.base_domain"
            };
            ConfigError::invalid(field, e.to_string())
        })
    }

    /// Custom-domain validation policy derived from these settings.
    pub fn policy(&self) -> DomainPolicy {
        DomainPolicy {
            allow_special_use: self.allow_special_use_domains,
        }
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL for the service's own login role (`DATABASE_URL`). That role owns no
    /// tables, so row-level security applies to it.
    pub url: Secret,
    /// URL of the owner role that runs migrations (`DATABASE_MIGRATION_URL`); defaults to `url`.
    #[serde(default)]
    pub migration_url: Option<Secret>,
    /// Pool size per process.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing the request, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_max_connections() -> u32 {
    10
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl DatabaseConfig {
    /// Checks URL schemes and pool bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_postgres_url("database.url", &self.url)?;
        if let Some(m) = &self.migration_url {
            check_postgres_url("database.migration_url", m)?;
        }
        if !(1..=500).contains(&self.max_connections) {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be between 1 and 500",
            ));
        }
        if !(100..=120_000).contains(&self.connect_timeout_ms) {
            return Err(ConfigError::invalid(
                "database.connect_timeout_ms",
                "must be between 100 and 120000",
            ));
        }
        Ok(())
    }

    /// The URL migrations run with.
    pub fn migration_url(&self) -> &Secret {
        self.migration_url.as_ref().unwrap_or(&self.url)
    }
}

fn check_postgres_url(field: &'static str, url: &Secret) -> Result<(), ConfigError> {
    let u = url.expose();
    if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
        return Err(ConfigError::invalid(
            field,
            "must be a postgres:// or postgresql:// URL",
        ));
    }
    // The same parser the pool uses: libpq's TLS parameters included.
    crate::db::tls::PgTarget::parse(u).map_err(|e| ConfigError::invalid(field, e))?;
    Ok(())
}

/// Redis connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (`REDIS_URL`), with the password or auth token in it
    /// (`rediss://:TOKEN@host:6379`). `rediss://` is TLS, verified against the system's roots
    /// (ElastiCache's certificates chain to them) or `ca_file`.
    pub url: Secret,
    /// PEM bundle of CAs to trust for `rediss://` instead of the system's (`REDIS_CA_FILE`).
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl RedisConfig {
    /// Checks the URL scheme.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let u = self.url.expose();
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            return Err(ConfigError::invalid(
                "redis.url",
                "must be a redis:// or rediss:// URL",
            ));
        }
        Ok(())
    }
}

/// Log output settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `platform=debug,info` (`LOG_LEVEL`).
    pub level: String,
    /// `json` for production (one event per line), `pretty` for a terminal (`LOG_FORMAT`).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Structured JSON, one object per line.
    Json,
    /// Human-readable text.
    Pretty,
}

/// Parses a listen address field, naming it on failure.
pub(crate) fn check_listen(field: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    addr.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!("{addr:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

/// Parses an operator listener's address (`/metrics`, `/ready`, `/health`) and refuses one that
/// would share a port with a public listener: the whole point of the operator listener is that
/// the internet cannot reach it, so it never rides on a socket the load balancer forwards to.
pub(crate) fn check_operator_listen(
    field: &'static str,
    addr: &str,
    public: &[SocketAddr],
) -> Result<SocketAddr, ConfigError> {
    let op = check_listen(field, addr)?;
    if is_public(op.ip()) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{op} is a public address; bind loopback, a private address, or 0.0.0.0 behind a firewall"
            ),
        ));
    }
    let overlaps = |p: &SocketAddr| {
        p.port() == op.port()
            && (p.ip() == op.ip() || p.ip().is_unspecified() || op.ip().is_unspecified())
    };
    if let Some(p) = public.iter().find(|p| overlaps(p)) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{op} overlaps the public listener {p}; give the operator listener its own port"
            ),
        ));
    }
    Ok(op)
}

/// Whether `ip` is reachable from the internet as such: not loopback, private (RFC 1918,
/// shared address space, IPv6 unique local), link-local or the unspecified address (which a
/// container binds, its network keeping the port private).
fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || shared)
        }
        std::net::IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            let unique_local = (seg & 0xfe00) == 0xfc00;
            let link_local = (seg & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
    }
}

/// Requires a secret of at least `min` bytes.
pub(crate) fn check_secret(
    field: &'static str,
    secret: &Secret,
    min: usize,
) -> Result<(), ConfigError> {
    if secret.expose().len() < min {
        return Err(ConfigError::invalid(
            field,
            format!("must be at least {min} characters"),
        ));
    }
    Ok(())
}

/// Loads a binary's configuration from the process environment, or prints one line and exits
/// with [`EXIT_BAD_CONFIG`]. For `main` only.
pub fn load_or_exit<T: ConfigFile>(binary: &str, path: Option<&Path>) -> T {
    match load::<T>(path, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{binary}: config error: {}", one_line(&e.to_string()));
            std::process::exit(EXIT_BAD_CONFIG);
        }
    }
}

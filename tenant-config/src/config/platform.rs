//! The platform service's configuration.

use serde::Deserialize;

use super::{
    check_listen, check_operator_listen, check_secret, var, ConfigError, ConfigFile,
    DatabaseConfig, DomainConfig, EnvKind, EnvVar, LogConfig, RedisConfig, Secret, DATABASE_ENV,
};

/// Everything the `platform` binary reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Base domain, admin host and custom-domain switches.
    #[serde(default)]
    pub domain: DomainConfig,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis (cache, sessions).
    pub redis: RedisConfig,
    /// HTTP listen address (`PLATFORM_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Private operator listener: `/metrics`, `/ready` and the full `/health`
    /// (`PLATFORM_OPERATOR_LISTEN`). Loopback by default; a private address (or `0.0.0.0` in a
    /// container whose network policy keeps the port internal) when Prometheus or probes run
    /// elsewhere. Never the public port.
    #[serde(default = "default_operator_listen")]
    pub operator_listen: String,
    /// Lame-duck period after SIGTERM, in seconds (`PLATFORM_DRAIN_DELAY_SECS`): the public
    /// `/api/health` and the operator `/ready` answer 503 while every other request is still
    /// served, so routers and load balancers stop sending traffic before the listener closes.
    /// A little over two router health intervals; 0 closes at once.
    #[serde(default = "default_drain_delay")]
    pub drain_delay_secs: u64,
    /// Verification of the router's signed tenant context.
    pub edge: EdgeVerifyConfig,
    /// Stripe Connect.
    #[serde(default)]
    pub stripe: StripeConfig,
    /// DNS used to verify custom domains.
    #[serde(default)]
    pub dns: DnsConfig,
    /// How links to our own pages are written (receipts, cancel links, redirects).
    #[serde(default)]
    pub public: PublicUrlConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_operator_listen() -> String {
    "127.0.0.1:9180".into()
}

fn default_drain_delay() -> u64 {
    3
}

/// The scheme and port clients use to reach the router, for absolute links (a donor's cancel
/// link in an e-mail). Production is `https` on 443; the local stack is plain HTTP on :8000.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicUrlConfig {
    /// `https` or `http` (`PUBLIC_SCHEME`).
    pub scheme: String,
    /// Port, when not the scheme's default (`PUBLIC_PORT`).
    pub port: Option<u16>,
}

impl Default for PublicUrlConfig {
    fn default() -> Self {
        Self {
            scheme: "https".into(),
            port: None,
        }
    }
}

impl PublicUrlConfig {
    /// The scheme is `https` or `http`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.scheme.as_str(), "https" | "http") {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                "public.scheme",
                "must be https or http",
            ))
        }
    }

    /// `scheme://host[:port]` for `host`.
    pub fn origin(&self, host: &str) -> String {
        match self.port {
            Some(p)
                if !(self.scheme == "https" && p == 443 || self.scheme == "http" && p == 80) =>
            {
                format!("{}://{host}:{p}", self.scheme)
            }
            _ => format!("{}://{host}", self.scheme),
        }
    }
}

/// DNS settings for custom-domain verification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `ip:port` of the resolver to ask (`DNS_RESOLVER`); the system resolver when unset.
    pub resolver: Option<String>,
}

/// How the platform checks `x-edge-signature`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeVerifyConfig {
    /// Shared HMAC-SHA256 secret (`EDGE_SIGNING_SECRET`), the same value the router signs with.
    pub signing_secret: Secret,
    /// The secret being retired during a roll (`EDGE_SIGNING_SECRET_PREVIOUS`): signatures
    /// under it are still accepted, so routers can move to the new secret one by one. Remove
    /// it once every router signs with `signing_secret`.
    #[serde(default)]
    pub previous_signing_secret: Option<Secret>,
    /// Largest accepted clock difference between router and platform, in seconds. Small,
    /// because it is also how long a request id is remembered against replay; router and
    /// platform clocks are NTP-synchronised in any real deployment.
    #[serde(default = "default_skew")]
    pub max_skew_secs: u64,
}

fn default_skew() -> u64 {
    5
}

/// Stripe settings. Keys are optional so the service starts without Stripe (donations are then
/// refused with a clear error and `/ready` reports Stripe as not configured).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeConfig {
    /// Secret API key (`STRIPE_SECRET_KEY`).
    pub secret_key: Option<Secret>,
    /// Publishable key handed to Stripe.js (`STRIPE_PUBLISHABLE_KEY`).
    pub publishable_key: Option<String>,
    /// Webhook endpoint secrets (`STRIPE_WEBHOOK_SECRET`); during rotation both are listed.
    pub webhook_secrets: Vec<Secret>,
    /// Platform fee in percent of each gift (`STRIPE_PLATFORM_FEE_PERCENT`), at most two
    /// decimals. Converted once to basis points so no money arithmetic uses floating point.
    pub platform_fee_percent: f64,
    /// API base URL; overridden in tests to point at the Stripe emulator.
    pub api_base: String,
    /// Where donation pages load Stripe.js from (`STRIPE_JS_URL`); the Content-Security-Policy
    /// allows this origin. The local stack points it at the emulator's fake Stripe.js.
    pub js_url: String,
    /// Most `payment_intent.succeeded` deliveries committed in one transaction
    /// (`STRIPE_WEBHOOK_BATCH_MAX`); 1 turns grouping off.
    pub webhook_batch_max: u32,
    /// Such transactions in flight at once (`STRIPE_WEBHOOK_BATCHES`, capped at
    /// `database.max_connections`); deliveries arriving while all are busy form the next group.
    pub webhook_batches: u32,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            publishable_key: None,
            webhook_secrets: Vec::new(),
            platform_fee_percent: 2.0,
            api_base: "https://api.stripe.com".into(),
            js_url: "https://js.stripe.com/v3/".into(),
            webhook_batch_max: 64,
            webhook_batches: 4,
        }
    }
}

impl StripeConfig {
    /// The platform fee in basis points (2.0 % → 200).
    pub fn fee_basis_points(&self) -> Result<u32, ConfigError> {
        let field = "stripe.platform_fee_percent";
        let p = self.platform_fee_percent;
        if !p.is_finite() || !(0.0..=100.0).contains(&p) {
            return Err(ConfigError::invalid(field, "must be between 0 and 100"));
        }
        let bp = (p * 100.0).round();
        if (bp - p * 100.0).abs() > 1e-6 {
            return Err(ConfigError::invalid(
                field,
                "at most two decimals are allowed",
            ));
        }
        // In range 0..=10000 after the checks above, so the cast is exact.
        Ok(bp as u32)
    }
}

impl ConfigFile for PlatformConfig {
    const ENV: &'static [EnvVar] = &[
        DATABASE_ENV[0],
        DATABASE_ENV[1],
        DATABASE_ENV[2],
        var("REDIS_URL", "redis.url", EnvKind::Str),
        var("REDIS_CA_FILE", "redis.ca_file", EnvKind::Str),
        var("PLATFORM_LISTEN", "listen", EnvKind::Str),
        var("PLATFORM_OPERATOR_LISTEN", "operator_listen", EnvKind::Str),
        var(
            "PLATFORM_DRAIN_DELAY_SECS",
            "drain_delay_secs",
            EnvKind::Int,
        ),
        var("EDGE_SIGNING_SECRET", "edge.signing_secret", EnvKind::Str),
        var(
            "EDGE_SIGNING_SECRET_PREVIOUS",
            "edge.previous_signing_secret",
            EnvKind::Str,
        ),
        var("EDGE_MAX_SKEW_SECS", "edge.max_skew_secs", EnvKind::Int),
        var("STRIPE_SECRET_KEY", "stripe.secret_key", EnvKind::Str),
        var(
            "STRIPE_PUBLISHABLE_KEY",
            "stripe.publishable_key",
            EnvKind::Str,
        ),
        var(
            "STRIPE_WEBHOOK_SECRET",
            "stripe.webhook_secrets",
            EnvKind::List,
        ),
        var(
            "STRIPE_PLATFORM_FEE_PERCENT",
            "stripe.platform_fee_percent",
            EnvKind::Float,
        ),
        var("STRIPE_API_BASE", "stripe.api_base", EnvKind::Str),
        var("STRIPE_JS_URL", "stripe.js_url", EnvKind::Str),
        var("PUBLIC_SCHEME", "public.scheme", EnvKind::Str),
        var("PUBLIC_PORT", "public.port", EnvKind::Int),
        var(
            "STRIPE_WEBHOOK_BATCH_MAX",
            "stripe.webhook_batch_max",
            EnvKind::Int,
        ),
        var(
            "STRIPE_WEBHOOK_BATCHES",
            "stripe.webhook_batches",
            EnvKind::Int,
        ),
        var("DNS_RESOLVER", "dns.resolver", EnvKind::Str),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        self.domain.rules()?;
        self.database.validate()?;
        self.redis.validate()?;
        let public = check_listen("listen", &self.listen)?;
        check_operator_listen("operator_listen", &self.operator_listen, &[public])?;
        check_secret("edge.signing_secret", &self.edge.signing_secret, 32)?;
        self.public.validate()?;
        if !(self.stripe.js_url.starts_with("https://")
            || self.stripe.js_url.starts_with("http://"))
        {
            return Err(ConfigError::invalid(
                "stripe.js_url",
                "must be an http(s) URL",
            ));
        }
        if let Some(prev) = &self.edge.previous_signing_secret {
            check_secret("edge.previous_signing_secret", prev, 32)?;
        }
        if self.drain_delay_secs > 300 {
            return Err(ConfigError::invalid(
                "drain_delay_secs",
                "must be between 0 and 300",
            ));
        }
        if !(1..=600).contains(&self.edge.max_skew_secs) {
            return Err(ConfigError::invalid(
                "edge.max_skew_secs",
                "must be between 1 and 600",
            ));
        }
        self.stripe.fee_basis_points()?;
        if !(1..=1000).contains(&self.stripe.webhook_batch_max) {
            return Err(ConfigError::invalid(
                "stripe.webhook_batch_max",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=1000).contains(&self.stripe.webhook_batches) {
            return Err(ConfigError::invalid(
                "stripe.webhook_batches",
                "must be between 1 and 1000",
            ));
        }
        if let Some(r) = &self.dns.resolver {
            check_listen("dns.resolver", r)?;
        }
        if let Some(k) = &self.stripe.secret_key {
            if !k.expose().starts_with("sk_") && !k.expose().starts_with("rk_") {
                return Err(ConfigError::invalid(
                    "stripe.secret_key",
                    "must be a Stripe secret (sk_…) or restricted (rk_…) key",
                ));
            }
        }
        for s in &self.stripe.webhook_secrets {
            if !s.expose().starts_with("whsec_") {
                return Err(ConfigError::invalid(
                    "stripe.webhook_secrets",
                    "each secret must start with whsec_",
                ));
            }
        }
        if !self.stripe.api_base.starts_with("https://")
            && !self.stripe.api_base.starts_with("http://127.0.0.1")
            && !self.stripe.api_base.starts_with("http://localhost")
        {
            return Err(ConfigError::invalid(
                "stripe.api_base",
                "must be https:// (plain http only on loopback)",
            ));
        }
        Ok(())
    }
}

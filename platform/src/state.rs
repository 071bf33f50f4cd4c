//! Handles shared by every request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use redis::aio::ConnectionManager;
use tenant_config::config::PlatformConfig;
use tenant_config::db::{self, Pool};
use tenant_config::edge::EdgeSigner;
use tokio::sync::OnceCell;

use crate::cache::ProfileCache;

/// Cheap to clone: everything inside is reference-counted. Grouped by concern; handlers take
/// the whole state or, through [`FromRef`], only the part they use (`State<Pool>`,
/// `State<Arc<Payments>>`, …).
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL pool (connects as the service's login role).
    pub db: Pool,
    /// Redis, connected on first use so the service starts while Redis is down.
    pub redis: Arc<LazyRedis>,
    /// When the process started, for `uptime_seconds`.
    pub started: Instant,
    /// Verifying the router's signed context.
    pub edge: Arc<EdgeAuth>,
    /// Stripe, webhooks and donor links.
    pub payments: Arc<Payments>,
    /// Custom-domain rules and verification.
    pub domains: Arc<Domains>,
    /// Tenant profiles (moka + Redis).
    pub profiles: ProfileCache,
    /// Set after SIGTERM: health and readiness answer 503 while requests are still served.
    pub lame_duck: crate::lame_duck::LameDuck,
    /// The public status probe's last answer, reused briefly so a flood of probes costs
    /// one readiness check per interval.
    pub public_health: crate::health::PublicHealthCache,
}

/// How requests from the router are authenticated.
pub struct EdgeAuth {
    /// Verify `x-edge-signature`: the current secret, then the one being retired.
    pub signers: Vec<EdgeSigner>,
    /// Signatures already used (Redis, with a bounded local fallback).
    pub replay: crate::replay::ReplayGuard,
    /// Accepted clock difference for edge signatures.
    pub max_skew_secs: u64,
}

/// Everything money-related.
#[derive(Clone)]
pub struct Payments {
    /// Stripe: API client, keys and fee; `None` when no secret key is configured (donations
    /// are then refused with 503, webhooks still verified if secrets are set).
    pub stripe: Option<StripeState>,
    /// Webhook endpoint secrets (`STRIPE_WEBHOOK_SECRET`), all accepted during a roll.
    pub webhook_secrets: Vec<Vec<u8>>,
    /// Group commit for concurrent `payment_intent.succeeded` deliveries.
    pub group: crate::webhooks::batch::GroupCommit,
    /// Key for donor links (recurring-gift cancel tokens), derived from the edge secret.
    pub link_key: [u8; 32],
}

impl Payments {
    /// The Stripe client, or 503 when no secret key is configured.
    pub fn stripe(&self) -> Result<&StripeState, crate::error::AppError> {
        self.stripe
            .as_ref()
            .ok_or_else(|| crate::error::AppError::Unavailable("stripe is not configured".into()))
    }
}

/// Custom domains: which names are acceptable and how ownership is checked.
pub struct Domains {
    /// Base domain and admin host.
    pub rules: tenant_config::HostRules,
    /// Validation policy.
    pub policy: tenant_config::domain::DomainPolicy,
    /// `ENABLE_CUSTOM_DOMAINS`.
    pub enabled: bool,
    /// DNS resolver for verification.
    pub resolver: Arc<hickory_resolver::TokioResolver>,
    /// Scheme and port for absolute links to our pages.
    pub public: tenant_config::config::PublicUrlConfig,
    /// Where pages load Stripe.js from.
    pub stripe_js_url: String,
}

impl FromRef<AppState> for Pool {
    fn from_ref(s: &AppState) -> Pool {
        s.db.clone()
    }
}

impl FromRef<AppState> for Arc<Payments> {
    fn from_ref(s: &AppState) -> Arc<Payments> {
        s.payments.clone()
    }
}

impl FromRef<AppState> for Arc<Domains> {
    fn from_ref(s: &AppState) -> Arc<Domains> {
        s.domains.clone()
    }
}

impl FromRef<AppState> for ProfileCache {
    fn from_ref(s: &AppState) -> ProfileCache {
        s.profiles.clone()
    }
}

/// What donation handlers need from Stripe's configuration.
#[derive(Clone)]
pub struct StripeState {
    /// API client.
    pub client: payments::StripeClient,
    /// Publishable key handed to Stripe.js with each client secret.
    pub publishable_key: Option<String>,
    /// Platform fee in basis points (2 % = 200).
    pub fee_basis_points: u32,
}

impl AppState {
    /// Builds the handles; connects to nothing yet.
    pub fn from_config(config: &PlatformConfig) -> anyhow::Result<Self> {
        let redis = Arc::new(
            LazyRedis::new(config.redis.url.expose(), config.redis.ca_file.as_deref())
                .map_err(anyhow::Error::msg)?,
        );
        let pool = db::pool(&config.database).map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        let stripe = match &config.stripe.secret_key {
            Some(key) => Some(StripeState {
                client: payments::StripeClient::new(
                    &config.stripe.api_base,
                    key.expose(),
                    std::time::Duration::from_secs(20),
                )?,
                publishable_key: config.stripe.publishable_key.clone(),
                fee_basis_points: config.stripe.fee_basis_points()?,
            }),
            None => None,
        };
        Ok(Self {
            payments: Arc::new(Payments {
                stripe,
                webhook_secrets: config
                    .stripe
                    .webhook_secrets
                    .iter()
                    .map(|s| s.expose().as_bytes().to_vec())
                    .collect(),
                group: crate::webhooks::batch::GroupCommit::new(
                    pool.clone(),
                    config.stripe.webhook_batch_max,
                    // Each group holds a connection: never more groups than the pool has.
                    config
                        .stripe
                        .webhook_batches
                        .min(config.database.max_connections),
                ),
                link_key: derive_link_key(config.edge.signing_secret.expose().as_bytes()),
            }),
            edge: Arc::new(EdgeAuth {
                signers: std::iter::once(&config.edge.signing_secret)
                    .chain(config.edge.previous_signing_secret.as_ref())
                    .map(|s| EdgeSigner::new(s.expose().as_bytes()))
                    .collect(),
                replay: crate::replay::ReplayGuard::new(
                    redis.clone(),
                    std::time::Duration::from_secs(2 * config.edge.max_skew_secs + 1),
                ),
                max_skew_secs: config.edge.max_skew_secs,
            }),
            domains: Arc::new(Domains {
                rules: config.domain.rules()?,
                policy: config.domain.policy(),
                enabled: config.domain.enable_custom_domains,
                resolver: crate::admin::domains::resolver(config.dns.resolver.as_deref())
                    .map_err(anyhow::Error::msg)?,
                public: config.public.clone(),
                stripe_js_url: config.stripe.js_url.clone(),
            }),
            db: pool,
            profiles: ProfileCache::new(redis.clone()),
            redis,
            started: Instant::now(),
            lame_duck: crate::lame_duck::LameDuck::default(),
            public_health: crate::health::PublicHealthCache::default(),
        })
    }
}

/// A Redis connection manager created on first successful connect, retried on later calls.
pub struct LazyRedis {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl LazyRedis {
    /// Parses the URL (and reads `ca_file`, the CAs to trust for `rediss://`); does not
    /// connect. Errors are one line naming the field: a `ca_file` with no PEM certificate in it
    /// or with a plain `redis://` URL is refused here, not at every later connect.
    pub fn new(url: &str, ca_file: Option<&str>) -> Result<Self, String> {
        let client = match tenant_config::db::tls::redis_ca(url, ca_file)? {
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(|e| format!("redis.url: {e}"))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
        })
    }

    /// A multiplexed connection that reconnects by itself once established.
    pub async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
    }
}

/// A separate key for donor links, so a token never doubles as an edge signature.
fn derive_link_key(edge_secret: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length.
    let mut m =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(edge_secret).unwrap_or_else(|_| unreachable!());
    m.update(b"donor-links-v1");
    m.finalize().into_bytes().into()
}

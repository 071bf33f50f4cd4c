//! Handles every job and cron run shares.

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::Tokio1Executor;
use tenant_config::config::WorkersConfig;
use tenant_config::db::Pool;

/// Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// Pool (the workers' login role has `platform_service`'s privileges).
    pub db: Pool,
    /// Connection settings for dedicated sessions (advisory locks, LISTEN), which must not come
    /// from the pool: a lock must end when its holder does.
    pub pg: Arc<tenant_config::db::tls::PgTarget>,
    /// SMTP relay, with a connection pool so a batch reuses connections.
    pub mailer: Arc<AsyncSmtpTransport<Tokio1Executor>>,
    /// Sender, parsed once at start by the parser every send uses (`smtp.from`).
    pub from: tenant_config::mail::Mailbox,
    /// Stripe, when configured.
    pub stripe: Option<payments::StripeClient>,
    /// Base domain, for links in mail (`<slug>.<base>`).
    pub base_domain: String,
    /// Admin host, for the platform summary's link to the console.
    pub admin_host: String,
    /// Scheme and port of links in mail.
    pub public: tenant_config::config::PublicUrlConfig,
    /// This process's name in `jobs.locked_by`.
    pub worker_id: String,
    /// Queue settings.
    pub queue: tenant_config::config::QueueConfig,
    /// Each cron job's schedule (parsed from `[cron]`).
    pub schedules: Arc<crate::cron::Schedules>,
}

impl Ctx {
    /// Builds the handles; connects to nothing yet.
    pub fn from_config(config: &WorkersConfig) -> anyhow::Result<Self> {
        let schedules =
            crate::cron::Schedules::from_config(&config.cron).map_err(anyhow::Error::msg)?;
        let mailer = crate::mail::transport(&config.smtp).map_err(anyhow::Error::msg)?;
        let from = config.smtp.sender()?;
        let stripe = match &config.stripe.secret_key {
            Some(k) => Some(payments::StripeClient::new(
                &config.stripe.api_base,
                k.expose(),
                Duration::from_secs(20),
            )?),
            None => None,
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".into());
        Ok(Self {
            db: tenant_config::db::pool(&config.database)?,
            pg: Arc::new(
                tenant_config::db::tls::PgTarget::parse(config.database.url.expose())
                    .map_err(anyhow::Error::msg)?,
            ),
            mailer: Arc::new(mailer),
            from,
            stripe,
            base_domain: config.domain.rules()?.base().to_owned(),
            admin_host: config.domain.rules()?.admin().to_owned(),
            public: config.public.clone(),
            worker_id: format!(
                "{host}:{}:{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            queue: config.queue.clone(),
            schedules: Arc::new(schedules),
        })
    }

    /// A dedicated session outside the pool; it closes when dropped.
    pub async fn session(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self.pg.config.connect(self.pg.tls.clone()).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

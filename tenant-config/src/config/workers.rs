//! The workers' configuration.

use serde::Deserialize;

mod cron;
pub use cron::CronConfig;

use super::{
    check_listen, check_operator_listen, check_secret, var, ConfigError, ConfigFile,
    DatabaseConfig, DomainConfig, EnvKind, EnvVar, LogConfig, Secret, DATABASE_ENV,
};

/// Everything the `workers` binary reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Base domain (for links in emails).
    #[serde(default)]
    pub domain: DomainConfig,
    /// PostgreSQL: the job queue lives there.
    pub database: DatabaseConfig,
    /// HTTP listen address for `/api/cron/*` and the status-only `/api/health`, reached
    /// through the router (`WORKERS_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Private operator listener: `/metrics`, `/ready` and the full `/health`
    /// (`WORKERS_OPERATOR_LISTEN`). Loopback by default; never the public port.
    #[serde(default = "default_operator_listen")]
    pub operator_listen: String,
    /// Bearer secret that cron callers present (`CRON_SECRET`), at least 32 characters.
    pub cron_secret: Secret,
    /// Outgoing mail.
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// Queue consumers and the in-process scheduler.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The scheduler's cron expressions, one per job (UTC; the seeds' schedules by default).
    #[serde(default)]
    pub cron: CronConfig,
    /// Stripe, for reconciling pending donations (optional: skipped when unset).
    #[serde(default)]
    pub stripe: WorkerStripeConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Scheme and port of the public links in mail (the weekly report's dashboard link), the
    /// same settings as the platform's (`PUBLIC_SCHEME`, `PUBLIC_PORT`).
    #[serde(default)]
    pub public: super::PublicUrlConfig,
}

fn default_listen() -> String {
    "127.0.0.1:8090".into()
}

fn default_operator_listen() -> String {
    "127.0.0.1:9190".into()
}

/// SMTP relay for receipts and reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Where mail goes (`SMTP_URL`), in lettre's syntax: `smtps://host:465` (TLS from the
    /// start), `smtp://host:587?tls=required` (STARTTLS), `smtp://host:2525` (plain, a local
    /// sink only). `smtp+starttls://host:587` is accepted as another spelling of the STARTTLS
    /// form. Credentials may sit in the URL (`user:pass@`) or come from `username`/`password`.
    /// Unset: built from `host` and `port`, else the local sink `smtp://127.0.0.1:2525`. Read
    /// it through [`SmtpConfig::url`].
    pub url: Option<Secret>,
    /// The relay's host name (the seeds' `EMAIL_HOST`), for deployments that name the relay
    /// as host and port rather than as a URL; only without `url`, and with `port`.
    pub host: Option<String>,
    /// The relay's port (the seeds' `EMAIL_PORT`), which also decides the TLS, as every mail
    /// client does: 587 is STARTTLS, required; 465 is TLS from the start; any other port is
    /// plain SMTP (a local sink or a relay on a private network).
    pub port: Option<u16>,
    /// SMTP user (`SMTP_USERNAME`, or the seeds' `EMAIL_USER`); for SendGrid, `apikey`.
    pub username: Option<String>,
    /// SMTP password (`SMTP_PASSWORD`, `SMTP_PASSWORD_FILE`, or the seeds' `EMAIL_PASSWORD`);
    /// for SendGrid, the API key.
    pub password: Option<Secret>,
    /// Sender (`EMAIL_FROM`): an address, or `Name <address>`, as the mailer parses it (a name
    /// with a comma in double quotes: `"Donations, Inc." <no-reply@example.org>`). Checked at
    /// start, since a sender the mailer cannot parse fails every message. Unset: `Donations
    /// <no-reply@platform.localhost>`. Read it through [`SmtpConfig::sender`].
    pub from: Option<String>,
}

/// The sender when `smtp.from` is unset (a local sink accepts it; a real relay will not).
const DEFAULT_FROM: &str = "Donations <no-reply@platform.localhost>";

impl SmtpConfig {
    /// The relay URL: `url`, else the one `host` and `port` stand for, else the local sink.
    /// Errors (one line, naming the field) when both forms are given or only half of the
    /// second, so a relay setting is never silently ignored.
    pub fn url(&self) -> Result<Secret, ConfigError> {
        match (&self.url, &self.host, self.port) {
            (Some(url), None, None) => Ok(url.clone()),
            (Some(_), _, _) => Err(ConfigError::invalid(
                "smtp.url",
                "set either smtp.url (SMTP_URL) or smtp.host and smtp.port (EMAIL_HOST, \
                 EMAIL_PORT), not both",
            )),
            (None, None, None) => Ok(Secret::new("smtp://127.0.0.1:2525")),
            (None, Some(_), None) => Err(ConfigError::invalid(
                "smtp.port",
                "required with smtp.host (EMAIL_PORT: 587 STARTTLS, 465 TLS, other ports plain)",
            )),
            (None, None, Some(_)) => Err(ConfigError::invalid(
                "smtp.host",
                "required with smtp.port (EMAIL_HOST), or set smtp.url (SMTP_URL) instead",
            )),
            (None, Some(host), Some(port)) => {
                let host = url_host(host).ok_or_else(|| {
                    ConfigError::invalid("smtp.host", "must be a host name or an IP address")
                })?;
                Ok(Secret::new(match port {
                    587 => format!("smtp://{host}:587?tls=required"),
                    465 => format!("smtps://{host}:465"),
                    0 => return Err(ConfigError::invalid("smtp.port", "must be 1 to 65535")),
                    p => format!("smtp://{host}:{p}"),
                }))
            }
        }
    }

    /// The sender as the mailer parses it, or a one-line error naming `smtp.from`.
    pub fn sender(&self) -> Result<crate::mail::Mailbox, ConfigError> {
        crate::mail::mailbox(self.from.as_deref().unwrap_or(DEFAULT_FROM))
            .map_err(|e| ConfigError::invalid("smtp.from", e))
    }
}

/// `host` as it goes into a URL (an IPv6 address in brackets), or `None` when it is not a
/// host name or an IP address (so nothing can be smuggled into the URL).
fn url_host(host: &str) -> Option<String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        });
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    name_ok.then(|| host.to_ascii_lowercase())
}

/// Queue consumer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs claimed per fetch (`WORKERS_BATCH`), 1–1000.
    pub batch: u32,
    /// Consumer loops per process (`WORKERS_CONSUMERS`), 1–64.
    pub consumers: u32,
    /// Lease on a claimed job; a heartbeat renews it at a third of this (`WORKERS_LEASE_SECS`).
    pub lease_secs: u64,
    /// Polling interval when no notification arrives, in milliseconds.
    pub poll_ms: u64,
    /// Time in-flight jobs get to finish at shutdown before they are handed back
    /// (`WORKERS_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// Run the cron scheduler in this process (`WORKERS_SCHEDULER`); only the process holding
    /// the leader lock actually schedules.
    pub scheduler: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            batch: 50,
            consumers: 2,
            lease_secs: 60,
            poll_ms: 1000,
            shutdown_grace_secs: 20,
            scheduler: true,
        }
    }
}

/// Stripe access for the reconciliation job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerStripeConfig {
    /// Secret API key (`STRIPE_SECRET_KEY`).
    pub secret_key: Option<Secret>,
    /// API base URL (`STRIPE_API_BASE`; tests point it at the emulator).
    pub api_base: String,
}

impl Default for WorkerStripeConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            api_base: "https://api.stripe.com".into(),
        }
    }
}

impl ConfigFile for WorkersConfig {
    const ENV: &'static [EnvVar] = &[
        DATABASE_ENV[0],
        DATABASE_ENV[1],
        DATABASE_ENV[2],
        var("WORKERS_LISTEN", "listen", EnvKind::Str),
        var("WORKERS_OPERATOR_LISTEN", "operator_listen", EnvKind::Str),
        var("CRON_SECRET", "cron_secret", EnvKind::Str),
        var("CRON_PROCESS_EMAILS", "cron.process_emails", EnvKind::Str),
        var(
            "CRON_PROCESS_DONATIONS",
            "cron.process_donations",
            EnvKind::Str,
        ),
        var(
            "CRON_CLEANUP_SESSIONS",
            "cron.cleanup_sessions",
            EnvKind::Str,
        ),
        var(
            "CRON_GENERATE_REPORTS",
            "cron.generate_reports",
            EnvKind::Str,
        ),
        var("SMTP_URL", "smtp.url", EnvKind::Str),
        var("EMAIL_HOST", "smtp.host", EnvKind::Str),
        var("EMAIL_PORT", "smtp.port", EnvKind::Int),
        var("EMAIL_USER", "smtp.username", EnvKind::Str),
        var("SMTP_USERNAME", "smtp.username", EnvKind::Str),
        var("EMAIL_PASSWORD", "smtp.password", EnvKind::Str),
        var("SMTP_PASSWORD", "smtp.password", EnvKind::Str),
        var("EMAIL_FROM", "smtp.from", EnvKind::Str),
        var("WORKERS_BATCH", "queue.batch", EnvKind::Int),
        var("WORKERS_CONSUMERS", "queue.consumers", EnvKind::Int),
        var("WORKERS_LEASE_SECS", "queue.lease_secs", EnvKind::Int),
        var(
            "WORKERS_SHUTDOWN_GRACE_SECS",
            "queue.shutdown_grace_secs",
            EnvKind::Int,
        ),
        var("WORKERS_SCHEDULER", "queue.scheduler", EnvKind::Bool),
        var("STRIPE_SECRET_KEY", "stripe.secret_key", EnvKind::Str),
        var("STRIPE_API_BASE", "stripe.api_base", EnvKind::Str),
        var("PUBLIC_SCHEME", "public.scheme", EnvKind::Str),
        var("PUBLIC_PORT", "public.port", EnvKind::Int),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        self.domain.rules()?;
        self.database.validate()?;
        let public = check_listen("listen", &self.listen)?;
        check_operator_listen("operator_listen", &self.operator_listen, &[public])?;
        check_secret("cron_secret", &self.cron_secret, 32)?;
        self.public.validate()?;
        let url = self.smtp.url()?;
        let u = url.expose();
        if !["smtp://", "smtp+starttls://", "smtps://"]
            .iter()
            .any(|s| u.starts_with(s))
        {
            return Err(ConfigError::invalid(
                "smtp.url",
                "must start with smtp://, smtp+starttls:// or smtps://",
            ));
        }
        self.smtp.sender()?;
        let q = &self.queue;
        if !(1..=1000).contains(&q.batch) {
            return Err(ConfigError::invalid("queue.batch", "must be 1 to 1000"));
        }
        if !(1..=64).contains(&q.consumers) {
            return Err(ConfigError::invalid("queue.consumers", "must be 1 to 64"));
        }
        if !(2..=3600).contains(&q.lease_secs) {
            return Err(ConfigError::invalid(
                "queue.lease_secs",
                "must be 2 to 3600",
            ));
        }
        if !(10..=60_000).contains(&q.poll_ms) {
            return Err(ConfigError::invalid("queue.poll_ms", "must be 10 to 60000"));
        }
        if q.shutdown_grace_secs > 600 {
            return Err(ConfigError::invalid(
                "queue.shutdown_grace_secs",
                "must be at most 600",
            ));
        }
        let b = &self.stripe.api_base;
        if !b.starts_with("https://")
            && !b.starts_with("http://127.0.0.1")
            && !b.starts_with("http://localhost")
        {
            return Err(ConfigError::invalid(
                "stripe.api_base",
                "must be https (plain http only on loopback)",
            ));
        }
        Ok(())
    }
}

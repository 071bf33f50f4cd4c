//! The workers' configuration.

use serde::Deserialize;

use super::{
    check_listen, check_secret, var, ConfigError, ConfigFile, DatabaseConfig, DomainConfig,
    EnvKind, EnvVar, LogConfig, Secret, DATABASE_ENV,
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
    /// HTTP listen address for `/api/cron/*`, `/health`, `/metrics` (`WORKERS_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer secret that cron callers present (`CRON_SECRET`), at least 32 characters.
    pub cron_secret: Secret,
    /// Outgoing mail.
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

fn default_listen() -> String {
    "127.0.0.1:8090".into()
}

/// SMTP relay for receipts and reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://` (plain, local sink only), `smtp+starttls://` or `smtps://` URL with credentials
    /// (`SMTP_URL`).
    pub url: Secret,
    /// Sender address (`EMAIL_FROM`).
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("smtp://127.0.0.1:2525"),
            from: "Donations <no-reply@platform.localhost>".into(),
        }
    }
}

impl ConfigFile for WorkersConfig {
    const ENV: &'static [EnvVar] = &[
        DATABASE_ENV[0],
        DATABASE_ENV[1],
        DATABASE_ENV[2],
        var("WORKERS_LISTEN", "listen", EnvKind::Str),
        var("CRON_SECRET", "cron_secret", EnvKind::Str),
        var("SMTP_URL", "smtp.url", EnvKind::Str),
        var("EMAIL_FROM", "smtp.from", EnvKind::Str),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        self.domain.rules()?;
        self.database.validate()?;
        check_listen("listen", &self.listen)?;
        check_secret("cron_secret", &self.cron_secret, 32)?;
        let u = self.smtp.url.expose();
        if !["smtp://", "smtp+starttls://", "smtps://"]
            .iter()
            .any(|s| u.starts_with(s))
        {
            return Err(ConfigError::invalid(
                "smtp.url",
                "must start with smtp://, smtp+starttls:// or smtps://",
            ));
        }
        if !self.smtp.from.contains('@') {
            return Err(ConfigError::invalid(
                "smtp.from",
                "must contain an email address",
            ));
        }
        Ok(())
    }
}

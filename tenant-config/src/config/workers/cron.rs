//! When the workers' in-process scheduler runs each cron job: one five-field cron expression
//! per job, evaluated in UTC.
//!
//! The defaults are the seeds' schedules. Each can be overridden in the file (`[cron]`) or the
//! environment (`CRON_PROCESS_EMAILS`, ...). The expressions are parsed by the workers (with
//! `croner`) when they build their context, which `check-config`, `run` and `trigger` all do,
//! so a bad one is refused before anything starts, with the job's field named.

use serde::Deserialize;

/// One cron expression per job (`minute hour day-of-month month day-of-week`, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CronConfig {
    /// `process-emails`: drain the mail outbox (`CRON_PROCESS_EMAILS`, every 5 minutes).
    pub process_emails: String,
    /// `process-donations`: reconcile pending donations with Stripe (`CRON_PROCESS_DONATIONS`,
    /// hourly).
    pub process_donations: String,
    /// `cleanup-sessions`: expired sessions and old bookkeeping (`CRON_CLEANUP_SESSIONS`, daily
    /// at 03:00).
    pub cleanup_sessions: String,
    /// `generate-reports`: weekly reports (`CRON_GENERATE_REPORTS`, Mondays at 06:00).
    pub generate_reports: String,
}

impl Default for CronConfig {
    fn default() -> Self {
        Self {
            process_emails: "*/5 * * * *".into(),
            process_donations: "0 * * * *".into(),
            cleanup_sessions: "0 3 * * *".into(),
            generate_reports: "0 6 * * 1".into(),
        }
    }
}

impl CronConfig {
    /// `(job name, config field, expression)` for every job, in the workers' job order.
    pub fn entries(&self) -> [(&'static str, &'static str, &str); 4] {
        [
            (
                "process-emails",
                "cron.process_emails",
                &self.process_emails,
            ),
            (
                "process-donations",
                "cron.process_donations",
                &self.process_donations,
            ),
            (
                "cleanup-sessions",
                "cron.cleanup_sessions",
                &self.cleanup_sessions,
            ),
            (
                "generate-reports",
                "cron.generate_reports",
                &self.generate_reports,
            ),
        ]
    }
}

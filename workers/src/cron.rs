//! Cron jobs: their schedules, and one runner shared by every trigger (HTTP, the in-process
//! scheduler, `workers trigger`).
//!
//! **One run at a time, whoever triggers it.** A run holds a session-level advisory lock on a
//! dedicated connection (not pooled, so the lock dies with the runner) and records itself in
//! `cron_runs`. A second trigger while it runs gets [`CronError::AlreadyRunning`] (HTTP 409,
//! exit code 3). A `running` row left by a runner that died is closed as `failed` by the next
//! run, which can tell because the lock is free.
//!
//! **Missed runs.** The scheduler compares each job's most recent due time with its most recent
//! run by any trigger; if none started since, it runs the job once. Runs missed while no worker
//! was up are therefore caught up with a single run (never one per missed slot): every job here
//! works on "everything due now", so one run covers all the missed ones.
//!
//! **Schedules** are cron expressions (`croner`, five fields, UTC), the seeds' strings by
//! default and overridable per job in the configuration (`[cron]`, `CRON_<JOB>`); see
//! [`Schedules::from_config`].

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::{json, Value};
use tenant_config::config::CronConfig;

use crate::context::Ctx;

/// The cron jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronJob {
    /// Drain the email outbox (every 5 minutes).
    ProcessEmails,
    /// Reconcile pending donations with Stripe (hourly).
    ProcessDonations,
    /// Delete expired sessions and old bookkeeping (daily 03:00 UTC).
    CleanupSessions,
    /// Weekly reports (Mondays 06:00 UTC).
    GenerateReports,
}

/// Every job, in a stable order.
pub const ALL: [CronJob; 4] = [
    CronJob::ProcessEmails,
    CronJob::ProcessDonations,
    CronJob::CleanupSessions,
    CronJob::GenerateReports,
];

/// When a job is due: a parsed cron expression, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    text: Arc<str>,
}

impl Schedule {
    /// Parses a five-field expression (`minute hour day-of-month month day-of-week`, names such
    /// as `MON` and `JAN` allowed, no seconds or years) that fires at least once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("{text:?} is not a cron expression: {e}"))?;
        // `0 0 31 2 *` parses but never fires: a job that would silently never run.
        cron.find_next_occurrence(&Utc::now(), false)
            .map_err(|_| format!("{text:?} never fires"))?;
        Ok(Self {
            cron,
            text: text.trim().into(),
        })
    }

    /// The expression as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The latest due time at or before `now` (`None` if it never fired before `now`).
    pub fn last_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&now, true).ok()
    }

    /// The first due time strictly after `t`.
    pub fn next_due(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// Every job's schedule, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Schedules([Schedule; 4]);

impl Schedules {
    /// Parses each job's expression; the error names the job's config field, e.g.
    /// `cron.cleanup_sessions (cleanup-sessions): "0 25 * * *" is not a cron expression: ...`.
    pub fn from_config(config: &CronConfig) -> Result<Self, String> {
        let parse = |(job, field, text): (&str, &str, &str)| {
            Schedule::parse(text).map_err(|e| format!("{field} ({job}): {e}"))
        };
        let [a, b, c, d] = config.entries();
        Ok(Self([parse(a)?, parse(b)?, parse(c)?, parse(d)?]))
    }

    /// The schedule of `job`.
    pub fn get(&self, job: CronJob) -> &Schedule {
        &self.0[job.index()]
    }
}

impl CronJob {
    /// URL and CLI name.
    pub fn name(self) -> &'static str {
        match self {
            CronJob::ProcessEmails => "process-emails",
            CronJob::ProcessDonations => "process-donations",
            CronJob::CleanupSessions => "cleanup-sessions",
            CronJob::GenerateReports => "generate-reports",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<CronJob> {
        ALL.into_iter().find(|j| j.name() == name)
    }

    /// Position in [`ALL`] (and in [`CronConfig::entries`]).
    fn index(self) -> usize {
        match self {
            CronJob::ProcessEmails => 0,
            CronJob::ProcessDonations => 1,
            CronJob::CleanupSessions => 2,
            CronJob::GenerateReports => 3,
        }
    }

    fn lock_key(self) -> i64 {
        // Fixed keys in a range of our own; documented in docs/operations.md.
        7_300_000
            + match self {
                CronJob::ProcessEmails => 1,
                CronJob::ProcessDonations => 2,
                CronJob::CleanupSessions => 3,
                CronJob::GenerateReports => 4,
            }
    }
}

/// Advisory lock key of the scheduler leader.
pub const LEADER_KEY: i64 = 7_300_000;

/// Whether the scheduler should run a job now: its latest due slot has no run yet.
pub fn is_due(
    schedule: &Schedule,
    now: DateTime<Utc>,
    last_started: Option<DateTime<Utc>>,
) -> bool {
    match schedule.last_due(now) {
        Some(due) => last_started.is_none_or(|s| s < due),
        None => false,
    }
}

/// How a run was triggered (`cron_runs.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /api/cron/<job>`.
    Http,
    /// The in-process scheduler.
    Scheduler,
    /// `workers trigger <job>`.
    Cli,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Scheduler => "scheduler",
            Trigger::Cli => "cli",
        }
    }
}

/// Why a run did not happen or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// Another run of the job holds the lock.
    #[error("{0} is already running")]
    AlreadyRunning(&'static str),
    /// The run started and failed; recorded in `cron_runs` with this id.
    #[error("run {run_id} failed: {message}")]
    Failed {
        /// `cron_runs.id`.
        run_id: i64,
        /// What went wrong.
        message: String,
    },
    /// The database could not be reached to start the run.
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// `cron_runs.id`.
    pub run_id: i64,
    /// Counts the job reported.
    pub counts: Value,
}

/// Runs `job` once, if no other run of it is in progress anywhere.
pub async fn run(
    ctx: &Ctx,
    job: CronJob,
    trigger: Trigger,
    scheduled_for: Option<DateTime<Utc>>,
) -> Result<RunReport, CronError> {
    let session = ctx.session().await?;
    let locked: bool = session
        .query_one("SELECT pg_try_advisory_lock($1)", &[&job.lock_key()])
        .await?
        .get(0);
    if !locked {
        session
            .execute(
                "INSERT INTO cron_runs (job, trigger, scheduled_for, outcome, finished_at, error)
                 VALUES ($1, $2, $3, 'skipped', now(), 'another run was in progress')",
                &[&job.name(), &trigger.as_str(), &scheduled_for],
            )
            .await?;
        crate::metrics::cron_skipped(job.name());
        return Err(CronError::AlreadyRunning(job.name()));
    }
    // We hold the lock, so a row still marked running belongs to a runner that died.
    session
        .execute(
            "UPDATE cron_runs SET outcome = 'failed', finished_at = now(),
                    error = 'runner stopped before finishing (process died or lost its connection)'
             WHERE job = $1 AND outcome = 'running'",
            &[&job.name()],
        )
        .await?;
    let run_id: i64 = session
        .query_one(
            "INSERT INTO cron_runs (job, trigger, scheduled_for) VALUES ($1, $2, $3) RETURNING id",
            &[&job.name(), &trigger.as_str(), &scheduled_for],
        )
        .await?
        .get(0);
    tracing::info!(
        job = job.name(),
        run_id,
        trigger = trigger.as_str(),
        "cron run started"
    );
    let started = std::time::Instant::now();
    let result = match job {
        CronJob::ProcessEmails => crate::jobs::emails::run(ctx).await,
        CronJob::ProcessDonations => crate::jobs::donations::run(ctx).await,
        CronJob::CleanupSessions => crate::jobs::cleanup::run(ctx).await,
        CronJob::GenerateReports => crate::jobs::reports::run(ctx, Utc::now()).await,
    };
    let (outcome, counts, error) = match &result {
        Ok(c) => ("succeeded", c.clone(), None),
        Err(e) => ("failed", json!({}), Some(e.clone())),
    };
    session
        .execute(
            "UPDATE cron_runs SET outcome = $2, finished_at = now(), counts = $3, error = $4 WHERE id = $1",
            &[&run_id, &outcome, &counts, &error],
        )
        .await?;
    let _ = session
        .execute("SELECT pg_advisory_unlock($1)", &[&job.lock_key()])
        .await;
    crate::metrics::cron_finished(job.name(), result.is_ok(), started.elapsed());
    match result {
        Ok(counts) => {
            tracing::info!(job = job.name(), run_id, %counts, "cron run succeeded");
            Ok(RunReport { run_id, counts })
        }
        Err(message) => {
            tracing::error!(job = job.name(), run_id, error = %message, "cron run failed");
            Err(CronError::Failed { run_id, message })
        }
    }
}

/// The in-process scheduler: waits to become leader (advisory lock on a dedicated session),
/// then runs each job when due, catching up missed slots once.
pub async fn scheduler(ctx: Ctx, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let leader = async {
            let s = ctx.session().await?;
            let got: bool = s
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_KEY])
                .await?
                .get(0);
            Ok::<_, tokio_postgres::Error>(got.then_some(s))
        }
        .await;
        match leader {
            Ok(Some(session)) => {
                tracing::info!("cron scheduler: this process is the leader");
                lead(&ctx, &session, &mut shutdown).await;
                drop(session);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cron scheduler cannot reach the database"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(15)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn lead(
    ctx: &Ctx,
    session: &tokio_postgres::Client,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() || session.is_closed() {
            return;
        }
        let now = Utc::now();
        for job in ALL {
            let last: Option<DateTime<Utc>> = match session
                .query_one(
                    "SELECT max(started_at) FROM cron_runs WHERE job = $1 AND outcome <> 'skipped'",
                    &[&job.name()],
                )
                .await
            {
                Ok(r) => r.get(0),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler lost its session");
                    return;
                }
            };
            let schedule = ctx.schedules.get(job);
            if is_due(schedule, now, last) {
                let due = schedule.last_due(now);
                let ctx = ctx.clone();
                // Each run on its own task: a long report run never delays the 5-minute mail run.
                tokio::spawn(async move {
                    if let Err(e) = run(&ctx, job, Trigger::Scheduler, due).await {
                        tracing::warn!(job = job.name(), error = %e, "scheduled run did not succeed");
                    }
                });
            }
        }
        let next = ALL
            .iter()
            .filter_map(|j| ctx.schedules.get(*j).next_due(now))
            .min()
            .unwrap_or(now + ChronoDuration::minutes(1));
        // Wake at the next due time, or within 30 s to notice a lost session or runs started
        // elsewhere.
        let wait = (next - Utc::now())
            .to_std()
            .unwrap_or_default()
            .min(std::time::Duration::from_secs(30))
            + std::time::Duration::from_millis(200);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for j in ALL {
            assert_eq!(CronJob::from_name(j.name()), Some(j));
        }
        assert_eq!(CronJob::from_name("rm-rf"), None);
    }

    #[test]
    fn config_entries_follow_the_job_order() {
        for (i, (name, _, _)) in CronConfig::default().entries().into_iter().enumerate() {
            assert_eq!(ALL[i].name(), name);
            assert_eq!(ALL[i].index(), i);
        }
    }
}

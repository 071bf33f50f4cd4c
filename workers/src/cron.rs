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

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc, Weekday};
use serde_json::{json, Value};

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

/// When a job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every n minutes, on multiples of n past the hour.
    EveryMinutes(u32),
    /// At minute 0 of every hour.
    Hourly,
    /// Every day at hh:mm UTC.
    Daily(u32, u32),
    /// Every week on a weekday at hh:mm UTC.
    Weekly(Weekday, u32, u32),
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

    /// The seeds' schedule.
    pub fn schedule(self) -> Schedule {
        match self {
            CronJob::ProcessEmails => Schedule::EveryMinutes(5),
            CronJob::ProcessDonations => Schedule::Hourly,
            CronJob::CleanupSessions => Schedule::Daily(3, 0),
            CronJob::GenerateReports => Schedule::Weekly(Weekday::Mon, 6, 0),
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

impl Schedule {
    /// The latest due time at or before `now`.
    pub fn last_due(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let floor_min = now
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        match self {
            Schedule::EveryMinutes(n) => {
                let n = n.max(1);
                let m = floor_min.minute() - floor_min.minute() % n;
                floor_min.with_minute(m).unwrap_or(floor_min)
            }
            Schedule::Hourly => floor_min.with_minute(0).unwrap_or(floor_min),
            Schedule::Daily(h, m) => {
                let today = at(now, h, m);
                if today <= now {
                    today
                } else {
                    today - ChronoDuration::days(1)
                }
            }
            Schedule::Weekly(day, h, m) => {
                let back =
                    (7 + now.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
                let candidate = at(now, h, m) - ChronoDuration::days(i64::from(back));
                if candidate <= now {
                    candidate
                } else {
                    candidate - ChronoDuration::days(7)
                }
            }
        }
    }

    /// The first due time strictly after `t`.
    pub fn next_due(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let step = match self {
            Schedule::EveryMinutes(n) => ChronoDuration::minutes(i64::from(n.max(1))),
            Schedule::Hourly => ChronoDuration::hours(1),
            Schedule::Daily(..) => ChronoDuration::days(1),
            Schedule::Weekly(..) => ChronoDuration::days(7),
        };
        self.last_due(t) + step
    }
}

fn at(day: DateTime<Utc>, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(day.year(), day.month(), day.day(), h, m, 0)
        .single()
        .unwrap_or(day)
}

/// Whether the scheduler should run a job now: its latest due slot has no run yet.
pub fn is_due(schedule: Schedule, now: DateTime<Utc>, last_started: Option<DateTime<Utc>>) -> bool {
    let due = schedule.last_due(now);
    last_started.is_none_or(|s| s < due)
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
            if is_due(job.schedule(), now, last) {
                let due = job.schedule().last_due(now);
                let ctx = ctx.clone();
                // Each run on its own task: a long report run never delays the 5-minute mail run.
                tokio::spawn(async move {
                    if let Err(e) = run(&ctx, job, Trigger::Scheduler, Some(due)).await {
                        tracing::warn!(job = job.name(), error = %e, "scheduled run did not succeed");
                    }
                });
            }
        }
        let next = ALL
            .iter()
            .map(|j| j.schedule().next_due(now))
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

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn last_and_next_due_under_virtual_time() {
        let every5 = Schedule::EveryMinutes(5);
        assert_eq!(
            every5.last_due(t("2026-11-23T10:07:31Z")),
            t("2026-11-23T10:05:00Z")
        );
        assert_eq!(
            every5.next_due(t("2026-11-23T10:05:00Z")),
            t("2026-11-23T10:10:00Z")
        );
        assert_eq!(
            Schedule::Hourly.last_due(t("2026-11-23T10:59:59Z")),
            t("2026-11-23T10:00:00Z")
        );
        let daily = Schedule::Daily(3, 0);
        assert_eq!(
            daily.last_due(t("2026-11-23T02:59:00Z")),
            t("2026-11-22T03:00:00Z")
        );
        assert_eq!(
            daily.last_due(t("2026-11-23T03:00:00Z")),
            t("2026-11-23T03:00:00Z")
        );
        assert_eq!(
            daily.next_due(t("2026-11-23T03:00:00Z")),
            t("2026-11-24T03:00:00Z")
        );
        let weekly = Schedule::Weekly(Weekday::Mon, 6, 0);
        // 2026-11-23 is a Monday.
        assert_eq!(
            weekly.last_due(t("2026-11-23T05:59:00Z")),
            t("2026-11-16T06:00:00Z")
        );
        assert_eq!(
            weekly.last_due(t("2026-11-23T06:00:00Z")),
            t("2026-11-23T06:00:00Z")
        );
        assert_eq!(
            weekly.last_due(t("2026-11-22T12:00:00Z")),
            t("2026-11-16T06:00:00Z")
        );
        assert_eq!(
            weekly.next_due(t("2026-11-23T06:00:00Z")),
            t("2026-11-30T06:00:00Z")
        );
    }

    #[test]
    fn missed_runs_are_caught_up_once() {
        let daily = Schedule::Daily(3, 0);
        // Down from Friday to Monday 09:00: one run now, not three.
        let now = t("2026-11-23T09:00:00Z");
        assert!(is_due(daily, now, Some(t("2026-11-20T03:00:05Z"))));
        assert!(is_due(daily, now, None));
        // After that run, nothing until tomorrow 03:00.
        assert!(!is_due(daily, now + ChronoDuration::minutes(1), Some(now)));
        assert!(!is_due(daily, t("2026-11-24T02:59:00Z"), Some(now)));
        assert!(is_due(daily, t("2026-11-24T03:00:00Z"), Some(now)));
        let every5 = Schedule::EveryMinutes(5);
        assert!(!is_due(
            every5,
            t("2026-11-23T10:09:00Z"),
            Some(t("2026-11-23T10:05:01Z"))
        ));
        assert!(is_due(
            every5,
            t("2026-11-23T10:10:00Z"),
            Some(t("2026-11-23T10:05:01Z"))
        ));
    }

    #[test]
    fn names_round_trip() {
        for j in ALL {
            assert_eq!(CronJob::from_name(j.name()), Some(j));
        }
        assert_eq!(CronJob::from_name("rm-rf"), None);
    }
}

//! Prometheus metrics for the queue and cron jobs, served at `GET /metrics`. Queue depth, oldest
//! job age and each cron job's last success are read from the database at scrape time, so they
//! are right whichever process did the work.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use (`None` if another one was installed).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .inspect(|_| describe())
                .ok()
        })
        .as_ref()
}

/// HELP text for every family, so `promtool check metrics` and dashboards know what each means.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "workers_jobs_total",
        "Job attempts by kind and outcome (completed, failed)."
    );
    describe_histogram!(
        "workers_job_duration_seconds",
        Unit::Seconds,
        "Time a job attempt took, by kind."
    );
    describe_gauge!("workers_queue_depth", "Jobs in the queue by state.");
    describe_gauge!(
        "workers_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest job that could run now."
    );
    describe_counter!(
        "workers_cron_runs_total",
        "Cron job runs by job and outcome."
    );
    describe_histogram!(
        "workers_cron_duration_seconds",
        Unit::Seconds,
        "Time a cron job run took, by job."
    );
    describe_gauge!(
        "workers_cron_last_success_timestamp_seconds",
        Unit::Seconds,
        "When each cron job last succeeded, in Unix time."
    );
    describe_counter!(
        "workers_emails_total",
        "E-mails handed to the SMTP relay, by template and outcome."
    );
    describe_gauge!(
        "workers_email_outbox_pending",
        "E-mails waiting in the outbox."
    );
    tenant_config::process_metrics::describe();
}

fn kind_label(kind: &str) -> String {
    if crate::consumer::handler(kind).is_some() {
        kind.to_owned()
    } else {
        "unknown".into()
    }
}

/// A job attempt finished.
pub fn job_finished(kind: &str, ok: bool, took: Duration) {
    let outcome = if ok { "completed" } else { "failed" };
    metrics::counter!("workers_jobs_total", "kind" => kind_label(kind), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("workers_job_duration_seconds", "kind" => kind_label(kind))
        .record(took.as_secs_f64());
}

/// A job used its last attempt.
pub fn job_discarded(kind: &str) {
    metrics::counter!("workers_jobs_total", "kind" => kind_label(kind), "outcome" => "discarded")
        .increment(1);
}

/// A cron run finished.
pub fn cron_finished(job: &'static str, ok: bool, took: Duration) {
    let outcome = if ok { "succeeded" } else { "failed" };
    metrics::counter!("workers_cron_runs_total", "job" => job, "outcome" => outcome).increment(1);
    metrics::histogram!("workers_cron_duration_seconds", "job" => job).record(took.as_secs_f64());
}

/// A trigger found the job already running.
pub fn cron_skipped(job: &'static str) {
    metrics::counter!("workers_cron_runs_total", "job" => job, "outcome" => "skipped").increment(1);
}

/// An email left the outbox (`sent`, `retry`, `failed`).
pub fn email(outcome: &'static str) {
    metrics::counter!("workers_emails_total", "outcome" => outcome).increment(1);
}

/// Reads the gauges that live in the database.
pub async fn refresh(db: &tenant_config::db::Pool) -> Result<(), String> {
    let conn = db.get().await.map_err(|e| e.to_string())?;
    for r in conn
        .query(
            "SELECT state, count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8
             FROM jobs WHERE state IN ('available', 'retryable', 'running') GROUP BY state",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
    {
        let state: String = r.get(0);
        let n: i64 = r.get(1);
        metrics::gauge!("workers_queue_depth", "state" => state.clone()).set(n as f64);
        if state != "running" {
            metrics::gauge!("workers_queue_oldest_age_seconds", "state" => state)
                .set(r.get::<_, f64>(2).max(0.0));
        }
    }
    for job in crate::cron::ALL {
        let last: Option<f64> = conn
            .query_one(
                "SELECT EXTRACT(EPOCH FROM max(finished_at))::float8 FROM cron_runs WHERE job = $1 AND outcome = 'succeeded'",
                &[&job.name()],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        metrics::gauge!("workers_cron_last_success_timestamp_seconds", "job" => job.name())
            .set(last.unwrap_or(0.0));
    }
    let pending: i64 = conn
        .query_one(
            "SELECT count(*) FROM email_outbox WHERE status IN ('pending', 'sending')",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    metrics::gauge!("workers_email_outbox_pending").set(pending as f64);
    Ok(())
}

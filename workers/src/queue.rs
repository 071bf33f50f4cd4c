//! The job queue on the `jobs` table.
//!
//! - **Enqueue** inside the caller's transaction ([`enqueue`]), so a job exists exactly when the
//!   change that caused it commits. A `unique_key` refuses a second pending copy.
//! - **Fetch** in batches, fairly across tenants: candidates come from each tenant's own index
//!   range (a loose index scan over `jobs_runnable_tenant_idx`) plus platform-wide jobs, are
//!   interleaved round-robin, and claimed with `FOR UPDATE SKIP LOCKED`, so one tenant's backlog
//!   of thousands cannot starve another tenant's single job, and consumers never block each
//!   other.
//! - **Leases**: a claimed job holds a lease that a heartbeat extends while it runs. Jobs whose
//!   lease expired (their worker was killed) are rescued back to `retryable`.
//! - **Failures** retry with exponential backoff and jitter until `max_attempts`, then become
//!   `discarded` with the last error kept.
//! - **Wake-up**: an insert trigger NOTIFYs `jobs_available`; consumers LISTEN and also poll.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Options for [`enqueue`].
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Handler name (`send-report`, `noop`, …).
    pub kind: &'a str,
    /// Tenant the job works for (fair share is per tenant); `None` for platform-wide work.
    pub tenant: Option<Uuid>,
    /// Handler input.
    pub payload: Value,
    /// Lower runs first (default 100).
    pub priority: i16,
    /// Earliest start; now when `None`.
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// At most one pending job per key.
    pub unique_key: Option<String>,
    /// Attempts before the job is discarded (default 20).
    pub max_attempts: i32,
}

impl<'a> NewJob<'a> {
    /// A job of `kind` with defaults.
    pub fn new(kind: &'a str, payload: Value) -> Self {
        Self {
            kind,
            tenant: None,
            payload,
            priority: 100,
            run_at: None,
            unique_key: None,
            max_attempts: 20,
        }
    }
}

/// Adds a job in the caller's transaction. Returns its id, or `None` when a pending job with the
/// same unique key already exists.
pub async fn enqueue(
    client: &impl GenericClient,
    job: &NewJob<'_>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "INSERT INTO jobs (kind, tenant_id, payload, priority, run_at, unique_key, max_attempts)
             VALUES ($1, $2, $3, $4, COALESCE($5, now()), $6, $7)
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running', 'retryable')
             DO NOTHING RETURNING id",
            &[
                &job.kind,
                &job.tenant,
                &job.payload,
                &job.priority,
                &job.run_at,
                &job.unique_key,
                &job.max_attempts,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Handler name.
    pub kind: String,
    /// Tenant, if any.
    pub tenant: Option<Uuid>,
    /// Input.
    pub payload: Value,
    /// This attempt's number (1 on the first run).
    pub attempt: i32,
    /// When the job is discarded instead of retried.
    pub max_attempts: i32,
}

/// Candidate rows per tenant looked at in one fetch.
const TENANTS_PER_FETCH: i64 = 32;

const CANDIDATES: &str = "
WITH RECURSIVE tenants AS (
    (SELECT tenant_id FROM jobs
      WHERE state IN ('available', 'retryable') AND tenant_id IS NOT NULL
      ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant_id FROM jobs j
             WHERE j.state IN ('available', 'retryable') AND j.tenant_id > t.tenant_id
             ORDER BY j.tenant_id LIMIT 1)
    FROM tenants t WHERE t.tenant_id IS NOT NULL
)
SELECT c.id, c.tenant_id FROM (SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL LIMIT $2) t,
  LATERAL (SELECT id, tenant_id, priority, run_at FROM jobs
            WHERE tenant_id = t.tenant_id AND state IN ('available', 'retryable') AND run_at <= now()
            ORDER BY priority, run_at, id LIMIT $1) c
UNION ALL
(SELECT id, NULL::uuid FROM jobs
  WHERE state IN ('available', 'retryable') AND tenant_id IS NULL AND run_at <= now()
  ORDER BY priority, run_at, id LIMIT $1)";

const CLAIM: &str = "
WITH picked AS (
    SELECT id FROM jobs WHERE id = ANY($1) AND state IN ('available', 'retryable')
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = now(),
       locked_by = $2, lease_expires_at = now() + make_interval(secs => $3)
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.kind, j.tenant_id, j.payload, j.attempt, j.max_attempts";

/// Interleaves candidates round-robin by tenant (platform-wide jobs count as one more tenant),
/// keeping each tenant's own order, and keeps the first `limit`.
pub fn fair_order(candidates: &[(i64, Option<Uuid>)], limit: usize) -> Vec<i64> {
    let mut queues: Vec<VecDeque<i64>> = Vec::new();
    let mut index: HashMap<Option<Uuid>, usize> = HashMap::new();
    for (id, tenant) in candidates {
        let i = *index.entry(*tenant).or_insert_with(|| {
            queues.push(VecDeque::new());
            queues.len() - 1
        });
        queues[i].push_back(*id);
    }
    let mut out = Vec::with_capacity(limit);
    while out.len() < limit {
        let mut took = false;
        for q in &mut queues {
            if let Some(id) = q.pop_front() {
                out.push(id);
                took = true;
                if out.len() == limit {
                    break;
                }
            }
        }
        if !took {
            break;
        }
    }
    out
}

/// Claims up to `limit` runnable jobs for `worker`, fairly across tenants.
pub async fn fetch(
    client: &impl GenericClient,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Job>, tokio_postgres::Error> {
    let per = i64::try_from(limit).unwrap_or(i64::MAX);
    // Typed parameters: one round trip per statement, no separate prepare (this runs for every
    // batch).
    let rows = client
        .query_typed(
            CANDIDATES,
            &[(&per, Type::INT8), (&TENANTS_PER_FETCH, Type::INT8)],
        )
        .await?;
    let candidates: Vec<(i64, Option<Uuid>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let ids = fair_order(&candidates, limit);
    let rows = client
        .query_typed(
            CLAIM,
            &[
                (&ids, Type::INT8_ARRAY),
                (&worker, Type::TEXT),
                (&lease.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await?;
    let mut jobs: Vec<Job> = rows
        .iter()
        .map(|r| Job {
            id: r.get(0),
            kind: r.get(1),
            tenant: r.get(2),
            payload: r.get(3),
            attempt: r.get(4),
            max_attempts: r.get(5),
        })
        .collect();
    // Run in the fair order chosen above.
    let pos: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    jobs.sort_by_key(|j| pos.get(&j.id).copied().unwrap_or(usize::MAX));
    Ok(jobs)
}

/// Marks jobs done (one statement for a whole batch). Only jobs this worker still holds are
/// touched: a job rescued from a stalled worker is not completed by it afterwards.
pub async fn complete(
    client: &impl GenericClient,
    worker: &str,
    ids: &[i64],
) -> Result<u64, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute_typed(
            "UPDATE jobs SET state = 'completed', finished_at = now(), lease_expires_at = NULL,
                    locked_by = NULL, last_error = NULL
             WHERE id = ANY($1) AND state = 'running' AND locked_by = $2",
            &[(&ids, Type::INT8_ARRAY), (&worker, Type::TEXT)],
        )
        .await
}

/// Delay before attempt `attempt + 1`: 2^attempt seconds capped at an hour, times a jitter in
/// [0.5, 1.5) so a burst of failures does not retry in lockstep.
pub fn backoff(attempt: i32, jitter_unit: f64) -> Duration {
    let base = 2f64.powi(attempt.clamp(0, 12)).min(3600.0);
    Duration::from_secs_f64(base * (0.5 + jitter_unit.clamp(0.0, 1.0)))
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    f64::from(u16::from_le_bytes(b)) / 65536.0
}

/// Records a failed attempt: retried after a backoff, or discarded after the last attempt.
/// Returns whether the job was discarded.
pub async fn fail(
    client: &impl GenericClient,
    worker: &str,
    job: &Job,
    error: &str,
) -> Result<bool, tokio_postgres::Error> {
    let discard = job.attempt >= job.max_attempts;
    let delay = backoff(job.attempt, jitter());
    client
        .execute(
            "UPDATE jobs SET state = CASE WHEN $3 THEN 'discarded' ELSE 'retryable' END,
                    run_at = now() + make_interval(secs => $4), last_error = left($5, 2000),
                    lease_expires_at = NULL, locked_by = NULL,
                    finished_at = CASE WHEN $3 THEN now() END
             WHERE id = $1 AND state = 'running' AND locked_by = $2",
            &[&job.id, &worker, &discard, &delay.as_secs_f64(), &error],
        )
        .await?;
    Ok(discard)
}

/// Extends the leases of the jobs this worker is running.
pub async fn heartbeat(
    client: &impl GenericClient,
    worker: &str,
    ids: &[i64],
    lease: Duration,
) -> Result<u64, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = ANY($1) AND state = 'running' AND locked_by = $2",
            &[&ids, &worker, &lease.as_secs_f64()],
        )
        .await
}

/// Puts jobs whose lease expired (their worker died or hung) back in the queue, or discards
/// them when that was their last attempt. Returns how many were rescued.
pub async fn rescue_expired(client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE jobs SET state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
                    run_at = now(), lease_expires_at = NULL, locked_by = NULL,
                    last_error = 'lease expired: worker lost during attempt ' || attempt,
                    finished_at = CASE WHEN attempt >= max_attempts THEN now() END
             WHERE state = 'running' AND lease_expires_at < now()",
            &[],
        )
        .await
}

/// Hands unfinished jobs back at shutdown: available again at once, and the attempt that never
/// ran to completion is not counted.
pub async fn release(
    client: &impl GenericClient,
    worker: &str,
    ids: &[i64],
) -> Result<u64, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "UPDATE jobs SET state = 'available', attempt = greatest(attempt - 1, 0), run_at = now(),
                    lease_expires_at = NULL, locked_by = NULL
             WHERE id = ANY($1) AND state = 'running' AND locked_by = $2",
            &[&ids, &worker],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_order_interleaves_tenants() {
        let a = Some(Uuid::from_u128(1));
        let b = Some(Uuid::from_u128(2));
        let c = [(1, a), (2, a), (3, a), (4, a), (10, b), (20, None)];
        assert_eq!(fair_order(&c, 4), vec![1, 10, 20, 2]);
        assert_eq!(fair_order(&c, 10), vec![1, 10, 20, 2, 3, 4]);
        assert!(fair_order(&[], 5).is_empty());
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        assert_eq!(backoff(0, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert!(backoff(3, 1.0) <= Duration::from_secs(12));
        assert_eq!(backoff(40, 0.5), Duration::from_secs(3600));
    }
}

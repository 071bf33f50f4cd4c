//! Queue consumers: fetch a fair batch, run it, complete it in one statement, and keep leases
//! alive while jobs run. Woken by `NOTIFY jobs_available`, polling as a fallback.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenant_config::db::listen::ListenStream;
use tokio::sync::{watch, Notify};

use crate::context::Ctx;
use crate::queue::{self, Job};

/// What a handler returns: `Err` carries the message kept in `jobs.last_error`.
pub type JobResult = Result<(), String>;

/// Runs one job kind.
pub type HandlerFn = fn(Ctx, Job) -> Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// Job kinds this build knows. Unknown kinds fail (and are eventually discarded) rather than
/// being silently completed.
pub fn handler(kind: &str) -> Option<HandlerFn> {
    match kind {
        "noop" => Some(|_, job| Box::pin(noop(job))),
        "tenant-weekly-report" => {
            Some(|ctx, job| Box::pin(crate::jobs::reports::tenant_job(ctx, job)))
        }
        _ => None,
    }
}

/// A job that does nothing (benchmarks, smoke tests); `{"sleep_ms": n}` makes it take n ms
/// (at most a minute) and `{"fail": "msg"}` makes it fail, to exercise leases and retries.
async fn noop(job: Job) -> JobResult {
    if let Some(ms) = job.payload.get("sleep_ms").and_then(|v| v.as_u64()) {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    match job.payload.get("fail").and_then(|v| v.as_str()) {
        Some(msg) => Err(msg.to_owned()),
        None => Ok(()),
    }
}

/// Jobs this process is running, for the heartbeat and for release at shutdown.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<i64>>);

impl InFlight {
    fn add(&self, ids: impl IntoIterator<Item = i64>) {
        self.lock().extend(ids);
    }
    fn remove(&self, id: i64) {
        self.lock().remove(&id);
    }
    /// Snapshot of the ids.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().iter().copied().collect()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the consumers, the LISTEN wake-up, the heartbeat and lease rescue; resolves after
/// `shutdown` flips and in-flight jobs finished or were handed back.
pub async fn run(ctx: Ctx, shutdown: watch::Receiver<bool>) {
    let wake = Arc::new(Notify::new());
    let in_flight = Arc::new(InFlight::default());
    let listener = tokio::spawn(listen(ctx.clone(), wake.clone(), shutdown.clone()));
    let keeper = tokio::spawn(keep_leases(
        ctx.clone(),
        in_flight.clone(),
        shutdown.clone(),
    ));
    let mut consumers = Vec::new();
    for _ in 0..ctx.queue.consumers {
        consumers.push(tokio::spawn(consume(
            ctx.clone(),
            wake.clone(),
            in_flight.clone(),
            shutdown.clone(),
        )));
    }
    let mut sd = shutdown.clone();
    let _ = sd.wait_for(|s| *s).await;
    // Let running batches finish within the grace period, then hand back what is left.
    let grace = Duration::from_secs(ctx.queue.shutdown_grace_secs);
    let all = futures_util::future::join_all(consumers);
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!("shutdown grace period over; handing unfinished jobs back");
    }
    let left = in_flight.ids();
    if !left.is_empty() {
        match ctx.db.get().await {
            Ok(conn) => match queue::release(&**conn, &ctx.worker_id, &left).await {
                Ok(n) => tracing::info!(released = n, "unfinished jobs handed back"),
                Err(e) => {
                    tracing::error!(error = %e, "could not hand jobs back; their leases will expire")
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "could not hand jobs back; their leases will expire")
            }
        }
    }
    listener.abort();
    keeper.abort();
}

async fn consume(
    ctx: Ctx,
    wake: Arc<Notify>,
    in_flight: Arc<InFlight>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease = Duration::from_secs(ctx.queue.lease_secs);
    let poll = Duration::from_millis(ctx.queue.poll_ms);
    let batch = ctx.queue.batch as usize;
    while !*shutdown.borrow() {
        let fetched = match ctx.db.get().await {
            Ok(conn) => queue::fetch(&**conn, &ctx.worker_id, batch, lease)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let jobs = match fetched {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "fetching jobs failed; retrying");
                tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                    }
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            }
            continue;
        }
        in_flight.add(jobs.iter().map(|j| j.id));
        run_batch(&ctx, jobs, &in_flight).await;
    }
}

async fn run_batch(ctx: &Ctx, jobs: Vec<Job>, in_flight: &InFlight) {
    let runs = jobs.into_iter().map(|job| {
        let ctx = ctx.clone();
        async move {
            let started = Instant::now();
            let result = match handler(&job.kind) {
                Some(h) => h(ctx, job.clone()).await,
                None => Err(format!("no handler for job kind {:?}", job.kind)),
            };
            crate::metrics::job_finished(&job.kind, result.is_ok(), started.elapsed());
            (job, result)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let done: Vec<i64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(j, _)| j.id)
        .collect();
    let conn = match ctx.db.get().await {
        Ok(c) => c,
        Err(e) => {
            // Leases expire and the jobs run again: at-least-once, never lost.
            tracing::error!(error = %e, "could not record job results");
            return;
        }
    };
    if let Err(e) = queue::complete(&**conn, &ctx.worker_id, &done).await {
        tracing::error!(error = %e, "could not mark jobs completed; they will run again");
    }
    for (job, result) in &results {
        if let Err(msg) = result {
            match queue::fail(&**conn, &ctx.worker_id, job, msg).await {
                Ok(true) => {
                    crate::metrics::job_discarded(&job.kind);
                    tracing::error!(job = job.id, kind = %job.kind, error = %msg, "job discarded after its last attempt");
                }
                Ok(false) => {
                    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempt, error = %msg, "job failed; will retry")
                }
                Err(e) => tracing::error!(error = %e, "could not record a job failure"),
            }
        }
        in_flight.remove(job.id);
    }
    for id in done {
        in_flight.remove(id);
    }
}

/// LISTEN on tenant-config's reconnecting stream. Every wake-up, and every (re)connect, which
/// may have missed notifications, releases all idle consumers to fetch; consumers poll
/// meanwhile while the database cannot be reached.
async fn listen(ctx: Ctx, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut jobs = ListenStream::new((*ctx.pg).clone(), &["jobs_available"], "job wake-ups");
    while !*shutdown.borrow() {
        tokio::select! {
            _ = jobs.next() => wake.notify_waiters(),
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Renews the leases of running jobs every third of the lease, and rescues jobs whose lease
/// expired anywhere (a killed worker's jobs run again on whoever is alive).
async fn keep_leases(ctx: Ctx, in_flight: Arc<InFlight>, shutdown: watch::Receiver<bool>) {
    let lease = Duration::from_secs(ctx.queue.lease_secs);
    let every = (lease / 3).max(Duration::from_millis(500));
    while !*shutdown.borrow() {
        tokio::time::sleep(every).await;
        let Ok(conn) = ctx.db.get().await else {
            continue;
        };
        let ids = in_flight.ids();
        if let Err(e) = queue::heartbeat(&**conn, &ctx.worker_id, &ids, lease).await {
            tracing::warn!(error = %e, "lease heartbeat failed");
        }
        match queue::rescue_expired(&**conn).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rescued = n,
                "jobs with expired leases put back in the queue"
            ),
            Err(e) => tracing::warn!(error = %e, "lease rescue failed"),
        }
    }
}

//! HTTP served by a workers process on its public listener, reached through the router's
//! workers pool: `GET|POST /api/cron/<job>` (bearer `CRON_SECRET`, as Vercel-style cron callers
//! send it) and the status-only `/api/health` the router's health check probes. `/metrics`,
//! `/ready` and the full `/health` are on the private operator listener ([`crate::operator`]).

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;
use tenant_config::health::{timed, Report};

use crate::context::Ctx;
use crate::cron::{self, CronError, CronJob, Trigger};

/// Shared handles.
#[derive(Clone)]
pub struct WorkersState {
    /// Jobs' handles.
    pub ctx: Ctx,
    /// `CRON_SECRET`.
    pub cron_secret: std::sync::Arc<String>,
    /// When the process started, for `uptime_seconds`.
    pub started: Instant,
}

/// The workers' public routes.
pub fn app(state: WorkersState) -> Router {
    crate::metrics::handle();
    Router::new()
        .route("/api/health", get(public_health))
        .route("/api/cron/{job}", get(trigger).post(trigger))
        .with_state(state)
}

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        [("content-type", "application/problem+json")],
        Json(json!({"status": status.as_u16(), "title": title})),
    )
        .into_response()
}

/// `GET|POST /api/cron/<job>`: runs the job now and answers with the run's id and outcome;
/// 401 without the secret, 404 for an unknown job, 409 while it is already running.
async fn trigger(
    State(state): State<WorkersState>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.cron_secret.as_bytes();
    // Constant time over the secret's length; a length mismatch fails the same way.
    let ok = given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected));
    if !ok {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Some(job) = CronJob::from_name(&job) else {
        return problem(StatusCode::NOT_FOUND, "No such cron job");
    };
    match cron::run(&state.ctx, job, Trigger::Http, None).await {
        Ok(r) => (StatusCode::OK, Json(json!({"job": job.name(), "run_id": r.run_id, "outcome": "succeeded", "counts": r.counts}))).into_response(),
        Err(CronError::AlreadyRunning(_)) => (
            StatusCode::CONFLICT,
            Json(json!({"job": job.name(), "outcome": "skipped", "detail": "already running"})),
        )
            .into_response(),
        Err(CronError::Failed { run_id, .. }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"job": job.name(), "run_id": run_id, "outcome": "failed", "detail": "see the workers' log and cron_runs.error"})),
        )
            .into_response(),
        Err(CronError::Database(e)) => {
            tracing::error!(error = %e, "cron trigger: database unavailable");
            problem(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
        }
    }
}

/// The workers' health report: one check, `database` (the queue lives there); ready when it
/// is up.
pub async fn report(state: &WorkersState) -> Report {
    let probe = async {
        let conn = state.ctx.db.get().await.map_err(|e| e.to_string())?;
        conn.query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let (database, _) = timed(Duration::from_secs(2), probe).await;
    Report::new(
        env!("CARGO_PKG_VERSION"),
        state.started,
        vec![("database", database)],
    )
}

/// `GET /api/health` (public): `{"status":"ok"}` when ready, `{"status":"unavailable"}` with
/// 503 when not, and nothing else.
async fn public_health(State(state): State<WorkersState>) -> Response {
    let ready = report(&state).await.all_up();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        tenant_config::health::public_body(ready),
    )
        .into_response()
}

//! HTTP served by a workers process, reached through the router's workers pool:
//! `GET|POST /api/cron/<job>` (bearer `CRON_SECRET`, as Vercel-style cron callers send it),
//! `/health` and `/metrics`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::context::Ctx;
use crate::cron::{self, CronError, CronJob, Trigger};

/// Shared handles.
#[derive(Clone)]
pub struct WorkersState {
    /// Jobs' handles.
    pub ctx: Ctx,
    /// `CRON_SECRET`.
    pub cron_secret: std::sync::Arc<String>,
}

/// The workers' routes.
pub fn app(state: WorkersState) -> Router {
    crate::metrics::handle();
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
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

async fn metrics(State(state): State<WorkersState>) -> Response {
    let Some(h) = crate::metrics::handle() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        );
    };
    if let Err(e) = crate::metrics::refresh(&state.ctx.db).await {
        tracing::warn!(error = %e, "queue gauges not refreshed");
    }
    h.run_upkeep();
    tenant_config::process_metrics::update();
    ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response()
}

/// `GET /health`: 200 when the queue database answers, 503 when it does not.
async fn health(State(state): State<WorkersState>) -> (StatusCode, Json<Value>) {
    let probe = async {
        let conn = state.ctx.db.get().await.map_err(|e| e.to_string())?;
        conn.query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let db_up = matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(()))
    );
    let (code, status) = if db_up {
        (StatusCode::OK, "healthy")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": { "status": if db_up { "up" } else { "down" } } },
    });
    (code, Json(body))
}

//! Liveness and readiness, shaped like the seeds' `/api/health`.
//!
//! `/health` always answers 200 while the process can serve HTTP, and reports each dependency
//! with its latency so dashboards see a degraded database before users do. `/ready` answers 503
//! while the database or Redis is unreachable or migrations are pending, so a load balancer
//! sends no traffic to an instance that would fail it.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use tenant_config::db::migrate::pending_versions;
use tenant_config::db::{scope, DbRole};

use crate::state::AppState;

/// Longest a single dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything answers.
    Healthy,
    /// Serving, but a dependency is failing.
    Degraded,
    /// Nothing works.
    Unhealthy,
}

/// One dependency's result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// Round-trip time of the probe.
    pub latency_ms: f64,
    /// Short reason when down (no connection strings or secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `/health` and `/ready`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Overall state.
    pub status: Status,
    /// Build version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Per-dependency results.
    pub checks: Checks,
}

/// The dependencies checked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// PostgreSQL round trip.
    pub database: Check,
    /// Redis `PING`.
    pub redis: Check,
    /// Migrations embedded in this binary but not applied (only known when the database is up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_migrations: Option<usize>,
    /// `configured` or `not_configured`; reported, never a reason to be unready (donations
    /// are refused with a clear error while it is missing, everything else works).
    pub stripe: &'static str,
}

async fn timed<F, T, E>(f: F) -> (Check, Option<T>)
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, f).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(v)) => (
            Check {
                status: "up",
                latency_ms,
                error: None,
            },
            Some(v),
        ),
        Ok(Err(e)) => (
            Check {
                status: "down",
                latency_ms,
                error: Some(short(&e.to_string())),
            },
            None,
        ),
        Err(_) => (
            Check {
                status: "down",
                latency_ms,
                error: Some("timed out".into()),
            },
            None,
        ),
    }
}

/// First line, bounded: enough to diagnose, never a dump.
fn short(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

async fn database_pending(state: &AppState) -> Result<usize, String> {
    let mut conn = state.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    scope(&tx, DbRole::Service)
        .await
        .map_err(|e| e.to_string())?;
    let pending = pending_versions(&tx).await.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(pending.len())
}

async fn redis_ping(state: &AppState) -> Result<(), String> {
    let mut conn = state.redis.get().await.map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs every check concurrently.
pub async fn report(state: &AppState) -> Report {
    let ((database, pending), (redis, _)) =
        tokio::join!(timed(database_pending(state)), timed(redis_ping(state)));
    let up = [database.status, redis.status]
        .iter()
        .filter(|s| **s == "up")
        .count();
    let status = match up {
        2 => Status::Healthy,
        0 => Status::Unhealthy,
        _ => Status::Degraded,
    };
    Report {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        checks: Checks {
            database,
            redis,
            pending_migrations: pending,
            stripe: if state.payments.stripe.is_some() {
                "configured"
            } else {
                "not_configured"
            },
        },
    }
}

/// `GET /health`: 200 while the process serves HTTP, with dependency details.
#[utoipa::path(get, path = "/health", operation_id = "get_health", tag = "operations", responses((status = 200, description = "Liveness with per-check status and latency", body = Report)))]
pub async fn health(State(state): State<AppState>) -> Json<Report> {
    Json(report(&state).await)
}

/// `GET /ready`: 200 only when the database and Redis answer and no migration is pending.
#[utoipa::path(get, path = "/ready", operation_id = "get_ready", tag = "operations", responses((status = 200, description = "Ready", body = Report), (status = 503, description = "Database or Redis down, or migrations pending", body = Report)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Report>) {
    let r = report(&state).await;
    let ok = r.status == Status::Healthy && r.checks.pending_migrations == Some(0);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

//! Health of the platform in the shape every binary shares ([`tenant_config::health`]).
//!
//! On the private operator listener ([`crate::operator`]): `/health` always answers 200 while
//! the process can serve HTTP and reports each dependency with its latency, so dashboards see a
//! degraded database before users do; `/ready` answers 503 while the database or Redis is
//! unreachable or migrations are pending, so a load balancer or orchestrator sends no traffic to
//! an instance that would fail it.
//!
//! On the public listener only `/api/health` (the seeds' path) answers, with a status and
//! nothing else: the router forwards it from every host, so an uptime monitor on the internet
//! sees the whole path (router → platform → database/Redis) without learning versions,
//! latencies or pending migrations. The router also probes it for its upstream health checks.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tenant_config::db::migrate::pending_versions;
use tenant_config::db::{scope, DbRole};
use tenant_config::health::{timed, Check, Report};

use crate::state::AppState;

/// Longest a single dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Runs every check concurrently: `database` (a scoped transaction), `redis` (`PING`),
/// `migrations` (down while any is pending; its detail is the count, known only with the
/// database up) and `stripe` (up when configured; without it donations are refused with a clear
/// error, which is worth an operator's attention, never a reason to be unready).
pub async fn report(state: &AppState) -> Report {
    let ((database, pending), (redis, _)) = tokio::join!(
        timed(CHECK_TIMEOUT, database_pending(state)),
        timed(CHECK_TIMEOUT, redis_ping(state))
    );
    let migrations = match pending {
        Some(0) => Check::up(Duration::ZERO).with_detail("0 pending"),
        Some(n) => {
            Check::down(Duration::ZERO, &format!("{n} pending")).with_detail(format!("{n} pending"))
        }
        None => Check::down(Duration::ZERO, "unknown: database down"),
    };
    let stripe = if state.payments.stripe.is_some() {
        Check::up(Duration::ZERO).with_detail("configured")
    } else {
        Check::down(Duration::ZERO, "not configured: donations are refused")
    };
    Report::new(
        env!("CARGO_PKG_VERSION"),
        state.started,
        vec![
            ("database", database),
            ("redis", redis),
            ("migrations", migrations),
            ("stripe", stripe),
        ],
    )
}

/// Ready: the database and Redis answer and no migration is pending (Stripe is not required).
pub fn is_ready(r: &Report) -> bool {
    ["database", "redis", "migrations"]
        .iter()
        .all(|name| r.checks.get(name).is_some_and(Check::is_up))
}

/// `GET /health` (operator listener): 200 while the process serves HTTP, with every check.
pub async fn health(State(state): State<AppState>) -> Json<Report> {
    Json(report(&state).await)
}

/// `GET /ready` (operator listener): 200 only when [`is_ready`], else 503; the same body.
/// Also 503 in the lame-duck period after SIGTERM ([`crate::lame_duck`]).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Report>) {
    let r = report(&state).await;
    let code = if is_ready(&r) && !state.lame_duck.is_on() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

/// How long the public probe reuses a readiness answer. Monitors, balancers and the router's
/// own health checks poll it, and anyone can: each check asks PostgreSQL and Redis, so a
/// flood of probes would otherwise become a flood of queries.
const PUBLIC_REUSE: Duration = Duration::from_millis(500);

/// The public probe's last readiness answer and when it was taken.
#[derive(Clone, Default)]
pub struct PublicHealthCache(std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, bool)>>>);

impl PublicHealthCache {
    /// Whether the service is ready, checked at most once per [`PUBLIC_REUSE`].
    async fn ready(&self, state: &AppState) -> bool {
        let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, ready)) = last {
            if at.elapsed() < PUBLIC_REUSE {
                return ready;
            }
        }
        let ready = is_ready(&report(state).await);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), ready));
        ready
    }
}

/// The public answer: a status and nothing else.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicStatus {
    /// `ok` when the service is ready, `unavailable` when not.
    pub status: String,
}

/// `GET /api/health` (public listener, any host): `{"status":"ok"}` with 200 when ready,
/// `{"status":"unavailable"}` with 503 when not; never cached.
#[utoipa::path(get, path = "/api/health", operation_id = "get_api_health", tag = "operations", responses((status = 200, description = "Ready", body = PublicStatus), (status = 503, description = "Not ready (details on the operator listener)", body = PublicStatus)))]
/// Also 503 in the lame-duck period after SIGTERM ([`crate::lame_duck`]), which is how the
/// router's health check learns to stop sending requests here.
pub async fn public(State(state): State<AppState>) -> Response {
    let ready = !state.lame_duck.is_on() && state.public_health.ready(&state).await;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        tenant_config::health::public_body(ready),
    )
        .into_response()
}

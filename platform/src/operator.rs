//! The platform's private operator listener (`operator_listen`, loopback by default):
//! `/metrics`, `/ready` and the full `/health`, for Prometheus, orchestrator probes and the
//! `healthcheck` command.
//!
//! These answers carry what an attacker would like to read (donation counters and amounts,
//! versions, latencies, pending migrations), so they live on a socket of their own that the
//! router never forwards to, rather than on the public listener behind a path rule that one
//! forgotten route could bypass. The public listener answers only the status-only
//! `/api/health` ([`crate::health::public`]).

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::{health, metrics, AppState};

/// The operator routes; anything else is a plain 404.
pub fn app(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

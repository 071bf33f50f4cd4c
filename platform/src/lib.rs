//! The platform service: tenant and admin APIs over PostgreSQL and Redis.
//!
//! Module map:
//! - [`cli`]: command line (`serve`, `check-config`, `migrate`), called by `main.rs`.
//! - [`state`]: shared handles (database pool, Redis) built from configuration.
//! - [`health`]: `/health` (liveness with per-check latency) and `/ready` (readiness).
//!
//! [`app`] builds the whole HTTP router so tests drive it in-process.

pub mod cli;
pub mod health;
pub mod state;

use axum::routing::get;
use axum::Router;

pub use state::AppState;

/// Every route the service answers, with its shared state.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

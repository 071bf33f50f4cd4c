//! The workers' private operator listener (`operator_listen`, loopback by default):
//! `/metrics`, `/ready` and the full `/health`, for Prometheus, orchestrator probes and the
//! `healthcheck` command. Never reached through the router: the public listener serves only
//! `/api/cron/*` and the status-only `/api/health` ([`crate::http`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tenant_config::health::Report;

use crate::http::{report, WorkersState};

/// The operator routes; anything else is a plain 404.
pub fn app(state: WorkersState) -> Router {
    crate::metrics::handle();
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// `GET /health`: 200 while the process serves HTTP, with every check.
async fn health(State(state): State<WorkersState>) -> Json<Report> {
    Json(report(&state).await)
}

/// `GET /ready`: 200 when the queue database answers, else 503; the same body.
async fn ready(State(state): State<WorkersState>) -> (StatusCode, Json<Report>) {
    let r = report(&state).await;
    let code = if r.all_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

/// `GET /metrics`: queue gauges refreshed from the database, then the Prometheus text.
async fn metrics(State(state): State<WorkersState>) -> Response {
    let Some(h) = crate::metrics::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    if let Err(e) = crate::metrics::refresh(&state.ctx.db).await {
        tracing::warn!(error = %e, "queue gauges not refreshed");
    }
    h.run_upkeep();
    tenant_config::process_metrics::update();
    ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response()
}

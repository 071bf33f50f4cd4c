//! The platform service: tenant and admin APIs over PostgreSQL and Redis.
//!
//! Module map:
//! - [`cli`]: command line (`serve`, `check-config`, `migrate`), called by `main.rs`.
//! - [`state`]: shared handles (database pool, Redis) built from configuration.
//! - [`health`]: `/health` (liveness with per-check latency) and `/ready` (readiness).
//! - [`edge`]: extractors that verify the router's signed tenant context.
//! - [`error`]: RFC 9457 problem responses.
//! - [`auth`]: passwords, tokens, cookies, CSRF and lockout policy shared by admins and staff.
//! - [`admin`]: admin host: login, sessions, CSRF, lockout; tenant management with audit log.
//! - [`tenant`]: tenant-host pages and API (profile, landing page, donation status).
//! - [`giving`]: starting one-time and recurring gifts on the tenant's connected account, and
//!   donor cancellation of recurring gifts.
//! - [`webhooks`]: verified, deduplicated Stripe events applied once.
//! - [`webhook_batch`]: concurrent payment successes recorded in one transaction.
//! - [`cache`]: tenant profile cache (moka in front of Redis).
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the handlers' annotations.
//! - [`metrics`]: Prometheus request metrics by route template, pool usage, `/metrics`.
//!
//! [`app`] builds the whole HTTP router so tests drive it in-process.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod edge;
pub mod error;
pub mod giving;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod state;
pub mod tenant;
pub mod webhook_batch;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

/// Largest request body accepted anywhere (JSON forms and webhooks are far smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use state::AppState;

/// Every route the service answers, with its shared state.
pub fn app(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/", get(tenant::profile::landing))
        .route("/api/tenant", get(tenant::profile::get_profile))
        .route("/api/donations/{id}", get(tenant::donations::status))
        .route("/api/admin/login", post(admin::auth::login))
        .route("/api/admin/logout", post(admin::auth::logout))
        .route(
            "/api/admin/tenants",
            get(admin::tenants::list).post(admin::tenants::create),
        )
        .route(
            "/api/admin/tenants/{id}/suspend",
            post(admin::tenants::suspend),
        )
        .route(
            "/api/admin/tenants/{id}/resume",
            post(admin::tenants::resume),
        )
        .route(
            "/api/admin/tenants/{id}/domains",
            get(admin::domains::list).post(admin::domains::add),
        )
        .route(
            "/api/admin/domains/{id}/verify",
            post(admin::domains::verify),
        )
        .route(
            "/api/admin/domains/{id}",
            axum::routing::delete(admin::domains::remove),
        )
        .route("/api/admin/metrics", get(admin::overview::platform_metrics))
        .route("/api/admin/jobs", get(admin::overview::jobs))
        .route("/api/admin/audit", get(admin::overview::audit_log))
        .route("/api/staff/login", post(tenant::staff::login))
        .route("/api/staff/logout", post(tenant::staff::logout))
        .route("/api/staff/donations", get(tenant::donations::list))
        .route("/api/staff/reports", get(tenant::reports::list))
        .route("/api/staff/reports/{id}/csv", get(tenant::reports::csv))
        .route("/api/admin/tenants/{id}", get(admin::tenants::show))
        .route("/api/donations", post(giving::create::create))
        .route("/api/recurring/{id}/cancel", post(giving::cancel::api))
        .route(
            "/give/cancel",
            get(giving::cancel::page).post(giving::cancel::confirm),
        )
        .route("/api/webhooks/stripe", post(webhooks::receive))
        .route(
            "/api/webhooks/stripe/connect",
            post(webhooks::receive_connect),
        )
        .route("/api/openapi.json", get(openapi::document))
        .route(
            "/api/admin/tenants/{id}/stripe-account",
            axum::routing::put(admin::tenants::set_stripe_account),
        )
        .route(
            "/api/admin/tenants/{id}/stripe-onboarding",
            post(admin::tenants::stripe_onboarding),
        )
        .fallback(|| async { error::AppError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(metrics::track))
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

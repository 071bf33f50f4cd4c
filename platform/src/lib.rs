//! The platform service: tenant and admin APIs over PostgreSQL and Redis.
//!
//! Module map:
//! - [`cli`]: command line (`serve`, `check-config`, `migrate`), called by `main.rs`.
//! - [`state`]: shared handles (database pool, Redis) built from configuration.
//! - [`health`]: `/health` (liveness with per-check latency) and `/ready` (readiness) for the
//!   operator listener; the status-only public `/api/health`.
//! - [`lame_duck`]: after SIGTERM, health and readiness answer 503 for a while before the
//!   listeners close, so routers stop sending requests first.
//! - [`operator`]: the private operator listener (`/metrics`, `/ready`, `/health`).
//! - [`http_server`]: the public listener's connection loop (header-field cap above the
//!   router's).
//! - [`edge`]: extractors that verify the router's signed tenant context.
//! - [`replay`]: the set of edge signatures already used (Redis, bounded local fallback).
//! - [`access`]: capabilities per route and the role tables that grant them.
//! - [`error`]: RFC 9457 problem responses (HTML pages for browsers), the 5xx log line.
//! - [`input`]: JSON, query and form readers with RFC 9110 statuses and named fields.
//! - [`auth`]: passwords, tokens, cookies, CSRF and lockout policy shared by admins and staff.
//! - [`admin`]: admin host: login, sessions, CSRF, lockout; tenant management with audit log.
//! - [`tenant`]: tenant-host pages and API (profile, landing page, donation status).
//! - [`giving`]: starting one-time and recurring gifts on the tenant's connected account, and
//!   donor cancellation of recurring gifts.
//! - [`webhooks`]: verified, deduplicated Stripe events applied once; one file per Stripe
//!   object, [`webhooks::batch`] commits concurrent payment successes together.
//! - [`cache`]: tenant profile cache (moka in front of Redis).
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the handlers' annotations.
//! - [`metrics`]: Prometheus request metrics by route template, pool usage, `/metrics`.
//! - [`site`]: `GET /` by host (donation page, console dashboard, platform landing).
//! - [`web`]: what server-rendered pages share (templates, CSP, redirects, field errors, static files).
//!
//! Each area (`tenant`, `giving`, `admin`, `webhooks`, and the operator routes) declares its
//! routes with [`routes!`](crate::routing), access included; [`app`] merges them so tests drive
//! the whole service in-process, and [`routes`] lists them all.

#[macro_use]
mod routing;

pub mod access;
pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod edge;
pub mod error;
pub mod giving;
pub mod health;
pub mod http_server;
pub mod input;
pub mod lame_duck;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod origin;
pub mod replay;
pub mod site;
pub mod state;
pub mod tenant;
pub mod web;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// Largest request body accepted anywhere (JSON forms and webhooks are far smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use state::AppState;

/// The service's own unsigned routes on the public listener: the status-only health answer,
/// the API document and static files. `/metrics`, `/ready` and `/health` are on the operator
/// listener ([`operator`]) only.
mod ops {
    use crate::access::{Access::Public, RouteSpec};
    use crate::{health, openapi, AppState};
    use axum::{Extension, Router};

    routes! {
      api {
        get "/api/health" => health::public, Public;
        get "/api/openapi.json" => openapi::document, Public;
      }
      pages {
        get "/static/{file}" => crate::web::static_file, Public;
      }
    }
}

/// Every route of every area, with the access it requires: what the capability test walks, the
/// OpenAPI check compares and the router is built from.
pub fn routes() -> &'static [access::RouteSpec] {
    static ALL: std::sync::OnceLock<Vec<access::RouteSpec>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        [
            ops::ROUTES,
            tenant::ROUTES,
            giving::ROUTES,
            admin::ROUTES,
            webhooks::ROUTES,
        ]
        .concat()
    })
}

/// Every route the service answers, with its shared state.
pub fn app(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .merge(ops::declared_routes())
        .merge(tenant::declared_routes())
        .merge(giving::declared_routes())
        .merge(admin::declared_routes())
        .merge(webhooks::declared_routes())
        .fallback(|| async { error::AppError::NotFound })
        .method_not_allowed_fallback(|| async { error::AppError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(auth::csrf_form_field))
        .layer(axum::middleware::from_fn(origin::protect))
        .layer(axum::middleware::from_fn(error::catch_panic))
        .layer(axum::middleware::from_fn(error::context))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    http_server::serve(listener, app(state), shutdown).await
}

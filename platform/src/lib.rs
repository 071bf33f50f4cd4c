//! The platform service: tenant and admin APIs over PostgreSQL and Redis.
//!
//! Module map:
//! - [`cli`]: command line (`serve`, `check-config`, `migrate`), called by `main.rs`.
//! - [`state`]: shared handles (database pool, Redis) built from configuration.
//! - [`health`]: `/health` (liveness with per-check latency) and `/ready` (readiness).
//! - [`edge`]: extractors that verify the router's signed tenant context.
//! - [`replay`]: the set of edge signatures already used (Redis, bounded local fallback).
//! - [`access`]: capabilities per route and the role tables that grant them.
//! - [`error`]: RFC 9457 problem responses.
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
//!
//! [`app`] builds the whole HTTP router so tests drive it in-process.

pub mod access;
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
pub mod replay;
pub mod state;
pub mod tenant;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};

/// Largest request body accepted anywhere (JSON forms and webhooks are far smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use state::AppState;

/// Declares every route once: builds the axum router from the list and keeps the list
/// ([`ROUTES`]) for the capability test, the OpenAPI check and metrics labels. Each route's
/// [`Access`] travels in the request's extensions, where the session extractors enforce it.
macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path, $access:expr; )*) => {
        /// Every route with the access it requires (see [`access`]).
        pub const ROUTES: &[RouteSpec] = &[
            $( RouteSpec { method: routes!(@upper $method), path: $path, access: $access }, )*
        ];

        fn declared_routes() -> Router<AppState> {
            Router::new()
                $( .route($path, axum::routing::$method($handler).layer(Extension($access))) )*
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper put) => { "PUT" };
    (@upper delete) => { "DELETE" };
}

use access::{Access, AdminCap, RouteSpec, StaffCap};
use Access::{Admin, Edge, Public, Staff};

routes! {
    get "/health" => health::health, Public;
    get "/ready" => health::ready, Public;
    get "/metrics" => metrics::render, Public;
    get "/api/openapi.json" => openapi::document, Public;
    get "/" => tenant::profile::landing, Edge;
    get "/api/tenant" => tenant::profile::get_profile, Edge;
    get "/api/donations/{id}" => tenant::donations::status, Edge;
    post "/api/donations" => giving::create::create, Edge;
    post "/api/recurring/{id}/cancel" => giving::cancel::api, Edge;
    get "/give/cancel" => giving::cancel::page, Edge;
    post "/give/cancel" => giving::cancel::confirm, Edge;
    post "/api/webhooks/stripe" => webhooks::receive, Edge;
    post "/api/webhooks/stripe/connect" => webhooks::receive_connect, Edge;
    post "/api/admin/login" => admin::auth::login, Edge;
    post "/api/admin/logout" => admin::auth::logout, Admin(AdminCap::Session);
    get "/api/admin/tenants" => admin::tenants::list, Admin(AdminCap::Read);
    post "/api/admin/tenants" => admin::tenants::create, Admin(AdminCap::TenantsWrite);
    get "/api/admin/tenants/{id}" => admin::tenants::show, Admin(AdminCap::Read);
    post "/api/admin/tenants/{id}/suspend" => admin::tenants::suspend, Admin(AdminCap::TenantsWrite);
    post "/api/admin/tenants/{id}/resume" => admin::tenants::resume, Admin(AdminCap::TenantsWrite);
    put "/api/admin/tenants/{id}/stripe-account" => admin::tenants::set_stripe_account, Admin(AdminCap::PaymentsWrite);
    post "/api/admin/tenants/{id}/stripe-onboarding" => admin::tenants::stripe_onboarding, Admin(AdminCap::PaymentsWrite);
    get "/api/admin/tenants/{id}/domains" => admin::domains::list, Admin(AdminCap::Read);
    post "/api/admin/tenants/{id}/domains" => admin::domains::add, Admin(AdminCap::DomainsWrite);
    post "/api/admin/domains/{id}/verify" => admin::domains::verify, Admin(AdminCap::DomainsWrite);
    delete "/api/admin/domains/{id}" => admin::domains::remove, Admin(AdminCap::DomainsWrite);
    get "/api/admin/metrics" => admin::overview::platform_metrics, Admin(AdminCap::Read);
    get "/api/admin/jobs" => admin::overview::jobs, Admin(AdminCap::Read);
    get "/api/admin/audit" => admin::overview::audit_log, Admin(AdminCap::Read);
    post "/api/staff/login" => tenant::staff::login, Edge;
    post "/api/staff/logout" => tenant::staff::logout, Staff(StaffCap::Session);
    get "/api/staff/donations" => tenant::donations::list, Staff(StaffCap::DonationsRead);
    get "/api/staff/reports" => tenant::reports::list, Staff(StaffCap::ReportsRead);
    get "/api/staff/reports/{id}/csv" => tenant::reports::csv, Staff(StaffCap::ReportsRead);
}

/// Every route the service answers, with its shared state.
pub fn app(state: AppState) -> Router {
    metrics::handle();
    declared_routes()
        .fallback(|| async { error::AppError::NotFound })
        .method_not_allowed_fallback(|| async { error::AppError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

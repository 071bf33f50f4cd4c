//! The admin side (requests the router marks `x-route: admin`): platform-admin login and
//! sessions, and tenant management. Admin work is cross-tenant, so its transactions run as
//! `platform_service`; every change writes an `audit_log` row in the same transaction.

pub mod auth;
pub mod domains;
pub mod overview;
pub mod pages;
pub mod plans;
pub mod tenant_pages;
pub mod tenants;

use axum::{Extension, Router};

use crate::access::{Access::Admin, Access::Edge, AdminCap, RouteSpec};
use crate::state::AppState;

routes! {
  api {
    post "/api/admin/login" => auth::login, Edge;
    post "/api/admin/logout" => auth::logout, Admin(AdminCap::Session);
    get "/api/admin/tenants" => tenants::list, Admin(AdminCap::Read);
    post "/api/admin/tenants" => tenants::create, Admin(AdminCap::TenantsWrite);
    get "/api/admin/tenants/{id}" => tenants::show, Admin(AdminCap::Read);
    post "/api/admin/tenants/{id}/suspend" => tenants::suspend, Admin(AdminCap::TenantsWrite);
    post "/api/admin/tenants/{id}/resume" => tenants::resume, Admin(AdminCap::TenantsWrite);
    get "/api/admin/plans" => plans::list, Admin(AdminCap::Read);
    put "/api/admin/tenants/{id}/plan" => plans::set_plan, Admin(AdminCap::TenantsWrite);
    put "/api/admin/tenants/{id}/stripe-account" => tenants::set_stripe_account, Admin(AdminCap::PaymentsWrite);
    post "/api/admin/tenants/{id}/stripe-onboarding" => tenants::stripe_onboarding, Admin(AdminCap::PaymentsWrite);
    get "/api/admin/tenants/{id}/domains" => domains::list, Admin(AdminCap::Read);
    post "/api/admin/tenants/{id}/domains" => domains::add, Admin(AdminCap::DomainsWrite);
    post "/api/admin/domains/{id}/verify" => domains::verify, Admin(AdminCap::DomainsWrite);
    delete "/api/admin/domains/{id}" => domains::remove, Admin(AdminCap::DomainsWrite);
    get "/api/admin/metrics" => overview::platform_metrics, Admin(AdminCap::Read);
    get "/api/admin/jobs" => overview::jobs, Admin(AdminCap::Read);
    get "/api/admin/audit" => overview::audit_log, Admin(AdminCap::Read);
  }
  pages {
    get "/login" => pages::login_form, Edge;
    post "/login" => pages::login_submit, Edge;
    post "/logout" => pages::logout, Admin(AdminCap::Session);
    get "/tenants" => pages::tenants, Admin(AdminCap::Read);
    post "/tenants" => pages::create_tenant, Admin(AdminCap::TenantsWrite);
    get "/tenants/{id}" => tenant_pages::tenant, Admin(AdminCap::Read);
    post "/tenants/{id}/suspend" => tenant_pages::suspend, Admin(AdminCap::TenantsWrite);
    post "/tenants/{id}/resume" => tenant_pages::resume, Admin(AdminCap::TenantsWrite);
    post "/tenants/{id}/plan" => tenant_pages::set_plan, Admin(AdminCap::TenantsWrite);
    post "/tenants/{id}/domains" => tenant_pages::add_domain, Admin(AdminCap::DomainsWrite);
    post "/domains/{id}/verify" => tenant_pages::verify_domain, Admin(AdminCap::DomainsWrite);
    post "/tenants/{id}/stripe-account" => tenant_pages::stripe_account, Admin(AdminCap::PaymentsWrite);
    post "/tenants/{id}/stripe-onboarding" => tenant_pages::stripe_onboarding, Admin(AdminCap::PaymentsWrite);
    get "/jobs" => pages::jobs, Admin(AdminCap::Read);
    get "/audit" => pages::audit, Admin(AdminCap::Read);
  }
}

use tenant_config::db::{scope, DbRole};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::error::AppError;
use crate::tenant::Conn;

/// Begins a cross-tenant (`platform_service`) transaction.
pub async fn begin<'c>(conn: &'c mut Conn<'_>) -> Result<Transaction<'c>, AppError> {
    let tx = conn.transaction().await?;
    scope(&tx, DbRole::Service).await?;
    Ok(tx)
}

/// Who did something, and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Admin user id.
    pub admin_id: Uuid,
    /// Client address as the router saw it (`x-real-ip`).
    pub ip: Option<std::net::IpAddr>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Request id, to join with the access log.
    pub request_id: String,
}

/// Appends an audit entry inside the caller's transaction.
pub async fn audit(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    tenant: Option<Uuid>,
    target: (&str, &str),
    details: serde_json::Value,
) -> Result<(), AppError> {
    tx.execute(
        "INSERT INTO audit_log (actor_type, actor_id, tenant_id, action, target_type, target_id, ip, user_agent, request_id, details)
         VALUES ('admin', $1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &actor.admin_id.to_string(),
            &tenant,
            &action,
            &target.0,
            &target.1,
            &actor.ip,
            &actor.user_agent,
            &actor.request_id,
            &details,
        ],
    )
    .await?;
    Ok(())
}

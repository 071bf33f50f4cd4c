//! The tenant side (requests on `<slug>.<base>` and custom domains): the public profile and
//! landing page, and the donation status a donor's browser polls after paying.
//!
//! Every query runs in a transaction scoped to the request's tenant (`db::scope`), so row-level
//! security hides other tenants' rows even from a query that forgets a `WHERE tenant_id`.

pub mod donations;
pub mod pages;
pub mod profile;
pub mod reports;
pub mod settings;
pub mod staff;

use axum::{Extension, Router};

use crate::access::{Access::Edge, Access::Staff, RouteSpec, StaffCap};
use crate::state::AppState;

routes! {
  api {
    get "/" => crate::site::home, Edge;
    get "/api/tenant" => profile::get_profile, Edge;
    get "/api/donations/{id}" => donations::status, Edge;
    post "/api/staff/login" => staff::login, Edge;
    post "/api/staff/logout" => staff::logout, Staff(StaffCap::Session);
    get "/api/staff/donations" => donations::list, Staff(StaffCap::DonationsRead);
    get "/api/staff/reports" => reports::list, Staff(StaffCap::ReportsRead);
    get "/api/staff/reports/{id}/csv" => reports::csv, Staff(StaffCap::ReportsRead);
    get "/api/staff/settings" => settings::get, Staff(StaffCap::SettingsWrite);
    put "/api/staff/settings" => settings::put, Staff(StaffCap::SettingsWrite);
  }
  pages {
    get "/staff/login" => pages::login_form, Edge;
    post "/staff/login" => pages::login_submit, Edge;
    post "/staff/logout" => pages::logout, Staff(StaffCap::Session);
    get "/staff" => pages::donations, Staff(StaffCap::DonationsRead);
    get "/staff/donations.csv" => pages::donations_csv, Staff(StaffCap::DonationsRead);
    get "/staff/reports" => pages::reports, Staff(StaffCap::ReportsRead);
    get "/staff/domains" => pages::domains, Staff(StaffCap::DonationsRead);
    get "/staff/settings" => settings::page_form, Staff(StaffCap::SettingsWrite);
    post "/staff/settings" => settings::page_submit, Staff(StaffCap::SettingsWrite);
  }
}

use tenant_config::db::{scope, DbRole};
use tenant_config::TenantId;
use tokio_postgres::Transaction;

use crate::error::AppError;

/// A pooled database connection.
pub type Conn<'p> = tenant_config::db::PooledConn<'p>;

/// Begins a transaction scoped to `tenant`; commit it when the request's work is done.
pub async fn begin<'c>(
    conn: &'c mut Conn<'_>,
    tenant: TenantId,
) -> Result<Transaction<'c>, AppError> {
    let tx = conn.transaction().await?;
    scope(&tx, DbRole::Tenant(tenant)).await?;
    Ok(tx)
}

//! Where tenants are looked up: PostgreSQL in production, a TOML file for the demo and edge
//! tests. The router depends only on [`TenantStore`], so its cache and routing logic are the
//! same whichever store sits behind it.

mod postgres;
mod static_file;

pub use postgres::PgTenantStore;
pub use static_file::{StaticTenantStore, StaticTenantsError};

use async_trait::async_trait;

use crate::model::ResolvedTenant;

/// A lookup failed for a reason other than "no such tenant".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No pooled connection could be had in time (database down or saturated).
    #[error("tenant store unavailable: {0}")]
    Unavailable(String),
    /// The query failed.
    #[error("tenant store query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// A row held a value the model does not know (schema and code out of step).
    #[error("tenant store returned an unexpected value: {0}")]
    Corrupt(String),
}

/// Resolves routable names to tenants. `Ok(None)` means "no such tenant" and may be cached
/// negatively; `Err` means "could not tell" and must not be.
#[async_trait]
pub trait TenantStore: Send + Sync + 'static {
    /// The tenant whose subdomain is `<slug>.<base>`.
    async fn by_slug(&self, slug: &str) -> Result<Option<ResolvedTenant>, StoreError>;

    /// The tenant owning a verified custom domain (normalised name).
    async fn by_domain(&self, domain: &str) -> Result<Option<ResolvedTenant>, StoreError>;
}

//! [`TenantStore`] over PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{StoreError, TenantStore};
use crate::db::Pool;
use crate::model::{RateLimitPolicy, ResolvedTenant, TenantId};

const SELECT: &str = "SELECT t.id, t.slug, t.name, t.status, t.plan_id, \
                             p.rate_limit_rps, p.rate_limit_burst \
                      FROM tenants t JOIN plans p ON p.id = t.plan_id";

/// Looks tenants up with one indexed query per miss.
///
/// The pool must connect as a login role with `platform_edge`'s privileges (the router's own
/// user): that role may read routing columns of every tenant and nothing else.
#[derive(Clone)]
pub struct PgTenantStore {
    pool: Pool,
}

impl PgTenantStore {
    /// Wraps a pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn one(&self, query: &str, arg: &str) -> Result<Option<ResolvedTenant>, StoreError> {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let row = conn.query_opt(query, &[&arg]).await?;
        row.map(|r| from_row(&r)).transpose()
    }
}

fn from_row(r: &Row) -> Result<ResolvedTenant, StoreError> {
    let status: String = r.try_get(3)?;
    let rps: i32 = r.try_get(5)?;
    let burst: i32 = r.try_get(6)?;
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    Ok(ResolvedTenant {
        id: TenantId(r.try_get::<_, Uuid>(0)?),
        slug: r.try_get(1)?,
        name: r.try_get(2)?,
        status: status.parse().map_err(|_| corrupt("tenant status"))?,
        plan_id: r.try_get(4)?,
        rate_limit: RateLimitPolicy {
            requests_per_second: u32::try_from(rps).map_err(|_| corrupt("rate_limit_rps"))?,
            burst: u32::try_from(burst).map_err(|_| corrupt("rate_limit_burst"))?,
        },
    })
}

#[async_trait]
impl TenantStore for PgTenantStore {
    async fn by_slug(&self, slug: &str) -> Result<Option<ResolvedTenant>, StoreError> {
        self.one(&format!("{SELECT} WHERE t.slug = $1"), slug).await
    }

    async fn by_domain(&self, domain: &str) -> Result<Option<ResolvedTenant>, StoreError> {
        let q = format!(
            "{SELECT} JOIN tenant_domains d ON d.tenant_id = t.id \
             WHERE d.domain = $1 AND d.status IN ('verified', 'active')"
        );
        self.one(&q, domain).await
    }
}

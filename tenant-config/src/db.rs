//! Database access shared by every binary: the connection pool and transaction scoping.
//!
//! Services connect as login users that own nothing. The platform's login user is a
//! `NOINHERIT` member of `platform_app` and `platform_service`: it has no privileges until a
//! transaction picks one with [`scope`], so forgetting to scope a query fails closed instead of
//! reading every tenant's rows.

pub mod migrate;

use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{NoTls, Transaction};

use crate::config::{DatabaseConfig, Secret};
use crate::model::TenantId;

/// The pool type every crate uses.
pub type Pool = bb8::Pool<PostgresConnectionManager<NoTls>>;

/// Errors from creating a pool.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(tokio_postgres::Error),
    /// Connecting or running a query failed.
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// Builds a pool from configuration. Connections are made lazily, so this succeeds while the
/// database is down; callers report readiness separately.
pub fn pool(config: &DatabaseConfig) -> Result<Pool, DbError> {
    pool_for_url(
        &config.url,
        config.max_connections,
        config.connect_timeout_ms,
    )
}

/// Builds a pool for an explicit URL.
pub fn pool_for_url(url: &Secret, max: u32, timeout_ms: u64) -> Result<Pool, DbError> {
    let pg: tokio_postgres::Config = url.expose().parse().map_err(DbError::Url)?;
    let manager = PostgresConnectionManager::new(pg, NoTls);
    Ok(bb8::Pool::builder()
        .max_size(max)
        .connection_timeout(Duration::from_millis(timeout_ms))
        .test_on_check_out(false)
        .build_unchecked(manager))
}

/// The database role a transaction acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// One tenant's request: row-level security restricts every table to that tenant.
    Tenant(TenantId),
    /// Cross-tenant work (admin API, webhooks, workers).
    Service,
}

/// Scopes a transaction to a role (and tenant): must be the first statement after `BEGIN`.
///
/// Both settings are transaction-local, so they end with the transaction and a pooled
/// connection never carries one request's tenant into the next.
pub async fn scope(tx: &Transaction<'_>, role: DbRole) -> Result<(), tokio_postgres::Error> {
    match role {
        // One round trip each: typed parameters skip the prepare step, and the service scope
        // has no parameters at all (simple protocol). This runs on every request.
        DbRole::Tenant(id) => {
            tx.execute_typed(
                "SELECT set_config('role', 'platform_app', true), set_config('app.tenant_id', $1, true)",
                &[(&id.0.to_string(), tokio_postgres::types::Type::TEXT)],
            )
            .await?;
        }
        DbRole::Service => {
            tx.batch_execute("SELECT set_config('role', 'platform_service', true)")
                .await?;
        }
    }
    Ok(())
}

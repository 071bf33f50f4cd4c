//! Database access shared by every binary: the connection pool and transaction scoping.
//!
//! Services connect as login users that own nothing. The platform's login user is a
//! `NOINHERIT` member of `platform_app` and `platform_service`: it has no privileges until a
//! transaction picks one with [`scope`], so forgetting to scope a query fails closed instead of
//! reading every tenant's rows.

pub mod listen;
pub mod migrate;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{Client, GenericClient, Statement, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseConfig, Secret};
use crate::model::TenantId;

/// The pool type every crate uses.
pub type Pool = bb8::Pool<PgManager>;

/// A pooled connection.
pub type PooledConn<'p> = bb8::PooledConnection<'p, PgManager>;

/// Makes [`PgConn`]s: bb8-postgres's manager plus a prepared-statement cache per connection.
#[derive(Debug)]
pub struct PgManager {
    inner: PostgresConnectionManager<MakeRustlsConnect>,
}

/// A connection with its own cache of prepared statements. Dereferences to the
/// `tokio_postgres::Client`, so `conn.transaction()` and friends work as usual.
pub struct PgConn {
    client: Client,
    statements: Arc<StatementCache>,
}

impl PgConn {
    /// This connection's statement cache; clone it before starting a transaction, which
    /// borrows the connection.
    pub fn statements(&self) -> Arc<StatementCache> {
        self.statements.clone()
    }
}

impl std::ops::Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Statements prepared once per connection for hot paths: each later use skips the parse and
/// plan round trip. Keyed by the SQL text, which must be a `&'static str` (never built from
/// input), and bounded so a bug cannot grow it without limit.
#[derive(Default)]
pub struct StatementCache {
    map: Mutex<HashMap<&'static str, Statement>>,
}

/// Most distinct statements one connection keeps prepared.
const STATEMENT_CACHE_MAX: usize = 256;

impl StatementCache {
    /// The prepared statement for `sql`, preparing it through `client` (a connection or one
    /// of its transactions) on first use.
    pub async fn get(
        &self,
        client: &impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.lock().get(sql) {
            return Ok(s.clone());
        }
        let stmt = client.prepare(sql).await?;
        let mut map = self.lock();
        if map.len() < STATEMENT_CACHE_MAX {
            map.insert(sql, stmt.clone());
        }
        Ok(stmt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Statement>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl bb8::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<PgConn, tokio_postgres::Error> {
        Ok(PgConn {
            client: self.inner.connect().await?,
            statements: Arc::default(),
        })
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<(), tokio_postgres::Error> {
        self.inner.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.inner.has_broken(&mut conn.client)
    }
}

/// Errors from creating a pool.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL (or its TLS settings) cannot be used.
    #[error("invalid database URL: {0}")]
    Url(String),
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
    let target = tls::PgTarget::parse(url.expose()).map_err(DbError::Url)?;
    let manager = PgManager {
        inner: PostgresConnectionManager::new(target.config, target.tls),
    };
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

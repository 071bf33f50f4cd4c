//! The tenant store the configuration names: PostgreSQL (the router's lookups) or the static
//! tenant file, read once per start.

use std::sync::Arc;

use tenant_config::config::RouterConfig;
use tenant_config::domain::DomainPolicy;
use tenant_config::store::{PgTenantStore, StaticTenantStore, TenantStore};
use tenant_config::HostRules;

/// Reads the static tenant file on a short-lived thread of its own.
///
/// Why: parsing a large file (100,000 tenants) leaves about 100 MiB of freed parser memory
/// behind. mimalloc keeps freed memory in the heap of the thread that allocated it, and the
/// main thread, blocked in the server loop from here on, never allocates again to hand it back:
/// the router kept that memory resident for its whole life. A thread's heap is collected when
/// the thread ends, so the garbage goes back to the system at once; the tables that stay
/// alive are adopted by the threads that use them.
pub fn load_static_tenants(
    path: &std::path::Path,
    rules: &HostRules,
    policy: DomainPolicy,
) -> Result<StaticTenantStore, String> {
    let load = || StaticTenantStore::load(path, rules, policy).map_err(|e| e.to_string());
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("tenant-loader".into())
            .spawn_scoped(s, load)
        {
            Ok(loader) => loader
                .join()
                .unwrap_or_else(|_| Err(format!("{}: the loader panicked", path.display()))),
            // No thread to be had (a process limit): load here, keeping the memory.
            Err(_) => load(),
        }
    })
}

/// The store the configuration names: PostgreSQL when `database` is set, else the static
/// tenant file, which the command line has already read (and so checked) with
/// [`load_static_tenants`] — it is read once per start. Must run inside a Tokio runtime:
/// the pool spawns its maintenance task.
pub fn from_config(
    config: &RouterConfig,
    static_tenants: Option<StaticTenantStore>,
) -> Result<Arc<dyn TenantStore>, String> {
    Ok(match (&config.database, static_tenants) {
        (Some(db), _) => Arc::new(PgTenantStore::new(
            tenant_config::db::pool(db).map_err(|e| e.to_string())?,
        )),
        (None, Some(store)) => Arc::new(store),
        (None, None) => return Err("no tenant store configured".into()),
    })
}

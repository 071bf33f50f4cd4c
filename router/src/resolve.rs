//! Host → route → tenant: classification (pure, from tenant-config) and cached lookups.

use std::sync::Arc;

use tenant_config::config::RouterConfig;
use tenant_config::store::{PgTenantStore, StaticTenantStore, TenantStore};
use tenant_config::{normalize_host, HostRules, NameClass};

use crate::cache::{Key, Outcome, TenantCache, TenantEntry};

/// Which side of the platform a forwarded request is for (the `x-route` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// The admin console and API.
    Admin,
    /// The marketing site.
    Apex,
    /// A tenant's site.
    Tenant,
    /// Stripe webhooks: forwarded without tenant resolution.
    Webhook,
}

impl RouteKind {
    /// Every kind, for pre-registering metrics.
    pub const ALL: [RouteKind; 4] = [
        RouteKind::Admin,
        RouteKind::Apex,
        RouteKind::Tenant,
        RouteKind::Webhook,
    ];

    /// Header and label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteKind::Admin => "admin",
            RouteKind::Apex => "apex",
            RouteKind::Tenant => "tenant",
            RouteKind::Webhook => "webhook",
        }
    }

    /// Position in [`RouteKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What to do with a request, decided from its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Proxy it.
    Forward {
        /// Route.
        route: RouteKind,
        /// The tenant, on tenant routes.
        tenant: Option<Arc<TenantEntry>>,
    },
    /// The tenant exists but is suspended or cancelled: a 403 page.
    Suspended(Arc<TenantEntry>),
    /// Unknown or invalid host: `308` to the apex.
    RedirectToApex,
    /// The tenant store failed and nothing was cached: a 503 page.
    Unavailable,
}

/// Resolves hosts with the configured rules and a cached store.
#[derive(Clone)]
pub struct Resolver {
    rules: HostRules,
    cache: TenantCache,
}

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
    policy: tenant_config::domain::DomainPolicy,
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

impl Resolver {
    /// A resolver over an existing cache.
    pub fn new(rules: HostRules, cache: TenantCache) -> Self {
        Self { rules, cache }
    }

    /// The store the configuration names: PostgreSQL when `database` is set, else the static
    /// tenant file, which the command line has already read (and so checked) with
    /// [`load_static_tenants`] — it is read once per start. Must run inside a Tokio runtime:
    /// the pool spawns its maintenance task.
    pub fn store_from_config(
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

    /// The host rules in use.
    pub fn rules(&self) -> &HostRules {
        &self.rules
    }

    /// The cache, for invalidation.
    pub fn cache(&self) -> &TenantCache {
        &self.cache
    }

    /// Decides what to do with a request for `host`. The outcome says how the tenant lookup
    /// was answered (`None` when no lookup was needed).
    pub async fn resolve(&self, host: &str) -> (Decision, Option<Outcome>) {
        self.resolve_normalized(normalize_host(host).ok().as_deref())
            .await
    }

    /// The decision for `sent`, a host exactly as the client sent it, when it names a tenant
    /// subdomain with a fresh cache entry; `None` sends the caller through normalisation and
    /// classification. Only classified names (canonical, valid and unreserved slugs) are ever
    /// looked up and so cached, so a hit needs no slug validation and also proves `sent`
    /// canonical: the common request skips normalising.
    pub fn cached_subdomain(&self, sent: &str) -> Option<Decision> {
        let slug = self.rules.subdomain_label(sent)?;
        self.cache.fresh(Key::Slug(slug)).map(decide)
    }

    /// Like [`Resolver::resolve`] for a host already normalised (`None`: not a valid name), so
    /// the proxy normalises a request's host at most once.
    pub async fn resolve_normalized(&self, host: Option<&str>) -> (Decision, Option<Outcome>) {
        // Most requests name a cached tenant subdomain: answered without classification.
        if let Some(decision) = host.and_then(|h| self.cached_subdomain(h)) {
            return (decision, Some(Outcome::Hit));
        }
        self.classify_and_look_up(host).await
    }

    /// [`Resolver::resolve_normalized`] without its [`Resolver::cached_subdomain`] step, for
    /// a caller that has just tried that step on this very name.
    pub async fn classify_and_look_up(&self, host: Option<&str>) -> (Decision, Option<Outcome>) {
        let Some(host) = host else {
            return (Decision::RedirectToApex, None);
        };
        let key = match self.rules.classify_name(host) {
            NameClass::Admin => return (forward(RouteKind::Admin, None), None),
            NameClass::Apex => return (forward(RouteKind::Apex, None), None),
            NameClass::Invalid(_) => return (Decision::RedirectToApex, None),
            NameClass::Tenant(slug) => Key::Slug(slug),
            NameClass::Custom(domain) => Key::Domain(domain),
        };
        match self.cache.get(key).await {
            Ok((tenant, outcome)) => (decide(tenant), Some(outcome)),
            Err(e) => {
                tracing::warn!(error = %e, "tenant lookup failed with nothing cached");
                (Decision::Unavailable, None)
            }
        }
    }
}

fn forward(route: RouteKind, tenant: Option<Arc<TenantEntry>>) -> Decision {
    Decision::Forward { route, tenant }
}

/// What a tenant lookup's answer means: unknown → apex, served → forward, else the 403 page.
fn decide(tenant: Option<Arc<TenantEntry>>) -> Decision {
    match tenant {
        None => Decision::RedirectToApex,
        Some(t) if t.status.is_served() => forward(RouteKind::Tenant, Some(t)),
        Some(t) => Decision::Suspended(t),
    }
}

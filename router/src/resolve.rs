//! Host → route → tenant: classification (pure, from tenant-config) and cached lookups.

use std::sync::Arc;

use tenant_config::host::canonical_host;
use tenant_config::{HostRules, NameClass};

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
    /// Header value (`x-route`), the same text as its metrics label.
    pub const fn as_str(self) -> &'static str {
        crate::metrics::RouteLabel::from_kind(self).as_str()
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

impl Resolver {
    /// A resolver over an existing cache.
    pub fn new(rules: HostRules, cache: TenantCache) -> Self {
        Self { rules, cache }
    }

    /// The host rules in use.
    pub fn rules(&self) -> &HostRules {
        &self.rules
    }

    /// Decides what to do with a request for `host`, in any spelling (case, port, trailing
    /// dot, IDNA). The outcome says how the tenant lookup was answered (`None` when no lookup
    /// was needed).
    ///
    /// Most requests name a cached tenant subdomain exactly as canonical: that is answered from
    /// the cache before normalising or classifying. Only classified names (canonical, valid
    /// and unreserved slugs) are ever looked up and so cached, so a hit needs no slug check and
    /// proves the name canonical.
    pub async fn resolve(&self, host: &str) -> (Decision, Option<Outcome>) {
        if let Some(decision) = self.cached_subdomain(host) {
            return (decision, Some(Outcome::Hit));
        }
        let Ok(host) = canonical_host(host) else {
            return (Decision::RedirectToApex, None);
        };
        let key = match self.rules.classify_name(&host) {
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

    /// The cached decision for `host` when it is, exactly as given, a tenant subdomain with a
    /// fresh cache entry.
    fn cached_subdomain(&self, host: &str) -> Option<Decision> {
        let slug = self.rules.subdomain_label(host)?;
        self.cache.fresh(Key::Slug(slug)).map(decide)
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

#[cfg(test)]
mod tests {
    use tenant_config::config::TenantCacheConfig;
    use tenant_config::domain::DomainPolicy;
    use tenant_config::store::StaticTenantStore;

    use super::*;

    const TENANTS: &str = r#"
        [[tenant]]
        id = "6f1c4a9e-0000-4000-8000-000000000001"
        slug = "grace"
        name = "Grace Church"
        domains = ["give.gracechurch.org"]
        [[tenant]]
        id = "6f1c4a9e-0000-4000-8000-000000000002"
        slug = "hope"
        name = "Hope Chapel"
        status = "suspended"
    "#;

    fn tenant(d: Decision) -> Arc<TenantEntry> {
        match d {
            Decision::Forward {
                route: RouteKind::Tenant,
                tenant: Some(t),
            } => t,
            other => panic!("expected a tenant route, got {other:?}"),
        }
    }

    /// The resolver's first step: the host exactly as given, before normalisation. Only the
    /// canonical spelling of a cached name answers; every other spelling (and anything not
    /// cached as a subdomain) is left to normalisation and classification.
    #[tokio::test]
    async fn only_the_canonical_spelling_of_a_cached_subdomain_answers_first() {
        let rules = HostRules::new("platform.test", "admin.platform.test").unwrap();
        let store =
            StaticTenantStore::parse("test", TENANTS, &rules, DomainPolicy::default()).unwrap();
        let cache = TenantCache::new(Arc::new(store), &TenantCacheConfig::default());
        let r = Resolver::new(rules, cache);
        for host in [
            "grace.platform.test",
            "hope.platform.test",
            "nobody.platform.test",
        ] {
            r.resolve(host).await;
        }
        let grace = tenant(r.resolve("grace.platform.test").await.0);

        assert_eq!(
            tenant(r.cached_subdomain("grace.platform.test").unwrap()).id,
            grace.id
        );
        assert!(matches!(
            r.cached_subdomain("hope.platform.test"),
            Some(Decision::Suspended(_))
        ));
        assert_eq!(
            r.cached_subdomain("nobody.platform.test"),
            Some(Decision::RedirectToApex),
            "a cached unknown answers too"
        );
        for sent in [
            "GRACE.platform.test",
            "grace.platform.test.",
            "grace.platform.test:80",
            "x.grace.platform.test",
            "grace.Platform.test",
            "api.platform.test",
            "give.gracechurch.org",
        ] {
            assert_eq!(r.cached_subdomain(sent), None, "{sent:?}");
        }
    }
}

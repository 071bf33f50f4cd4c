//! Tenant resolution through PostgreSQL, as the router's own login role.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use router::cache::TenantCache;
use router::resolve::{Decision, Resolver, RouteKind};
use tenant_config::config::{Secret, TenantCacheConfig};
use tenant_config::db::pool_for_url;
use tenant_config::store::PgTenantStore;
use tenant_config::{HostRules, TenantStatus};

async fn resolver(db: &testkit::TestDb) -> Resolver {
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(
            "INSERT INTO tenants (slug, name, status, plan_id) VALUES
                 ('grace', 'Grace Church', 'active', 'growth'),
                 ('hope', 'Hope Chapel', 'suspended', 'starter');
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, 'give.gracechurch.org', 'active', 't1' FROM tenants WHERE slug = 'grace';
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, 'unverified.example.org', 'pending_verification', 't2' FROM tenants WHERE slug = 'grace';",
        )
        .await
        .unwrap();
    let pool = pool_for_url(&Secret::new(db.router_url()), 2, 5_000).unwrap();
    let rules = HostRules::new("platform.test", "admin.platform.test").unwrap();
    let cache = TenantCache::new(
        Arc::new(PgTenantStore::new(pool)),
        &TenantCacheConfig::default(),
    );
    Resolver::new(rules, cache)
}

fn tenant(d: Decision) -> Arc<router::cache::TenantEntry> {
    match d {
        Decision::Forward {
            route: RouteKind::Tenant,
            tenant: Some(t),
        } => t,
        other => panic!("expected a tenant route, got {other:?}"),
    }
}

#[tokio::test]
async fn resolves_subdomains_custom_domains_and_refusals() {
    let db = testkit::database().await;
    let r = resolver(&db).await;

    let grace = tenant(r.resolve("Grace.platform.test:8000").await.0);
    assert_eq!(grace.slug, "grace");
    assert_eq!(
        grace.rate_limit.requests_per_second, 30,
        "growth plan limits"
    );

    let by_domain = tenant(r.resolve("give.gracechurch.org").await.0);
    assert_eq!(by_domain.id, grace.id);

    let Decision::Suspended(hope) = r.resolve("hope.platform.test").await.0 else {
        panic!("suspended tenant");
    };
    assert_eq!(hope.status, TenantStatus::Suspended);

    for host in [
        "unverified.example.org",
        "nobody.platform.test",
        "api.platform.test",
        "a..b",
        "",
    ] {
        assert_eq!(
            r.resolve(host).await.0,
            Decision::RedirectToApex,
            "{host:?} must redirect to the apex"
        );
    }
    let admin = r.resolve("admin.platform.test").await.0;
    assert_eq!(
        admin,
        Decision::Forward {
            route: RouteKind::Admin,
            tenant: None
        }
    );
    let apex = r.resolve("www.platform.test").await.0;
    assert_eq!(
        apex,
        Decision::Forward {
            route: RouteKind::Apex,
            tenant: None
        }
    );

    // Asked again, cached subdomains answer from the cache with the same decisions (the
    // fast path that skips re-validating the slug), and refused names stay refused.
    use router::cache::Outcome;
    let (again, outcome) = r.resolve("grace.platform.test").await;
    assert_eq!(tenant(again).id, grace.id);
    assert_eq!(outcome, Some(Outcome::Hit));
    let (hope_again, outcome) = r.resolve("hope.platform.test").await;
    assert!(matches!(hope_again, Decision::Suspended(_)));
    assert_eq!(outcome, Some(Outcome::Hit));
    assert_eq!(
        r.resolve("nobody.platform.test").await,
        (Decision::RedirectToApex, Some(Outcome::Hit)),
        "unknown names are cached as unknown"
    );
    for host in ["api.platform.test", "a.b.platform.test"] {
        assert_eq!(r.resolve(host).await, (Decision::RedirectToApex, None));
    }
    assert_eq!(r.resolve("admin.platform.test").await.0, admin);
    assert_eq!(r.resolve("www.platform.test").await.0, apex);
}

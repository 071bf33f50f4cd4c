//! Tenant resolution through PostgreSQL, as the router's own login role.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use router::resolve::{Resolver, Route};
use tenant_config::config::Secret;
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
    Resolver::new(rules, Arc::new(PgTenantStore::new(pool)))
}

#[tokio::test]
async fn resolves_subdomains_custom_domains_and_refusals() {
    let db = testkit::database().await;
    let r = resolver(&db).await;

    let Route::Tenant { tenant } = r.resolve("Grace.platform.test:8000").await.unwrap() else {
        panic!("grace should resolve");
    };
    assert_eq!(tenant.slug, "grace");
    assert_eq!(
        tenant.rate_limit.requests_per_second, 30,
        "growth plan limits"
    );

    let Route::Tenant { tenant: by_domain } = r.resolve("give.gracechurch.org").await.unwrap()
    else {
        panic!("verified custom domain should resolve");
    };
    assert_eq!(by_domain.id, tenant.id);

    let Route::Suspended { tenant } = r.resolve("hope.platform.test").await.unwrap() else {
        panic!("suspended tenant");
    };
    assert_eq!(tenant.status, TenantStatus::Suspended);

    for host in [
        "unverified.example.org",
        "nobody.platform.test",
        "api.platform.test",
        "a..b",
        "",
    ] {
        assert!(
            matches!(r.resolve(host).await.unwrap(), Route::RedirectToApex { .. }),
            "{host:?} must redirect to the apex"
        );
    }
    assert_eq!(
        r.resolve("admin.platform.test").await.unwrap(),
        Route::Admin
    );
    assert_eq!(r.resolve("www.platform.test").await.unwrap(), Route::Apex);
}

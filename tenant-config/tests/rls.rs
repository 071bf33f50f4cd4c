//! Row-level security: a transaction scoped to tenant A, running as the service's real login
//! role, can neither read nor write tenant B's rows.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use tenant_config::db::{scope, DbRole};
use tenant_config::model::TenantId;
use tokio_postgres::Client;
use uuid::Uuid;

/// The server's message for a failed statement (tokio-postgres' `Display` only says "db error").
fn msg(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// Two tenants, each with a donor and a donation, inserted by the schema owner.
async fn seed(owner: &Client) -> (TenantId, TenantId) {
    let mut ids = Vec::new();
    for slug in ["alpha", "bravo"] {
        let id: Uuid = owner
            .query_one(
                "INSERT INTO tenants (slug, name, status) VALUES ($1, $1, 'active') RETURNING id",
                &[&slug],
            )
            .await
            .unwrap()
            .get(0);
        let donor: Uuid = owner
            .query_one(
                "INSERT INTO donors (tenant_id, email, name) VALUES ($1, $2, 'D') RETURNING id",
                &[&id, &format!("donor@{slug}.example")],
            )
            .await
            .unwrap()
            .get(0);
        owner
            .execute(
                "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor)
                 VALUES ($1, $2, 'one_time', 1000, 'usd', 20, 980)",
                &[&id, &donor],
            )
            .await
            .unwrap();
        ids.push(TenantId(id));
    }
    (ids[0], ids[1])
}

#[tokio::test]
async fn tenant_scope_cannot_read_or_write_other_tenants_rows() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let (a, b) = seed(&owner).await;

    let mut web = db.connect_as("platform_web").await;
    let tx = web.transaction().await.unwrap();
    scope(&tx, DbRole::Tenant(a)).await.unwrap();

    // Reads: only A's rows, even with no WHERE clause at all.
    let tenants: Vec<Uuid> = tx
        .query("SELECT id FROM tenants", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, vec![a.0]);
    let donations: i64 = tx
        .query_one("SELECT count(*) FROM donations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(donations, 1);
    let b_rows: i64 = tx
        .query_one(
            "SELECT count(*) FROM donations WHERE tenant_id = $1",
            &[&b.0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(b_rows, 0, "B's donations are invisible to A");

    // Updates and deletes of B's rows touch nothing.
    let updated = tx
        .execute(
            "UPDATE donations SET fund = 'stolen' WHERE tenant_id = $1",
            &[&b.0],
        )
        .await
        .unwrap();
    assert_eq!(updated, 0);
    let renamed = tx
        .execute("UPDATE tenants SET name = 'pwned' WHERE id = $1", &[&b.0])
        .await
        .unwrap();
    assert_eq!(renamed, 0);

    // Inserting a row for B is refused by the policy's WITH CHECK.
    let err = tx
        .execute(
            "INSERT INTO donors (tenant_id, email) VALUES ($1, 'x@evil.example')",
            &[&b.0],
        )
        .await
        .unwrap_err();
    assert!(
        msg(&err).contains("row-level security"),
        "unexpected error: {}",
        msg(&err)
    );
    drop(tx);

    // Moving one of A's rows to B is refused as well.
    let tx = web.transaction().await.unwrap();
    scope(&tx, DbRole::Tenant(a)).await.unwrap();
    let err = tx
        .execute("UPDATE donors SET tenant_id = $1", &[&b.0])
        .await
        .unwrap_err();
    assert!(msg(&err).contains("row-level security"), "{}", msg(&err));
    drop(tx);

    // Nothing of B's changed.
    let row = owner
        .query_one(
            "SELECT t.name, (SELECT count(*) FROM donations WHERE tenant_id = t.id AND fund = 'stolen'),
                    (SELECT count(*) FROM donors WHERE tenant_id = t.id)
             FROM tenants t WHERE t.id = $1",
            &[&b.0],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "bravo");
    assert_eq!(row.get::<_, i64>(1), 0);
    assert_eq!(row.get::<_, i64>(2), 1);
}

#[tokio::test]
async fn unscoped_connection_has_no_access_and_scope_ends_with_transaction() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let (a, _b) = seed(&owner).await;
    let mut web = db.connect_as("platform_web").await;

    // NOINHERIT: before choosing a role, the login user may not read tenant tables at all.
    let err = web
        .query("SELECT id FROM donations", &[])
        .await
        .unwrap_err();
    assert!(msg(&err).contains("permission denied"), "{}", msg(&err));

    let tx = web.transaction().await.unwrap();
    scope(&tx, DbRole::Tenant(a)).await.unwrap();
    tx.commit().await.unwrap();

    // The tenant setting and role were transaction-local: a later transaction on the same
    // (pooled) connection starts with neither.
    let tx = web.transaction().await.unwrap();
    tx.execute("SELECT set_config('role', 'platform_app', true)", &[])
        .await
        .unwrap();
    let n: i64 = tx
        .query_one("SELECT count(*) FROM donations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no tenant set means no rows, not all rows");
}

#[tokio::test]
async fn service_scope_sees_every_tenant_and_edge_sees_only_routing_columns() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    seed(&owner).await;

    let mut web = db.connect_as("platform_web").await;
    let tx = web.transaction().await.unwrap();
    scope(&tx, DbRole::Service).await.unwrap();
    let n: i64 = tx
        .query_one("SELECT count(*) FROM donations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    drop(tx);

    let router = db.connect_as("platform_router").await;
    let n: i64 = router
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let err = router
        .query("SELECT settings FROM tenants", &[])
        .await
        .unwrap_err();
    assert!(msg(&err).contains("permission denied"), "{}", msg(&err));
    let err = router
        .query("SELECT * FROM donations", &[])
        .await
        .unwrap_err();
    assert!(msg(&err).contains("permission denied"), "{}", msg(&err));
}

#[tokio::test]
async fn application_roles_own_nothing() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let owned: i64 = owner
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
             WHERE r.rolname LIKE 'platform%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0);
    // Every table with a tenant_id column has RLS enabled and forced.
    let unprotected: Vec<String> = owner
        .query(
            "SELECT c.relname FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
             WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
               AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        unprotected.is_empty(),
        "tables without forced RLS: {unprotected:?}"
    );
}

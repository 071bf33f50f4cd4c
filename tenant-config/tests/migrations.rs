//! The migration runner against a real database: up, all the way down, up again; concurrent
//! runners; checksum protection; and the schema's status values matching the Rust model.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use tenant_config::db::migrate::{DownTo, MigrationState, Migrator, EMBEDDED};
use tenant_config::model::{CertificateStatus, DomainStatus, TenantStatus};

async fn empty_db() -> (testkit::TestDb, tokio_postgres::Client) {
    let db = testkit::database().await;
    let mut m = Migrator::connect(&db.owner_url()).await.unwrap();
    m.down(DownTo::All).await.unwrap();
    let c = db.connect_as("postgres").await;
    (db, c)
}

async fn table_count(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn up_down_up_round_trip() {
    let (db, c) = empty_db().await;
    assert_eq!(table_count(&c).await, 0, "down --all leaves no tables");
    let mut m = Migrator::connect(&db.owner_url()).await.unwrap();
    assert_eq!(m.pending().await.unwrap(), EMBEDDED.len());

    let applied = m.up().await.unwrap();
    assert_eq!(applied.len(), EMBEDDED.len());
    assert!(table_count(&c).await >= 18);
    assert!(m.up().await.unwrap().is_empty(), "second up is a no-op");

    let reverted = m.down(DownTo::Steps(1)).await.unwrap();
    assert_eq!(reverted[0].label, EMBEDDED.last().unwrap().label());
    assert_eq!(m.pending().await.unwrap(), 1);

    let reverted = m.down(DownTo::All).await.unwrap();
    assert_eq!(reverted.len(), EMBEDDED.len() - 1);
    assert_eq!(table_count(&c).await, 0);

    m.up().await.unwrap();
    let states: Vec<_> = m
        .status()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.state)
        .collect();
    assert!(
        states.iter().all(|s| *s == MigrationState::Applied),
        "{states:?}"
    );
}

#[tokio::test]
async fn concurrent_runners_apply_each_migration_once() {
    let (db, c) = empty_db().await;
    let url = db.owner_url();
    let runs = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { Migrator::connect(&url).await.unwrap().up().await.unwrap() })
    });
    let mut total = 0;
    for r in runs {
        total += r.await.unwrap().len();
    }
    assert_eq!(
        total,
        EMBEDDED.len(),
        "each migration applied by exactly one runner"
    );
    let rows: i64 = c
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, EMBEDDED.len());
}

#[tokio::test]
async fn edited_migration_is_refused() {
    let db = testkit::database().await;
    let c = db.connect_as("postgres").await;
    c.execute(
        "UPDATE schema_migrations SET checksum = 'x' WHERE version = 2",
        &[],
    )
    .await
    .unwrap();
    let mut m = Migrator::connect(&db.owner_url()).await.unwrap();
    let err = m.up().await.unwrap_err().to_string();
    assert!(err.contains("0002_") && err.contains("changed"), "{err}");
    let status = m.status().await.unwrap();
    assert_eq!(status[1].state, MigrationState::Changed);
}

/// The CHECK constraints list exactly the strings the Rust enums produce.
#[tokio::test]
async fn status_checks_match_the_model() {
    let db = testkit::database().await;
    let c = db.connect_as("postgres").await;
    let check = |table: &'static str, column: &'static str| {
        let c = &c;
        async move {
            let def: String = c
                .query_one(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                     WHERE conrelid = $1::text::regclass AND contype = 'c'
                       AND pg_get_constraintdef(oid) LIKE '%(' || $2 || ' = ANY%'",
                    &[&table, &column],
                )
                .await
                .unwrap_or_else(|e| panic!("{table}.{column}: {e}"))
                .get(0);
            let mut values: Vec<String> = def
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            values.sort();
            values
        }
    };
    let sorted = |v: Vec<&str>| {
        let mut v: Vec<String> = v.into_iter().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(
        check("tenants", "status").await,
        sorted(TenantStatus::ALL.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(
        check("tenant_domains", "status").await,
        sorted(DomainStatus::ALL.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(
        check("tenant_domains", "cert_status").await,
        sorted(CertificateStatus::ALL.iter().map(|s| s.as_str()).collect())
    );
}

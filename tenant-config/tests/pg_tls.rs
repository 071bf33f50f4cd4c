//! TLS to PostgreSQL against the real server with `ssl=on` and a test CA: each `sslmode`
//! does what libpq's does, and a wrong CA or a wrong host name is refused.

#![allow(clippy::unwrap_used)]

use tenant_config::db::tls::PgTarget;
use testkit::tls::TestCa;

async fn ssl_in_use(url: &str) -> Result<bool, String> {
    let target = PgTarget::parse(url)?;
    let (client, conn) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| format!("{e}"))?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmodes_verify_the_server_as_libpq_does() {
    let pg = testkit::postgres();
    let ca = TestCa::new("pg-test-ca", "DNS:localhost");
    ca.give_to("postgres");
    let other = TestCa::new("someone-else", "DNS:localhost");
    let admin = PgTarget::parse(&pg.url("postgres", "postgres")).unwrap();
    let (client, conn) = admin.config.connect(admin.tls.clone()).await.unwrap();
    tokio::spawn(conn);
    // One statement each: ALTER SYSTEM refuses to run inside a multi-statement batch.
    for stmt in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", ca.cert.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", ca.key.display()),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        client.simple_query(&stmt).await.unwrap();
    }
    // The reload is asynchronous: wait until a TLS session works.
    let url =
        |host: &str, q: &str| format!("postgresql://postgres@{host}:{}/postgres?{q}", pg.port);
    let ca_path = ca.ca.display().to_string();
    let full = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_path}"),
    );
    let mut ok = false;
    for _ in 0..50 {
        if ssl_in_use(&full).await == Ok(true) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "verify-full with the right CA and host: {:?}",
        ssl_in_use(&full).await
    );

    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other.ca.display()),
    );
    let err = ssl_in_use(&wrong_ca).await.unwrap_err();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("error"),
        "{err}"
    );
    let wrong_host = url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca_path}"),
    );
    assert!(
        ssl_in_use(&wrong_host).await.is_err(),
        "the certificate names localhost only"
    );
    // verify-ca checks the chain, not the name.
    let chain_only = url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca_path}"),
    );
    assert_eq!(ssl_in_use(&chain_only).await, Ok(true));
    let chain_wrong = url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", other.ca.display()),
    );
    assert!(ssl_in_use(&chain_wrong).await.is_err());
    // require: encrypted, unverified (libpq's meaning); disable: plain.
    assert_eq!(
        ssl_in_use(&url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    assert_eq!(
        ssl_in_use(&url("127.0.0.1", "sslmode=disable")).await,
        Ok(false)
    );
    // The pool and the migrator take the same URLs.
    let pool = tenant_config::db::pool_for_url(
        &tenant_config::config::Secret::new(full.clone()),
        2,
        5_000,
    )
    .unwrap();
    let conn = pool.get().await.unwrap();
    let ssl: bool = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    drop(conn);
    let mut m = tenant_config::db::migrate::Migrator::connect(&full)
        .await
        .unwrap();
    assert!(m.status().await.is_ok());
    // Back to plain for the other tests of this binary.
    client.simple_query("ALTER SYSTEM RESET ssl").await.unwrap();
    client
        .simple_query("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

/// Parameters other than `sslmode` and `sslrootcert` reach the server as written: the
/// percent-encoded space in `options` stays a space (form re-encoding once turned it into a
/// `+`, which PostgreSQL refused as a command-line argument).
#[tokio::test]
async fn other_url_parameters_reach_the_server_unchanged() {
    let pg = testkit::postgres();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?options=-c%20search_path%3Dapp_schema&sslmode=disable&application_name=tls%20split",
        pg.port
    );
    let target = PgTarget::parse(&url).unwrap();
    let (client, conn) = target.config.connect(target.tls.clone()).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT current_setting('search_path'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app_schema");
    assert_eq!(row.get::<_, String>(1), "tls split");
}

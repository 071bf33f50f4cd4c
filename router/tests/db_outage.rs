//! While PostgreSQL is down, tenants already cached keep being served (stale-if-error) and
//! unknown names get a clear 503; when it returns, lookups resume. Runs in its own test binary
//! because it stops the binary's shared database cluster.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

async fn status(r: &testkit::RouterProcess, host: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(r.url("/"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tenants_survive_a_database_outage() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(
            "INSERT INTO tenants (slug, name, status) VALUES ('grace', 'Grace', 'active'), ('later', 'Later', 'active')",
        )
        .await
        .unwrap();
    drop(owner);
    let origin = testkit::origin("platform").start().await;
    let router = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&[origin.host_port()])
        .set("cache", "ttl_secs = 1")
        .set("cache", "negative_ttl_secs = 1")
        .start();

    assert_eq!(status(&router, "grace.platform.test").await.0, 200);

    testkit::postgres().stop();
    // Let the entry expire: from now on only stale-if-error can serve it.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for _ in 0..3 {
        assert_eq!(
            status(&router, "grace.platform.test").await.0,
            200,
            "stale entry served"
        );
    }
    let (code, body) = status(&router, "later.platform.test").await;
    assert_eq!(code, 503, "never cached, nothing to fall back on");
    assert!(body.contains("Temporarily unavailable"), "{body}");
    assert!(
        !body.contains("postgres") && !body.contains("5432"),
        "{body}"
    );

    testkit::postgres().start();
    let mut recovered = false;
    for _ in 0..50 {
        if status(&router, "later.platform.test").await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "lookups resume once the database is back");
    let m = reqwest::get(router.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("router_tenant_cache_lookups_total{result=\"stale\"} 3"),
        "{m}"
    );
}

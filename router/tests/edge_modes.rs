//! Running without a database (static tenant file), and plain HTTP redirected to HTTPS with the
//! ACME and health paths left alone.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
domains = ['grace-church.localhost']
";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_tenant_file_serves_without_a_database() {
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();
    for host in ["grace.platform.test", "grace-church.localhost"] {
        let v: serde_json::Value = client()
            .get(r.url("/"))
            .header("host", host)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["headers"]["x-tenant-slug"], "grace", "{host}");
    }
    let resp = client()
        .get(r.url("/"))
        .header("host", "other.platform.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_to_https_except_acme_and_health() {
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .set("listen", "redirect_http_to_https = true")
        .start();
    let resp = client()
        .post(r.url("/give?fund=missions"))
        .header("host", "Grace.Platform.Test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308, "308 keeps the method for POST");
    assert_eq!(
        resp.headers()["location"],
        "https://grace.platform.test/give?fund=missions"
    );

    let acme = client()
        .get(r.url("/.well-known/acme-challenge/token123"))
        .header("host", "grace.platform.test")
        .send()
        .await
        .unwrap();
    assert_ne!(acme.status(), 308, "ACME challenges are never redirected");

    // Health lives on the operator listener; the public listener refuses it, redirect or not.
    let health = client().get(r.url("/health")).send().await.unwrap();
    assert_eq!(
        health.status(),
        404,
        "operator paths are not served publicly"
    );
    assert_eq!(origin.requests(), 0);
}

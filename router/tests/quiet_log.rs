//! A healthy system keeps a quiet log: under keep-alive load through the router to a healthy
//! origin, no ERROR line is written. Pingora's benign upstream-reuse race (see
//! `router/src/log_bridge.rs`) happens dozens of times a second at this load; it is counted in
//! `router_upstream_reuse_races_total` and logged at DEBUG.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{Duration, Instant};

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
domains = ['grace-church.localhost']
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_load_writes_no_error_lines() {
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .set("rate_limits", "enabled = false")
        .start();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let c = client.clone();
        let url = r.url("/");
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while Instant::now() < until {
                let resp = c
                    .get(&url)
                    .header("host", "grace.platform.test")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let _ = resp.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert!(total > 500, "only {total} requests");
    let metrics = reqwest::get(r.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let races = metrics
        .lines()
        .find(|l| l.starts_with("router_upstream_reuse_races_total"))
        .unwrap_or("router_upstream_reuse_races_total 0");
    let log = std::fs::read_to_string(r.dir().join("router.log")).unwrap();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    eprintln!("{total} requests; {races}");
    assert!(errors.is_empty(), "{errors:#?}");
}

//! Redis goes away mid-test (SIGSTOP: the worst case, a server that accepts and never
//! answers): requests keep flowing under local limits, with no added latency once the breaker
//! has tripped, and shared limits resume when Redis answers again. Its own test binary, so
//! pausing this Redis disturbs no other test.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{Duration, Instant};

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_local_limits_and_recovers() {
    let redis = testkit::redis();
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .set("redis", &format!("url = {:?}", redis.url()))
        // A budget long enough to see: before the breaker trips, each request waits it out.
        .set(
            "rate_limits",
            "redis_timeout_ms = 300\nbreaker_failures = 3\nbreaker_probe_ms = 200\ninstances = 2",
        )
        .set(
            "rate_limits",
            "zone = [{ name = \"one\", rate = \"10r/s\", burst = 20, nodelay = true }]",
        )
        .set("rate_limits.plan", "enabled = false")
        .start();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let get = || async {
        let t = Instant::now();
        let s = c
            .get(r.url("/"))
            .header("host", "grace.platform.test")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (s, t.elapsed())
    };
    let ready = || async {
        c.get(r.metrics_url("/ready"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(get().await.0, 200);
    assert!(ready().await.contains(r#""detail":"redis""#));

    redis.pause();
    let mut slow = 0;
    for _ in 0..3 {
        let (s, d) = get().await;
        assert_eq!(s, 200, "never fail closed");
        if d >= Duration::from_millis(250) {
            slow += 1;
        }
    }
    assert_eq!(slow, 3, "each of the first failures waits out the budget");
    assert!(ready().await.contains(r#""detail":"local""#));
    // Breaker open: no wait at all, and local limits (burst 20 / 2 instances → 11 pass).
    let mut passed = 0;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let (s, d) = get().await;
        worst = worst.max(d);
        if s == 200 {
            passed += 1;
        } else {
            assert_eq!(s, 429);
        }
    }
    assert!(
        worst < Duration::from_millis(100),
        "added latency after the trip: {worst:?}"
    );
    assert!(
        (10..=13).contains(&passed),
        "local share of the limit: {passed}"
    );

    redis.resume();
    let mut back = false;
    for _ in 0..50 {
        if ready().await.contains(r#""detail":"redis""#) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "shared limits resume");
    let m = c
        .get(r.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("store=\"local\""), "{m}");
}

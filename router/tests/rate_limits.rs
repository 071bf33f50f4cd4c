//! Rate limits through the router: the auth zone against a password-guessing loop, one budget
//! shared by two instances through Redis, the Redis script against the in-memory arithmetic,
//! and the same timed sequence sent to a real nginx with equal `limit_req` zones.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;
use std::time::{Duration, Instant};

use router::limits::gcra::{self, Params, NODELAY};
use router::limits::shared::Shared;
use tenant_config::config::{RedisConfig, Secret};

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
";
const HOST: &str = "grace.platform.test";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn redis_table() -> String {
    format!("url = {:?}", testkit::redis().url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_zone_stops_a_password_guessing_loop() {
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .set("redis", &redis_table())
        .set("rate_limits", "key_prefix = \"auth-test\"")
        // Decided in Redis every time: with the default 5 ms budget a loaded machine sends
        // some requests to the per-instance fallback, whose budget is separate (by design).
        .set("rate_limits", "redis_timeout_ms = 1000")
        .start();
    let c = client();
    let mut statuses = Vec::new();
    let mut last = None;
    let started = Instant::now();
    for _ in 0..15 {
        let resp = c
            .post(r.url("/api/staff/login"))
            .header("host", HOST)
            .header("accept", "application/json")
            .body(r#"{"email":"a@b.c","password":"guess"}"#)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        last = Some(resp);
    }
    // The seeds' auth zone: 5 r/m, burst 5, nodelay: 6 pass, then every guess is refused.
    // (One more per 12 s the loop took: on a loaded machine it can, and the zone then rightly
    // lets another one through.)
    let refill = (started.elapsed().as_secs() / 12) as usize;
    let passed = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        (6..=6 + refill).contains(&passed),
        "{passed} passed in {:?}: {statuses:?}",
        started.elapsed()
    );
    assert!(statuses[..6].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(statuses[14], 429, "{statuses:?}");
    let last = last.unwrap();
    let h = last.headers();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=13).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-policy"], "\"auth\";q=5;w=60");
    assert!(h["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"auth\";r=0;t="));
    assert_eq!(h["content-type"], "application/problem+json");
    let body: serde_json::Value = last.json().await.unwrap();
    assert_eq!(body["status"], 429);
    // A browser gets a page.
    let page = c
        .post(r.url("/staff/login"))
        .header("host", HOST)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // The access log marks limited requests; metrics count them.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = r.process.output();
    assert!(
        out.contains(r#""limit":"limited","limit_zone":"auth""#),
        "{out}"
    );
    let m = c
        .get(r.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("router_rate_limit_decisions_total")
                && l.contains("zone=\"auth\"")
                && l.contains("outcome=\"limited\"")
                && l.contains("store=\"redis\"")),
        "{m}"
    );
    let ready = c
        .get(r.metrics_url("/ready"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ready.contains(r#""detail":"redis""#), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_through_redis() {
    let origin = testkit::origin("platform").start().await;
    let zone = "zone = [{ name = \"one\", rate = \"1r/m\", burst = 4, nodelay = true }]";
    let start = || {
        testkit::router(env!("CARGO_BIN_EXE_router"))
            .static_tenants(TENANTS)
            .platform(&[origin.host_port()])
            .set("redis", &redis_table())
            .set("rate_limits", "key_prefix = \"share-test\"")
            // Every decision in Redis (see the auth-zone test).
            .set("rate_limits", "redis_timeout_ms = 1000")
            .set("rate_limits", zone)
            .set("rate_limits.plan", "enabled = false")
            .start()
    };
    let (a, b) = (start(), start());
    let c = client();
    let mut passed = 0;
    for i in 0..12 {
        let r = if i % 2 == 0 { &a } else { &b };
        let s = c
            .get(r.url("/"))
            .header("host", HOST)
            .send()
            .await
            .unwrap()
            .status();
        if s != 429 {
            passed += 1;
        }
    }
    assert_eq!(
        passed, 5,
        "burst 4 + 1 across both instances, not per instance"
    );
}

fn params(seed: &mut u64) -> Params {
    let mut next = |n: u64| {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) % n
    };
    Params {
        rate: 1 + next(20_000) as i64,
        burst: next(20) as i64 * 1000,
        delay: if next(2) == 0 {
            NODELAY
        } else {
            next(5) as i64 * 1000
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_script_matches_the_arithmetic() {
    let cfg = RedisConfig {
        url: Secret::new(testkit::redis().url()),
        ca_file: None,
    };
    let shared = Shared::new(&cfg, Duration::from_secs(2), 1000).unwrap();
    let mut seed = 7u64;
    for case in 0..40 {
        let zones = 1 + (case % 3);
        let ps: Vec<Params> = (0..zones).map(|_| params(&mut seed)).collect();
        let keys: Vec<String> = (0..zones)
            .map(|z| format!("script-test:{case}:{z}"))
            .collect();
        let mut nodes = vec![None; zones];
        let mut now = 1_700_000_000_000i64;
        for step in 0..60 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            now += [0, 1, 7, 50, 400, 2_500][((seed >> 40) % 6) as usize];
            let want = gcra::check(&ps, &mut nodes, now);
            let got = shared.check(&keys, &ps, Some(now)).await.unwrap();
            assert_eq!(got, want, "case {case} step {step} {ps:?}");
        }
    }
}

/// The outside check: nginx (Debian package) and the router, equal zones, the same arrival
/// schedule (spaced well away from the zone's 500 ms emission boundaries), the same pattern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_pattern_as_nginx_limit_req() {
    if Command::new("nginx").arg("-v").output().is_err() {
        panic!("nginx is not installed (ops/scripts/install-deps.sh nginx)");
    }
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .set("rate_limits", "zone = [{ name = \"z\", rate = \"2r/s\", burst = 3, nodelay = true }, { name = \"y\", rate = \"30r/m\", burst = 5, nodelay = true }]")
        .set("rate_limits.plan", "enabled = false")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  limit_req_zone $binary_remote_addr zone=z:1m rate=2r/s;
  limit_req_zone $binary_remote_addr zone=y:1m rate=30r/m;
  limit_req_status 429;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port};
    location / {{ limit_req zone=z burst=3 nodelay; limit_req zone=y burst=5 nodelay; root {d}/www; }} }}
}}",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "ok").unwrap();
    let _nginx = testkit::Spawned::start(
        {
            let mut c = Command::new("nginx");
            c.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"));
            c
        },
        &dir.path().join("stdout.log"),
    );
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(10)),
        "nginx did not start"
    );
    // Offsets in ms from the start: a burst, then arrivals 250 ms off the 500 ms grid.
    let schedule: Vec<u64> = [
        0, 0, 0, 0, 0, 0, 250, 750, 1_250, 1_300, 1_350, 2_750, 2_800, 4_250, 4_300, 4_350, 4_400,
        4_450, 4_500, 6_750, 8_250,
    ]
    .to_vec();
    let c = client();
    let run = |url: String, host: Option<&'static str>| {
        let c = c.clone();
        let schedule = schedule.clone();
        async move {
            let t0 = Instant::now();
            let mut out = Vec::new();
            for at in schedule {
                let due = t0 + Duration::from_millis(at);
                tokio::time::sleep_until(due.into()).await;
                let mut req = c.get(&url);
                if let Some(h) = host {
                    req = req.header("host", h);
                }
                out.push(req.send().await.unwrap().status().as_u16() == 429);
            }
            out
        }
    };
    let (ngx, ours) = tokio::join!(
        run(format!("http://127.0.0.1:{port}/"), None),
        run(r.url("/"), Some(HOST))
    );
    assert!(
        ngx.iter().any(|l| *l),
        "the schedule must hit the limit: {ngx:?}"
    );
    assert_eq!(ours, ngx, "limited pattern, router vs nginx");
}

/// A plan's limit is the tenant's budget, and changing the plan's numbers reaches a running
/// router at once (migration 0013's `plans_notify` → `tenant_changed {"plan": …}` → the tenant
/// cache is dropped and the next request reads the new limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_reaches_the_running_router() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(
            "INSERT INTO tenants (slug, name, status, plan_id) VALUES ('grace', 'Grace', 'active', 'starter');
             UPDATE plans SET rate_limit_rps = 1, rate_limit_burst = 3 WHERE id = 'starter'",
        )
        .await
        .unwrap();
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&[origin.host_port()])
        // Only the plan's limit, kept in this instance (no Redis): the zones would also stop a
        // burst from one address.
        .set("rate_limits", "zone = []")
        .start();
    let c = client();
    let burst = |n: usize| {
        let c = c.clone();
        let url = r.url("/");
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                let s = c
                    .get(&url)
                    .header("host", HOST)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                out.push(s);
            }
            out
        }
    };
    // 1 r/s burst 3: four pass at once, then the plan says no.
    let first = burst(8).await;
    assert_eq!(first.iter().filter(|s| **s == 200).count(), 4, "{first:?}");
    assert!(first[4..].iter().all(|s| *s == 429), "{first:?}");
    // The platform admin raises the plan's burst; no restart, no cache expiry wait.
    owner
        .execute(
            "UPDATE plans SET rate_limit_burst = 100 WHERE id = 'starter'",
            &[],
        )
        .await
        .unwrap();
    let mut after = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = burst(8).await;
        if after.iter().all(|s| *s == 200) {
            break;
        }
    }
    assert!(
        after.iter().all(|s| *s == 200),
        "the new burst never applied: {after:?}"
    );
}

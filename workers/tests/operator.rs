//! The workers binary's two listeners, as a process: the operator port serves `/metrics`,
//! `/ready` and `/health` in the shape every binary shares; the public port (reached through
//! the router) serves only `/api/cron/*` and a status-only `/api/health`; `workers healthcheck`
//! exits 0 while the operator port says ready and 1 once nothing answers there.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

const CRON_SECRET: &str = "cron-secret-for-tests-0123456789abcdef";

fn workers(db: &testkit::TestDb, public: u16, operator: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workers"));
    c.env_clear()
        .env("DATABASE_URL", db.workers_url())
        .env("CRON_SECRET", CRON_SECRET)
        .env("SMTP_URL", "smtp://127.0.0.1:9")
        .env("WORKERS_LISTEN", format!("127.0.0.1:{public}"))
        .env("WORKERS_OPERATOR_LISTEN", format!("127.0.0.1:{operator}"))
        .env("WORKERS_SCHEDULER", "false")
        .env("WORKERS_SHUTDOWN_GRACE_SECS", "1")
        .env("LOG_LEVEL", "warn");
    c
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn operator_endpoints_only_on_the_operator_port_and_the_healthcheck_command() {
    let db = testkit::database().await;
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = workers(&db, public, operator);
    cmd.arg("run");
    let mut proc = testkit::Spawned::start(cmd, &dir.path().join("workers.log"));
    assert!(
        testkit::wait_for_port(public, Duration::from_secs(20))
            && testkit::wait_for_port(operator, Duration::from_secs(5)),
        "{}",
        proc.output()
    );

    for path in ["/health", "/ready"] {
        let (code, body) = get(operator, path).await;
        assert_eq!(code, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "healthy", "{v}");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["uptime_seconds"].is_u64(), "{v}");
        assert_eq!(v["checks"]["database"]["status"], "up", "{v}");
        assert!(v["checks"]["database"]["latency_ms"].is_number(), "{v}");
    }
    let (code, metrics) = get(operator, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("# HELP process_open_fds"), "{metrics}");
    assert_eq!(get(operator, "/api/cron/cleanup-sessions").await.0, 404);

    for path in ["/metrics", "/ready", "/health"] {
        let (code, body) = get(public, path).await;
        assert_eq!(code, 404, "{path} on the public port: {body}");
    }
    assert_eq!(
        get(public, "/api/health").await,
        (200, r#"{"status":"ok"}"#.to_owned())
    );

    let out = workers(&db, public, operator)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    proc.signal("TERM");
    assert_eq!(
        proc.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        proc.output()
    );
    let out = workers(&db, public, operator)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "operator port down");
}

/// `process_start_time_seconds` is when the process started, not when `/metrics` was first
/// scraped: a process scraped for the first time seconds after it started still reports the
/// second it was spawned (the kernel's boot time is whole seconds, hence the slack).
#[tokio::test]
async fn process_start_time_is_the_start_not_the_first_scrape() {
    let db = testkit::database().await;
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = workers(&db, public, operator);
    cmd.arg("run");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let spawned = now();
    let proc = testkit::Spawned::start(cmd, &dir.path().join("workers.log"));
    assert!(
        testkit::wait_for_port(operator, Duration::from_secs(20)),
        "{}",
        proc.output()
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (code, metrics) = get(operator, "/metrics").await;
    assert_eq!(code, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("process_start_time_seconds "))
        .unwrap_or_else(|| panic!("no process_start_time_seconds: {metrics}"));
    let started: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        started > spawned - 1.5 && started < spawned + 1.5,
        "{line}: spawned at {spawned}, first scraped at {}",
        now()
    );
}

#[tokio::test]
async fn not_ready_without_the_database() {
    // A database port nothing listens on: the process serves, /ready is 503, the command 1.
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let dead = format!(
        "postgres://platform_workers@127.0.0.1:{}/x?connect_timeout=1",
        testkit::free_port()
    );
    let build = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_workers"));
        c.env_clear()
            .env("DATABASE_URL", &dead)
            .env("CRON_SECRET", CRON_SECRET)
            .env("WORKERS_LISTEN", format!("127.0.0.1:{public}"))
            .env("WORKERS_OPERATOR_LISTEN", format!("127.0.0.1:{operator}"))
            .env("WORKERS_SCHEDULER", "false")
            .env("LOG_LEVEL", "error");
        c
    };
    let mut cmd = build();
    cmd.arg("run");
    let proc = testkit::Spawned::start(cmd, &dir.path().join("workers.log"));
    assert!(
        testkit::wait_for_port(operator, Duration::from_secs(20)),
        "{}",
        proc.output()
    );
    let (code, body) = get(operator, "/ready").await;
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(v["checks"]["database"]["status"], "down");
    assert!(
        !body.contains("platform_workers@"),
        "no connection string: {body}"
    );
    assert_eq!(
        get(public, "/api/health").await,
        (503, r#"{"status":"unavailable"}"#.to_owned())
    );
    let out = build().arg("healthcheck").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn operator_listener_on_the_public_port_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_workers"))
        .env_clear()
        .env("DATABASE_URL", "postgres://w@127.0.0.1:5432/platform")
        .env("CRON_SECRET", CRON_SECRET)
        .env("WORKERS_LISTEN", "0.0.0.0:8090")
        .env("WORKERS_OPERATOR_LISTEN", "127.0.0.1:8090")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("operator_listen"), "{err}");
}

//! The platform binary's two listeners, as a process: the operator port serves `/metrics`,
//! `/ready` and `/health` in the shared shape; the public port serves none of them and answers
//! `/api/health` with a status only; `platform healthcheck` exits 0 while the operator port
//! says ready and 1 once nothing answers there; an operator port on the public port, or on a
//! public address, is refused at start.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn platform(db: &testkit::TestDb, public: u16, operator: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_platform"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.web_url())
        .env("REDIS_URL", testkit::redis().url())
        .env("EDGE_SIGNING_SECRET", SECRET)
        .env("PLATFORM_LISTEN", format!("127.0.0.1:{public}"))
        .env("PLATFORM_OPERATOR_LISTEN", format!("127.0.0.1:{operator}"))
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
async fn operator_and_public_listeners_and_the_healthcheck_command() {
    let db = testkit::database().await;
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = platform(&db, public, operator);
    cmd.arg("serve");
    let mut proc = testkit::Spawned::start(cmd, &dir.path().join("platform.log"));
    assert!(
        testkit::wait_for_port(public, Duration::from_secs(20))
            && testkit::wait_for_port(operator, Duration::from_secs(5)),
        "{}",
        proc.output()
    );

    // Operator port: the shared shape.
    for path in ["/health", "/ready"] {
        let (code, body) = get(operator, path).await;
        assert_eq!(code, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["uptime_seconds"].is_u64(), "{v}");
        assert!(v["status"].is_string(), "{v}");
        assert!(
            v["checks"]["database"]["latency_ms"].is_number(),
            "{path}: {v}"
        );
        assert_eq!(v["checks"]["migrations"]["status"], "up", "{v}");
    }
    let (code, metrics) = get(operator, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# HELP process_resident_memory_bytes"),
        "{metrics}"
    );

    // Public port: none of that, and a status-only /api/health.
    for path in ["/metrics", "/ready", "/health"] {
        let (code, body) = get(public, path).await;
        assert_eq!(
            code, 404,
            "{path} must not answer on the public port: {body}"
        );
        assert!(!body.contains("process_"), "{path}: {body}");
    }
    let (code, body) = get(public, "/api/health").await;
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));

    // The healthcheck command reads the same configuration as serve.
    let out = platform(&db, public, operator)
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
    let out = platform(&db, public, operator)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "operator port down: not healthy"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[tokio::test]
async fn healthcheck_fails_while_not_ready() {
    // Redis unreachable: the operator port answers, /ready says 503, the command exits 1.
    let db = testkit::database().await;
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let dead_redis = format!("redis://127.0.0.1:{}/0", testkit::free_port());
    let mut cmd = platform(&db, public, operator);
    cmd.env("REDIS_URL", &dead_redis).arg("serve");
    let proc = testkit::Spawned::start(cmd, &dir.path().join("platform.log"));
    assert!(
        testkit::wait_for_port(operator, Duration::from_secs(20)),
        "{}",
        proc.output()
    );
    assert_eq!(get(operator, "/ready").await.0, 503);
    assert_eq!(
        get(public, "/api/health").await,
        (503, r#"{"status":"unavailable"}"#.to_owned())
    );
    let out = platform(&db, public, operator)
        .env("REDIS_URL", &dead_redis)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"));
}

#[test]
fn operator_listener_on_the_public_port_or_a_public_address_is_refused() {
    for (public, operator) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "127.0.0.1:8080"),
        ("127.0.0.1:8080", "nonsense"),
        // A public address: the internet could reach it.
        ("127.0.0.1:8080", "8.8.8.8:9180"),
        ("127.0.0.1:8080", "[2001:db8::1]:9180"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_platform"))
            .env_clear()
            .env(
                "DATABASE_URL",
                "postgres://platform_web@127.0.0.1:5432/platform",
            )
            .env("REDIS_URL", "redis://127.0.0.1:6379/0")
            .env("EDGE_SIGNING_SECRET", SECRET)
            .env("PLATFORM_LISTEN", public)
            .env("PLATFORM_OPERATOR_LISTEN", operator)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{public} / {operator}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("operator_listen"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Loopback, private, and the unspecified address of a container are accepted.
    for operator in [
        "127.0.0.1:9180",
        "10.0.3.7:9180",
        "0.0.0.0:9180",
        "[fd00::7]:9180",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_platform"))
            .env_clear()
            .env(
                "DATABASE_URL",
                "postgres://platform_web@127.0.0.1:5432/platform",
            )
            .env("REDIS_URL", "redis://127.0.0.1:6379/0")
            .env("EDGE_SIGNING_SECRET", SECRET)
            .env("PLATFORM_OPERATOR_LISTEN", operator)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{operator}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

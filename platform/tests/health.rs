//! The operator listener's `/health`, `/ready` and `/metrics`, and the public listener's
//! status-only `/api/health`, against a real PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tenant_config::config::{MapEnv, PlatformConfig};
use tenant_config::db::migrate::{DownTo, Migrator};
use tower::ServiceExt;

fn config(db: &testkit::TestDb) -> PlatformConfig {
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef"),
    ]);
    tenant_config::config::load(None, &env).unwrap()
}

/// A request to the operator listener's routes.
async fn get(state: &platform::AppState, path: &str) -> (StatusCode, Value) {
    let resp = platform::operator::app(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn healthy_and_ready_with_everything_up() {
    let db = testkit::database().await;
    let state = platform::AppState::from_config(&config(&db)).unwrap();
    let (code, body) = get(&state, "/health").await;
    assert_eq!(code, StatusCode::OK);
    // The shape every binary shares: status, version, uptime, checks each with latency.
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].as_u64().is_some(), "{body}");
    for check in ["database", "redis", "migrations", "stripe"] {
        assert!(
            body["checks"][check]["latency_ms"].as_f64().unwrap() >= 0.0,
            "{check}: {body}"
        );
    }
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert_eq!(body["checks"]["migrations"]["status"], "up");
    assert_eq!(body["checks"]["migrations"]["detail"], "0 pending");
    // Without Stripe donations are refused: worth seeing (degraded), never unready.
    assert_eq!(body["checks"]["stripe"]["status"], "down", "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    let (code, body) = get(&state, "/ready").await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// `/api/health` on the public app: exactly `{"status": ...}`, nothing else.
async fn public_health(state: &platform::AppState) -> (StatusCode, Value) {
    let resp = platform::app(state.clone())
        .oneshot(Request::get("/api/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status"],
        "status only: {v}"
    );
    (status, v)
}

#[tokio::test]
async fn public_listener_answers_status_only_and_no_operator_path() {
    let db = testkit::database().await;
    let state = platform::AppState::from_config(&config(&db)).unwrap();
    let (code, body) = public_health(&state).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    for path in ["/metrics", "/ready", "/health"] {
        let resp = platform::app(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "{path} on the public app"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        for leak in [
            "platform_",
            "latency_ms",
            "uptime",
            env!("CARGO_PKG_VERSION"),
        ] {
            assert!(!text.contains(leak), "{path} leaks {leak}: {text}");
        }
    }
    // And the operator app serves nothing of the public API.
    let resp = platform::operator::app(state.clone())
        .oneshot(Request::get("/api/tenant").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn not_ready_while_a_migration_is_pending() {
    let db = testkit::database().await;
    Migrator::connect(&db.owner_url())
        .await
        .unwrap()
        .down(DownTo::Steps(1))
        .await
        .unwrap();
    let state = platform::AppState::from_config(&config(&db)).unwrap();
    let (code, body) = get(&state, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["migrations"]["status"], "down");
    assert_eq!(body["checks"]["migrations"]["detail"], "1 pending");
    // The public answer says only that it is unavailable.
    let (code, body) = public_health(&state).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    // Liveness is unaffected: the process itself is fine.
    assert_eq!(get(&state, "/health").await.0, StatusCode::OK);
}

#[tokio::test]
async fn not_ready_when_redis_is_unreachable() {
    let db = testkit::database().await;
    let mut cfg = config(&db);
    // A port nothing listens on: bind one, note it, release it.
    let dead = format!("redis://127.0.0.1:{}/0", testkit::free_port());
    cfg.redis.url = tenant_config::config::Secret::new(dead);
    let state = platform::AppState::from_config(&cfg).unwrap();
    let (code, body) = get(&state, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["database"]["status"], "up");
    let text = body.to_string();
    assert!(
        !text.contains("redis://"),
        "no connection strings in the report: {text}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let db = testkit::database().await;
    let state = platform::AppState::from_config(&config(&db)).unwrap();
    let _ = public_health(&state).await;
    let resp = platform::operator::app(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            "platform_http_requests_total{route=\"/api/health\",method=\"GET\",status_class=\"2xx\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("platform_db_pool_connections{state=\"idle\"}"),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/api/donations/"),
        "templates, never raw paths"
    );
    // Every family has HELP text, and the process metrics are there.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
    }
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(
            text.contains(&format!("\n{family} ")),
            "{family} missing:\n{text}"
        );
    }
}

//! `/ready` answers 503 while PostgreSQL is down and 200 again once it is back; `/health` keeps
//! answering throughout. Its own test binary: it stops the binary's database cluster.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tenant_config::config::{MapEnv, PlatformConfig};
use tower::ServiceExt;

/// Status of `path` on the operator listener's routes.
async fn status(state: &platform::AppState, path: &str) -> StatusCode {
    platform::operator::app(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn ready_follows_the_database() {
    let db = testkit::database().await;
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("DATABASE_MAX_CONNECTIONS", "2"),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef"),
    ]);
    let mut config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    config.database.connect_timeout_ms = 500;
    let state = platform::AppState::from_config(&config).unwrap();
    assert_eq!(status(&state, "/ready").await, StatusCode::OK);

    testkit::postgres().stop();
    assert_eq!(
        status(&state, "/ready").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(&state, "/health").await,
        StatusCode::OK,
        "liveness does not depend on the database"
    );

    testkit::postgres().start();
    let mut back = false;
    for _ in 0..50 {
        if status(&state, "/ready").await == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "/ready recovers when PostgreSQL returns");
}

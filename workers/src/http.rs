//! HTTP served by a workers process, reached through the router's workers pool.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tenant_config::db::Pool;

/// Shared handles.
#[derive(Clone)]
pub struct WorkersState {
    /// PostgreSQL, where the queue lives.
    pub db: Pool,
}

/// The workers' routes.
pub fn app(state: WorkersState) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}

/// `GET /health`: 200 when the queue database answers, 503 when it does not.
async fn health(State(state): State<WorkersState>) -> (StatusCode, Json<Value>) {
    let probe = async {
        let conn = state.db.get().await.map_err(|e| e.to_string())?;
        conn.query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let db_up = matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(()))
    );
    let (code, status) = if db_up {
        (StatusCode::OK, "healthy")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": { "status": if db_up { "up" } else { "down" } } },
    });
    (code, Json(body))
}

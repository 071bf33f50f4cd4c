//! Interim HTTP front: answers `/health` and reports, as JSON, how each request would be
//! routed. It exercises the real resolution path (rules, store) end to end until the Pingora
//! proxy takes this listener over.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::resolve::{Resolver, Route};

/// The interim router app.
pub fn app(resolver: Resolver) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({ "status": "healthy" })) }),
        )
        .fallback(preview)
        .with_state(resolver)
}

async fn preview(State(resolver): State<Resolver>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    match resolver.resolve(host).await {
        Ok(route @ Route::RedirectToApex { .. }) => {
            let location = format!("https://{}/", resolver.rules().base());
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
                Json(route),
            )
                .into_response()
        }
        Ok(route @ Route::Suspended { .. }) => (StatusCode::FORBIDDEN, Json(route)).into_response(),
        Ok(route) => Json(route).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "tenant lookup failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "tenant lookup unavailable" })),
            )
                .into_response()
        }
    }
}

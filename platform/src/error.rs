//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Users see a stable type, a title and, for input errors, which field is wrong. Internal causes
//! (SQL errors, pool timeouts) are logged with the request id and never returned.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Every error a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing or invalid edge signature, or no session.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed (wrong route for the endpoint).
    #[error("forbidden")]
    Forbidden,
    /// Nothing here (including other tenants' rows, which RLS makes invisible).
    #[error("not found")]
    NotFound,
    /// A field failed validation.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request itself is unusable (bad signature, unparsable payload); `detail` says why.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request conflicts with existing data (duplicate slug, email).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A dependency is down (database, Redis).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the cause is logged, not shown.
    #[error("internal: {0}")]
    Internal(String),
}

/// The body of every error response (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Short, human-readable summary.
    pub title: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, when it is safe to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Invalid fields, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError<'a>>>,
}

/// One invalid field.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FieldError<'a> {
    /// Field name (`body` when the JSON itself is unusable).
    pub field: &'a str,
    /// What is wrong with it.
    pub message: &'a str,
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            AppError::Invalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong",
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        match &self {
            AppError::Internal(cause) => tracing::error!(%cause, "request failed"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
        let errors = match &self {
            AppError::Invalid { field, message } => Some(vec![FieldError { field, message }]),
            _ => None,
        };
        let detail = match &self {
            AppError::Invalid { field, message } => Some(format!("{field}: {message}")),
            AppError::Conflict(what) | AppError::BadRequest(what) => Some(what.clone()),
            _ => None,
        };
        let type_uri = format!("https://docs.platform.example/problems/{kind}");
        let body = Problem {
            kind: &type_uri,
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError::Internal(format!("database: {e}"))
    }
}

impl<E: std::error::Error + 'static> From<bb8::RunError<E>> for AppError {
    fn from(e: bb8::RunError<E>) -> Self {
        AppError::Unavailable(format!("database pool: {e}"))
    }
}

/// `Json<T>` whose rejections (malformed JSON, wrong content type, missing or unknown fields)
/// are problem responses naming what is wrong, like every other error.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| ApiJson(v))
            .map_err(|e| AppError::Invalid {
                field: "body",
                message: e.body_text(),
            })
    }
}

/// `Query<T>` whose rejections are problem responses naming the query string.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| AppError::Invalid {
                field: "query",
                message: e.body_text(),
            })
    }
}

/// `Form<T>` whose rejections are problem responses naming the form body.
pub struct ApiForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(v)| ApiForm(v))
            .map_err(|e| AppError::Invalid {
                field: "body",
                message: e.body_text(),
            })
    }
}

/// Parses an id from the URL path; a malformed one is a 422 naming `id`, never a 404 or 500.
pub fn path_uuid(id: &str) -> Result<uuid::Uuid, AppError> {
    id.parse().map_err(|_| AppError::Invalid {
        field: "id",
        message: "must be a UUID".into(),
    })
}

//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Users see a stable type, a title and, for input errors, which field is wrong. Internal causes
//! (SQL errors, pool timeouts) are logged with the request id, tenant and route by [`context`]
//! and never returned.
//!
//! Statuses follow RFC 9110: 400 for a body that is not JSON (or not a form), 413 for a body
//! over the limit, 415 for a body of the wrong type, 422 for well-formed input with an invalid
//! value (naming the field), 405 with an `Allow` list. Input reaches SQL only after
//! [`check_text`] has refused NUL and other control characters, and database errors that input
//! can still cause (a constraint, a value out of range) map to 4xx, never to 500.

use std::borrow::Cow;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_postgres::error::SqlState;

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
        /// The field at fault (a path such as `settings.funds[2]` for nested input).
        field: Cow<'static, str>,
        /// What is wrong.
        message: String,
    },
    /// The request itself is unusable (bad signature, unparsable payload); `detail` says why.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request conflicts with existing data (duplicate slug, email).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The body is larger than the service accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body is not of a type this endpoint reads; the message names the expected one.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(&'static str),
    /// The path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
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
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Request body too large",
            ),
            AppError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            AppError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
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
        let errors = match &self {
            AppError::Invalid { field, message } => Some(vec![FieldError { field, message }]),
            _ => None,
        };
        let detail = match &self {
            AppError::Invalid { field, message } => Some(format!("{field}: {message}")),
            AppError::Conflict(what) | AppError::BadRequest(what) => Some(what.clone()),
            AppError::UnsupportedMediaType(want) => Some(format!("send {want}")),
            _ => None,
        };
        // A page says more than the title only for the input's own problems.
        let page_detail = match &self {
            AppError::Invalid { .. } | AppError::Conflict(_) | AppError::BadRequest(_) => {
                detail.clone()
            }
            _ => None,
        };
        let mut resp = problem_response(status, kind, title, detail, errors);
        resp.extensions_mut().insert(ProblemPage {
            title,
            detail: page_detail,
        });
        // The cause travels to `context`, which logs it with the request's identity.
        if let AppError::Internal(cause) | AppError::Unavailable(cause) = self {
            resp.extensions_mut().insert(ErrorCause(cause));
        }
        resp
    }
}

/// An RFC 9457 problem+json response, with the [`ProblemPage`] that lets [`context`] show it
/// as HTML to a browser.
fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &'static str,
    detail: Option<String>,
    errors: Option<Vec<FieldError<'_>>>,
) -> Response {
    let type_uri = format!("https://docs.platform.example/problems/{kind}");
    let body = Problem {
        kind: &type_uri,
        title,
        status: status.as_u16(),
        detail: detail.clone(),
        errors,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response();
    resp.extensions_mut().insert(ProblemPage { title, detail });
    resp
}

/// Turns an error answer that did not come from [`AppError`] — axum's own rejections (a path
/// parameter that is not UTF-8, a body over the limit) or a plain-text error from a layer —
/// into the same problem+json every other error is, keeping its status and its one-line text
/// as the detail.
async fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    let text = axum::body::to_bytes(resp.into_body(), 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| {
            t.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .filter(|t| !t.trim().is_empty());
    let (kind, title) = match status {
        StatusCode::BAD_REQUEST => ("bad-request", "Bad request"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation", "Invalid request"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "Temporarily unavailable"),
        s if s.is_server_error() => ("internal", "Something went wrong"),
        _ => ("client-error", "Request refused"),
    };
    // A server error's text may describe our internals; a client error's describes the input.
    let detail = if status.is_server_error() { None } else { text };
    problem_response(status, kind, title, detail, None)
}

/// Whether an error answer already is a problem or a page we rendered on purpose (a form
/// shown again with its errors): only answers without a body type or in plain text are
/// rewritten by [`as_problem`].
fn needs_problem(resp: &Response) -> bool {
    (resp.status().is_client_error() || resp.status().is_server_error())
        && resp.extensions().get::<ProblemPage>().is_none()
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/plain"))
}

/// Middleware (inside [`context`]): a handler that panics answers a logged 500 problem like any
/// other internal error instead of dropping the connection.
pub async fn catch_panic(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(_) => AppError::Internal("handler panicked".into()).into_response(),
    }
}

/// What an error page shows, handed from the error to [`context`], which renders it as HTML
/// when the request came from a browser page rather than the API.
#[derive(Debug, Clone)]
pub struct ProblemPage {
    /// Short summary (the problem's title).
    pub title: &'static str,
    /// What went wrong, when it is safe to say.
    pub detail: Option<String>,
}

/// Whether the client asked for a page: `Accept` names `text/html` and the path is not an API
/// path (API clients get problem+json whatever they accept).
fn wants_html(req: &axum::extract::Request) -> bool {
    !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The problem as a small HTML page (the pages' layout) with the same status and headers.
fn html_problem(mut resp: Response, page: &ProblemPage) -> Response {
    #[derive(askama::Template)]
    #[template(path = "error.html")]
    struct ErrorPage<'a> {
        title: &'a str,
        detail: Option<&'a str>,
        code: u16,
    }
    let body = askama::Template::render(&ErrorPage {
        title: page.title,
        detail: page.detail.as_deref(),
        code: resp.status().as_u16(),
    });
    let Ok(body) = body else {
        return resp;
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    *resp.body_mut() = axum::body::Body::from(body);
    resp
}

/// The logged cause of a 5xx, handed from the error to [`context`].
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// Describes a database error for the log: SQLSTATE, constraint, table and the server's
/// message, never the `DETAIL` line (which can quote the row's values, i.e. personal data).
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("database: SQLSTATE {} {}", db.code().code(), db.message());
            if let Some(c) = db.constraint() {
                s.push_str(&format!(" (constraint {c})"));
            }
            if let Some(t) = db.table() {
                s.push_str(&format!(" (table {t})"));
            }
            s
        }
        None => {
            let mut s = format!("database: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        let cause = describe_db_error(&e);
        let Some(code) = e.code() else {
            return AppError::Internal(cause);
        };
        // Errors the request's own values can cause are the client's, not a fault of ours:
        // a unique key taken, a check or length limit, a value out of range. They are still
        // logged (as a warning), so a bug that produces them does not go unseen.
        let class = &code.code()[..2];
        let client_error = if *code == SqlState::UNIQUE_VIOLATION {
            Some(AppError::Conflict("this already exists".into()))
        } else if class == "22" || class == "23" {
            Some(AppError::Invalid {
                field: "body".into(),
                message: "a value is not acceptable".into(),
            })
        } else {
            None
        };
        match client_error {
            Some(err) => {
                tracing::warn!(%cause, "database refused a value from the request");
                err
            }
            None => AppError::Internal(cause),
        }
    }
}

impl<E: std::error::Error + 'static> From<bb8::RunError<E>> for AppError {
    fn from(e: bb8::RunError<E>) -> Self {
        AppError::Unavailable(format!("database pool: {e}"))
    }
}

/// Middleware: logs every 5xx once, with the request id, tenant, route template and the
/// error's cause chain; renders errors as HTML pages for browsers on page paths (problem+json
/// everywhere else); and marks private responses uncacheable (`Cache-Control: no-store`
/// unless the handler chose otherwise): sessions, donor data and logins must never be kept
/// by a shared cache between the client and us.
pub async fn context(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let request_id = header_text(req.headers(), "x-request-id");
    let tenant = header_text(req.headers(), "x-tenant-id");
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let cacheable = method == axum::http::Method::GET && PUBLIC_PAGES.contains(&route.as_str());
    let html = wants_html(&req);
    let mut resp = next.run(req).await;
    if needs_problem(&resp) {
        resp = as_problem(resp).await;
    }
    if html {
        if let Some(page) = resp.extensions().get::<ProblemPage>().cloned() {
            resp = html_problem(resp, &page);
        }
    }
    if resp.status().is_server_error() {
        let cause = resp
            .extensions()
            .get::<ErrorCause>()
            .map_or("no cause recorded", |c| c.0.as_str());
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(request_id, tenant, route, %method, status = resp.status().as_u16(), cause, "dependency unavailable");
        } else {
            tracing::error!(request_id, tenant, route, %method, status = resp.status().as_u16(), cause, "request failed");
        }
    }
    // Every HTML answer gets the pages' policy unless it set its own (error pages, the
    // cancel pages): no inline code, nothing from elsewhere.
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !resp.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&crate::web::csp(None)) {
            resp.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    if !cacheable && !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

/// Pages that carry nothing personal and may be cached by the router's rules.
const PUBLIC_PAGES: &[&str] = &["/", "/api/tenant"];

fn header_text(h: &axum::http::HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect())
        .unwrap_or_default()
}

/// Parses an id from the URL path; a malformed one is a 422 naming `id`, never a 404 or 500.
pub fn path_uuid(id: &str) -> Result<uuid::Uuid, AppError> {
    uuid_field("id", id)
}

/// Parses a UUID from input field `field`; a malformed one is a 422 naming the field.
pub fn uuid_field(field: &'static str, value: &str) -> Result<uuid::Uuid, AppError> {
    value.parse().map_err(|_| AppError::Invalid {
        field: field.into(),
        message: "must be a UUID".into(),
    })
}

//! The router's private operator listener (`listen.metrics`, alias `listen.operator`; loopback
//! by default): `/metrics`, `/ready` and the full `/health`, in the health shape every binary
//! shares ([`tenant_config::health`]). The public listeners refuse these paths
//! ([`crate::respond::internal`]).
//!
//! Framing: every answer carries `Content-Length`, so Pingora keeps the connection open as its
//! `Connection: keep-alive` promises (a body without a length is delimited by closing the
//! connection, which is what this listener used to do while announcing keep-alive). A client
//! that sends `Connection: close` gets its answer and the close it asked for. `HEAD` gets the
//! head only, with the length the body would have had.
//!
//! Checks (each with the time it took; the pool verdicts come from the active health checks
//! that run in the background, so reading them is immediate):
//! - `platform`: at least one usable platform instance (detail `usable/total`);
//! - `workers`: at least one usable workers instance, when any is configured;
//! - `rate_limits`: the shared Redis store is in use (down while the breaker has the router on
//!   its local fallback), when rate limits are on.
//!
//! Ready when a platform instance is usable: rate limits and the workers never make the router
//! unready (it can still serve every page without them).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;
use tenant_config::health::{Check, Report};

use crate::metrics::AdminApp;
use crate::upstream::Pool;

/// When the process started serving (first use: the listener's start).
fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Marks the start for `uptime_seconds`; call once when the server is assembled.
pub fn mark_start() {
    let _ = started();
}

fn pool_check(pool: &Pool, required: bool) -> Check {
    let t = Instant::now();
    let total = pool.members().iter().count();
    let usable = pool.usable_count();
    let detail = format!("{usable}/{total} usable");
    if usable > 0 || (!required && total == 0) {
        Check::up(t.elapsed()).with_detail(detail)
    } else {
        Check::down(t.elapsed(), "no usable instance").with_detail(detail)
    }
}

/// The router's health report.
pub fn report(app: &AdminApp) -> Report {
    let mut checks = Vec::with_capacity(3);
    for pool in &app.pools {
        let required = pool.name() == "platform";
        checks.push((pool.name(), pool_check(pool, required)));
    }
    if let Some(l) = &app.limiter {
        let t = Instant::now();
        let state = l.store_state();
        let check = match state {
            "local" => Check::down(t.elapsed(), "Redis breaker open: local limits"),
            _ => Check::up(t.elapsed()),
        };
        checks.push(("rate_limits", check.with_detail(state)));
    }
    Report::new(env!("CARGO_PKG_VERSION"), started(), checks)
}

/// Ready when the platform pool has a usable instance.
pub fn is_ready(report: &Report) -> bool {
    report.checks.get("platform").is_some_and(Check::is_up)
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    head: bool,
) -> Response<Vec<u8>> {
    let len = body.len();
    let mut r = Response::new(if head { Vec::new() } else { body });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json(status: StatusCode, report: &Report, head: bool) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(report).unwrap_or_else(|_| br#"{"status":"unhealthy"}"#.to_vec());
    answer(status, "application/json", body, head)
}

/// Answers one request on the operator listener.
pub async fn response(app: &AdminApp, session: &mut ServerSession) -> Response<Vec<u8>> {
    // Drain a request body, if any, so the connection can carry the next request.
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_secs(5), session.read_request_body())
            .await
            .unwrap_or(Ok(None))
    {}
    let head = session.req_header().method == http::Method::HEAD;
    if !matches!(
        session.req_header().method,
        http::Method::GET | http::Method::HEAD
    ) {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"method not allowed\n".to_vec(),
            head,
        );
    }
    match session.req_header().uri.path() {
        "/metrics" => {
            app.refresh_gauges();
            answer(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                app.metrics.render().into_bytes(),
                head,
            )
        }
        "/health" => json(StatusCode::OK, &report(app), head),
        "/ready" => {
            let r = report(app);
            let code = if is_ready(&r) {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(code, &r, head)
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found\n".to_vec(),
            head,
        ),
    }
}

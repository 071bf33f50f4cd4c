//! Prometheus metrics: HTTP requests by route template (never the raw URL) and status class,
//! request durations, and database pool usage, served at `GET /metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` if another recorder was installed
/// first (then `/metrics` answers 503 instead of lying with an empty page).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            // Gift sizes in minor units: 5 … 10 000 in the major unit.
            let amounts = [
                500.0,
                1_000.0,
                2_500.0,
                5_000.0,
                10_000.0,
                25_000.0,
                50_000.0,
                100_000.0,
                250_000.0,
                1_000_000.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("platform_donation_amount_minor".into()),
                        &amounts,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("platform_stripe_webhook_group_size".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1_000.0],
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
                .inspect(|_| describe())
        })
        .as_ref()
}

/// HELP text for every family, so `promtool check metrics` and dashboards know what each means.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "platform_http_requests_total",
        "HTTP requests by route template, method and status class."
    );
    describe_histogram!(
        "platform_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template."
    );
    describe_gauge!(
        "platform_db_pool_connections",
        "Database pool connections by state (idle, in use)."
    );
    describe_counter!(
        "platform_donations_started_total",
        "Gifts started, by currency and kind (one-time, recurring)."
    );
    describe_counter!(
        "platform_donation_transitions_total",
        "Donation status changes, by new status and currency."
    );
    describe_histogram!(
        "platform_donation_amount_minor",
        "Sizes of gifts started, in minor currency units."
    );
    describe_counter!(
        "platform_stripe_webhook_events_total",
        "Stripe webhook deliveries by event type and outcome."
    );
    describe_histogram!(
        "platform_stripe_webhook_group_size",
        "payment_intent.succeeded deliveries committed in one transaction."
    );
    tenant_config::process_metrics::describe();
}

fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware: counts and times every request under its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let class = status_class(resp.status().as_u16());
    metrics::counter!("platform_http_requests_total", "route" => route.clone(), "method" => method, "status_class" => class)
        .increment(1);
    metrics::histogram!("platform_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics` on the operator listener ([`crate::operator`]).
pub async fn render(State(state): State<AppState>) -> Response {
    let Some(h) = handle() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    tenant_config::process_metrics::update();
    let pool = state.db.state();
    metrics::gauge!("platform_db_pool_connections", "state" => "idle")
        .set(f64::from(pool.idle_connections));
    metrics::gauge!("platform_db_pool_connections", "state" => "in_use").set(f64::from(
        pool.connections.saturating_sub(pool.idle_connections),
    ));
    h.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.render(),
    )
        .into_response()
}

/// Currency label: the three-letter code, or `other` for anything unexpected (labels are
/// bounded so a bad payload cannot explode the series count).
fn currency_label(c: &str) -> String {
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) {
        c.to_owned()
    } else {
        "other".into()
    }
}

/// A donation (or recurring gift) was started.
pub fn donation_started(currency: &str, recurring: bool) {
    let kind = if recurring { "recurring" } else { "one_time" };
    metrics::counter!("platform_donations_started_total", "kind" => kind, "currency" => currency_label(currency))
        .increment(1);
}

/// A donation moved to `status`.
pub fn donation_status(status: &'static str, currency: &str) {
    metrics::counter!("platform_donation_transitions_total", "status" => status, "currency" => currency_label(currency))
        .increment(1);
}

/// A donation succeeded: counted and its amount recorded.
pub fn donation_succeeded(currency: &str, amount_minor: i64) {
    donation_status("succeeded", currency);
    metrics::histogram!("platform_donation_amount_minor", "currency" => currency_label(currency))
        .record(amount_minor as f64);
}

/// A group of `payment_intent.succeeded` deliveries was committed (or rolled back) together;
/// the size shows how much grouping the load produced.
pub fn webhook_group(size: usize) {
    metrics::histogram!("platform_stripe_webhook_group_size").record(size as f64);
}

/// A webhook event was handled (`outcome`: applied, ignored, stale, duplicate).
pub fn webhook_event(kind: crate::webhooks::EventKind, outcome: &'static str) {
    metrics::counter!("platform_stripe_webhook_events_total", "type" => kind.as_str(), "outcome" => outcome)
        .increment(1);
}

/// A webhook delivery was refused before it became an event (signature, payload).
pub fn webhook_rejected() {
    metrics::counter!("platform_stripe_webhook_events_total", "type" => "unverified", "outcome" => "rejected")
        .increment(1);
}

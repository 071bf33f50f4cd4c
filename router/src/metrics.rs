//! Prometheus metrics and the router's own admin endpoints (`/metrics`, `/health`, `/ready`),
//! served on a separate listener so they are never reachable through the proxy.
//!
//! Per-request series use handles registered once at start: recording is an atomic add, with
//! no label hashing on the request path.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::cache::{Outcome, TenantCache};
use crate::limits::Limiter;
use crate::resolve::RouteKind;
use crate::upstream::Pool;

/// Declares the `route` label enum from one table of variants and label texts: the texts,
/// the pre-registered series and the index into them all come from it.
macro_rules! route_labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every label, in declaration order (the order series are registered in).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Label text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Position in [`Self::ALL`].
            const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

route_labels! {
    /// The `route` label: the proxied routes (also the `x-route` header) and what the router
    /// answers itself.
    RouteLabel {
        /// The admin console and API.
        Admin = "admin",
        /// The marketing site.
        Apex = "apex",
        /// A tenant's site.
        Tenant = "tenant",
        /// Stripe webhooks.
        Webhook = "webhook",
        /// `308` for an unknown or invalid host, or plain HTTP to HTTPS.
        Redirect = "redirect",
        /// `403` for a suspended tenant.
        Suspended = "suspended",
        /// `503` because the tenant store failed with nothing cached.
        Unavailable = "unavailable",
        /// The router's own answers on the proxy listener (health, ACME challenges).
        Router = "router",
        /// A request refused by the hygiene checks before any routing (`respond::hygiene`).
        Refused = "refused",
    }
}

impl RouteLabel {
    /// The label of a proxied route.
    pub const fn from_kind(kind: RouteKind) -> Self {
        match kind {
            RouteKind::Admin => RouteLabel::Admin,
            RouteKind::Apex => RouteLabel::Apex,
            RouteKind::Tenant => RouteLabel::Tenant,
            RouteKind::Webhook => RouteLabel::Webhook,
        }
    }
}

impl From<RouteKind> for RouteLabel {
    fn from(kind: RouteKind) -> Self {
        Self::from_kind(kind)
    }
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Registered metric handles.
pub struct Metrics {
    handle: PrometheusHandle,
    requests: Vec<[Counter; 6]>,
    duration: Vec<Histogram>,
    upstream_duration: Vec<Histogram>,
    cache: [Counter; 3],
    inflight: Gauge,
    upstream_failures: Counter,
}

impl Metrics {
    /// Installs the global Prometheus recorder and registers every per-request series.
    pub fn install() -> Result<Arc<Self>, String> {
        let buckets = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .and_then(|b| b.install_recorder())
            .map_err(|e| format!("metrics: {e}"))?;
        describe();
        let labels = || RouteLabel::ALL.iter().map(|r| r.as_str());
        let requests = labels()
            .map(|route| {
                STATUS_CLASSES.map(|class| {
                    metrics::counter!("router_requests_total", "route" => route, "status_class" => class)
                })
            })
            .collect();
        let duration = labels()
            .map(|route| metrics::histogram!("router_request_duration_seconds", "route" => route))
            .collect();
        let upstream_duration = labels()
            .map(|route| {
                metrics::histogram!("router_upstream_header_duration_seconds", "route" => route)
            })
            .collect();
        let cache = Outcome::ALL.map(
            |o| metrics::counter!("router_tenant_cache_lookups_total", "result" => o.as_str()),
        );
        Ok(Arc::new(Self {
            handle,
            requests,
            duration,
            upstream_duration,
            cache,
            inflight: metrics::gauge!("router_requests_in_flight"),
            upstream_failures: metrics::counter!("router_upstream_failures_total"),
        }))
        .inspect(|_| {
            // Every reason is listed from the start, at zero.
            for reason in crate::respond::hygiene::REASONS {
                metrics::counter!("router_refused_total", "reason" => *reason).absolute(0);
            }
        })
    }

    /// Counts a finished request.
    pub fn request(&self, route: RouteLabel, status: u16, seconds: f64, upstream: Option<f64>) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        let i = route.index();
        self.requests[i][class].increment(1);
        self.duration[i].record(seconds);
        if let Some(u) = upstream {
            self.upstream_duration[i].record(u);
        }
    }

    /// Counts a tenant lookup.
    pub fn cache(&self, outcome: Outcome) {
        self.cache[outcome as usize].increment(1);
    }

    /// Counts a refused request or connection by reason (`router_refused_total`). Refusals
    /// are rare, so the series is looked up by name rather than kept as a handle.
    pub fn refused(&self, reason: &'static str) {
        metrics::counter!("router_refused_total", "reason" => reason).increment(1);
    }

    /// Counts a failed upstream attempt.
    pub fn upstream_failure(&self) {
        self.upstream_failures.increment(1);
    }

    /// Requests in flight went up (+1) or down (-1).
    pub fn inflight(&self, delta: f64) {
        self.inflight.increment(delta);
    }

    /// The Prometheus text of every series (the operator listener's `/metrics`).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buffers; call every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// HELP text for every family the request path, TLS, rate limits and pools export (ACME and
/// DNS discovery describe their own), so `promtool check metrics` and dashboards know what
/// each means; plus the standard process families.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    tenant_config::process_metrics::describe();
    describe_counter!(
        "router_requests_total",
        "Requests answered, by route (tenant, admin, apex, webhook, redirect, refused, ...) and status class."
    );
    describe_histogram!(
        "router_request_duration_seconds",
        Unit::Seconds,
        "Time from the request head to the last byte of the answer, by route."
    );
    describe_histogram!(
        "router_upstream_header_duration_seconds",
        Unit::Seconds,
        "Time the upstream took to send its response head, by route."
    );
    describe_counter!(
        "router_tenant_cache_lookups_total",
        "Tenant lookups by result (hit, miss: asked the store, stale: store failed and an expired entry served)."
    );
    describe_gauge!(
        "router_tenant_cache_entries",
        "Hosts currently in the tenant cache."
    );
    describe_gauge!(
        "router_requests_in_flight",
        "Requests being answered right now."
    );
    describe_counter!(
        "router_upstream_failures_total",
        "Requests whose upstream could not be reached or failed before answering."
    );
    describe_gauge!(
        "router_upstream_healthy",
        "1 when the instance passes its health checks and takes traffic, by pool and upstream."
    );
    describe_gauge!(
        "router_upstream_in_flight",
        "Requests in flight to each instance, by pool and upstream."
    );
    describe_counter!(
        "router_upstream_reuse_races_total",
        "Pooled upstream connections found closed when taken for reuse (retried on a new one)."
    );
    describe_counter!(
        "router_refused_total",
        "Requests or connections refused before any routing, by reason (request hygiene, limits)."
    );
    describe_counter!(
        "router_rate_limit_decisions_total",
        "Rate-limit decisions by zone, store (redis, local) and outcome (allowed, delayed, limited)."
    );
    describe_counter!(
        "router_rate_limit_redis_failures_total",
        "Shared rate-limit checks that failed or ran out of time in Redis (decided locally)."
    );
    describe_gauge!(
        "router_rate_limit_local_keys",
        "Keys held by the local rate-limit store."
    );
    describe_gauge!(
        "router_rate_limit_breaker_open",
        "1 while Redis is skipped and rate limits are decided locally."
    );
    describe_counter!(
        "router_tls_handshakes_total",
        "TLS handshakes by protocol version and kind (full, resumed, failed, timeout)."
    );
    describe_counter!(
        "router_tls_certificate_lookups_total",
        "Certificate choices during handshakes, by outcome (matched, fallback, no_sni, hook_full)."
    );
    describe_counter!(
        "router_tls_tickets_total",
        "Session tickets issued, resumed, rejected or under an unknown key."
    );
    describe_gauge!(
        "router_tls_certificates",
        "Certificates loaded from the store and files."
    );
    describe_gauge!(
        "router_tls_earliest_expiry_seconds",
        Unit::Seconds,
        "Unix time at which the first loaded certificate expires."
    );
    describe_counter!(
        "router_tls_ticket_key_rotations_total",
        "Session-ticket key rotations seen."
    );
    describe_gauge!(
        "router_tls_ticket_keys",
        "Session-ticket keys currently accepted."
    );
    describe_gauge!(
        "router_tls_load_seconds",
        Unit::Seconds,
        "Time the last full certificate load took."
    );
}

/// The operator listener's application: `/metrics`, `/health` and `/ready`, answered by
/// [`crate::operator`].
pub struct AdminApp {
    /// Registered metrics.
    pub metrics: Arc<Metrics>,
    /// Pools, for health gauges and readiness.
    pub pools: Vec<Arc<Pool>>,
    /// Tenant cache, for its size.
    pub cache: TenantCache,
    /// Rate limits, for `/ready`'s detail and the local fallback's size.
    pub limiter: Option<Arc<Limiter>>,
}

impl AdminApp {
    /// Sets the gauges that are read from state rather than counted (pool members, cache size,
    /// rate-limit store), just before `/metrics` renders.
    pub(crate) fn refresh_gauges(&self) {
        tenant_config::process_metrics::update();
        for pool in &self.pools {
            for m in pool.members().iter() {
                let upstream = m.addr.to_string();
                metrics::gauge!("router_upstream_healthy", "pool" => pool.name(), "upstream" => upstream.clone())
                    .set(if pool.is_healthy(m) { 1.0 } else { 0.0 });
                metrics::gauge!("router_upstream_in_flight", "pool" => pool.name(), "upstream" => upstream)
                    .set(m.inflight() as f64);
            }
        }
        metrics::gauge!("router_tenant_cache_entries").set(self.cache.len() as f64);
        if let Some(l) = &self.limiter {
            metrics::gauge!("router_rate_limit_local_keys").set(l.local_keys() as f64);
            metrics::gauge!("router_rate_limit_breaker_open").set(if l.store_state() == "local" {
                1.0
            } else {
                0.0
            });
        }
    }

    /// Ready when the platform pool has a usable instance.
    pub fn ready(&self) -> bool {
        self.pools
            .iter()
            .find(|p| p.name() == "platform")
            .is_some_and(|p| p.usable_count() > 0)
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        crate::operator::response(self, session).await
    }
}

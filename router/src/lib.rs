//! The edge router: a Pingora reverse proxy that resolves the tenant from the `Host` header,
//! forwards to health-checked platform and workers instances, and signs the tenant context.
//!
//! Module map:
//! - [`cli`]: command line (`serve [--upgrade]`, `check-config`), called by `main.rs`.
//! - [`server`]: assembles the Pingora server (proxy, admin listener, health checks).
//! - [`connection`]: the client connection around Pingora's loop (header deadline, per-address
//!   cap, pipelining, half-close).
//! - [`proxy`]: the `ProxyHttp` implementation, one hook per concern, an orchestrator.
//! - [`ctx`]: the per-request context, its identity fields set once per request.
//! - [`respond`]: the ordered responders that answer without proxying, and their [`respond::Reply`].
//! - [`forward`]: the upstream request's headers and signed tenant context.
//! - [`acme`]: certificates for verified custom domains (HTTP-01, renewal, cluster leases).
//! - [`log_bridge`]: Pingora's `log` records into `tracing`, one benign race relevelled.
//! - [`limits`]: nginx `limit_req` zones in Redis with a local fallback.
//! - [`resolve`]: host classification plus cached tenant lookup → a routing decision.
//! - [`store`]: the tenant store the configuration names (PostgreSQL or the static file).
//! - [`cache`]: the tenant cache (negative entries, stale-if-error, invalidation).
//! - [`notify`]: `LISTEN tenant_changed` → cache invalidation, with reconnect.
//! - [`upstream`]: pools with active and passive health and least-connections selection;
//!   members from literal addresses and DNS names re-resolved within TTL bounds.
//! - [`preflight`]: `check-config` runs the start-up constructors.
//! - [`headers`]: request header hygiene and response headers.
//! - [`compression`]: gzip/brotli, set up only for requests that accept an encoding.
//! - [`pages`]: redirects and branded error pages.
//! - [`metrics`]: Prometheus series.
//! - [`operator`]: the private operator listener (`/metrics`, `/health`, `/ready`), framed.
//! - [`access_log`]: one JSON line per request, written in batches.
//! - [`json_line`]: the JSON-line writer (`itoa`, table-driven escaping).
//! - [`text`]: client addresses as text on the stack.
//! - [`tls`]: the TLS listener: per-SNI certificates from the shared store, shared session tickets.

pub mod access_log;
pub mod acme;
pub mod cache;
pub mod cli;
pub mod compression;
pub mod connection;
pub mod ctx;
pub mod forward;
pub mod headers;
pub mod json_line;
pub mod limits;
pub mod log_bridge;
pub mod metrics;
pub mod notify;
pub mod operator;
pub mod pages;
pub mod preflight;
pub mod proxy;
pub mod resolve;
pub mod respond;
pub mod server;
pub mod store;
pub mod text;
pub mod tls;
pub mod upstream;

//! The edge router: a Pingora reverse proxy that resolves the tenant from the `Host` header,
//! forwards to health-checked platform and workers instances, and signs the tenant context.
//!
//! Module map:
//! - [`cli`]: command line (`serve [--upgrade]`, `check-config`), called by `main.rs`.
//! - [`server`]: assembles the Pingora server (proxy, admin listener, health checks).
//! - [`proxy`]: the `ProxyHttp` implementation, one hook per concern.
//! - [`resolve`]: host classification plus cached tenant lookup → a routing decision.
//! - [`cache`]: the tenant cache (negative entries, stale-if-error, invalidation).
//! - [`notify`]: `LISTEN tenant_changed` → cache invalidation, with reconnect.
//! - [`upstream`]: pools with active and passive health and least-connections selection.
//! - [`headers`]: request header hygiene and response headers.
//! - [`compression`]: gzip/brotli, set up only for requests that accept an encoding.
//! - [`pages`]: redirects and branded error pages.
//! - [`metrics`]: Prometheus series and the `/metrics`, `/health`, `/ready` admin endpoints.
//! - [`access_log`]: one JSON line per request, written in batches.
//! - [`text`]: hand-rolled formatting of the numbers and addresses written per request.

pub mod access_log;
pub mod cache;
pub mod cli;
pub mod compression;
pub mod headers;
pub mod metrics;
pub mod notify;
pub mod pages;
pub mod proxy;
pub mod resolve;
pub mod server;
pub mod text;
pub mod upstream;

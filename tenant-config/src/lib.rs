//! Shared by every binary: the tenant model, host classification, configuration, database
//! access and migrations.
//!
//! Module map:
//! - [`host`]: normalise and classify a `Host` header (pure, fuzzed).
//! - [`slug`], [`domain`]: the rules for tenant slugs and custom domains.
//! - [`edge`]: signing and verifying the tenant context the router sends upstream.
//! - [`model`]: tenants, domains and their lifecycles, plans and rate-limit policies.
//! - [`config`]: TOML + environment configuration for each binary, validated up front.
//! - [`store`]: the [`store::TenantStore`] trait, with PostgreSQL and static-file implementations.
//! - [`runtime`]: logging set-up and the shutdown signal shared by the binaries.
//! - [`certs`]: sealed private keys, the certificate store and shared TLS ticket keys.
//! - [`db`]: connection pool, per-transaction role and tenant scoping, the migration runner.
//! - [`health`]: the health shape every operator listener serves, and the `healthcheck` probe.

pub mod certs;
pub mod config;
pub mod db;
pub mod domain;
pub mod edge;
pub mod health;
pub mod host;
pub mod html;
pub mod mail;
pub mod model;
pub mod money;
pub mod process_metrics;
pub mod runtime;
pub mod slug;
pub mod store;

pub use host::{normalize_host, HostClass, HostError, HostRules, NameClass};
pub use model::{DonationStatus, RecurringStatus, ResolvedTenant, TenantId, TenantStatus};

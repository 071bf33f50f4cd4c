//! Background work: the Postgres job queue, cron jobs and their three triggers.
//!
//! Module map:
//! - [`cli`]: command line (`run`, `trigger <job>`, `check-config`, `healthcheck`), called by `main.rs`.
//! - [`queue`]: enqueue, fair-share fetch, complete, retry/discard, leases and rescue.
//! - [`consumer`]: consumer loops, LISTEN wake-up, heartbeat, graceful hand-back.
//! - [`cron`]: schedules, the single runner every trigger goes through, the leader-elected
//!   scheduler and its missed-run policy.
//! - [`mail`]: the SMTP transport, built the same way by `run` and `check-config`.
//! - [`jobs`]: the cron jobs' bodies (emails, donation reconciliation, cleanup, reports).
//! - [`http`]: the public listener: `/api/cron/<job>` and the status-only `/api/health`.
//! - [`operator`]: the private operator listener: `/metrics`, `/ready`, `/health`.
//! - [`context`], [`metrics`].

pub mod cli;
pub mod consumer;
pub mod context;
pub mod cron;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod operator;
pub mod queue;

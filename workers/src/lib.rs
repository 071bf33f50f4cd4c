//! Background work: the Postgres job queue, cron jobs and their HTTP triggers.
//!
//! Module map:
//! - [`cli`]: command line (`run`, `check-config`), called by `main.rs`.
//! - [`http`]: the workers' own HTTP surface (`/health` now; `/api/cron/<job>` with the jobs).

pub mod cli;
pub mod http;

//! The cron jobs' bodies. Each returns its counts (stored in `cron_runs.counts`) or an error
//! message; each is idempotent, so a rerun after a crash or an overlap does no harm.

pub mod cleanup;
pub mod donations;
pub mod emails;
pub mod reports;

//! Pingora logs through the `log` crate; this bridge hands its records to `tracing` (as
//! `tracing-subscriber`'s own bridge would) with one change: the connector's
//! `failed to acquire reusable stream` ERROR is logged at DEBUG and counted instead
//! (`router_upstream_reuse_races_total`).
//!
//! Why it is not an error: Pingora 0.9.1 keeps an idle upstream connection behind an
//! `Arc<Mutex<_>>` whose guard is held by an idle-watch task spawned on a *random* proxy
//! thread (`pingora_runtime::current_handle()` under the no-steal runtime). When a request
//! takes the connection, the watch task drops its guard; dropping an `OwnedMutexGuard` first
//! releases the lock and only then drops its `Arc`. The taker, woken by the release on its own
//! thread, can call `Arc::try_unwrap` in between, find two owners, and log the error
//! (`pingora-core-0.9.1/src/connectors/mod.rs`, `reused_stream`, the `Err(_)` arm of
//! `Arc::try_unwrap(s)`). The request is not harmed: the connector opens a new upstream
//! connection instead, and the pooled one is closed. It is a race in Pingora, not a fault of
//! the platform or the network, so it must not page anyone; the counter shows how often a
//! pooled connection was lost to it.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_log::{AsLog, LogTracer};

/// The connector's module (the record's target) and its message.
const RACE_TARGET: &str = "pingora_core::connectors";
const RACE_MESSAGE: &str = "failed to acquire reusable stream";

static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Bridge {
    inner: LogTracer,
}

/// The benign reuse race, recognised by target, level and exact message.
fn is_reuse_race(r: &log::Record<'_>) -> bool {
    r.level() == log::Level::Error
        && r.target() == RACE_TARGET
        && r.args().as_str() == Some(RACE_MESSAGE)
}

impl log::Log for Bridge {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, r: &log::Record<'_>) {
        if !is_reuse_race(r) {
            self.inner.log(r);
            return;
        }
        metrics::counter!("router_upstream_reuse_races_total").increment(1);
        let demoted = log::Record::builder()
            .args(*r.args())
            .level(log::Level::Debug)
            .target(r.target())
            .module_path(r.module_path())
            .file(r.file())
            .line(r.line())
            .build();
        self.inner.log(&demoted);
    }

    fn flush(&self) {}
}

/// Installs the bridge as the `log` logger. Call before the `tracing` subscriber is set up
/// (whose own `log` bridge then finds the slot taken and stands aside), then
/// [`follow_tracing_level`] after it.
pub fn install() {
    if log::set_boxed_logger(Box::new(Bridge {
        inner: LogTracer::new(),
    }))
    .is_ok()
    {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Lets `log` records through only up to the level the `tracing` subscriber wants, so
/// Pingora's many `debug!` calls cost nothing at `info`.
pub fn follow_tracing_level() {
    if INSTALLED.load(Ordering::Relaxed) {
        log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reuse_race_is_recognised() {
        let record = |level, target, args: std::fmt::Arguments<'_>| {
            let r = log::Record::builder()
                .level(level)
                .target(target)
                .args(args)
                .build();
            is_reuse_race(&r)
        };
        assert!(record(
            log::Level::Error,
            RACE_TARGET,
            format_args!("failed to acquire reusable stream")
        ));
        assert!(!record(
            log::Level::Error,
            "pingora_proxy",
            format_args!("failed to acquire reusable stream")
        ));
        assert!(!record(
            log::Level::Error,
            RACE_TARGET,
            format_args!("another failure")
        ));
        assert!(!record(
            log::Level::Warn,
            RACE_TARGET,
            format_args!("failed to acquire reusable stream")
        ));
    }
}

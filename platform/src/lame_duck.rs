//! Lame duck: the platform's first step after SIGTERM.
//!
//! A router (or any load balancer) learns that an instance is going away only from its health
//! checks. If the instance closed its listener the moment SIGTERM arrived, requests chosen for
//! it in the gap before the next check would fail to connect; the router retries those only for
//! idempotent methods, so a gift (`POST`) would see a 502. Instead the instance first reports
//! itself unavailable — the public `/api/health` (what the router probes) and the operator
//! `/ready` (what orchestrators probe) answer 503 — while it keeps serving every other request,
//! for `drain_delay_secs` (`PLATFORM_DRAIN_DELAY_SECS`). Only then does it stop accepting and
//! drain the requests in flight, as before. A second signal ends the delay early.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether this process is on its way out. Cheap to clone; shared by every request.
#[derive(Clone, Debug, Default)]
pub struct LameDuck(Arc<AtomicBool>);

impl LameDuck {
    /// From now on health and readiness answer 503.
    pub fn enter(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`LameDuck::enter`] was called.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waits for SIGTERM (or Ctrl-C), enters lame duck, waits `delay` (cut short by a second
/// signal) and returns: the caller then stops its listeners and drains.
pub async fn shutdown_after_lame_duck(flag: &LameDuck, delay: Duration) {
    tenant_config::runtime::shutdown_signal().await;
    if delay.is_zero() {
        return;
    }
    flag.enter();
    tracing::info!(
        delay_secs = delay.as_secs(),
        "lame duck: health checks answer 503, still serving; stopping after the delay"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {},
        () = tenant_config::runtime::shutdown_signal() => {
            tracing::info!("second shutdown signal: ending the lame-duck period early");
        },
    }
}

//! Upstream pools: active HTTP health checks (pingora-load-balancing), passive failure marking
//! with nginx's `max_fails`/`fail_timeout` meaning, and least-connections selection.
//!
//! Pingora ships round-robin, random and hashing selectors but no least-connections, so a pool
//! keeps an in-flight counter per instance and asks the round-robin selector (through
//! `select_with`) for the next instance whose count equals the current minimum: ties rotate, and
//! a slow instance stops receiving new requests while it is busy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::HttpHealthCheck, Backend, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};
use tenant_config::config::Upstreams;

/// Passive-failure state of one instance.
#[derive(Debug)]
struct Passive {
    fails: u32,
    window_start: Instant,
    down_until: Option<Instant>,
}

/// One instance and its counters.
#[derive(Debug)]
pub struct Member {
    backend: Backend,
    /// Where it listens.
    pub addr: SocketAddr,
    inflight: AtomicUsize,
    passive: Mutex<Passive>,
}

impl Member {
    /// Requests currently proxied to this instance.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    fn passive_down(&self, now: Instant) -> bool {
        let p = self.passive.lock().unwrap_or_else(|e| e.into_inner());
        p.down_until.is_some_and(|t| now < t)
    }
}

/// Decrements its instance's in-flight count when dropped (end of request, or a retry moving
/// the request elsewhere).
#[derive(Debug)]
pub struct InFlight(Arc<Member>);

impl InFlight {
    /// The instance this request went to.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A health-checked, least-connections pool of instances.
pub struct Pool {
    name: &'static str,
    lb: Arc<LoadBalancer<RoundRobin>>,
    members: Vec<Arc<Member>>,
    max_fails: u32,
    fail_timeout: Duration,
}

impl Pool {
    /// Builds a pool and the background service that runs its health checks; add the service
    /// to the server.
    pub fn new(
        name: &'static str,
        addrs: &[String],
        config: &Upstreams,
    ) -> Result<(Arc<Self>, GenBackgroundService<LoadBalancer<RoundRobin>>), String> {
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs.iter().map(String::as_str))
            .map_err(|e| format!("upstreams.{name}: {e}"))?;
        let mut hc = HttpHealthCheck::new("localhost", false);
        hc.req = RequestHeader::build("GET", config.health_path.as_bytes(), None)
            .map_err(|e| format!("upstreams.health_path: {e}"))?;
        hc.req
            .insert_header("host", "localhost")
            .map_err(|e| format!("upstreams.health_path: {e}"))?;
        hc.peer_template.options.connection_timeout =
            Some(Duration::from_millis(config.connect_timeout_ms));
        hc.peer_template.options.read_timeout = Some(Duration::from_secs(2));
        lb.set_health_check(Box::new(hc));
        lb.health_check_frequency = Some(Duration::from_millis(config.health_interval_ms));
        lb.parallel_health_check = true;

        let now = Instant::now();
        let members = lb
            .backends()
            .get_backend()
            .iter()
            .filter_map(|b| {
                let addr = *b.addr.as_inet()?;
                Some(Arc::new(Member {
                    backend: b.clone(),
                    addr,
                    inflight: AtomicUsize::new(0),
                    passive: Mutex::new(Passive {
                        fails: 0,
                        window_start: now,
                        down_until: None,
                    }),
                }))
            })
            .collect();
        let service = background_service(&format!("{name} health check"), lb);
        let pool = Arc::new(Self {
            name,
            lb: service.task(),
            members,
            max_fails: config.max_fails,
            fail_timeout: Duration::from_secs(config.fail_timeout_secs),
        });
        Ok((pool, service))
    }

    /// Pool name (`platform`, `workers`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every instance.
    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    /// Whether the active health check currently passes for `m`.
    pub fn is_healthy(&self, m: &Member) -> bool {
        self.lb.backends().ready(&m.backend)
    }

    /// Whether `m` may take a request now: healthy and not marked down by passive failures.
    pub fn is_usable(&self, m: &Member, now: Instant) -> bool {
        self.is_healthy(m) && !m.passive_down(now)
    }

    /// Number of instances that may take a request.
    pub fn usable_count(&self) -> usize {
        let now = Instant::now();
        self.members
            .iter()
            .filter(|m| self.is_usable(m, now))
            .count()
    }

    fn member(&self, b: &Backend) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.backend == *b)
    }

    /// Picks the usable instance with the fewest requests in flight, skipping `exclude`
    /// (instances this request already failed on), and counts the request against it.
    pub fn select(&self, exclude: &[SocketAddr]) -> Option<InFlight> {
        let now = Instant::now();
        let available = |m: &Member| !exclude.contains(&m.addr) && !m.passive_down(now);
        let min = self
            .members
            .iter()
            .filter(|m| available(m) && self.is_healthy(m))
            .map(|m| m.inflight())
            .min()?;
        let picked = self
            .lb
            // `healthy` is the active check's verdict, already looked up by the selector.
            .select_with(b"", self.members.len() * 2 + 1, |b, healthy| {
                healthy
                    && self
                        .member(b)
                        .is_some_and(|m| m.inflight() <= min && available(m))
            })
            .and_then(|b| self.member(&b).cloned())
            // The counts moved between the two passes: take any usable instance.
            .or_else(|| {
                self.members
                    .iter()
                    .find(|m| available(m) && self.is_healthy(m))
                    .cloned()
            })?;
        picked.inflight.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(picked))
    }

    /// Records a failed attempt (connect error, reset, timeout) on `addr`. After `max_fails`
    /// failures within `fail_timeout`, the instance is skipped for `fail_timeout`.
    pub fn record_failure(&self, addr: SocketAddr) {
        let Some(m) = self.members.iter().find(|m| m.addr == addr) else {
            return;
        };
        let now = Instant::now();
        let mut p = m.passive.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(p.window_start) > self.fail_timeout {
            p.fails = 0;
            p.window_start = now;
        }
        p.fails += 1;
        if p.fails >= self.max_fails {
            p.down_until = Some(now + self.fail_timeout);
            p.fails = 0;
            p.window_start = now;
            tracing::warn!(pool = self.name, upstream = %addr, "upstream marked down after repeated failures");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Upstreams {
        Upstreams {
            max_fails: 2,
            fail_timeout_secs: 30,
            ..Upstreams::default()
        }
    }

    fn pool(n: usize) -> Arc<Pool> {
        let addrs: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 1000 + i)).collect();
        Pool::new("platform", &addrs, &config()).unwrap().0
    }

    #[test]
    fn least_connections_spreads_and_prefers_idle() {
        let p = pool(3);
        let a = p.select(&[]).unwrap();
        let b = p.select(&[]).unwrap();
        let c = p.select(&[]).unwrap();
        let mut seen = vec![a.addr(), b.addr(), c.addr()];
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "one request each before any doubles up");
        let freed = b.addr();
        drop(b);
        let d = p.select(&[]).unwrap();
        assert_eq!(d.addr(), freed, "the idle instance gets the next request");
        drop((a, c, d));
        assert!(p.members().iter().all(|m| m.inflight() == 0));
    }

    #[test]
    fn excluded_and_passively_failed_instances_are_skipped() {
        let p = pool(2);
        let first = p.select(&[]).unwrap().addr();
        let other = p.select(&[first]).unwrap().addr();
        assert_ne!(first, other);
        assert!(p.select(&[first, other]).is_none());

        p.record_failure(first);
        assert_eq!(p.usable_count(), 2, "one failure is not enough");
        p.record_failure(first);
        assert_eq!(p.usable_count(), 1);
        for _ in 0..5 {
            assert_eq!(p.select(&[]).unwrap().addr(), other);
        }
    }
}

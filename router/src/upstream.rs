//! Upstream pools: active HTTP health checks (pingora-load-balancing), passive failure marking
//! with nginx's `max_fails`/`fail_timeout` meaning, and least-connections selection.
//!
//! Pingora ships round-robin, random and hashing selectors but no least-connections, so a pool
//! keeps an in-flight counter per instance and asks the round-robin selector (through
//! `select_with`) for the next instance whose count equals the current minimum: ties rotate, and
//! a slow instance stops receiving new requests while it is busy.
//!
//! The request path reads only atomics: the active check's verdict is mirrored into each
//! member by the health check's change callback (Pingora's own readiness lookup hashes the
//! backend with SipHash on every call), a passive mark-down is a deadline in an atomic, and
//! when a single instance holds the minimum it is taken without asking the selector.
//!
//! Membership comes from [`discovery`]: literal addresses, plus DNS names resolved to all their
//! addresses and re-resolved within TTL bounds by the load balancer's background service. The
//! member list is swapped whole ([`MemberSet`]); an address present before and after keeps its
//! member (counters, health), and a request holds its member ([`InFlight`]) to the end, so
//! removing an instance never cuts a request it is serving.

mod discovery;

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::HealthObserve;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::HttpHealthCheck, Backend, Backends, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};
use tenant_config::config::{UpstreamAddr, Upstreams};

use discovery::Discovery;

/// Failures counted towards `max_fails` (touched only when an attempt fails).
#[derive(Debug)]
struct Passive {
    fails: u32,
    window_start: Instant,
}

/// One instance and its counters.
#[derive(Debug)]
pub struct Member {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `addr` as text, for the access log (formatted once, not per request).
    addr_text: Box<str>,
    inflight: AtomicUsize,
    /// The active health check's current verdict (Pingora starts every backend healthy).
    healthy: AtomicBool,
    /// Marked down by passive failures until this many milliseconds after the pool's epoch;
    /// 0 when not marked down.
    down_until_ms: AtomicU64,
    passive: Mutex<Passive>,
}

impl Member {
    fn new(addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            addr_text: addr.to_string().into(),
            inflight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            down_until_ms: AtomicU64::new(0),
            passive: Mutex::new(Passive {
                fails: 0,
                window_start: now,
            }),
        }
    }

    /// Requests currently proxied to this instance.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    fn is(&self, b: &Backend) -> bool {
        b.addr.as_inet() == Some(&self.addr)
    }
}

/// The pool's current instances, replaced whole when discovery publishes a new set.
#[derive(Debug, Default)]
pub(crate) struct MemberSet(ArcSwap<Vec<Arc<Member>>>);

impl MemberSet {
    /// Publishes `addrs` as the members: kept addresses keep their member (in-flight count,
    /// health, passive marks), new ones start healthy as Pingora's check does.
    fn publish(&self, pool: &'static str, addrs: &[SocketAddr]) {
        let old = self.0.load_full();
        if old.len() == addrs.len() && old.iter().zip(addrs).all(|(m, a)| m.addr == *a) {
            return;
        }
        let now = Instant::now();
        let new: Vec<Arc<Member>> = addrs
            .iter()
            .map(|a| {
                old.iter()
                    .find(|m| m.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Member::new(*a, now)))
            })
            .collect();
        let removed: Vec<SocketAddr> = old
            .iter()
            .filter(|m| !addrs.contains(&m.addr))
            .map(|m| m.addr)
            .collect();
        if !old.is_empty() || !removed.is_empty() {
            tracing::info!(pool, members = ?addrs, removed = ?removed, "upstream pool membership changed");
        }
        self.0.store(Arc::new(new));
    }
}

/// Mirrors the active check's flips into the members, so selection reads a flag.
struct MirrorHealth(Arc<MemberSet>);

#[async_trait]
impl HealthObserve for MirrorHealth {
    async fn observe(&self, target: &Backend, healthy: bool) {
        for m in self.0 .0.load().iter().filter(|m| m.is(target)) {
            m.healthy.store(healthy, Ordering::Relaxed);
        }
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

    /// The same address as text (`ip:port`).
    pub fn addr_text(&self) -> &str {
        &self.0.addr_text
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which pool a request goes to (chosen in `upstream_peer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolChoice {
    /// The platform instances.
    Platform,
    /// The workers instances (`/api/cron/*` on the apex and admin hosts).
    Workers,
}

/// A health-checked, least-connections pool of instances.
pub struct Pool {
    name: &'static str,
    lb: Arc<LoadBalancer<RoundRobin>>,
    members: Arc<MemberSet>,
    max_fails: u32,
    fail_timeout: Duration,
    /// Origin of the members' `down_until_ms`.
    epoch: Instant,
}

impl Pool {
    /// Builds a pool and the background service that runs its discovery and health checks;
    /// add the service to the server. Literal addresses are members at once; names join when
    /// the service first resolves them (right after start).
    pub fn new(
        name: &'static str,
        addrs: &[UpstreamAddr],
        config: &Upstreams,
    ) -> Result<(Arc<Self>, GenBackgroundService<LoadBalancer<RoundRobin>>), String> {
        let now = Instant::now();
        let members = Arc::new(MemberSet::default());
        let discovery = Discovery::new(name, addrs, config, members.clone())?;
        let has_names = discovery.has_names();
        members.publish(name, &discovery.current());
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(Box::new(discovery)));
        if has_names {
            // Discovery is asked this often; each name is looked up again only once its
            // TTL (clamped) has run out.
            lb.update_frequency = Some(Duration::from_secs(config.dns_min_ttl_secs));
        } else {
            // Literals only: nothing to wait for, so the selector is ready before serving.
            use futures_util::FutureExt;
            lb.update()
                .now_or_never()
                .ok_or_else(|| format!("upstreams.{name}: literal discovery blocked"))?
                .map_err(|e| format!("upstreams.{name}: {e}"))?;
        }
        let mut hc = HttpHealthCheck::new("localhost", false);
        hc.health_changed_callback = Some(Box::new(MirrorHealth(members.clone())));
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

        let service = background_service(&format!("{name} discovery and health check"), lb);
        let pool = Arc::new(Self {
            name,
            lb: service.task(),
            members,
            max_fails: config.max_fails,
            fail_timeout: Duration::from_secs(config.fail_timeout_secs),
            epoch: now,
        });
        Ok((pool, service))
    }

    /// Pool name (`platform`, `workers`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every current instance (a snapshot: discovery may publish a new set at any time).
    pub fn members(&self) -> Arc<Vec<Arc<Member>>> {
        self.members.0.load_full()
    }

    /// Whether the active health check currently passes for `m`.
    pub fn is_healthy(&self, m: &Member) -> bool {
        m.healthy.load(Ordering::Relaxed)
    }

    /// Milliseconds since the pool's epoch (at least 1, so 0 can mean "not marked down").
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).map_or(u64::MAX, |ms| ms.max(1))
    }

    /// Whether passive failures currently keep `m` out. The clock is read (once, into `now`)
    /// only when some mark exists, so the usual path takes no clock reading.
    fn passive_down(&self, m: &Member, now: &Cell<Option<u64>>) -> bool {
        let until = m.down_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        let now_ms = now.get().unwrap_or_else(|| {
            let ms = self.now_ms();
            now.set(Some(ms));
            ms
        });
        if now_ms < until {
            return true;
        }
        // Expired: clear the mark (unless a new one was set meanwhile) so later requests
        // skip the clock again.
        let _ = m
            .down_until_ms
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        false
    }

    /// Whether `m` may take a request now: healthy and not marked down by passive failures.
    pub fn is_usable(&self, m: &Member) -> bool {
        self.is_healthy(m) && !self.passive_down(m, &Cell::new(None))
    }

    /// Number of instances that may take a request.
    pub fn usable_count(&self) -> usize {
        self.members
            .0
            .load()
            .iter()
            .filter(|m| self.is_usable(m))
            .count()
    }

    /// Picks the usable instance with the fewest requests in flight, skipping `exclude`
    /// (instances this request already failed on), and counts the request against it.
    pub fn select(&self, exclude: &[SocketAddr]) -> Option<InFlight> {
        let now = Cell::new(None);
        let members = self.members.0.load();
        let member = |b: &Backend| members.iter().find(|m| m.is(b));
        let available = |m: &Member| !exclude.contains(&m.addr) && !self.passive_down(m, &now);
        // One pass: the minimum count among usable instances, and how many share it.
        let mut min = usize::MAX;
        let mut tied = 0;
        let mut first = None;
        for m in members.iter() {
            if !(self.is_healthy(m) && available(m)) {
                continue;
            }
            let n = m.inflight();
            if n < min {
                (min, tied, first) = (n, 1, Some(m));
            } else if n == min {
                tied += 1;
            }
        }
        let first = first?;
        let picked = if tied == 1 {
            first
        } else {
            // Several instances share the minimum: the round-robin selector rotates them.
            self.lb
                .select_with(b"", members.len() * 2 + 1, |b, healthy| {
                    healthy && member(b).is_some_and(|m| m.inflight() <= min && available(m))
                })
                .and_then(|b| member(&b))
                // The counts moved meanwhile: the first instance found at the minimum.
                .unwrap_or(first)
        };
        picked.inflight.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(picked.clone()))
    }

    /// Records a failed attempt (connect error, reset, timeout) on `addr`. After `max_fails`
    /// failures within `fail_timeout`, the instance is skipped for `fail_timeout`.
    pub fn record_failure(&self, addr: SocketAddr) {
        let members = self.members.0.load();
        // A member already removed by discovery: nothing left to mark.
        let Some(m) = members.iter().find(|m| m.addr == addr) else {
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
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(self.fail_timeout.as_millis()).unwrap_or(u64::MAX));
            m.down_until_ms.store(until, Ordering::Relaxed);
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
        let addrs: Vec<UpstreamAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)).into())
            .collect();
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

    #[test]
    fn a_passive_mark_down_expires_and_is_cleared() {
        let config = Upstreams {
            max_fails: 1,
            fail_timeout_secs: 1,
            ..Upstreams::default()
        };
        let addrs: [UpstreamAddr; 2] = [
            SocketAddr::from(([127, 0, 0, 1], 1000)).into(),
            SocketAddr::from(([127, 0, 0, 1], 1001)).into(),
        ];
        let p = Pool::new("platform", &addrs, &config).unwrap().0;
        let down = p.members()[0].clone();
        p.record_failure(down.addr);
        assert_eq!(p.usable_count(), 1);
        assert_ne!(p.select(&[]).unwrap().addr(), down.addr);
        std::thread::sleep(Duration::from_millis(1_100));
        assert_eq!(p.usable_count(), 2, "back after fail_timeout");
        assert_eq!(
            down.down_until_ms.load(Ordering::Relaxed),
            0,
            "mark cleared"
        );
    }

    #[test]
    fn a_new_member_set_keeps_kept_members_and_in_flight_requests() {
        let p = pool(2);
        let [a, b] = [p.members()[0].addr, p.members()[1].addr];
        let on_a = p.select(&[b]).unwrap();
        let on_b = p.select(&[a]).unwrap();
        let c = SocketAddr::from(([127, 0, 0, 1], 2000));
        // Discovery now answers b and c: a leaves, b stays (same member), c joins.
        p.members.publish("platform", &[b, c]);
        let now: Vec<SocketAddr> = p.members().iter().map(|m| m.addr).collect();
        assert_eq!(now, [b, c]);
        assert_eq!(p.members()[0].inflight(), 1, "b kept its count");
        assert_eq!(on_a.addr(), a, "the request on a still holds its member");
        p.record_failure(a); // a removed member: nothing to mark, no panic
                             // The idle newcomer gets the next request; a is never chosen again.
        assert_eq!(p.select(&[]).unwrap().addr(), c);
        drop((on_a, on_b));
        assert!(p.members().iter().all(|m| m.inflight() == 0));
    }

    #[tokio::test]
    async fn health_flips_are_mirrored_into_selection() {
        let p = pool(2);
        let mirror = MirrorHealth(p.members.clone());
        let sick = p.members()[0].clone();
        let sick_backend = Backend::new(&sick.addr.to_string()).unwrap();
        mirror.observe(&sick_backend, false).await;
        assert!(!p.is_healthy(&sick));
        assert_eq!(p.usable_count(), 1);
        let held: Vec<InFlight> = (0..4).map(|_| p.select(&[]).unwrap()).collect();
        assert!(
            held.iter().all(|h| h.addr() != sick.addr),
            "an unhealthy instance gets nothing"
        );
        assert!(p.select(&[p.members()[1].addr]).is_none());
        mirror.observe(&sick_backend, true).await;
        assert_eq!(
            p.select(&[]).unwrap().addr(),
            sick.addr,
            "back in rotation, and the least loaded"
        );
    }
}

//! Pool membership from configuration: literal `ip:port` entries as they are, DNS names
//! resolved to every address they have (A and AAAA) and resolved again when their answer
//! expires.
//!
//! This is Pingora's `ServiceDiscovery` for the pool's `LoadBalancer`: the load balancer's
//! background service calls [`Discovery::discover`] every `dns_min_ttl_secs`, and a name is
//! only looked up again once its answer's TTL, clamped to `[dns_min_ttl_secs,
//! dns_max_ttl_secs]`, has run out. A TTL of 0 therefore means "every `dns_min_ttl_secs`", and a
//! day-long TTL still gets a fresh look every `dns_max_ttl_secs`.
//!
//! A failed lookup (timeout, SERVFAIL, a name with no addresses) keeps the name's last good
//! addresses, is logged and counted (`router_upstream_dns_lookups_total{outcome="failed"}`) and
//! is retried after `dns_min_ttl_secs`: a DNS hiccup never empties a pool. Each published set is
//! also mirrored into the pool's member list, which is what the request path reads (see
//! `MemberSet`); an instance that leaves keeps serving the requests it already has, because
//! they hold their member.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use tenant_config::config::{UpstreamAddr, Upstreams};

use super::MemberSet;

/// Lookups of one name.
#[derive(Debug)]
struct NameState {
    host: String,
    port: u16,
    /// The last successful answer (empty until the first one).
    addrs: Vec<IpAddr>,
    /// When to ask again.
    due: Instant,
}

/// A pool's service discovery: literals plus resolved names.
pub(super) struct Discovery {
    pool: &'static str,
    literals: Vec<SocketAddr>,
    names: Mutex<Vec<NameState>>,
    /// Built only when the pool has a name: literal-only pools never touch DNS.
    resolver: Option<TokioResolver>,
    min_ttl: Duration,
    max_ttl: Duration,
    members: Arc<MemberSet>,
}

/// Builds the resolver for upstream names: `dns_server` when set, else the system's
/// resolv.conf. Fresh answers matter more than saved queries here (the cadence is ours), so
/// the resolver keeps no cache of its own.
pub(crate) fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match server {
        Some(a) => TokioResolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[a.ip()], a.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("upstreams.dns_server: system DNS configuration: {e}"))?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // A lookup runs on the same loop as the health checks: keep it short.
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    Ok(builder.build())
}

impl Discovery {
    /// Splits `addrs` into literals and names; builds the resolver if there is a name.
    pub(super) fn new(
        pool: &'static str,
        addrs: &[UpstreamAddr],
        config: &Upstreams,
        members: Arc<MemberSet>,
    ) -> Result<Self, String> {
        let now = Instant::now();
        let mut literals = Vec::new();
        let mut names = Vec::new();
        for a in addrs {
            match a {
                UpstreamAddr::Ip(ip) => literals.push(*ip),
                UpstreamAddr::Name { host, port } => names.push(NameState {
                    host: host.clone(),
                    port: *port,
                    addrs: Vec::new(),
                    due: now,
                }),
            }
        }
        let resolver = if names.is_empty() {
            None
        } else {
            Some(resolver(config.dns_server)?)
        };
        metrics::describe_counter!(
            "router_upstream_dns_lookups_total",
            "DNS lookups of upstream names, by pool and outcome (ok, failed: last good set kept)"
        );
        metrics::describe_gauge!(
            "router_upstream_members",
            "Instances currently in the pool (literal addresses plus every resolved address)"
        );
        Ok(Self {
            pool,
            literals,
            names: Mutex::new(names),
            resolver,
            min_ttl: Duration::from_secs(config.dns_min_ttl_secs),
            max_ttl: Duration::from_secs(config.dns_max_ttl_secs),
            members,
        })
    }

    /// Whether some entry is a name (and the set can change while running).
    pub(super) fn has_names(&self) -> bool {
        self.resolver.is_some()
    }

    /// Looks up the names whose answer has expired; keeps the last good answer on failure.
    async fn refresh(&self, resolver: &TokioResolver) {
        let now = Instant::now();
        let due: Vec<(usize, String)> = self
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.due <= now)
            .map(|(i, n)| (i, n.host.clone()))
            .collect();
        for (i, host) in due {
            let answer = resolver.lookup_ip(host.as_str()).await;
            let now = Instant::now();
            let mut names = self.lock();
            let Some(state) = names.get_mut(i) else {
                continue;
            };
            match answer {
                Ok(lookup) => {
                    let mut addrs: Vec<IpAddr> = lookup.iter().collect();
                    addrs.sort_unstable();
                    addrs.dedup();
                    let ttl = lookup
                        .valid_until()
                        .saturating_duration_since(now)
                        .clamp(self.min_ttl, self.max_ttl);
                    state.due = now + ttl;
                    if addrs.is_empty() {
                        self.failed(&host, &"no addresses in the answer", state);
                        continue;
                    }
                    metrics::counter!("router_upstream_dns_lookups_total", "pool" => self.pool, "outcome" => "ok")
                        .increment(1);
                    if addrs != state.addrs {
                        tracing::info!(pool = self.pool, name = %host, addresses = ?addrs, ttl_secs = ttl.as_secs(), "upstream name resolved to a new set");
                        state.addrs = addrs;
                    }
                }
                Err(e) => {
                    state.due = now + self.min_ttl;
                    self.failed(&host, &e, state);
                }
            }
        }
    }

    fn failed(&self, host: &str, error: &dyn std::fmt::Display, state: &NameState) {
        metrics::counter!("router_upstream_dns_lookups_total", "pool" => self.pool, "outcome" => "failed")
            .increment(1);
        tracing::warn!(
            pool = self.pool,
            name = %host,
            error = %error,
            kept = state.addrs.len(),
            "upstream name lookup failed; keeping the last good addresses"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NameState>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every current address: literals first, then each name's addresses at its port.
    pub(super) fn current(&self) -> Vec<SocketAddr> {
        let mut out = self.literals.clone();
        for n in self.lock().iter() {
            out.extend(n.addrs.iter().map(|ip| SocketAddr::new(*ip, n.port)));
        }
        let mut seen = BTreeSet::new();
        out.retain(|a| seen.insert(*a));
        out
    }
}

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        if let Some(r) = &self.resolver {
            self.refresh(r).await;
        }
        let addrs = self.current();
        self.members.publish(self.pool, &addrs);
        metrics::gauge!("router_upstream_members", "pool" => self.pool).set(addrs.len() as f64);
        let backends = addrs
            .into_iter()
            .map(|a| Backend {
                addr: PeerAddr::Inet(a),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

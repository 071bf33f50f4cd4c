//! Rate limits with nginx `limit_req` semantics, shared by every router instance through Redis
//! and never depending on it.
//!
//! - [`gcra`]: nginx's excess arithmetic and the multi-zone rule (pure, model-tested).
//! - [`zones`]: configured zones and the plan's tenant-wide limit: what they cover, their keys.
//! - [`shared`]: one Lua call per request in Redis, a time budget, a circuit breaker.
//! - [`local`]: the in-process fallback on a capped map, limits divided by the instance count.
//! - [`answer`]: `429` with `Retry-After`, `RateLimit-Policy`, `RateLimit`, problem+json/HTML.
//!
//! The proxy calls [`Limiter::check`] from the rate-limit responder and nothing else.

pub mod answer;
pub mod gcra;
pub mod local;
pub mod shared;
pub mod zones;

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use metrics::{Counter, Gauge};
use tenant_config::config::{Cidr, RateLimits, RedisConfig};

use self::answer::ZoneState;
use self::gcra::{Params, Verdict};
use self::local::Local;
use self::shared::Shared;
pub use self::zones::RequestFacts;
use self::zones::{PlanZone, Zone};
use crate::respond::Reply;

/// Where a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Redis, shared by every instance.
    Redis,
    /// This process (Redis unusable, or not configured).
    Local,
}

/// What the access log and metrics record of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// `limited` or `delayed`.
    pub outcome: &'static str,
    /// The deciding zone.
    pub zone: Arc<str>,
}

/// A decision for one request.
#[derive(Debug)]
pub enum Decision {
    /// Forward; `headers` go on the response when a zone advertises.
    Allow {
        /// `RateLimit-Policy` and `RateLimit`, or nothing.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// Hold the request this long first (nginx delay).
        delay: Option<(Duration, Mark)>,
    },
    /// Answer with this reply.
    Limit(Reply, Mark),
}

const OUTCOMES: [&str; 3] = ["allowed", "delayed", "limited"];
const STORES: [&str; 2] = ["redis", "local"];

/// The limiter: zones, stores and metrics.
pub struct Limiter {
    zones: Vec<Zone>,
    plan: Option<PlanZone>,
    exempt_ips: Vec<Cidr>,
    exempt_paths: Vec<String>,
    prefix: String,
    instances: i64,
    shared: Option<Arc<Shared>>,
    local: Local,
    /// `[zone][store][outcome]`, the plan last.
    decisions: Vec<[[Counter; 3]; 2]>,
    redis_failures: Counter,
    breaker_open: Gauge,
}

impl Limiter {
    /// Builds the limiter; `None` when limits are off. With Redis, call inside a Tokio runtime
    /// and run [`Limiter::background`] there.
    pub fn new(config: &RateLimits, redis: Option<&RedisConfig>) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let zones: Vec<Zone> = config.zones.iter().map(Zone::new).collect();
        let plan = config.plan.enabled.then(|| PlanZone::new(&config.plan));
        let names: Vec<&str> = zones
            .iter()
            .map(|z| &*z.name)
            .chain(plan.as_ref().map(|_| "plan"))
            .collect();
        let decisions = names
            .iter()
            .map(|&zone| {
                STORES.map(|store| {
                    OUTCOMES.map(|outcome| {
                        metrics::counter!("router_rate_limit_decisions_total",
                            "zone" => zone.to_owned(), "store" => store, "outcome" => outcome)
                    })
                })
            })
            .collect();
        let shared = match redis {
            Some(r) => Some(Arc::new(Shared::new(
                r,
                Duration::from_millis(config.redis_timeout_ms),
                config.breaker_failures,
            )?)),
            None => None,
        };
        Ok(Some(Self {
            zones,
            plan,
            exempt_ips: config.exempt_ips.clone(),
            exempt_paths: config.exempt_paths.clone(),
            prefix: config.key_prefix.clone(),
            instances: i64::from(config.instances.max(1)),
            shared,
            local: Local::new(config.local_max_keys),
            decisions,
            redis_failures: metrics::counter!("router_rate_limit_redis_failures_total"),
            breaker_open: metrics::gauge!("router_rate_limit_breaker_open"),
        }))
    }

    /// The breaker's probe (with Redis); spawn once on a long-lived runtime.
    pub fn background(
        &self,
        probe_every: Duration,
    ) -> Option<impl std::future::Future<Output = ()>> {
        let s = self.shared.clone()?;
        Some(async move { s.probe_loop(probe_every).await })
    }

    /// Where decisions are made now: `redis`, `local` (breaker open) or `local-only`.
    pub fn store_state(&self) -> &'static str {
        match &self.shared {
            None => "local-only",
            Some(s) if s.is_open() => "local",
            Some(_) => "redis",
        }
    }

    fn exempt(&self, r: &RequestFacts<'_>) -> bool {
        r.client
            .is_some_and(|ip| self.exempt_ips.iter().any(|c| c.contains(ip)))
            || self.exempt_paths.iter().any(|p| {
                if p.ends_with('/') {
                    r.path.starts_with(p.as_str())
                } else {
                    r.path == p
                }
            })
    }

    /// Decides one request; `None` when no zone covers it.
    pub async fn check(
        &self,
        r: &RequestFacts<'_>,
        accept: Option<&str>,
        request_id: &str,
    ) -> Option<Decision> {
        if self.exempt(r) {
            return None;
        }
        // (index into `decisions`, key, params)
        let mut hit: Vec<(usize, String, Params)> = Vec::with_capacity(2);
        for (i, z) in self.zones.iter().enumerate() {
            if z.covers(r) {
                if let Some(k) = z.key(&self.prefix, r) {
                    hit.push((i, k, z.params));
                }
            }
        }
        if let (Some(plan), Some((_, policy))) = (&self.plan, r.tenant) {
            if r.route == crate::metrics::RouteLabel::Tenant {
                if let Some(k) = zones::build_key(&self.prefix, "plan", &plan.key, r) {
                    hit.push((self.zones.len(), k, PlanZone::params(policy)));
                }
            }
        }
        if hit.is_empty() {
            return None;
        }
        let keys: Vec<String> = hit.iter().map(|h| h.1.clone()).collect();
        let params: Vec<Params> = hit.iter().map(|h| h.2).collect();
        let (verdict, store) = self.decide(&keys, &params).await;
        Some(self.conclude(r, &hit, &params, verdict, store, accept, request_id))
    }

    async fn decide(&self, keys: &[String], params: &[Params]) -> (Verdict, Store) {
        if let Some(s) = &self.shared {
            match s.check(keys, params, None).await {
                Ok(v) => return (v, Store::Redis),
                Err(shared::SharedError::Open) => {}
                Err(e) => {
                    self.redis_failures.increment(1);
                    tracing::debug!(error = %e, "rate limits: deciding locally");
                }
            }
            self.breaker_open.set(if s.is_open() { 1.0 } else { 0.0 });
        }
        let local: Vec<Params> = params.iter().map(|p| self.local_params(p)).collect();
        (self.local.check(keys, &local), Store::Local)
    }

    /// A zone's share for one instance.
    fn local_params(&self, p: &Params) -> Params {
        Params {
            rate: (p.rate / self.instances).max(1),
            burst: p.burst / self.instances,
            delay: if p.delay == gcra::NODELAY {
                p.delay
            } else {
                p.delay / self.instances
            },
        }
    }

    fn zone_meta(&self, i: usize, params: &Params) -> (Arc<str>, (u32, u32), u16, bool) {
        match self.zones.get(i) {
            Some(z) => (z.name.clone(), z.quota, z.status, z.advertise),
            None => {
                let p = self.plan.as_ref();
                let rps = u32::try_from(params.rate / 1000).unwrap_or(u32::MAX);
                (
                    p.map_or_else(|| Arc::from("plan"), |p| p.name.clone()),
                    (rps, 1),
                    p.map_or(429, |p| p.status),
                    p.is_some_and(|p| p.advertise),
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &self,
        r: &RequestFacts<'_>,
        hit: &[(usize, String, Params)],
        params: &[Params],
        verdict: Verdict,
        store: Store,
        accept: Option<&str>,
        request_id: &str,
    ) -> Decision {
        let s = store as usize;
        match verdict {
            Verdict::Reject { zone, excess } => {
                let (name, quota, status, _) = self.zone_meta(hit[zone].0, &params[zone]);
                self.decisions[hit[zone].0][s][2].increment(1);
                let wait = gcra::wait_ms(&params[zone], excess);
                let state = ZoneState {
                    name: &name,
                    quota,
                    remaining: 0,
                    reset_secs: wait.div_ceil(1000).max(1),
                };
                let reply = answer::limited(status, &state, accept, r.path, request_id);
                Decision::Limit(
                    reply,
                    Mark {
                        outcome: "limited",
                        zone: name.clone(),
                    },
                )
            }
            Verdict::Pass {
                excess,
                delay_ms,
                delay_zone,
            } => {
                let mut advertise = false;
                for (j, h) in hit.iter().enumerate() {
                    let delayed = delay_zone == Some(j);
                    self.decisions[h.0][s][usize::from(delayed)].increment(1);
                    advertise |= self.zone_meta(h.0, &params[j]).3;
                }
                let headers = if advertise {
                    let metas: Vec<_> = hit
                        .iter()
                        .zip(params)
                        .map(|(h, p)| self.zone_meta(h.0, p))
                        .collect();
                    let states: Vec<ZoneState<'_>> = metas
                        .iter()
                        .zip(params.iter().zip(&excess))
                        .map(|(m, (p, e))| ZoneState {
                            name: &m.0,
                            quota: m.1,
                            remaining: u64::try_from((p.burst - e) / 1000).unwrap_or(0),
                            reset_secs: gcra::drain_ms(p, *e).div_ceil(1000),
                        })
                        .collect();
                    answer::headers(&states)
                } else {
                    Vec::new()
                };
                let delay = delay_zone.filter(|_| delay_ms > 0).map(|j| {
                    let name = self.zone_meta(hit[j].0, &params[j]).0;
                    (
                        Duration::from_millis(delay_ms),
                        Mark {
                            outcome: "delayed",
                            zone: name,
                        },
                    )
                });
                Decision::Allow { headers, delay }
            }
        }
    }

    /// Keys held by the local fallback.
    pub fn local_keys(&self) -> usize {
        self.local.len()
    }
}

/// Client facts from the request context, for [`Limiter::check`].
pub fn facts<'a>(
    method: &'a str,
    path: &'a str,
    ctx: &'a crate::ctx::RequestCtx,
) -> RequestFacts<'a> {
    RequestFacts {
        method,
        path,
        route: ctx.route,
        client: ctx.client_ip,
        host: ctx.host(),
        tenant: ctx
            .tenant
            .as_deref()
            .map(|t| (t.id_text.as_str(), t.tenant.rate_limit)),
    }
}

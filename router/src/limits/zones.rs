//! Zones compiled from configuration: which requests each covers and the key it counts them
//! under.

use std::net::IpAddr;
use std::sync::Arc;

use tenant_config::config::{HostClass, LimitKey, LimitZone, PlanLimit};
use tenant_config::model::RateLimitPolicy;

use super::gcra::{Params, NODELAY};
use crate::metrics::RouteLabel;
use crate::text::IpText;

/// What a zone looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Method.
    pub method: &'a str,
    /// Path.
    pub path: &'a str,
    /// Route (after resolution).
    pub route: RouteLabel,
    /// Client address.
    pub client: Option<IpAddr>,
    /// Canonical host.
    pub host: Option<&'a str>,
    /// Tenant id and plan limit, on tenant routes.
    pub tenant: Option<(&'a str, RateLimitPolicy)>,
}

/// A configured zone, ready to match.
#[derive(Debug)]
pub struct Zone {
    /// Name.
    pub name: Arc<str>,
    /// Configured rate as `(count, per_secs)` for `RateLimit-Policy`.
    pub quota: (u32, u32),
    key: Vec<LimitKey>,
    /// nginx parameters.
    pub params: Params,
    paths: Vec<String>,
    except_paths: Vec<String>,
    methods: Vec<String>,
    hosts: Vec<HostClass>,
    /// Status of a limited answer.
    pub status: u16,
    /// `RateLimit` headers on allowed answers.
    pub advertise: bool,
}

impl Zone {
    /// Compiles a configured zone.
    pub fn new(z: &LimitZone) -> Self {
        let delay = if z.nodelay {
            NODELAY
        } else {
            i64::from(z.delay.unwrap_or(0)) * 1000
        };
        Self {
            name: z.name.as_str().into(),
            quota: (z.rate.count, z.rate.per_secs),
            key: z.key.clone(),
            params: Params {
                rate: i64::try_from(z.rate.milli_per_sec())
                    .unwrap_or(i64::MAX)
                    .max(1),
                burst: i64::from(z.burst) * 1000,
                delay,
            },
            paths: z.paths.clone(),
            except_paths: z.except_paths.clone(),
            methods: z.methods.clone(),
            hosts: z.hosts.clone(),
            status: z.status,
            advertise: z.advertise,
        }
    }

    /// Whether the zone covers the request.
    pub fn covers(&self, r: &RequestFacts<'_>) -> bool {
        let class = match r.route {
            RouteLabel::Apex => HostClass::Apex,
            RouteLabel::Admin => HostClass::Admin,
            RouteLabel::Tenant => HostClass::Tenant,
            RouteLabel::Webhook => HostClass::Webhook,
            _ => return false,
        };
        let host_ok = if self.hosts.is_empty() {
            class != HostClass::Webhook
        } else {
            self.hosts.contains(&class)
        };
        host_ok
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == r.method))
            && self.paths.iter().any(|p| r.path.starts_with(p.as_str()))
            && !self
                .except_paths
                .iter()
                .any(|p| r.path.starts_with(p.as_str()))
    }

    /// The store key `<prefix>:<zone>:<parts>`; `None` when a part is missing (no tenant).
    pub fn key(&self, prefix: &str, r: &RequestFacts<'_>) -> Option<String> {
        build_key(prefix, &self.name, &self.key, r)
    }
}

/// The tenant-wide limit from the plan.
#[derive(Debug)]
pub struct PlanZone {
    /// Key parts.
    pub key: Vec<LimitKey>,
    /// Status of a limited answer.
    pub status: u16,
    /// `RateLimit` headers on allowed answers.
    pub advertise: bool,
    /// The name, `plan`.
    pub name: Arc<str>,
}

impl PlanZone {
    /// From configuration.
    pub fn new(p: &PlanLimit) -> Self {
        Self {
            key: p.key.clone(),
            status: p.status,
            advertise: p.advertise,
            name: "plan".into(),
        }
    }

    /// nginx parameters of a plan's policy (`nodelay`).
    pub fn params(policy: RateLimitPolicy) -> Params {
        Params {
            rate: i64::from(policy.requests_per_second.max(1)) * 1000,
            burst: i64::from(policy.burst) * 1000,
            delay: NODELAY,
        }
    }
}

/// Joins the key parts; `None` when one is missing.
pub fn build_key(
    prefix: &str,
    zone: &str,
    parts: &[LimitKey],
    r: &RequestFacts<'_>,
) -> Option<String> {
    let mut k = String::with_capacity(prefix.len() + zone.len() + 48);
    k.push_str(prefix);
    k.push(':');
    k.push_str(zone);
    for part in parts {
        k.push(':');
        match part {
            LimitKey::ClientIp => {
                let ip = IpText::new(r.client?);
                k.push_str(std::str::from_utf8(ip.as_bytes()).unwrap_or_default());
            }
            LimitKey::Host => k.push_str(r.host?),
            LimitKey::Tenant => k.push_str(r.tenant?.0),
            LimitKey::Route => k.push_str(r.route.as_str()),
        }
    }
    Some(k)
}

//! Who may get a certificate: only a verified custom domain of a served tenant, decided from
//! the router's in-memory tenant data before anything touches the database.
//!
//! Why in memory: the name comes from a client's SNI, and anyone can send any name. Caddy's
//! on-demand TLS learned this the hard way (certmagic#174, #185: a flood of junk names turned
//! into tens of thousands of storage loads). A name the tenant cache does not hold as a served
//! custom domain is refused here, counted, and logged at most once per interval. Verified names
//! the cache has not seen yet are found by the scan and the verification notification instead,
//! both of which start from the database, not from a client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tenant_config::host::canonical_host;
use tenant_config::{HostRules, NameClass};

use crate::cache::{Key, TenantCache};

/// Why a name was refused (the `reason` label of `router_acme_refused_names_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed host name.
    Invalid,
    /// The base domain, the admin host or a tenant subdomain: covered by the wildcard (or
    /// an operator certificate), never ordered one by one.
    PlatformName,
    /// Not held in memory as a verified domain of a served tenant.
    NotVerified,
}

impl Refusal {
    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::PlatformName => "platform_name",
            Refusal::NotVerified => "not_verified",
        }
    }
}

/// The issuance gate.
pub struct Gate {
    rules: HostRules,
    cache: TenantCache,
    log: RateLimitedLog,
}

impl Gate {
    /// A gate over the router's host rules and tenant cache.
    pub fn new(rules: HostRules, cache: TenantCache) -> Self {
        Self {
            rules,
            cache,
            log: RateLimitedLog::new(Duration::from_secs(10)),
        }
    }

    /// The canonical name when `sni` may be ordered, else why not. Never waits, never touches
    /// the database; refusals are counted and (rate-limited) logged.
    pub fn check(&self, sni: &str) -> Result<String, Refusal> {
        let verdict = self.decide(sni);
        if let Err(reason) = &verdict {
            metrics::counter!("router_acme_refused_names_total", "reason" => reason.as_str())
                .increment(1);
            self.log.note(|suppressed| {
                // The name is client-chosen: log it escaped and cut short.
                let shown: String = sni.escape_default().take(80).collect();
                tracing::info!(name = %shown, reason = reason.as_str(), suppressed, "certificate not ordered for this name");
            });
        }
        verdict
    }

    fn decide(&self, sni: &str) -> Result<String, Refusal> {
        let host = canonical_host(sni).map_err(|_| Refusal::Invalid)?;
        match self.rules.classify_name(&host) {
            NameClass::Custom(domain) => match self.cache.fresh(Key::Domain(domain)) {
                Some(Some(t)) if t.status.is_served() => Ok(domain.to_owned()),
                _ => Err(Refusal::NotVerified),
            },
            NameClass::Invalid(_) => Err(Refusal::Invalid),
            NameClass::Admin | NameClass::Apex | NameClass::Tenant(_) => Err(Refusal::PlatformName),
        }
    }
}

/// At most one log line per `every`; the lines in between are counted and reported with the
/// next one, so junk cannot fill the log.
pub struct RateLimitedLog {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// One line per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `write(suppressed_since_last)` when a line is due; otherwise counts it.
    pub fn note(&self, write: impl FnOnce(u64)) {
        let due = {
            let Ok(mut last) = self.last.try_lock() else {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let now = Instant::now();
            let due = last.is_none_or(|t| now.duration_since(t) >= self.every);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            write(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tenant_config::config::TenantCacheConfig;
    use tenant_config::domain::DomainPolicy;
    use tenant_config::store::StaticTenantStore;

    use super::*;

    const TENANTS: &str = r#"
        [[tenant]]
        id = "6f1c4a9e-0000-4000-8000-000000000001"
        slug = "grace"
        name = "Grace Church"
        domains = ["give.gracechurch.org"]
        [[tenant]]
        id = "6f1c4a9e-0000-4000-8000-000000000002"
        slug = "hope"
        name = "Hope Chapel"
        status = "suspended"
        domains = ["give.hope.org"]
    "#;

    #[tokio::test]
    async fn only_cached_served_custom_domains_pass() {
        let rules = HostRules::new("platform.test", "admin.platform.test").unwrap();
        let store =
            StaticTenantStore::parse("t", TENANTS, &rules, DomainPolicy::default()).unwrap();
        let cache = TenantCache::new(Arc::new(store), &TenantCacheConfig::default());
        let gate = Gate::new(rules, cache.clone());
        assert_eq!(
            gate.check("give.gracechurch.org"),
            Err(Refusal::NotVerified),
            "not in memory yet: refused without a lookup"
        );
        cache
            .get(Key::Domain("give.gracechurch.org"))
            .await
            .unwrap();
        cache.get(Key::Domain("give.hope.org")).await.unwrap();
        cache.get(Key::Domain("junk.example")).await.unwrap();
        assert_eq!(
            gate.check("GIVE.gracechurch.org.").as_deref(),
            Ok("give.gracechurch.org")
        );
        assert_eq!(
            gate.check("give.hope.org"),
            Err(Refusal::NotVerified),
            "suspended"
        );
        assert_eq!(gate.check("junk.example"), Err(Refusal::NotVerified));
        assert_eq!(
            gate.check("grace.platform.test"),
            Err(Refusal::PlatformName)
        );
        assert_eq!(
            gate.check("admin.platform.test"),
            Err(Refusal::PlatformName)
        );
        assert_eq!(gate.check("bad name!"), Err(Refusal::Invalid));
        assert_eq!(gate.check(""), Err(Refusal::Invalid));
    }

    #[test]
    fn the_log_is_rate_limited_and_counts_what_it_dropped() {
        let log = RateLimitedLog::new(Duration::from_secs(3_600));
        let mut lines = Vec::new();
        for _ in 0..1_000 {
            log.note(|s| lines.push(s));
        }
        assert_eq!(lines, vec![0]);
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 999);
    }
}

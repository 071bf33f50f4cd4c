//! The tenant cache in front of the [`TenantStore`]: positive and negative entries, freshness
//! checked on read, and stale-if-error.
//!
//! moka's synchronous cache is used even though lookups happen in async code: a hit never
//! blocks, and the benchmark measured the async variant's bookkeeping at several percent of the
//! router's CPU per request.
//!
//! Entries outlive their freshness on purpose: while the database is unreachable a name that was
//! ever resolved keeps being served (for up to `stale_if_error_secs`), so a database outage does
//! not take every tenant's site down with it. Invalidation (from `NOTIFY`) removes entries
//! outright.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use tenant_config::config::TenantCacheConfig;
use tenant_config::store::{StoreError, TenantStore};
use tenant_config::{ResolvedTenant, TenantId};

/// What is looked up. Borrowed, so a cache hit allocates nothing; a miss stores an owned copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key<'a> {
    /// `<slug>.<base>`.
    Slug(&'a str),
    /// A custom domain.
    Domain(&'a str),
}

/// One moka cache per kind of name, keyed by the name itself and looked up by `&str`. The hasher
/// is aHash with per-process random keys: hosts come from clients, so it must resist chosen
/// collisions, and it is several times cheaper than the default SipHash on short names.
type Names = Cache<Box<str>, Entry, ahash::RandomState>;

/// A resolved tenant with the header values the proxy sends for it, built once per cache fill
/// instead of once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    /// The tenant.
    pub tenant: ResolvedTenant,
    /// The id as text (`x-tenant-id`, and the signed field).
    pub id_text: String,
    /// `x-tenant-id` value.
    pub id_value: http::HeaderValue,
    /// `x-tenant-slug` value.
    pub slug_value: http::HeaderValue,
}

impl TenantEntry {
    /// Wraps a tenant. Slugs and UUIDs are always valid header values; should that ever fail,
    /// the values are empty and the signature still covers the id text.
    pub fn new(tenant: ResolvedTenant) -> Self {
        let id_text = tenant.id.to_string();
        let value =
            |s: &str| http::HeaderValue::from_str(s).unwrap_or(http::HeaderValue::from_static(""));
        Self {
            id_value: value(&id_text),
            slug_value: value(&tenant.slug),
            id_text,
            tenant,
        }
    }
}

impl std::ops::Deref for TenantEntry {
    type Target = ResolvedTenant;

    fn deref(&self) -> &ResolvedTenant {
        &self.tenant
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None` remembers that the name is unknown.
    tenant: Option<Arc<TenantEntry>>,
    fetched: Instant,
}

/// How a lookup was answered, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh cache entry.
    Hit,
    /// Asked the store.
    Miss,
    /// The store failed; an expired entry was served.
    Stale,
}

impl Outcome {
    /// Every outcome, in declaration order (`outcome as usize` indexes it).
    pub const ALL: [Outcome; 3] = [Outcome::Hit, Outcome::Miss, Outcome::Stale];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
        }
    }
}

/// Cached tenant lookups.
#[derive(Clone)]
pub struct TenantCache {
    slugs: Names,
    domains: Names,
    store: Arc<dyn TenantStore>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl TenantCache {
    /// A cache over `store`.
    pub fn new(store: Arc<dyn TenantStore>, config: &TenantCacheConfig) -> Self {
        let names = || {
            Cache::builder()
                .max_capacity(config.max_entries)
                // Entries live past freshness for stale-if-error; this bounds how long.
                .time_to_live(Duration::from_secs(
                    config.ttl_secs.max(config.negative_ttl_secs) + config.stale_if_error_secs,
                ))
                .support_invalidation_closures()
                .build_with_hasher(ahash::RandomState::new())
        };
        Self {
            slugs: names(),
            domains: names(),
            store,
            ttl: Duration::from_secs(config.ttl_secs),
            negative_ttl: Duration::from_secs(config.negative_ttl_secs),
        }
    }

    fn names<'k>(&self, key: Key<'k>) -> (&Names, &'k str) {
        match key {
            Key::Slug(s) => (&self.slugs, s),
            Key::Domain(d) => (&self.domains, d),
        }
    }

    fn is_fresh(&self, e: &Entry) -> bool {
        let ttl = if e.tenant.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        e.fetched.elapsed() < ttl
    }

    /// The cached answer for `key` while it is fresh (`Some(None)`: known to be unknown);
    /// `None` when only the store can answer.
    pub fn fresh(&self, key: Key<'_>) -> Option<Option<Arc<TenantEntry>>> {
        let (names, name) = self.names(key);
        names
            .get(name)
            .filter(|e| self.is_fresh(e))
            .map(|e| e.tenant.clone())
    }

    /// Resolves `key`: a fresh entry, else the store, else (on store failure) a stale entry.
    /// Callers pass only names that passed classification (valid, unreserved slugs): the
    /// resolver's fast path trusts any cached slug to be one.
    pub async fn get(
        &self,
        key: Key<'_>,
    ) -> Result<(Option<Arc<TenantEntry>>, Outcome), StoreError> {
        let (names, name) = self.names(key);
        let cached = names.get(name);
        if let Some(e) = cached.as_ref().filter(|e| self.is_fresh(e)) {
            return Ok((e.tenant.clone(), Outcome::Hit));
        }
        let looked_up = match key {
            Key::Slug(s) => self.store.by_slug(s).await,
            Key::Domain(d) => self.store.by_domain(d).await,
        };
        match looked_up {
            Ok(found) => {
                let tenant = found.map(|t| Arc::new(TenantEntry::new(t)));
                names.insert(
                    name.into(),
                    Entry {
                        tenant: tenant.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok((tenant, Outcome::Miss))
            }
            Err(e) => match cached {
                Some(stale) => Ok((stale.tenant, Outcome::Stale)),
                None => Err(e),
            },
        }
    }

    /// Drops the entry for one name (a tenant or domain row changed).
    pub fn invalidate(&self, key: Key<'_>) {
        let (names, name) = self.names(key);
        names.invalidate(name);
    }

    /// Drops every entry that resolved to `tenant` (its status or plan changed).
    pub fn invalidate_tenant(&self, tenant: TenantId) {
        // Only fails when closures are unsupported, which the builder enabled.
        for names in [&self.slugs, &self.domains] {
            let _ = names.invalidate_entries_if(move |_, e| {
                e.tenant.as_ref().is_some_and(|t| t.id == tenant)
            });
        }
    }

    /// Drops everything (after a missed-notification window).
    pub fn invalidate_all(&self) {
        self.slugs.invalidate_all();
        self.domains.invalidate_all();
    }

    /// Entries currently held (approximate).
    pub fn len(&self) -> u64 {
        // moka counts lazily; settle pending inserts first so the gauge is current.
        self.slugs.run_pending_tasks();
        self.domains.run_pending_tasks();
        self.slugs.entry_count() + self.domains.entry_count()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tenant_config::model::RateLimitPolicy;
    use tenant_config::TenantStatus;

    use super::*;

    /// A store whose answers and failures the test controls.
    #[derive(Default)]
    struct Scripted {
        calls: AtomicUsize,
        down: AtomicBool,
    }

    #[async_trait]
    impl TenantStore for Scripted {
        async fn by_slug(&self, slug: &str) -> Result<Option<ResolvedTenant>, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            Ok((slug == "grace").then(|| ResolvedTenant {
                id: TenantId(uuid::Uuid::nil()),
                slug: slug.into(),
                name: "Grace".into(),
                status: TenantStatus::Active,
                plan_id: "starter".into(),
                rate_limit: RateLimitPolicy::default(),
            }))
        }
        async fn by_domain(&self, _: &str) -> Result<Option<ResolvedTenant>, StoreError> {
            Ok(None)
        }
    }

    fn config(ttl: u64) -> TenantCacheConfig {
        TenantCacheConfig {
            ttl_secs: ttl,
            negative_ttl_secs: ttl,
            stale_if_error_secs: 3600,
            max_entries: 100,
        }
    }

    #[tokio::test]
    async fn hits_misses_negative_and_invalidation() {
        let store = Arc::new(Scripted::default());
        let c = TenantCache::new(store.clone(), &config(60));
        let k = Key::Slug("grace");
        assert_eq!(c.get(k).await.unwrap().1, Outcome::Miss);
        assert_eq!(c.get(k).await.unwrap().1, Outcome::Hit);
        let (none, o) = c.get(Key::Slug("nobody")).await.unwrap();
        assert!(none.is_none() && o == Outcome::Miss);
        assert_eq!(c.get(Key::Slug("nobody")).await.unwrap().1, Outcome::Hit);
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
        c.invalidate_tenant(TenantId(uuid::Uuid::nil()));
        assert_eq!(c.get(k).await.unwrap().1, Outcome::Miss);
        c.invalidate(k);
        assert_eq!(c.get(k).await.unwrap().1, Outcome::Miss);
    }

    #[tokio::test]
    async fn serves_stale_when_the_store_fails() {
        let store = Arc::new(Scripted::default());
        let c = TenantCache::new(store.clone(), &config(0));
        let k = Key::Slug("grace");
        assert_eq!(c.get(k).await.unwrap().1, Outcome::Miss);
        store.down.store(true, Ordering::SeqCst);
        let (t, o) = c.get(k).await.unwrap();
        assert_eq!(o, Outcome::Stale);
        assert_eq!(t.unwrap().slug, "grace");
        assert!(
            c.get(Key::Slug("other")).await.is_err(),
            "uncached names fail"
        );
    }
}

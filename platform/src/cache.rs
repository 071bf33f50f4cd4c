//! Two-level cache for tenant profiles: in-process (moka) in front of Redis, invalidated per
//! tenant. Redis is an optimisation: when it is down, lookups fall through to PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tenant_config::TenantId;

use crate::error::AppError;
use crate::state::LazyRedis;
use crate::tenant::profile::Profile;

/// How long a profile stays in process memory. Short, because another instance may have
/// changed it (its Redis delete reaches us only through this expiry).
const LOCAL_TTL: Duration = Duration::from_secs(30);
/// How long a profile stays in Redis.
const REDIS_TTL_SECS: u64 = 300;

/// Profile cache.
#[derive(Clone)]
pub struct ProfileCache {
    local: Cache<TenantId, Arc<Profile>>,
    redis: Arc<LazyRedis>,
}

fn key(t: TenantId) -> String {
    format!("tenant:{}:profile:v1", t.0)
}

impl ProfileCache {
    /// A cache using `redis` as its second level.
    pub fn new(redis: Arc<LazyRedis>) -> Self {
        Self {
            local: Cache::builder()
                .max_capacity(50_000)
                .time_to_live(LOCAL_TTL)
                .build(),
            redis,
        }
    }

    /// The cached profile, else Redis, else `load` (whose result is stored in both).
    pub async fn get_or_load(
        &self,
        tenant: TenantId,
        load: impl std::future::Future<Output = Result<Profile, AppError>>,
    ) -> Result<Arc<Profile>, AppError> {
        if let Some(p) = self.local.get(&tenant).await {
            return Ok(p);
        }
        if let Some(p) = self.redis_get(tenant).await {
            let p = Arc::new(p);
            self.local.insert(tenant, p.clone()).await;
            return Ok(p);
        }
        let p = Arc::new(load.await?);
        self.redis_put(tenant, &p).await;
        self.local.insert(tenant, p.clone()).await;
        Ok(p)
    }

    /// Drops the tenant's profile from both levels (after a change to it).
    pub async fn invalidate(&self, tenant: TenantId) {
        self.local.invalidate(&tenant).await;
        if let Ok(mut c) = self.redis.get().await {
            let r: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(key(tenant)).query_async(&mut c).await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "redis delete failed; profile expires by TTL");
            }
        }
    }

    async fn redis_get(&self, tenant: TenantId) -> Option<Profile> {
        let mut c = self.redis.get().await.ok()?;
        let raw: Option<String> = redis::cmd("GET")
            .arg(key(tenant))
            .query_async(&mut c)
            .await
            .map_err(|e| tracing::debug!(error = %e, "redis get failed"))
            .ok()?;
        serde_json::from_str(&raw?).ok()
    }

    async fn redis_put(&self, tenant: TenantId, p: &Profile) {
        let Ok(mut c) = self.redis.get().await else {
            return;
        };
        let Ok(json) = serde_json::to_string(p) else {
            return;
        };
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key(tenant))
            .arg(json)
            .arg("EX")
            .arg(REDIS_TTL_SECS)
            .query_async(&mut c)
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "redis set failed");
        }
    }
}

//! The replay set for edge signatures: a signature is accepted once.
//!
//! Inside the skew window a captured `x-edge-signature` (with its request id, method, path and
//! length) would otherwise verify again. Each accepted signature is recorded in Redis with
//! `SET … NX PX` for twice the skew window, so the set holds across every platform instance. The
//! key is the signature's MAC, which covers the request id and everything else signed: a copy
//! of a forwarded request is refused, while two requests that merely share a client-chosen
//! request id are not.
//!
//! Redis is not allowed to become a single point of failure: each check has a small time
//! budget, and after a failure Redis is skipped for a second (a circuit breaker) while a bounded
//! in-process set stands in. That set only sees this instance's requests, which is the best
//! available while Redis is down, and its capacity bound means a flood cannot exhaust memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::state::LazyRedis;

/// Longest a Redis check may take before the local set decides.
const REDIS_BUDGET: Duration = Duration::from_millis(50);
/// How long Redis is skipped after it failed or was slow.
const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// Signatures remembered locally while Redis is unavailable.
const LOCAL_CAPACITY: u64 = 200_000;

/// Whether a signature was seen before.
#[derive(Clone)]
pub struct ReplayGuard {
    redis: Arc<LazyRedis>,
    local: Cache<[u8; 32], ()>,
    ttl: Duration,
    origin: Instant,
    /// Milliseconds since `origin` until which Redis is not asked.
    skip_redis_until: Arc<AtomicU64>,
}

impl ReplayGuard {
    /// A guard remembering signatures for `ttl` (twice the accepted skew, plus a second).
    pub fn new(redis: Arc<LazyRedis>, ttl: Duration) -> Self {
        Self {
            redis,
            local: Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(ttl)
                .build(),
            ttl,
            origin: Instant::now(),
            skip_redis_until: Arc::new(AtomicU64::new(0)),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Records `mac`; `true` the first time it is seen, `false` for a replay.
    pub async fn first_use(&self, mac: &[u8; 32]) -> bool {
        if self.now_ms() >= self.skip_redis_until.load(Ordering::Relaxed) {
            match tokio::time::timeout(REDIS_BUDGET, self.redis_first_use(mac)).await {
                Ok(Ok(first)) => return first,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "replay set: redis failed; using the local set")
                }
                Err(_) => tracing::warn!("replay set: redis too slow; using the local set"),
            }
            self.skip_redis_until.store(
                self.now_ms() + BREAKER_OPEN.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
        self.local.entry(*mac).or_insert(()).await.is_fresh()
    }

    async fn redis_first_use(&self, mac: &[u8; 32]) -> redis::RedisResult<bool> {
        let mut conn = self.redis.get().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("edge:seen:{}", hex::encode(mac)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}

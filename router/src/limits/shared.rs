//! The shared store: every instance's limits in one Redis, one script call per request for all
//! of its zones, under a strict time budget and behind a circuit breaker.
//!
//! The script is sent once per Redis server (`EVALSHA`, loaded on `NOSCRIPT`). A call that
//! misses the budget or fails counts towards the breaker; after `breaker_failures` in a row the
//! breaker opens and requests stop calling Redis at all (no per-request wait) until the probe,
//! every `breaker_probe_ms`, finds Redis answering again. A call abandoned at the budget may
//! still be applied by Redis later; that costs a client at most one request of its budget.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, ErrorKind, ServerErrorKind};
use tenant_config::config::RedisConfig;

use super::gcra::{self, Params, Verdict};

const LUA: &str = include_str!("shared.lua");

/// Why a shared check gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The breaker is open: Redis was not asked.
    #[error("circuit breaker open")]
    Open,
    /// Redis did not answer within the budget.
    #[error("redis took longer than the budget")]
    Timeout,
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The script's answer had an unexpected shape.
    #[error("unexpected script answer")]
    Shape,
}

/// Consecutive failures and whether requests skip Redis.
struct Breaker {
    failures: AtomicU32,
    open: AtomicBool,
    threshold: u32,
}

/// Redis-backed limits.
pub struct Shared {
    conn: ConnectionManager,
    /// The script's SHA1 as Redis reported it on `SCRIPT LOAD`.
    sha: std::sync::RwLock<Option<String>>,
    budget: Duration,
    breaker: Breaker,
}

impl Shared {
    /// A lazily connected client (no connection is made here, so a Redis that is down at start
    /// only means starting on local limits). Call inside a Tokio runtime: the connection's
    /// driver task lives there.
    pub fn new(
        config: &RedisConfig,
        budget: Duration,
        breaker_failures: u32,
    ) -> Result<Self, String> {
        let url = config.url.expose();
        // The platform reads the same settings the same way: a `ca_file` without a PEM
        // certificate, or with a plain `redis://` URL, is refused here (and so by check-config).
        let client = match tenant_config::db::tls::redis_ca(url, config.ca_file.as_deref())? {
            Some(pem) => Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            None => Client::open(url),
        }
        .map_err(|e| format!("redis.url: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, cfg)
            .map_err(|e| format!("redis: {e}"))?;
        Ok(Self {
            conn,
            sha: std::sync::RwLock::new(None),
            budget,
            breaker: Breaker {
                failures: AtomicU32::new(0),
                open: AtomicBool::new(false),
                threshold: breaker_failures,
            },
        })
    }

    /// Whether requests currently skip Redis.
    pub fn is_open(&self) -> bool {
        self.breaker.open.load(Ordering::Relaxed)
    }

    /// One request over its zones in Redis; `now_ms` `None` uses Redis's clock (tests pin it).
    pub async fn check(
        &self,
        keys: &[String],
        params: &[Params],
        now_ms: Option<i64>,
    ) -> Result<Verdict, SharedError> {
        if self.is_open() {
            return Err(SharedError::Open);
        }
        let answer = tokio::time::timeout(self.budget, self.eval(keys, params, now_ms)).await;
        let result = match answer {
            Err(_) => Err(SharedError::Timeout),
            Ok(Err(e)) => Err(SharedError::Redis(e)),
            Ok(Ok(v)) => decode(&v, params),
        };
        match &result {
            Ok(_) => {
                if self.breaker.failures.load(Ordering::Relaxed) != 0 {
                    self.breaker.failures.store(0, Ordering::Relaxed);
                }
            }
            Err(e) => self.failed(e),
        }
        result
    }

    /// `EVALSHA`, loading the script first when Redis does not know it (first use, or a
    /// restarted Redis).
    async fn eval(
        &self,
        keys: &[String],
        params: &[Params],
        now_ms: Option<i64>,
    ) -> Result<Vec<i64>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let known = self.sha.read().unwrap_or_else(|e| e.into_inner()).clone();
        let sha = match known {
            Some(sha) => sha,
            None => self.load(&mut conn).await?,
        };
        let cmd = |sha: &str| {
            let mut c = redis::cmd("EVALSHA");
            c.arg(sha)
                .arg(keys.len())
                .arg(keys)
                .arg(now_ms.unwrap_or(-1));
            for p in params {
                c.arg(p.rate).arg(p.burst);
            }
            c
        };
        match cmd(&sha).query_async(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let sha = self.load(&mut conn).await?;
                cmd(&sha).query_async(&mut conn).await
            }
            other => other,
        }
    }

    async fn load(&self, conn: &mut ConnectionManager) -> Result<String, redis::RedisError> {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(LUA)
            .query_async(conn)
            .await?;
        *self.sha.write().unwrap_or_else(|e| e.into_inner()) = Some(sha.clone());
        Ok(sha)
    }

    fn failed(&self, e: &SharedError) {
        let n = self.breaker.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.breaker.threshold && !self.breaker.open.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, failures = n, "rate limits: Redis unusable, breaker open, limiting locally");
        }
    }

    /// Warms the connection up, then probes Redis while the breaker is open and closes it once
    /// Redis answers; runs forever on the helper runtime.
    pub async fn probe_loop(&self, every: Duration) {
        // Connect and load the script before the first request needs them: otherwise the first
        // checks spend their few-millisecond budget on the connect and `SCRIPT LOAD` and are
        // decided by the local store, whose budget is separate. Not counted by the breaker.
        let mut conn = self.conn.clone();
        match tokio::time::timeout(Duration::from_secs(2), self.load(&mut conn)).await {
            Ok(Ok(_)) => tracing::debug!("rate limits: Redis connected, script loaded"),
            Ok(Err(e)) => tracing::info!(error = %e, "rate limits: Redis not reachable at start"),
            Err(_) => tracing::info!("rate limits: Redis slow at start"),
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.is_open() {
                continue;
            }
            let mut conn = self.conn.clone();
            let ping = redis::cmd("PING");
            let ok = matches!(
                tokio::time::timeout(
                    every.max(Duration::from_millis(100)),
                    ping.query_async::<String>(&mut conn)
                )
                .await,
                Ok(Ok(_))
            );
            if ok {
                self.breaker.failures.store(0, Ordering::Relaxed);
                self.breaker.open.store(false, Ordering::Relaxed);
                tracing::info!("rate limits: Redis answers again, shared limits resumed");
            }
        }
    }
}

fn decode(v: &[i64], params: &[Params]) -> Result<Verdict, SharedError> {
    match v {
        [0, rest @ ..] if rest.len() == params.len() => Ok(gcra::pass(params, rest.to_vec())),
        [i, e] if *i >= 1 && (*i as usize) <= params.len() => Ok(Verdict::Reject {
            zone: *i as usize - 1,
            excess: *e,
        }),
        _ => Err(SharedError::Shape),
    }
}

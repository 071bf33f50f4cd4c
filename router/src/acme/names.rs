//! ACME state per name in PostgreSQL (`acme_names`, `acme_orders`, `acme_challenges`): the
//! lease that makes one instance the issuer of a name, the budgets counted from the order log,
//! and the status the admin API reads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tenant_config::db::Pool;
use uuid::Uuid;

/// A database failure, as text (the issuer logs it and backs off).
pub type DbResult<T> = Result<T, String>;

fn db<E: std::fmt::Display>(e: E) -> String {
    format!("database: {e}")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The row as the lease holder found it.
#[derive(Debug, Clone)]
pub struct NameRow {
    /// `pending`, `issued`, `renewing` or `failed`.
    pub state: String,
    /// Consecutive failed orders.
    pub failures: i32,
    /// Consecutive failed validations.
    pub failed_validations: i32,
    /// No order before this.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Paused (repeated failed validations) until then.
    pub paused_until: Option<DateTime<Utc>>,
    /// Chosen renewal point.
    pub renew_at: Option<DateTime<Utc>>,
    /// ARI window valid until then.
    pub ari_checked_until: Option<DateTime<Utc>>,
}

/// How an order ended (the `outcome` column and metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Certificate stored.
    Issued,
    /// The CA refused a validation (order or authorization invalid).
    Invalid,
    /// The CA said to slow down.
    RateLimited,
    /// Anything else (network, CA down, database).
    Failed,
}

impl Outcome {
    /// Column and label text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Invalid => "invalid",
            Outcome::RateLimited => "rate_limited",
            Outcome::Failed => "failed",
        }
    }
}

/// Database side of the issuer.
#[derive(Clone)]
pub struct Names {
    pool: Pool,
    /// This router instance (lease owner, order log).
    pub instance: Uuid,
}

impl Names {
    /// Over `pool` (the router's login role).
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            instance: Uuid::new_v4(),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes the lease on `name` for `lease` unless anyone (this instance included) holds an
    /// unexpired one. `None`: the name is being worked on.
    pub async fn take_lease(&self, name: &str, lease: Duration) -> DbResult<Option<NameRow>> {
        let conn = self.pool.get().await.map_err(db)?;
        let row = conn
            .query_opt(
                "INSERT INTO acme_names (name, lease_owner, lease_until)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE SET lease_owner = EXCLUDED.lease_owner,
                     lease_until = EXCLUDED.lease_until
                 WHERE acme_names.lease_until IS NULL OR acme_names.lease_until < now()
                 RETURNING state, failures, failed_validations, next_attempt_at, paused_until,
                           renew_at, ari_checked_until",
                &[&name, &self.instance, &secs(lease)],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| NameRow {
            state: r.get(0),
            failures: r.get(1),
            failed_validations: r.get(2),
            next_attempt_at: r.get(3),
            paused_until: r.get(4),
            renew_at: r.get(5),
            ari_checked_until: r.get(6),
        }))
    }

    /// Gives the lease back.
    pub async fn release(&self, name: &str) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_names SET lease_owner = NULL, lease_until = NULL
             WHERE name = $1 AND lease_owner = $2",
            &[&name, &self.instance],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// The owning tenant when `name` is (still) a verified domain of a served tenant.
    pub async fn verified_tenant(&self, name: &str) -> DbResult<Option<Uuid>> {
        let conn = self.pool.get().await.map_err(db)?;
        let row = conn
            .query_opt(
                "SELECT d.tenant_id FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
                 WHERE d.domain = $1 AND d.status IN ('verified', 'active')
                   AND t.status IN ('trial', 'active')",
                &[&name],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// When the budgets allow the next order for `name`: `None` now, else the moment the
    /// oldest counted order leaves its window.
    ///
    /// What counts (Let's Encrypt's limits are the model):
    /// - per name: certificates **issued** for it in the window (the duplicate-certificate
    ///   limit). Failed orders do not count: they are governed by the backoff and the pause,
    ///   so a CA outage cannot use up a name's budget and push its renewal out by a week.
    ///   With `skip_per_name` (the stored chain no longer verifies, `issue.rs`) the per-name
    ///   budget is not applied at all.
    /// - globally: orders that **reached the CA** (an `acme_orders` row is written only once
    ///   the CA created the order), whatever their outcome.
    pub async fn budget_blocks(
        &self,
        name: &str,
        per_name: (u32, Duration),
        global: (u32, Duration),
        skip_per_name: bool,
    ) -> DbResult<Option<DateTime<Utc>>> {
        let conn = self.pool.get().await.map_err(db)?;
        let r = conn
            .query_one(
                "SELECT
                   (SELECT count(*) FROM acme_orders WHERE name = $1 AND outcome = 'issued'
                      AND started_at > now() - make_interval(secs => $2)),
                   (SELECT min(started_at) + make_interval(secs => $2) FROM acme_orders
                      WHERE name = $1 AND outcome = 'issued'
                        AND started_at > now() - make_interval(secs => $2)),
                   (SELECT count(*) FROM acme_orders
                      WHERE started_at > now() - make_interval(secs => $3)),
                   (SELECT min(started_at) + make_interval(secs => $3) FROM acme_orders
                      WHERE started_at > now() - make_interval(secs => $3))",
                &[&name, &secs(per_name.1), &secs(global.1)],
            )
            .await
            .map_err(db)?;
        let (n, n_free, g, g_free): (i64, Option<DateTime<Utc>>, i64, Option<DateTime<Utc>>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let mut until = None;
        if !skip_per_name && n >= i64::from(per_name.0) {
            until = n_free;
        }
        if g >= i64::from(global.0) {
            until = until.max(g_free);
        }
        Ok(until)
    }

    /// Whether the last certificate issued for `name` verified to the trusted roots when it
    /// was stored (`None`: none issued yet). A certificate that did not is not replaced for
    /// trust reasons again: the CA would issue under the same root, and doing so in a loop
    /// would spend the CA's limits for nothing.
    pub async fn last_issue_trusted(&self, name: &str) -> DbResult<Option<bool>> {
        let conn = self.pool.get().await.map_err(db)?;
        let row = conn
            .query_opt(
                "SELECT error IS NULL FROM acme_orders WHERE name = $1 AND outcome = 'issued'
                 ORDER BY id DESC LIMIT 1",
                &[&name],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Marks the name pending (first certificate) or renewing while this instance works on it.
    pub async fn begin_work(&self, name: &str, renewal: bool) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        let state = if renewal { "renewing" } else { "pending" };
        conn.execute(
            "UPDATE acme_names SET state = $2, updated_at = now() WHERE name = $1",
            &[&name, &state],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Logs an order the CA has created (what the global budget counts); the id for
    /// [`Names::finish_order`].
    pub async fn log_order(&self, name: &str, renewal: bool) -> DbResult<i64> {
        let conn = self.pool.get().await.map_err(db)?;
        let kind = if renewal { "renew" } else { "issue" };
        let id: i64 = conn
            .query_one(
                "INSERT INTO acme_orders (name, kind, instance) VALUES ($1, $2, $3) RETURNING id",
                &[&name, &kind, &self.instance],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(id)
    }

    /// Records the end of order `id`.
    pub async fn finish_order(
        &self,
        id: i64,
        outcome: Outcome,
        error: Option<&str>,
    ) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_orders SET finished_at = now(), outcome = $2, error = $3 WHERE id = $1",
            &[&id, &outcome.as_str(), &error],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// A certificate was stored: issued, counters reset, next renewal at `renew_at`, lease
    /// released.
    pub async fn issued(
        &self,
        name: &str,
        renew_at: DateTime<Utc>,
        ari_checked_until: Option<DateTime<Utc>>,
    ) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_names SET state = 'issued', failures = 0, failed_validations = 0,
                 last_error = NULL, next_attempt_at = NULL, paused_until = NULL, renew_at = $2,
                 ari_checked_until = $3, lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE name = $1",
            &[&name, &renew_at, &ari_checked_until],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// A current certificate is not due yet: remembers when it is, and releases the lease.
    pub async fn schedule(
        &self,
        name: &str,
        renew_at: DateTime<Utc>,
        ari_checked_until: Option<DateTime<Utc>>,
    ) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_names SET state = CASE WHEN state = 'failed' OR state = 'pending' THEN 'issued' ELSE state END,
                 renew_at = $2, ari_checked_until = $3, lease_owner = NULL, lease_until = NULL,
                 updated_at = now()
             WHERE name = $1",
            &[&name, &renew_at, &ari_checked_until],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Postpones `name` until `at` (budget exhausted, or backoff) without counting a failure.
    pub async fn postpone(&self, name: &str, at: DateTime<Utc>, why: &str) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_names SET next_attempt_at = $2, last_error = $3, lease_owner = NULL,
                 lease_until = NULL, updated_at = now()
             WHERE name = $1",
            &[&name, &at, &why],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// An order failed. `has_cert`: a valid certificate still serves (state stays
    /// `renewing`), else `failed`. `pause_until`: set after too many failed validations.
    #[allow(clippy::too_many_arguments)]
    pub async fn failed(
        &self,
        name: &str,
        error: &str,
        validation: bool,
        has_cert: bool,
        next_attempt_at: DateTime<Utc>,
        pause_until: Option<DateTime<Utc>>,
    ) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        let state = if has_cert { "renewing" } else { "failed" };
        conn.execute(
            "UPDATE acme_names SET state = $2, failures = failures + 1,
                 failed_validations = CASE WHEN $3 THEN failed_validations + 1 ELSE failed_validations END,
                 last_error = $4, next_attempt_at = $5, paused_until = $6,
                 lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE name = $1",
            &[&name, &state, &validation, &error, &next_attempt_at, &pause_until],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Publishes an HTTP-01 answer for every instance.
    pub async fn put_challenge(
        &self,
        token: &str,
        domain: &str,
        key_authorization: &str,
        ttl: Duration,
    ) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "INSERT INTO acme_challenges (token, domain, key_authorization, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (token) DO UPDATE SET domain = EXCLUDED.domain,
                 key_authorization = EXCLUDED.key_authorization, expires_at = EXCLUDED.expires_at",
            &[&token, &domain, &key_authorization, &secs(ttl)],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Removes answers once their order is over, and any expired ones.
    pub async fn drop_challenges(&self, tokens: &[String]) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "DELETE FROM acme_challenges WHERE token = ANY($1) OR expires_at < now()",
            &[&tokens],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Verified names of served tenants that are due: no certificate, a renewal point passed,
    /// or an ARI window to refresh; skipping names that wait (backoff, pause) or are leased.
    pub async fn due(&self, limit: i64) -> DbResult<Vec<(String, bool)>> {
        let conn = self.pool.get().await.map_err(db)?;
        let rows = conn
            .query(
                "SELECT d.domain, c.domain IS NOT NULL
                 FROM tenant_domains d
                 JOIN tenants t ON t.id = d.tenant_id
                 LEFT JOIN acme_names a ON a.name = d.domain
                 LEFT JOIN certificates c ON c.domain = d.domain AND c.status = 'issued'
                      AND c.not_after > now()
                 WHERE d.status IN ('verified', 'active') AND t.status IN ('trial', 'active')
                   AND (a.paused_until IS NULL OR a.paused_until <= now())
                   AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= now())
                   AND (a.lease_until IS NULL OR a.lease_until < now())
                   AND (c.domain IS NULL OR a.name IS NULL OR a.renew_at IS NULL
                        OR a.renew_at <= now() OR a.ari_checked_until <= now())
                 ORDER BY a.renew_at NULLS FIRST
                 LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every managed name's stored chain, for the trust check; leaving out chains that did not
    /// verify even when they were stored (see [`Names::last_issue_trusted`]).
    pub async fn managed_chains(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.pool.get().await.map_err(db)?;
        let rows = conn
            .query(
                "SELECT c.domain, c.chain_pem FROM certificates c
                 JOIN acme_names a ON a.name = c.domain
                 WHERE c.status = 'issued' AND c.chain_pem IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM acme_orders o WHERE o.id = (
                         SELECT max(id) FROM acme_orders WHERE name = c.domain AND outcome = 'issued')
                       AND o.error IS NOT NULL)",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Asks for renewal at the next opportunity (the chain no longer verifies).
    pub async fn renew_now(&self, name: &str) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "UPDATE acme_names SET renew_at = now(), updated_at = now()
             WHERE name = $1 AND (renew_at IS NULL OR renew_at > now())",
            &[&name],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Names this issuer manages whose domain is no longer attached and verified (removed,
    /// or back to unverified): their certificates must stop being served. A suspended tenant's
    /// names are kept (the tenant may come back; re-ordering would spend the budget).
    pub async fn detached(&self, wildcard: Option<&str>) -> DbResult<Vec<String>> {
        let conn = self.pool.get().await.map_err(db)?;
        let rows = conn
            .query(
                "SELECT a.name FROM acme_names a
                 WHERE a.name IS DISTINCT FROM $1
                   AND NOT EXISTS (SELECT 1 FROM tenant_domains d
                                   WHERE d.domain = a.name AND d.status IN ('verified', 'active'))
                   AND (a.lease_until IS NULL OR a.lease_until < now())",
                &[&wildcard],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Forgets a detached name's ACME state.
    pub async fn forget(&self, name: &str) -> DbResult<()> {
        let conn = self.pool.get().await.map_err(db)?;
        conn.execute(
            "DELETE FROM acme_names WHERE name = $1 AND (lease_until IS NULL OR lease_until < now())",
            &[&name],
        )
        .await
        .map_err(db)?;
        Ok(())
    }
}

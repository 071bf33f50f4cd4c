//! One name's way to a certificate: lease → re-check → budget → order (HTTP-01) → store.
//!
//! The order of steps is the point (Caddy/certmagic's lessons): the lease makes one instance
//! the issuer of a name across the cluster; re-checking the store *after* taking it means an
//! instance that lost the race finds the winner's certificate and orders nothing; the budgets
//! are counted from the shared order log before anything reaches the CA; every failure sets
//! the next attempt (doubling backoff, never sooner than the CA's `Retry-After`); repeated
//! failed validations pause the name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};
use rustls_pki_types::CertificateDer;
use tenant_config::certs::CertStore;
use tenant_config::config::AcmeConfig;
use tenant_config::TenantId;

use super::account::{is_unknown_account, Accounts};
use super::dns01::{record_name, Dns01Provider};
use super::names::{NameRow, Names, Outcome};
use super::queue::Reason;
use super::{schedule, trust};

/// The part of a name's lease an order may not use: kept for storing the certificate (an ARI
/// lookup, bounded by the client's request timeout, and the database writes) and releasing
/// the lease.
const LEASE_RESERVE: Duration = Duration::from_secs(30);

/// Why an order did not produce a certificate.
#[derive(Debug)]
pub enum Failure {
    /// The CA refused a validation.
    Invalid(String),
    /// The CA's rate limit.
    RateLimited(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    fn outcome(&self) -> Outcome {
        match self {
            Failure::Invalid(_) => Outcome::Invalid,
            Failure::RateLimited(_) => Outcome::RateLimited,
            Failure::Other(_) => Outcome::Failed,
        }
    }

    fn text(&self) -> &str {
        match self {
            Failure::Invalid(t) | Failure::RateLimited(t) | Failure::Other(t) => t,
        }
    }
}

/// Problem types that mean "the CA could not validate the name" (RFC 8555 §6.7).
const VALIDATION_PROBLEMS: &[&str] = &[
    "unauthorized",
    "connection",
    "dns",
    "incorrectResponse",
    "caa",
    "tls",
    "rejectedIdentifier",
];

fn classify(e: instant_acme::Error) -> Failure {
    if let instant_acme::Error::Api(p) = &e {
        let kind = p
            .r#type
            .as_deref()
            .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
            .unwrap_or("");
        let text = cut(&p.to_string());
        if kind == "rateLimited" {
            return Failure::RateLimited(text);
        }
        if VALIDATION_PROBLEMS.contains(&kind) {
            return Failure::Invalid(text);
        }
        return Failure::Other(text);
    }
    Failure::Other(cut(&e.to_string()))
}

/// Errors are shown to admins and stored: kept short.
fn cut(s: &str) -> String {
    s.chars().take(500).collect()
}

/// What an order produced.
struct Issued {
    chain_pem: String,
    key_pem: String,
}

/// Issues and renews certificates.
pub struct Issuer {
    /// Per-name state.
    pub names: Names,
    /// The ACME account.
    pub accounts: Accounts,
    /// Where certificates go (and every router learns of them by NOTIFY).
    pub store: CertStore,
    /// Settings.
    pub config: AcmeConfig,
    /// DNS-01 publisher and the wildcard it serves (`*.<base>`), when `acme.dns01` is set.
    pub wildcard: Option<(String, Arc<dyn Dns01Provider>)>,
}

/// The `acme_orders` row of the order in progress, once the CA has created it.
#[derive(Default)]
struct OrderLog(std::sync::Mutex<Option<i64>>);

impl OrderLog {
    fn set(&self, id: i64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    fn get(&self) -> Option<i64> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Issuer {
    /// Works on `name`: orders, renews, reschedules or does nothing. Logs its own failures.
    pub async fn process(&self, name: &str, reason: Reason) {
        let row = match self
            .names
            .take_lease(name, Duration::from_secs(self.config.lease_secs))
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => {
                tracing::debug!(name, "another instance is issuing this name");
                return;
            }
            Err(e) => {
                tracing::warn!(name, error = %e, "ACME: cannot take the lease");
                return;
            }
        };
        if let Err(e) = self.leased(name, &row, reason).await {
            tracing::warn!(name, error = %e, "ACME: gave up on this name for now");
            let _ = self.names.release(name).await;
        }
    }

    async fn leased(&self, name: &str, row: &NameRow, reason: Reason) -> Result<(), String> {
        let now = Utc::now();
        let tenant = if self.is_wildcard(name) {
            None
        } else {
            let Some(tenant) = self.names.verified_tenant(name).await? else {
                // Removed or unverified since it was queued: never order for it.
                return self.names.release(name).await;
            };
            Some(tenant)
        };
        let waiting = [row.paused_until, row.next_attempt_at]
            .into_iter()
            .flatten()
            .any(|t| t > now);
        if waiting {
            return self.names.release(name).await;
        }
        // Re-check the store now that we hold the lease: another instance may just have
        // finished this very name.
        let current = self.store.load_one(name).await.map_err(|e| e.to_string())?;
        let mut old_leaf = None;
        // A renewal forced because the stored chain no longer verifies (a new test CA root,
        // a distrusted root) is not held back by the per-name budget.
        let mut untrusted = false;
        let mut expires = None;
        if let Some(cert) = &current {
            let chain = trust::chain_ders(&cert.chain_pem)?;
            let roots = trust::trusted_roots(self.config.trusted_roots_file.as_deref())?;
            let info = trust::leaf_info(&chain[0])?;
            expires = Some(info.not_after);
            let trusted = match trust::verifies(&chain, name, &roots) {
                Ok(()) => true,
                // Issued under a root we did not trust even then (a staging CA without its
                // roots file): ordering again would only bring the same root.
                Err(_) if self.names.last_issue_trusted(name).await? == Some(false) => true,
                Err(e) => {
                    tracing::info!(name, error = %e, "stored certificate no longer verifies to a trusted root; renewing");
                    untrusted = true;
                    false
                }
            };
            if trusted {
                let (renew_at, ari_until) = self.renewal_point(&chain[0], &info, row).await;
                if renew_at > now {
                    return self.names.schedule(name, renew_at, ari_until).await;
                }
            }
            old_leaf = chain.into_iter().next();
        }
        let c = &self.config;
        if let Some(until) = self
            .names
            .budget_blocks(
                name,
                (
                    c.name_budget,
                    Duration::from_secs(c.name_budget_window_secs),
                ),
                (
                    c.global_budget,
                    Duration::from_secs(c.global_budget_window_secs),
                ),
                untrusted,
            )
            .await?
        {
            // Never wait for a budget past the day before the certificate in service expires:
            // the CA's own limits (429 with Retry-After, then backoff) are the last word.
            let expiring = expires.is_some_and(|e| until > e - chrono::Duration::days(1));
            if !expiring {
                metrics::counter!("router_acme_budget_deferred_total").increment(1);
                tracing::info!(name, until = %until, "ACME order budget reached; deferring");
                return self
                    .names
                    .postpone(name, until, "order budget reached; waiting")
                    .await;
            }
            tracing::warn!(name, until = %until, "ACME order budget reached, but the certificate expires first; ordering");
        }
        let renewal = old_leaf.is_some();
        let kind = if renewal { "renew" } else { "issue" };
        self.names.begin_work(name, renewal).await?;
        // Set once the CA has created the order (what the global budget counts).
        let order_id = OrderLog::default();
        let started = Instant::now();
        tracing::info!(name, kind, reason = ?reason, "ACME order started");
        // The order as a whole ends before the lease does, leaving room to store the result:
        // no second instance takes the name over while this one still talks to the CA (the
        // configuration guarantees the two polls fit; this bounds the rest too).
        let within = Duration::from_secs(c.lease_secs).saturating_sub(LEASE_RESERVE);
        let result = tokio::time::timeout(
            within,
            self.order(name, renewal, old_leaf.as_ref(), &order_id),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Other(format!(
                "order abandoned after {} s, before its {} s lease ran out",
                within.as_secs(),
                c.lease_secs
            )))
        });
        let stored = match result {
            Ok(issued) => self.store_issued(name, tenant, &issued, row).await,
            Err(f) => Err(f),
        };
        let order_id = order_id.get();
        metrics::histogram!("router_acme_order_duration_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        match stored {
            Ok(trusted) => {
                metrics::counter!("router_acme_orders_total", "kind" => kind, "outcome" => "issued")
                    .increment(1);
                tracing::info!(name, kind, trusted, "certificate issued and stored");
                // Noted when the new chain does not verify to our roots (a staging CA without
                // its roots file), so the trust check does not order it again and again.
                let note = (!trusted).then_some("issued under a root this router does not trust");
                match order_id {
                    Some(id) => self.names.finish_order(id, Outcome::Issued, note).await,
                    None => Ok(()),
                }
            }
            Err(f) => {
                let outcome = f.outcome();
                metrics::counter!("router_acme_orders_total", "kind" => kind, "outcome" => outcome.as_str())
                    .increment(1);
                let failures = u32::try_from(row.failures).unwrap_or(0) + 1;
                let retry_after = self.accounts.retry_after.take();
                let delay = schedule::backoff(
                    failures,
                    Duration::from_secs(c.backoff_min_secs),
                    Duration::from_secs(c.backoff_max_secs),
                    retry_after,
                    &mut rand::rng(),
                );
                let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                let validation = matches!(f, Failure::Invalid(_));
                let failed_validations =
                    u32::try_from(row.failed_validations).unwrap_or(0) + u32::from(validation);
                let pause = (validation && failed_validations >= c.max_failed_validations)
                    .then(|| now + chrono::Duration::seconds(c.pause_secs as i64));
                tracing::warn!(
                    name,
                    kind,
                    outcome = outcome.as_str(),
                    error = f.text(),
                    retry_in_secs = delay.as_secs(),
                    paused = pause.is_some(),
                    "ACME order failed"
                );
                self.names
                    .failed(name, f.text(), validation, renewal, next, pause)
                    .await?;
                match order_id {
                    Some(id) => self.names.finish_order(id, outcome, Some(f.text())).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Checks the new chain, stores it (NOTIFY reaches every router) and schedules renewal;
    /// whether the chain verifies to the trusted roots.
    async fn store_issued(
        &self,
        name: &str,
        tenant: Option<uuid::Uuid>,
        issued: &Issued,
        row: &NameRow,
    ) -> Result<bool, Failure> {
        let chain = trust::chain_ders(&issued.chain_pem).map_err(Failure::Other)?;
        let trusted = trust::trusted_roots(self.config.trusted_roots_file.as_deref())
            .map(|roots| trust::verifies(&chain, name, &roots).is_ok())
            .unwrap_or(false);
        let info = trust::leaf_info(&chain[0]).map_err(Failure::Other)?;
        let fresh = NameRow {
            renew_at: None,
            ari_checked_until: None,
            ..row.clone()
        };
        let (renew_at, ari_until) = self.renewal_point(&chain[0], &info, &fresh).await;
        self.store
            .put_issued(
                name,
                tenant.map(TenantId),
                &issued.chain_pem,
                &issued.key_pem,
                info.not_before,
                info.not_after,
                renew_at,
            )
            .await
            .map_err(|e| Failure::Other(e.to_string()))?;
        self.names
            .issued(name, renew_at, ari_until)
            .await
            .map_err(Failure::Other)?;
        Ok(trusted)
    }

    /// Whether `name` is the configured base-domain wildcard (ordered by DNS-01, no tenant).
    pub fn is_wildcard(&self, name: &str) -> bool {
        self.wildcard.as_ref().is_some_and(|(w, _)| w == name)
    }

    /// When to renew the certificate whose leaf is `leaf`: ARI's window when the CA offers it
    /// (asked again once its `Retry-After` has passed), else the row's point, else two thirds
    /// of the lifetime.
    async fn renewal_point(
        &self,
        leaf: &CertificateDer<'static>,
        info: &trust::LeafInfo,
        row: &NameRow,
    ) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let now = Utc::now();
        if let (Some(at), Some(until)) = (row.renew_at, row.ari_checked_until) {
            if until > now {
                return (at, Some(until));
            }
        }
        if let Ok(handle) = self.accounts.get().await {
            match super::ari::window(&handle.account, leaf).await {
                Ok(Some(w)) => {
                    let at = schedule::in_window(w.start, w.end, now, &mut rand::rng());
                    let ask_again = w
                        .retry_after
                        .clamp(Duration::from_secs(60), Duration::from_secs(86_400));
                    let until = now + chrono::Duration::from_std(ask_again).unwrap_or_default();
                    return (at, Some(until));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(error = %e, "ARI renewal window unavailable; using the lifetime rule")
                }
            }
        }
        let at = row
            .renew_at
            .unwrap_or_else(|| schedule::two_thirds(info.not_before, info.not_after));
        (at, None)
    }

    /// Places the order, re-registering once if the CA forgot our account; `log` gets the
    /// `acme_orders` row once the CA has created the order.
    async fn order(
        &self,
        name: &str,
        renewal: bool,
        old_leaf: Option<&CertificateDer<'static>>,
        log: &OrderLog,
    ) -> Result<Issued, Failure> {
        let mut handle = self.accounts.get().await.map_err(Failure::Other)?;
        let mut replaced = false;
        loop {
            match self
                .order_once(&handle.account, name, renewal, old_leaf, log)
                .await
            {
                Err(OnceError::Acme(e)) if is_unknown_account(&e) && !replaced => {
                    handle = self
                        .accounts
                        .replace(&handle)
                        .await
                        .map_err(Failure::Other)?;
                    replaced = true;
                }
                Err(OnceError::Acme(e)) => return Err(classify(e)),
                Err(OnceError::Failure(f)) => return Err(f),
                Ok(issued) => return Ok(issued),
            }
        }
    }

    async fn order_once(
        &self,
        account: &Account,
        name: &str,
        renewal: bool,
        old_leaf: Option<&CertificateDer<'static>>,
        log: &OrderLog,
    ) -> Result<Issued, OnceError> {
        let ids = [Identifier::Dns(name.to_owned())];
        let mut new = NewOrder::new(&ids);
        // A profile only when the directory advertises it (instant-acme refuses otherwise).
        if let Some(p) = self.config.profile.as_deref() {
            if account.profiles().any(|m| m.name == p) {
                new = new.profile(p);
            }
        }
        // `replaces` only when the directory has ARI (instant-acme refuses otherwise).
        let replaces = match old_leaf {
            Some(leaf) => match super::ari::window(account, leaf).await {
                Ok(Some(_)) => CertificateIdentifier::try_from(leaf).ok(),
                _ => None,
            },
            None => None,
        };
        if let Some(r) = replaces {
            new = new.replaces(r);
        }
        let mut order = account.new_order(&new).await?;
        let id = self
            .names
            .log_order(name, renewal)
            .await
            .map_err(|e| OnceError::Failure(Failure::Other(e)))?;
        log.set(id);
        let mut tokens: Vec<String> = Vec::new();
        let mut txt: Vec<(String, String)> = Vec::new();
        let ttl = Duration::from_secs(self.config.order_timeout_secs + 60);
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(Duration::from_secs(self.config.order_timeout_secs));
        let outcome: Result<Issued, OnceError> = async {
            let mut authzs = order.authorizations();
            while let Some(a) = authzs.next().await {
                let mut a = a?;
                match a.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(OnceError::Failure(Failure::Invalid(format!(
                            "authorization is {other:?}"
                        ))))
                    }
                }
                if let Some((_, dns)) = self.wildcard.as_ref().filter(|(w, _)| w == name) {
                    let mut ch = a.challenge(ChallengeType::Dns01).ok_or_else(|| {
                        OnceError::Failure(Failure::Other(
                            "the CA offered no dns-01 challenge".into(),
                        ))
                    })?;
                    let value = ch.key_authorization().dns_value();
                    let fqdn = record_name(name);
                    dns.publish(&fqdn, &value)
                        .await
                        .map_err(|e| OnceError::Failure(Failure::Other(e)))?;
                    txt.push((fqdn, value));
                    ch.set_ready().await?;
                    continue;
                }
                let mut ch = a.challenge(ChallengeType::Http01).ok_or_else(|| {
                    OnceError::Failure(Failure::Other("the CA offered no http-01 challenge".into()))
                })?;
                let token = ch.token.clone();
                let ka = ch.key_authorization();
                self.names
                    .put_challenge(&token, name, ka.as_str(), ttl)
                    .await
                    .map_err(|e| OnceError::Failure(Failure::Other(e)))?;
                tokens.push(token);
                ch.set_ready().await?;
            }
            let status = order.poll_ready(&retry).await?;
            if status != OrderStatus::Ready {
                let why = order
                    .state()
                    .error
                    .as_ref()
                    .map_or_else(|| format!("order is {status:?}"), |p| p.to_string());
                return Err(OnceError::Failure(Failure::Invalid(cut(&why))));
            }
            let key_pem = order.finalize().await?;
            let chain_pem = order.poll_certificate(&retry).await?;
            Ok(Issued { chain_pem, key_pem })
        }
        .await;
        if !tokens.is_empty() {
            if let Err(e) = self.names.drop_challenges(&tokens).await {
                tracing::debug!(error = %e, "challenge rows left to expire");
            }
        }
        if let Some((_, dns)) = &self.wildcard {
            for (fqdn, value) in &txt {
                if let Err(e) = dns.remove(fqdn, value).await {
                    tracing::warn!(record = %fqdn, error = %e, "DNS-01 record left behind");
                }
            }
        }
        outcome
    }
}

enum OnceError {
    Acme(instant_acme::Error),
    Failure(Failure),
}

impl From<instant_acme::Error> for OnceError {
    fn from(e: instant_acme::Error) -> Self {
        OnceError::Acme(e)
    }
}

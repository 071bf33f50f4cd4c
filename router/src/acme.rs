//! ACME: certificates for verified custom domains, ordered and renewed in the background by
//! whichever router instance gets to a name first, and never for anyone else's name.
//!
//! How a name gets a certificate:
//! - **Verified** (`NOTIFY domain_verified`, migration 0012) or found by the periodic scan
//!   (every `acme.check_interval_secs`, jittered) → queued.
//! - **Handshake for a name without a certificate**: the TLS resolver calls [`Acme::on_missing`]
//!   (through a channel, never waiting); [`policy::Gate`] lets only names the in-memory tenant
//!   cache holds as verified domains of served tenants through, before any database access.
//! - The bounded, deduplicated [`queue`] feeds `acme.concurrency` workers running
//!   [`issue::Issuer::process`]: lease (one issuer per name across instances) → re-check the
//!   store → budgets → HTTP-01 order with the answer in PostgreSQL ([`challenge`], served by
//!   `respond/acme.rs` on every instance) → `CertStore::put_issued` (NOTIFY to every router).
//! - Nothing is ordered, and the scan does not start, until the plain HTTP listener accepts
//!   connections ([`start_when_listening`]): the CA's HTTP-01 validation arrives there.
//! - Renewal at a random point of ARI's window ([`ari`]) or two thirds of the lifetime
//!   ([`schedule`]), and at once when the stored chain stops verifying ([`trust`]).
//!
//! Module map: [`account`] (registration, sealed credentials), [`client`] (HTTP client that
//! keeps `Retry-After`) [`names`] (leases, budgets, status rows) and [`dns01`] (DNS-01
//! providers for the base-domain wildcard: RFC 2136 with TSIG, Route 53).

pub mod account;
pub mod ari;
pub mod challenge;
pub mod client;
pub mod dns01;
pub mod issue;
pub mod names;
pub mod policy;
pub mod queue;
pub mod schedule;
pub mod trust;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tenant_config::certs::CertStore;
use tenant_config::config::{AcmeConfig, RouterConfig, Secret};
use tenant_config::db::listen::{ListenEvent, ListenStream};
use tenant_config::db::Pool;
use tenant_config::HostRules;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::cache::TenantCache;
use challenge::Answers;
use policy::Gate;
use queue::{Queue, Reason};

/// The channel migration 0012's trigger notifies when a domain becomes verified.
pub const VERIFIED_CHANNEL: &str = "domain_verified";

/// Names found due per scan at most (the rest wait for the next scan).
const SCAN_LIMIT: i64 = 1_000;

/// The running ACME service.
pub struct Acme {
    gate: Gate,
    queue: Queue,
}

impl Acme {
    /// A handshake arrived for `sni` and no certificate matched: queue it if, and only if, the
    /// in-memory tenant data says it is a verified domain of a served tenant. Never waits.
    pub fn on_missing(&self, sni: &str) {
        if let Ok(name) = self.gate.check(sni) {
            self.queue.push(&name, Reason::Handshake);
        }
    }

    /// A sender for the TLS resolver's missing-certificate hook: names sent here go through
    /// [`Acme::on_missing`] on a task of `runtime`.
    pub fn missing_sender(self: &Arc<Self>, runtime: &Handle) -> mpsc::Sender<String> {
        let (tx, mut rx) = mpsc::channel::<String>(1_024);
        let me = self.clone();
        runtime.spawn(async move {
            while let Some(name) = rx.recv().await {
                me.on_missing(&name);
            }
        });
        tx
    }
}

/// Longest wait for the plain HTTP listener before the first scan and order go ahead anyway.
const LISTEN_WAIT: Duration = Duration::from_secs(30);

/// Starts the service on `runtime`: workers, the verification listener and the scan, at once.
pub fn start(
    runtime: &Handle,
    config: &AcmeConfig,
    database_url: &Secret,
    pool: Pool,
    store: CertStore,
    rules: HostRules,
    cache: TenantCache,
) -> Result<Arc<Acme>, String> {
    start_when_listening(
        runtime,
        config,
        database_url,
        pool,
        store,
        rules,
        cache,
        None,
    )
}

/// [`start`], but no name is ordered (and the first scan does not run) until `http_listen`
/// accepts connections, waiting at most [`LISTEN_WAIT`].
///
/// Why: the service starts before Pingora binds its listeners. An order placed in that gap
/// has the CA's HTTP-01 validation refused at the door; that counts as a failed validation
/// and backs the name off, so a fresh start would serve the fallback certificate for a
/// minute or more for nothing.
#[allow(clippy::too_many_arguments)]
pub fn start_when_listening(
    runtime: &Handle,
    config: &AcmeConfig,
    database_url: &Secret,
    pool: Pool,
    store: CertStore,
    rules: HostRules,
    cache: TenantCache,
    http_listen: Option<SocketAddr>,
) -> Result<Arc<Acme>, String> {
    describe_metrics();
    let (ready_tx, ready) = watch::channel(http_listen.is_none());
    if let Some(addr) = http_listen {
        runtime.spawn(async move {
            wait_listening(addr).await;
            let _ = ready_tx.send(true);
        });
    }
    let names = names::Names::new(pool.clone());
    let accounts = account::Accounts::new(pool, store.seal_key().clone(), config.clone())?;
    let wildcard = match &config.dns01 {
        Some(d) => Some((format!("*.{}", rules.base()), dns01::from_config(d)?)),
        None => None,
    };
    let issuer = Arc::new(issue::Issuer {
        names,
        accounts,
        store,
        config: config.clone(),
        wildcard,
    });
    let (queue, mut rx) = queue::queue(config.queue_capacity);
    let acme = Arc::new(Acme {
        gate: Gate::new(rules, cache),
        queue: queue.clone(),
    });

    let workers = Arc::new(Semaphore::new(config.concurrency));
    let work = issuer.clone();
    // Names this instance is working on: a name queued again meanwhile is skipped here (the
    // lease would refuse it anyway, at the cost of a query).
    let in_flight = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let mut workers_ready = ready.clone();
    runtime.spawn(async move {
        let _ = workers_ready.wait_for(|r| *r).await;
        while let Some((name, reason)) = rx.next().await {
            let fresh = in_flight
                .lock()
                .map(|mut s| s.insert(name.clone()))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let Ok(permit) = workers.clone().acquire_owned().await else {
                return;
            };
            let issuer = work.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                issuer.process(&name, reason).await;
                if let Ok(mut s) = in_flight.lock() {
                    s.remove(&name);
                }
                drop(permit);
            });
        }
    });

    let (scan_now, scan_rx) = mpsc::channel::<()>(1);
    runtime.spawn(listen_verified(
        database_url.clone(),
        queue.clone(),
        scan_now,
    ));
    runtime.spawn(scan_loop(
        issuer,
        queue,
        Duration::from_secs(config.check_interval_secs),
        scan_rx,
        ready,
    ));
    tracing::info!(directory = %config.directory_url, "ACME issuance on");
    Ok(acme)
}

/// `LISTEN domain_verified`: a newly verified name is queued at once. After a (re)connect the
/// scan runs, since notifications sent meanwhile are lost.
async fn listen_verified(url: Secret, queue: Queue, scan_now: mpsc::Sender<()>) {
    let target = match tenant_config::db::tls::PgTarget::parse(url.expose()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "database.url cannot be used for LISTEN; verified domains wait for the scan");
            return;
        }
    };
    let mut events = ListenStream::new(target, &[VERIFIED_CHANNEL], "domain verification");
    loop {
        match events.next().await {
            ListenEvent::Connected | ListenEvent::Reconnected => {
                let _ = scan_now.try_send(());
            }
            ListenEvent::Notification { payload, .. } => {
                // The payload comes from our own trigger; still only a plausible name is queued.
                if tenant_config::certs::store::check_name(&payload).is_ok()
                    && !payload.starts_with("*.")
                {
                    queue.push(&payload, Reason::New);
                }
            }
        }
    }
}

/// Every (jittered) interval, or when asked: queue names due for issuance or renewal, and
/// those whose stored chain no longer verifies to a trusted root.
async fn scan_loop(
    issuer: Arc<issue::Issuer>,
    queue: Queue,
    interval: Duration,
    mut scan_now: mpsc::Receiver<()>,
    mut ready: watch::Receiver<bool>,
) {
    let _ = ready.wait_for(|r| *r).await;
    loop {
        scan_once(&issuer, &queue).await;
        let wait = schedule::jittered(interval, &mut rand::rng());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = scan_now.recv() => {}
        }
    }
}

/// Waits (at most [`LISTEN_WAIT`]) until a TCP connection to `addr` succeeds; an unspecified
/// address (`0.0.0.0`, `::`) is probed on the loopback of its family. Returns whether it did.
pub async fn wait_listening(addr: SocketAddr) -> bool {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    };
    let started = tokio::time::Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(target),
        )
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            tracing::debug!(%target, "HTTP listener accepts; ACME issuance starts");
            return true;
        }
        if started.elapsed() >= LISTEN_WAIT {
            tracing::warn!(%target, "HTTP listener not accepting after {} s; ACME issuance starts anyway", LISTEN_WAIT.as_secs());
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scan_once(issuer: &issue::Issuer, queue: &Queue) {
    // The wildcard is looked at every scan; the worker orders only when it is due.
    if let Some((wildcard, _)) = &issuer.wildcard {
        queue.push(wildcard, Reason::Renewal);
    }
    match issuer.names.due(SCAN_LIMIT).await {
        Ok(due) => {
            for (name, has_cert) in due {
                let reason = if has_cert {
                    Reason::Renewal
                } else {
                    Reason::New
                };
                queue.push(&name, reason);
            }
        }
        Err(e) => tracing::warn!(error = %e, "ACME scan failed"),
    }
    // Certificates of names that were removed (or unverified) stop being served.
    let wildcard = issuer.wildcard.as_ref().map(|(w, _)| w.as_str());
    match issuer.names.detached(wildcard).await {
        Ok(names) => {
            for name in names {
                match issuer.store.remove(&name).await {
                    Ok(_) => {
                        tracing::info!(name, "domain no longer verified; certificate removed");
                        let _ = issuer.names.forget(&name).await;
                    }
                    Err(e) => {
                        tracing::warn!(name, error = %e, "could not remove a detached certificate")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "ACME detached-name check failed"),
    }
    let roots = match trust::trusted_roots(issuer.config.trusted_roots_file.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "ACME: trusted roots unreadable; chain check skipped");
            return;
        }
    };
    match issuer.names.managed_chains().await {
        Ok(chains) => {
            for (name, pem) in chains {
                let ok = trust::chain_ders(&pem).and_then(|c| trust::verifies(&c, &name, &roots));
                if let Err(e) = ok {
                    tracing::info!(name, error = %e, "certificate no longer verifies; queued for renewal");
                    if issuer.names.renew_now(&name).await.is_ok() {
                        queue.push(&name, Reason::Renewal);
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "ACME chain check failed"),
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "router_acme_orders_total",
        "ACME orders by kind (issue, renew) and outcome (issued, invalid, rate_limited, failed)"
    );
    metrics::describe_counter!(
        "router_acme_refused_names_total",
        "Names a certificate was not ordered for (SNI not a verified tenant domain), by reason"
    );
    metrics::describe_counter!(
        "router_acme_queue_dropped_total",
        "Names not queued because the issuance queue was full"
    );
    metrics::describe_counter!(
        "router_acme_budget_deferred_total",
        "Orders deferred because the per-name or global order budget was used up"
    );
    metrics::describe_counter!(
        "router_acme_accounts_registered_total",
        "ACME accounts registered (again after the CA forgot one)"
    );
    metrics::describe_histogram!(
        "router_acme_order_duration_seconds",
        "Seconds from placing an order to storing its certificate or giving up"
    );
}

/// The pool ACME uses (leases, challenges, accounts): small, since it serves background work
/// and challenge lookups only. Must run inside a Tokio runtime.
pub fn pool(config: &RouterConfig) -> Result<Option<Pool>, String> {
    let Some(db) = &config.database else {
        return Ok(None);
    };
    tenant_config::db::pool_for_url(&db.url, 4, db.connect_timeout_ms)
        .map(Some)
        .map_err(|e| format!("ACME database pool: {e}"))
}

/// HTTP-01 answers for the proxy, whenever there is a database: even an instance that orders
/// nothing itself answers challenges another instance published.
pub fn challenge_answers(config: &RouterConfig) -> Result<Option<Arc<Answers>>, String> {
    Ok(pool(config)?.map(|p| Arc::new(Answers::new(p))))
}

/// Starts issuance when `acme.enabled` (on `runtime`), and hooks it into the TLS resolver's
/// missing-certificate callback. Certificates go through the TLS side's store, so ACME needs
/// what the store needs: `listen.https`, `database.url` and `tls.encryption_key`.
pub fn start_from_config(
    runtime: &Handle,
    config: &RouterConfig,
    tls: Option<&crate::tls::TlsRuntime>,
    cache: &TenantCache,
) -> Result<Option<Arc<Acme>>, String> {
    if !config.acme.enabled {
        return Ok(None);
    }
    let (Some(db), Some(tls)) = (&config.database, tls) else {
        return Err("acme.enabled: ACME needs database.url and listen.https".into());
    };
    let Some(store) = tls.store.clone() else {
        return Err(
            "acme.enabled: ACME needs tls.encryption_key (CERT_ENCRYPTION_KEY) to seal keys".into(),
        );
    };
    let rules = config.domain.rules().map_err(|e| e.to_string())?;
    let pool = pool(config)?.ok_or("acme.enabled: ACME needs database.url")?;
    // HTTP-01 validations arrive on the plain listener: nothing is ordered before it accepts.
    let acme = start_when_listening(
        runtime,
        &config.acme,
        &db.url,
        pool,
        store,
        rules,
        cache.clone(),
        Some(config.listen.http),
    )?;
    tls.resolver.set_on_missing(acme.missing_sender(runtime));
    Ok(Some(acme))
}

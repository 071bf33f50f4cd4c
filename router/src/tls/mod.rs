//! The TLS listener (`listen.https`): certificates per SNI from the cluster-shared store,
//! session tickets every instance can open, HTTP/2 and HTTP/1.1 by ALPN.
//!
//! # Why our own accept step
//!
//! Pingora 0.9.1's TLS listeners are configured through `TlsSettings`, which takes a
//! certificate resolver but no session ticketer: with it there are no tickets, only a small
//! per-listener session cache, so a client that comes back through a balancer to another
//! instance never resumes. `Acceptor::from_server_config` would take our `ServerConfig` but
//! hides the rustls connection afterwards, so resumed and full handshakes could not be told
//! apart. So the TLS port is an ordinary **TCP** endpoint of a Pingora listening service
//! (keeping Pingora's accept loop, graceful-upgrade socket hand-over and shutdown), and its
//! application ([`accept::TlsApp`]) does the handshake itself with `tokio-rustls` and our
//! `ServerConfig` — resolver ([`resolver`]), ticketer ([`ticketer`]), ALPN, TLS 1.2/1.3 only —
//! then hands the stream, wrapped as Pingora's `IO` ([`accept::TlsConn`]: TLS digest for
//! `ctx.tls`, ALPN for HTTP/2), to the same application the plain listener runs. Both
//! listeners share that application (per-address connection cap included).
//!
//! # Certificates
//!
//! Start-up loads every issued certificate from PostgreSQL (streamed, parsed one at a time)
//! into an in-memory map, then `LISTEN certificates_changed` replaces one name per
//! notification (and reloads everything after a lost session). Operator certificates from
//! files and the fallback (a file, or self-signed ECDSA P-256 made at start) are loaded once.
//! `resolve()` never touches the database ([`resolver`]).
//!
//! Policy: TLS 1.3 and 1.2 only; aws-lc-rs' suites (AES-GCM and ChaCha20-Poly1305 with ECDHE,
//! nothing else); no 0-RTT; the server's suite order.

pub mod accept;
pub mod certs;
pub mod resolver;
pub mod ticketer;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use tenant_config::certs::tickets::{self, rotate_and_load};
use tenant_config::certs::CertStore;
use tenant_config::config::RouterConfig;
use tenant_config::db::listen::{ListenEvent, ListenStream};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

pub use accept::{Shared, TlsApp};
pub use resolver::{CertMap, CertResolver, Entry};
pub use ticketer::Ticketer;

/// How long start-up waits for the first full certificate load before serving with what it
/// has (operator certificates and the fallback); the load goes on in the background.
const START_LOAD_WAIT: Duration = Duration::from_secs(10);

/// Everything the TLS listener needs, built once at start.
pub struct TlsRuntime {
    /// The certificate map; the ACME side hooks `set_on_missing` here.
    pub resolver: Arc<CertResolver>,
    /// The certificate store (with a database and `tls.encryption_key`).
    pub store: Option<CertStore>,
    /// The shared-key ticketer.
    pub ticketer: Arc<Ticketer>,
    /// The rustls configuration the listener accepts with.
    pub server_config: Arc<ServerConfig>,
    /// Longest handshake.
    pub handshake_timeout: Duration,
}

/// The crypto provider for the listener: aws-lc-rs, as the process default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the TLS runtime when `listen.https` is set: operator certificates, the fallback, the
/// store's first load and the ticket keys (waiting at most [`START_LOAD_WAIT`] for the
/// database), and starts the background sync on `helper`.
pub fn start(config: &RouterConfig, helper: &Runtime) -> Result<Option<TlsRuntime>, String> {
    if config.listen.https.is_none() {
        return Ok(None);
    }
    let tls = &config.tls;
    let provider = provider();
    let mut operator = CertMap::default();
    for files in &tls.operator_certificates {
        let (chain, key) = files.read()?;
        let (names, not_after) = certs::names_and_expiry(&chain[0])?;
        if names.is_empty() {
            return Err(format!(
                "tls.operator_certificates: {} names no DNS subjectAltName",
                files.cert_file.display()
            ));
        }
        let key = certs::certified(&provider, chain, key).map_err(|e| {
            format!(
                "tls.operator_certificates: {}: {e}",
                files.cert_file.display()
            )
        })?;
        for n in names {
            operator.insert(
                &n,
                Entry {
                    key: key.clone(),
                    not_after,
                },
            );
        }
    }
    let fallback = match &tls.fallback_certificate {
        Some(files) => {
            let (chain, key) = files.read()?;
            certs::certified(&provider, chain, key)
                .map_err(|e| format!("tls.fallback_certificate: {e}"))?
        }
        None => certs::self_signed_fallback(&provider)?,
    };
    let resolver = Arc::new(CertResolver::new(operator.clone(), fallback));
    let seal = tls.seal_key().map_err(|e| e.to_string())?.map(Arc::new);
    let store = match (&config.database, seal) {
        (Some(db), Some(seal)) => {
            let pool = tenant_config::db::pool_for_url(&db.url, 2, db.connect_timeout_ms)
                .map_err(|e| e.to_string())?;
            Some(CertStore::new(pool, seal))
        }
        _ => None,
    };
    let ticketer = Arc::new(match &store {
        Some(_) => Ticketer::new(tls.ticket_lifetime_secs),
        None => Ticketer::local(tls.ticket_lifetime_secs)?,
    });
    if let Some(store) = &store {
        let (ready_tx, ready_rx) = oneshot::channel();
        let target = tenant_config::db::tls::PgTarget::parse(
            config
                .database
                .as_ref()
                .map(|d| d.url.expose())
                .unwrap_or_default(),
        )?;
        let rotation = Rotation::from_config(config);
        helper.spawn(sync(
            target,
            store.clone(),
            resolver.clone(),
            Arc::new(operator),
            provider.clone(),
            ticketer.clone(),
            rotation,
            ready_tx,
        ));
        helper.spawn(rotate_forever(store.clone(), ticketer.clone(), rotation));
        match helper.block_on(tokio::time::timeout(START_LOAD_WAIT, ready_rx)) {
            Ok(Ok(())) => {}
            _ => tracing::warn!(
                "certificates not loaded within {START_LOAD_WAIT:?}; serving operator and fallback certificates until the database answers"
            ),
        }
    }
    let res = resolver.clone();
    helper.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            expiry_gauge(&res);
        }
    });
    expiry_gauge(&resolver);

    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    sc.ticketer = ticketer.clone();
    sc.ignore_client_order = true;
    sc.max_early_data_size = 0;
    Ok(Some(TlsRuntime {
        resolver,
        store,
        ticketer,
        server_config: Arc::new(sc),
        handshake_timeout: Duration::from_millis(tls.handshake_timeout_ms),
    }))
}

/// Seconds to the earliest expiry among the served certificates (fallback excluded) and how
/// many there are.
fn expiry_gauge(resolver: &CertResolver) {
    let map = resolver.snapshot();
    metrics::gauge!("router_tls_certificates").set(map.len() as f64);
    if let Some(t) = map.earliest_expiry() {
        let now = chrono::Utc::now().timestamp();
        metrics::gauge!("router_tls_earliest_expiry_seconds").set((t - now) as f64);
    }
}

/// Ticket-key rotation timing, from `[tls]`.
#[derive(Debug, Clone, Copy)]
struct Rotation {
    period: Duration,
    lifetime: Duration,
    /// How often each instance checks (and reloads without a notification).
    check: Duration,
    /// Delay between writing a key and encrypting with it: two checks, so even an instance
    /// whose LISTEN session is down has loaded the key before anyone encrypts with it.
    lead: Duration,
}

impl Rotation {
    fn from_config(config: &RouterConfig) -> Self {
        let period = Duration::from_secs(config.tls.ticket_rotation_secs);
        let check = (period / 10).min(Duration::from_secs(60));
        Self {
            period,
            lifetime: Duration::from_secs(config.tls.ticket_lifetime_secs),
            check,
            lead: check * 2,
        }
    }
}

async fn load_tickets(store: &CertStore, ticketer: &Ticketer, r: Rotation) -> bool {
    match rotate_and_load(store.pool(), store.seal_key(), r.period, r.lifetime, r.lead).await {
        Ok(ring) => {
            if ring.rotated {
                metrics::counter!("router_tls_ticket_key_rotations_total").increment(1);
                tracing::info!(keys = ring.keys.len(), "session-ticket key rotated");
            }
            metrics::gauge!("router_tls_ticket_keys").set(ring.keys.len() as f64);
            ticketer.set_keys(&ring.keys);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "session-ticket keys not loaded");
            false
        }
    }
}

async fn rotate_forever(store: CertStore, ticketer: Arc<Ticketer>, r: Rotation) {
    loop {
        // A little jitter keeps instances started together from checking together.
        let jitter = Duration::from_millis(u64::from(rand_u16()) % 5_000);
        tokio::time::sleep(r.check + jitter).await;
        load_tickets(&store, &ticketer, r).await;
    }
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u16::from_le_bytes(b)
}

/// Loads every stored certificate over the operator ones.
async fn full_load(
    store: &CertStore,
    operator: &CertMap,
    provider: &CryptoProvider,
) -> Result<CertMap, String> {
    let started = std::time::Instant::now();
    let mut map = operator.clone();
    let mut bad = 0usize;
    let stats = store
        .for_each_issued(|c| match certs::from_stored(provider, &c) {
            Ok(l) => map.insert(
                &c.domain,
                Entry {
                    key: l.key,
                    not_after: l.not_after,
                },
            ),
            Err(e) => {
                bad += 1;
                tracing::error!(domain = %c.domain, error = %e, "stored certificate skipped");
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    metrics::gauge!("router_tls_load_seconds").set(took.as_secs_f64());
    tracing::info!(
        certificates = stats.loaded,
        unreadable = stats.unreadable + bad,
        took_ms = took.as_millis() as u64,
        "certificates loaded"
    );
    Ok(map)
}

/// One name changed: load it again (or fall back to the operator's certificate, or drop it).
async fn reload_one(
    store: &CertStore,
    resolver: &CertResolver,
    operator: &CertMap,
    provider: &CryptoProvider,
    name: &str,
) {
    match store.load_one(name).await {
        Ok(Some(c)) => match certs::from_stored(provider, &c) {
            Ok(l) => {
                resolver.update(
                    name,
                    Some(Entry {
                        key: l.key,
                        not_after: l.not_after,
                    }),
                );
                tracing::info!(domain = name, "certificate swapped in");
            }
            Err(e) => {
                tracing::error!(domain = name, error = %e, "new certificate refused; the previous one stays")
            }
        },
        Ok(None) => {
            let op = match name.strip_prefix("*.") {
                Some(p) => operator.wildcard.get(p),
                None => operator.exact.get(name),
            };
            resolver.update(name, op.cloned());
        }
        Err(e) => tracing::warn!(domain = name, error = %e, "certificate not reloaded"),
    }
    expiry_gauge(resolver);
}

/// `LISTEN certificates_changed` and `tls_ticket_keys_changed`: a full load on every
/// (re)connect, then one name per notification.
#[allow(clippy::too_many_arguments)]
async fn sync(
    target: tenant_config::db::tls::PgTarget,
    store: CertStore,
    resolver: Arc<CertResolver>,
    operator: Arc<CertMap>,
    provider: Arc<CryptoProvider>,
    ticketer: Arc<Ticketer>,
    rotation: Rotation,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut changes = ListenStream::new(
        target,
        &[tenant_config::certs::CHANNEL, tickets::CHANNEL],
        "certificates",
    );
    loop {
        match changes.next().await {
            ListenEvent::Connected | ListenEvent::Reconnected => {
                let mut wait = Duration::from_millis(250);
                loop {
                    match full_load(&store, &operator, &provider).await {
                        Ok(map) => {
                            resolver.replace(map);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "certificates not loaded; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                load_tickets(&store, &ticketer, rotation).await;
                expiry_gauge(&resolver);
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            ListenEvent::Notification { channel, payload } => {
                if channel == tickets::CHANNEL {
                    load_tickets(&store, &ticketer, rotation).await;
                } else if tenant_config::certs::store::check_name(&payload).is_ok() {
                    reload_one(&store, &resolver, &operator, &provider, &payload).await;
                } else {
                    tracing::warn!("unreadable certificates_changed payload; reloading all");
                    if let Ok(map) = full_load(&store, &operator, &provider).await {
                        resolver.replace(map);
                    }
                }
            }
        }
    }
}

//! Assembles the Pingora server from configuration: the proxy service, the admin (metrics)
//! service, health-check services, and the helper runtime for database work.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use pingora::proxy::http_proxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server};
use pingora::services::listening::Service;
use tenant_config::config::RouterConfig;
use tenant_config::edge::EdgeSigner;
use tenant_config::store::StaticTenantStore;
use tokio::runtime::Runtime;

use crate::access_log::AccessLog;
use crate::cache::TenantCache;
use crate::connection::{ConnectionLimits, EdgeApp};
use crate::ctx::RequestIds;
use crate::headers::HeaderPolicy;
use crate::limits::Limiter;
use crate::metrics::{AdminApp, Metrics};
use crate::proxy::{EdgeProxy, ProxySettings};
use crate::resolve::Resolver;
use crate::respond::hygiene::HeadLimits;
use crate::store;
use crate::upstream::Pool;

/// How `serve` was asked to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartMode {
    /// Take the listening sockets over from a running instance (graceful upgrade).
    pub upgrade: bool,
}

/// Builds everything and runs until shutdown.
///
/// `static_tenants`: the static tenant file as the command line read it (`None` on
/// PostgreSQL).
pub fn run(
    config: RouterConfig,
    mode: StartMode,
    static_tenants: Option<StaticTenantStore>,
) -> Result<(), String> {
    // Database pool, LISTEN task and metrics upkeep live on a small runtime of their own:
    // Pingora gives each service its own runtime, and the pool needs one from the start.
    let helper = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("router-helper")
        .enable_all()
        .build()
        .map_err(|e| format!("helper runtime: {e}"))?;
    let guard = helper.enter();

    let rules = config.domain.rules().map_err(|e| e.to_string())?;
    let cache = TenantCache::new(store::from_config(&config, static_tenants)?, &config.cache);
    let metrics = Metrics::install()?;
    let access_log = config
        .access_log
        .then(tenant_config::runtime::log_writer)
        .flatten()
        .map(|w| Arc::new(AccessLog::new(w)));
    let inflight = Arc::new(AtomicI64::new(0));
    let limiter = Limiter::new(&config.rate_limits, config.redis.as_ref())?.map(Arc::new);
    if let Some(probe) = limiter
        .as_ref()
        .and_then(|l| l.background(Duration::from_millis(config.rate_limits.breaker_probe_ms)))
    {
        helper.spawn(probe);
    }
    spawn_helpers(&helper, &config, &cache, &metrics, access_log.clone());

    let mut server = pingora_server(&config, mode);
    let u = &config.upstreams;
    let (platform, platform_hc) = Pool::new("platform", &u.platform, u)?;
    let (workers, workers_hc) = Pool::new("workers", &u.workers, u)?;
    let proxy = EdgeProxy {
        resolver: Resolver::new(rules, cache.clone()),
        platform: platform.clone(),
        workers: workers.clone(),
        headers: HeaderPolicy::from_config(&config)?,
        signer: EdgeSigner::new(config.edge.signing_secret.expose().as_bytes()),
        metrics: metrics.clone(),
        settings: proxy_settings(&config)?,
        ids: RequestIds::new(),
        inflight: inflight.clone(),
        access_log: access_log.clone(),
        limiter: limiter.clone(),
        challenges: crate::acme::challenge_answers(&config)?,
    };
    // Pingora's proxy behind the connection rules (header deadline, per-address cap,
    // pipelining, half-close): `connection.rs`.
    let edge_app = Arc::new(EdgeApp::new(
        http_proxy(&server.configuration, proxy),
        connection_limits(&config),
        metrics.clone(),
        access_log.clone(),
    ));
    let mut proxy_service =
        Service::new("router proxy".into(), crate::tls::Shared(edge_app.clone()));
    proxy_service.add_tcp(&config.listen.http.to_string());
    // The TLS listener (`listen.https`): certificates are loaded here, before serving;
    // the same application behind our handshake (tls/mod.rs says why not TlsSettings).
    let tls = crate::tls::start(&config, &helper)?;
    // ACME issuance and renewal (`[acme]`), fed by the resolver's missing-certificate hook.
    let _acme = crate::acme::start_from_config(helper.handle(), &config, tls.as_ref(), &cache)?;
    let tls_service = tls.as_ref().zip(config.listen.https).map(|(t, addr)| {
        let app = crate::tls::TlsApp::new(
            edge_app.clone(),
            t.server_config.clone(),
            t.handshake_timeout,
        );
        let mut service = Service::new("router tls".into(), app);
        service.add_tcp(&addr.to_string());
        service
    });
    let mut admin = Service::new(
        "router admin".into(),
        AdminApp {
            metrics,
            pools: vec![platform, workers],
            cache,
            limiter,
        },
    );
    admin.add_tcp(&config.listen.metrics.to_string());
    crate::operator::mark_start();
    server.add_service(proxy_service);
    if let Some(service) = tls_service {
        server.add_service(service);
    }
    server.add_service(admin);
    server.add_service(platform_hc);
    server.add_service(workers_hc);

    helper.spawn(drain_then_exit(
        server.watch_execution_phase(),
        inflight,
        access_log,
        Duration::from_secs(config.lifecycle.shutdown_timeout_secs),
    ));
    tracing::info!(listen = %config.listen.http, https = ?config.listen.https, metrics = %config.listen.metrics, upgrade = mode.upgrade, "router starting");
    drop(guard);
    server.run(RunArgs::default());
    // Keep the helper runtime (pool, listener) alive until the server has drained.
    drop(helper);
    Ok(())
}

/// The helper runtime's background work: tenant-change notifications (with a database),
/// histogram upkeep, and the access log's flusher.
fn spawn_helpers(
    helper: &Runtime,
    config: &RouterConfig,
    cache: &TenantCache,
    metrics: &Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
) {
    if let Some(db) = &config.database {
        helper.spawn(crate::notify::listen(db.url.clone(), cache.clone()));
    }
    let m = metrics.clone();
    helper.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            m.upkeep();
        }
    });
    if let Some(log) = access_log {
        helper.spawn(async move {
            let mut tick = tokio::time::interval(crate::access_log::FLUSH_INTERVAL);
            loop {
                tick.tick().await;
                log.flush();
            }
        });
    }
}

/// The Pingora server, bootstrapped: threads, timers, shutdown and upgrade settings.
fn pingora_server(config: &RouterConfig, mode: StartMode) -> Server {
    let mut conf = ServerConf::default();
    let life = &config.lifecycle;
    conf.threads = life.threads;
    conf.work_stealing = life.work_stealing;
    // Upstream connect/read/idle timeouts of a second and more on Tokio's timer rather than
    // Pingora's shared timer wheel. With the default `work_stealing = false` each proxy thread
    // runs its own single-threaded runtime, so Tokio's timer is per thread and uncontended
    // (docs/benchmarks.md has the comparison).
    conf.fast_timeout_to_tokio_threshold_seconds = Some(0);
    // Pingora keeps serving in-flight requests for the grace period, then drops whatever is
    // left; `drain_then_exit` ends the wait as soon as nothing is in flight.
    conf.grace_period_seconds = Some(life.shutdown_timeout_secs);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    conf.upgrade_sock = life.upgrade_sock.clone();
    conf.pid_file = life.pid_file.clone();
    conf.max_retries = config.upstreams.connect_retries as usize + 1;
    let opt = Opt {
        upgrade: mode.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    server
}

fn connection_limits(config: &RouterConfig) -> ConnectionLimits {
    let c = &config.client_limits;
    ConnectionLimits {
        header_timeout: Duration::from_secs(c.client_header_timeout_secs),
        keepalive_timeout: Duration::from_secs(c.keepalive_timeout_secs),
        max_per_ip: c.max_connections_per_ip,
        pipelining: c.pipelining,
    }
}

fn proxy_settings(config: &RouterConfig) -> Result<ProxySettings, String> {
    let u = &config.upstreams;
    let c = &config.client_limits;
    let buffers = c.header_buffers().map_err(|e| e.to_string())?;
    Ok(ProxySettings {
        head_limits: HeadLimits {
            line: buffers.size,
            total: buffers.total(),
            fields: c.max_header_fields,
        },
        client_body_timeout: Duration::from_secs(c.client_body_timeout_secs),
        redirect_http_to_https: config.listen.redirect_http_to_https,
        public_https_port: config.tls.public_https_port,
        connect_timeout: Duration::from_millis(u.connect_timeout_ms),
        read_timeout: Duration::from_millis(u.read_timeout_ms),
        keepalive_idle: Duration::from_secs(u.keepalive_idle_secs),
        websocket_idle: Duration::from_secs(u.websocket_idle_secs),
        connect_retries: u.connect_retries as usize,
        compression_level: config
            .compression
            .enabled
            .then_some(config.compression.level),
    })
}

/// Once Pingora enters its shutdown grace period (after SIGTERM, or after handing the sockets to
/// a new instance on SIGQUIT), waits until no request is in flight, at most `limit`, then exits.
/// Without this the process would always sit out the whole grace period.
async fn drain_then_exit(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    inflight: Arc<AtomicI64>,
    access_log: Option<Arc<AccessLog>>,
    limit: Duration,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match phases.recv().await {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut left = inflight.load(std::sync::atomic::Ordering::Relaxed);
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = inflight.load(std::sync::atomic::Ordering::Relaxed);
    }
    tracing::info!(abandoned = left.max(0), "drained, exiting");
    if let Some(log) = access_log {
        log.flush();
    }
    tenant_config::runtime::flush_logs();
    std::process::exit(0);
}

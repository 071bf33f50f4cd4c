//! The one `ProxyHttp` implementation: a hook per concern.
//!
//! - `request_filter`: request id, client address, HTTPS redirect, the router's health paths,
//!   tenant resolution and the answers the router gives itself (redirect, 403, 503).
//! - `upstream_peer`: pool choice (`/api/cron/*` on apex/admin → workers) and least-connections
//!   selection.
//! - `upstream_request_filter`: header hygiene and the signed tenant context.
//! - `fail_to_connect` / `error_while_proxy`: passive failure marking and retries.
//! - `response_filter`: security headers, `Cache-Control` rules.
//! - `fail_to_proxy`: branded error pages.
//! - `logging`: metrics and one JSON access-log line.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;
use tenant_config::edge::{EdgeContext, EdgeSigner};
use tenant_config::host::canonical_host;

use crate::access_log::AccessLog;
use crate::cache::{Outcome, TenantEntry};
use crate::compression::LazyCompression;
use crate::headers::{
    client_ip, is_well_formed_request_id, with_plain_request, HeaderPolicy, FORWARDED_HOST,
    FORWARDED_PROTO, ORIGINAL_HOST, REAL_IP, REQUEST_ID, ROUTE, SIGNATURE, TENANT_ID, TENANT_SLUG,
    XFF,
};
use crate::metrics::{Metrics, RouteLabel};
use crate::pages;
use crate::resolve::{Decision, Resolver, RouteKind};
use crate::text;
use crate::upstream::{InFlight, Pool};

/// Settings the proxy reads on every request, fixed at start.
pub struct ProxySettings {
    /// Plain HTTP answers with a redirect to HTTPS.
    pub redirect_http_to_https: bool,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Read timeout for ordinary requests.
    pub read_timeout: Duration,
    /// Idle time before a pooled upstream connection is closed.
    pub keepalive_idle: Duration,
    /// Idle timeout of upgraded connections.
    pub websocket_idle: Duration,
    /// Extra instances tried on connect failure (idempotent requests).
    pub connect_retries: usize,
    /// Compression level, or `None` when disabled.
    pub compression_level: Option<u32>,
    /// Emit one access-log line per request.
    pub access_log: bool,
}

/// The edge proxy.
pub struct EdgeProxy {
    resolver: Resolver,
    platform: Arc<Pool>,
    workers: Arc<Pool>,
    headers: HeaderPolicy,
    signer: EdgeSigner,
    metrics: Arc<Metrics>,
    settings: ProxySettings,
    id_prefix: String,
    id_counter: AtomicU64,
    inflight: Arc<AtomicI64>,
    access_log: Option<Arc<AccessLog>>,
}

/// Which pool a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolChoice {
    Platform,
    Workers,
}

/// The request's host in canonical form (see [`RequestCtx::host_norm`]).
enum CanonicalHost {
    /// Not a valid host name.
    Invalid,
    /// Exactly the bytes the client sent: nothing copied.
    AsSent,
    /// Differs from what was sent (case, port, trailing dot, IDNA).
    Normalized(String),
}

/// Per-request state, shared across the hooks.
pub struct RequestCtx {
    start: Instant,
    /// `x-request-id`: the client's own when well formed (shared with the parsed request, so
    /// no copy), else one generated here. Always ASCII.
    request_id: HeaderValue,
    /// Host as the client sent it (shared with the parsed request).
    host: HeaderValue,
    /// The host in canonical form, worked out once per request.
    host_norm: CanonicalHost,
    route: RouteLabel,
    tenant: Option<Arc<TenantEntry>>,
    pool: PoolChoice,
    client_ip: Option<IpAddr>,
    trusted_peer: bool,
    tls: bool,
    websocket: bool,
    upstream: Option<InFlight>,
    failed: Vec<SocketAddr>,
    upstream_start: Option<Instant>,
    upstream_header: Option<Duration>,
    /// Status of a response the router wrote itself.
    status: u16,
}

impl EdgeProxy {
    /// Assembles the proxy.
    pub fn new(
        resolver: Resolver,
        platform: Arc<Pool>,
        workers: Arc<Pool>,
        headers: HeaderPolicy,
        signer: EdgeSigner,
        metrics: Arc<Metrics>,
        settings: ProxySettings,
    ) -> Self {
        let settings_access_log = settings.access_log;
        // A random per-process prefix plus a counter: unique ids without a syscall per request.
        let id_prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            resolver,
            platform,
            workers,
            headers,
            signer,
            metrics,
            settings,
            id_prefix,
            id_counter: AtomicU64::new(0),
            inflight: Arc::new(AtomicI64::new(0)),
            access_log: if settings_access_log {
                tenant_config::runtime::log_writer().map(|w| Arc::new(AccessLog::new(w)))
            } else {
                None
            },
        }
    }

    /// The batched access log, for the flusher and shutdown (`None` when disabled).
    pub fn access_log_handle(&self) -> Option<Arc<AccessLog>> {
        self.access_log.clone()
    }

    /// Requests currently being handled; shutdown waits for this to reach zero.
    pub fn inflight_handle(&self) -> Arc<AtomicI64> {
        self.inflight.clone()
    }

    fn new_request_id(&self) -> HeaderValue {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        request_id_value(&self.id_prefix, n)
    }

    fn pool(&self, choice: PoolChoice) -> &Pool {
        match choice {
            PoolChoice::Platform => &self.platform,
            PoolChoice::Workers => &self.workers,
        }
    }

    /// Handles the request without proxying when the router answers it itself. Returns the
    /// status written, or `None` to proxy.
    ///
    /// `early` is the answer of the cached-subdomain lookup made before normalisation, if it
    /// hit.
    async fn answer_locally(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        early: Option<Decision>,
    ) -> Result<Option<u16>> {
        let path = session.req_header().uri.path();
        let is_health = path == "/health" || path == "/ready";
        // The router's own health path, for load balancers that probe by IP address.
        if is_health && ctx.host_norm().is_none() {
            ctx.route = RouteLabel::Router;
            let ready = self.platform.usable_count() > 0;
            let (status, body) = if path == "/ready" && !ready {
                (503, r#"{"status":"no healthy platform instance"}"#)
            } else {
                (200, r#"{"status":"healthy"}"#)
            };
            pages::json(session, status, body.into(), &self.headers, &ctx.request_id).await?;
            return Ok(Some(status));
        }
        if self.settings.redirect_http_to_https && !ctx.tls {
            if path.starts_with("/.well-known/acme-challenge/") {
                // HTTP-01 answers are served here once ACME issuance is enabled.
                ctx.route = RouteLabel::Router;
                pages::error_page(session, 404, &self.headers, false, &ctx.request_id).await?;
                return Ok(Some(404));
            }
            ctx.route = RouteLabel::Redirect;
            let target = match ctx.host_norm() {
                Some(h) => {
                    let pq = session
                        .req_header()
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str());
                    format!("https://{h}{pq}")
                }
                None => format!("https://{}/", self.resolver.rules().base()),
            };
            pages::redirect(session, &target, &self.headers, false, &ctx.request_id).await?;
            return Ok(Some(308));
        }
        if path.starts_with("/api/webhooks/") {
            // Stripe calls webhooks on the apex host; the platform authenticates them itself.
            ctx.route = RouteLabel::Proxied(RouteKind::Webhook);
            return Ok(None);
        }
        let (decision, outcome) = match early {
            Some(decision) => (decision, Some(Outcome::Hit)),
            // The name as sent is the canonical one, and its cached step has just missed.
            None if ctx.host_sent_canonical() => {
                self.resolver.classify_and_look_up(ctx.host_norm()).await
            }
            None => self.resolver.resolve_normalized(ctx.host_norm()).await,
        };
        if let Some(o) = outcome {
            self.metrics.cache(o);
        }
        match decision {
            Decision::Forward { route, tenant } => {
                ctx.route = RouteLabel::Proxied(route);
                ctx.tenant = tenant;
                if matches!(route, RouteKind::Apex | RouteKind::Admin)
                    && path.starts_with("/api/cron/")
                {
                    ctx.pool = PoolChoice::Workers;
                }
                Ok(None)
            }
            Decision::Suspended(t) => {
                ctx.route = RouteLabel::Suspended;
                pages::suspended(session, &t.name, &self.headers, ctx.tls, &ctx.request_id).await?;
                Ok(Some(403))
            }
            Decision::RedirectToApex => {
                ctx.route = RouteLabel::Redirect;
                let target = format!("https://{}/", self.resolver.rules().base());
                pages::redirect(session, &target, &self.headers, ctx.tls, &ctx.request_id).await?;
                Ok(Some(308))
            }
            Decision::Unavailable => {
                ctx.route = RouteLabel::Unavailable;
                pages::error_page(session, 503, &self.headers, ctx.tls, &ctx.request_id).await?;
                Ok(Some(503))
            }
        }
    }

    /// Writes the request's access-log line. Formatted by hand (the generic `tracing` JSON
    /// formatter cost several microseconds per request in the benchmark) and batched
    /// ([`AccessLog`]) on its way to the same writer as every other log line.
    fn access_log(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        status: u16,
        total: Duration,
        error: Option<&Error>,
    ) {
        let Some(log) = &self.access_log else {
            return;
        };
        log.line(|l| Self::access_line(l, session, ctx, status, total, error));
    }

    fn access_line(
        l: &mut Vec<u8>,
        session: &Session,
        ctx: &RequestCtx,
        status: u16,
        total: Duration,
        error: Option<&Error>,
    ) {
        let req = session.req_header();
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        l.extend_from_slice(b"{\"ts_ms\":");
        text::push_u64(l, ts_ms);
        // The request id (checked or generated) and the method (an HTTP token) never need
        // escaping; what the client chose freely does.
        l.extend_from_slice(b",\"level\":\"INFO\",\"target\":\"access\",\"request_id\":\"");
        l.extend_from_slice(ctx.request_id().as_bytes());
        l.extend_from_slice(b"\",\"method\":\"");
        l.extend_from_slice(req.method.as_str().as_bytes());
        l.extend_from_slice(b"\",\"host\":");
        if ctx.host_sent_canonical() {
            // Only letters, digits, dots and hyphens: nothing to escape.
            l.push(b'"');
            l.extend_from_slice(ctx.host.as_bytes());
            l.push(b'"');
        } else {
            json_str(l, &String::from_utf8_lossy(ctx.host.as_bytes()));
        }
        l.extend_from_slice(b",\"path\":");
        json_str(l, req.uri.path());
        l.extend_from_slice(b",\"route\":\"");
        l.extend_from_slice(ctx.route.as_str().as_bytes());
        l.extend_from_slice(b"\",\"tenant\":");
        match ctx.tenant.as_deref() {
            Some(t) => json_str(l, &t.slug),
            None => l.extend_from_slice(b"null"),
        }
        match ctx.client_ip {
            Some(ip) => {
                l.extend_from_slice(b",\"client\":\"");
                text::push_ip(l, ip);
                l.push(b'"');
            }
            None => l.extend_from_slice(b",\"client\":null"),
        }
        l.extend_from_slice(b",\"status\":");
        text::push_u64(l, u64::from(status));
        l.extend_from_slice(b",\"bytes\":");
        text::push_u64(l, session.body_bytes_sent() as u64);
        l.extend_from_slice(b",\"total_ms\":");
        text::push_millis(l, total);
        match ctx.upstream_header {
            Some(d) => {
                l.extend_from_slice(b",\"upstream_ms\":");
                text::push_millis(l, d);
            }
            None => l.extend_from_slice(b",\"upstream_ms\":null"),
        }
        match &ctx.upstream {
            Some(u) => {
                l.extend_from_slice(b",\"upstream\":\"");
                l.extend_from_slice(u.addr_text().as_bytes());
                l.push(b'"');
            }
            None => l.extend_from_slice(b",\"upstream\":null"),
        }
        if let Some(e) = error {
            l.extend_from_slice(b",\"error\":\"");
            l.extend_from_slice(e.etype().as_str().as_bytes());
            l.push(b'"');
        }
        l.extend_from_slice(b"}\n");
    }

    /// Strips what the client may not send and adds the forwarding headers and the signed
    /// tenant context.
    fn add_upstream_headers(
        &self,
        session: &Session,
        h: &mut http::HeaderMap,
        ctx: &RequestCtx,
        method: &str,
        target: &str,
    ) -> Result<()> {
        h.reserve(12);
        self.headers.strip_client_headers(h, ctx.trusted_peer);
        let route = match ctx.route {
            RouteLabel::Proxied(k) => k.as_str(),
            other => other.as_str(),
        };
        let host = ctx.host_norm().unwrap_or_default();
        let tenant = ctx.tenant.as_deref();
        if let Some(ip) = ctx.client_ip {
            let ip = ip_value(ip);
            let prev = if ctx.trusted_peer {
                h.get(XFF).and_then(|v| v.to_str().ok())
            } else {
                None
            };
            let xff = match prev {
                // Only a trusted peer's header survived stripping: append the hop we saw.
                Some(prev) => {
                    let peer = session
                        .client_addr()
                        .and_then(|a| a.as_inet())
                        .map(|a| a.ip().to_string())
                        .unwrap_or_default();
                    HeaderValue::from_str(&format!("{prev}, {peer}")).unwrap_or(ip.clone())
                }
                _ => ip.clone(),
            };
            h.insert(XFF, xff);
            h.insert(REAL_IP, ip);
        }
        if !(ctx.trusted_peer && h.contains_key(FORWARDED_PROTO)) {
            let proto = if ctx.tls { "https" } else { "http" };
            h.insert(FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        // Forwarded only when it is plain visible ASCII (an invalid host never gets a tenant).
        if !(ctx.trusted_peer && h.contains_key(FORWARDED_HOST)) && ctx.host.to_str().is_ok() {
            h.insert(FORWARDED_HOST, ctx.host.clone());
        }
        h.insert(REQUEST_ID, ctx.request_id.clone());
        // Usually the client sent the host already normalised: share its bytes.
        let original = if ctx.host_sent_canonical() {
            ctx.host.clone()
        } else {
            HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static(""))
        };
        h.insert(ORIGINAL_HOST, original);
        h.insert(ROUTE, HeaderValue::from_static(route));
        if let Some(t) = tenant {
            h.insert(TENANT_ID, t.id_value.clone());
            h.insert(TENANT_SLUG, t.slug_value.clone());
        }
        let signature = self.signer.signature(
            &EdgeContext {
                request_id: ctx.request_id(),
                route,
                tenant_id: tenant.map(|t| t.id_text.as_str()),
                host,
                method,
                target,
                content_length: h
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()),
            },
            unix_now(),
        );
        let signature = HeaderValue::from_bytes(signature.as_bytes())
            .or_err(InternalError, "edge signature header")?;
        h.insert(SIGNATURE, signature);
        Ok(())
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut Vec<u8>, s: &str) {
    use std::io::Write as _;
    out.push(b'"');
    // Nearly always nothing needs escaping: copy the whole string.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

fn is_idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
    )
}

impl RequestCtx {
    /// The request id as text (ids are ASCII by construction).
    fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// Whether the client's `Host` was already the normalised name (so its bytes can be
    /// shared and need no escaping).
    fn host_sent_canonical(&self) -> bool {
        matches!(self.host_norm, CanonicalHost::AsSent)
    }

    /// The host in canonical form; `None` when it is not a valid name.
    fn host_norm(&self) -> Option<&str> {
        match &self.host_norm {
            CanonicalHost::AsSent => self.host.to_str().ok(),
            CanonicalHost::Normalized(h) => Some(h),
            CanonicalHost::Invalid => None,
        }
    }
}

/// `<prefix>-<n in hex>`, assembled by hand: `fmt` machinery costs more than the rest of the
/// id. The prefix is the 12 hex digits `EdgeProxy::new` draws (longer ones are cut to fit).
fn request_id_value(prefix: &str, n: u64) -> HeaderValue {
    let p = &prefix.as_bytes()[..prefix.len().min(47)];
    let mut buf = [0u8; 64];
    buf[..p.len()].copy_from_slice(p);
    buf[p.len()] = b'-';
    let mut len = p.len() + 1;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        buf[len + i] = b"0123456789abcdef"[nibble as usize];
    }
    len += digits;
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static(""))
}

/// A client address as a header value; IPv4 (nearly every request) by hand, for the same reason.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        // The longest IPv6 text form is 45 bytes.
        return stack_value(format_args!("{ip}"));
    };
    HeaderValue::from_bytes(text::Ipv4Text::new(v4).as_bytes())
        .unwrap_or(HeaderValue::from_static(""))
}

/// A short header value (at most 64 bytes) formatted on the stack instead of through a
/// `String`.
fn stack_value(args: std::fmt::Arguments<'_>) -> HeaderValue {
    use std::io::Write as _;
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    let _ = w.write_fmt(args);
    let len = 64 - w.len();
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static(""))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Paired with the decrement in `logging`, which pingora runs for every request.
        self.metrics.inflight(1.0);
        self.inflight.fetch_add(1, Ordering::Relaxed);
        RequestCtx {
            start: Instant::now(),
            request_id: HeaderValue::from_static(""),
            host: HeaderValue::from_static(""),
            host_norm: CanonicalHost::Invalid,
            route: RouteLabel::Router,
            tenant: None,
            pool: PoolChoice::Platform,
            client_ip: None,
            trusted_peer: false,
            tls: false,
            websocket: false,
            upstream: None,
            failed: Vec::new(),
            upstream_start: None,
            upstream_header: None,
            status: 0,
        }
    }

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if let Some(level) = self.settings.compression_level {
            modules.add_module(LazyCompression::module(level));
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // `ctx.start` was taken in `new_ctx`, right after the request head was read.
        let req = session.req_header();
        ctx.request_id = match req.headers.get(REQUEST_ID) {
            Some(v) if is_well_formed_request_id(v.as_bytes()) => v.clone(),
            _ => self.new_request_id(),
        };
        ctx.host = match req.headers.get(http::header::HOST) {
            Some(h) => h.clone(),
            // An absolute-form request line without a Host header (HTTP/1.0).
            None => req
                .uri
                .host()
                .and_then(|h| HeaderValue::from_str(h).ok())
                .unwrap_or(HeaderValue::from_static("")),
        };
        let sent = ctx.host.to_str().ok();
        // A fresh cached tenant subdomain named exactly as sent needs no normalisation: only
        // canonical names are ever cached, so the hit proves the name canonical.
        let early = sent.and_then(|h| self.resolver.cached_subdomain(h));
        ctx.host_norm = if early.is_some() {
            CanonicalHost::AsSent
        } else {
            match sent.map(canonical_host) {
                Some(Ok(Cow::Borrowed(_))) => CanonicalHost::AsSent,
                // The general path can return the name unchanged (e.g. punycode labels).
                Some(Ok(Cow::Owned(h))) if h.as_bytes() == ctx.host.as_bytes() => {
                    CanonicalHost::AsSent
                }
                Some(Ok(Cow::Owned(h))) => CanonicalHost::Normalized(h),
                Some(Err(_)) | None => CanonicalHost::Invalid,
            }
        };
        ctx.websocket = session.is_upgrade_req();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            ctx.trusted_peer = self.headers.is_trusted(peer);
            // Only a trusted peer's X-Forwarded-For is read at all.
            ctx.client_ip = Some(if ctx.trusted_peer {
                let xff = session
                    .req_header()
                    .headers
                    .get(XFF)
                    .and_then(|v| v.to_str().ok());
                client_ip(peer, xff, &self.headers)
            } else {
                peer
            });
        }
        match self.answer_locally(session, ctx, early).await? {
            Some(status) => {
                ctx.status = status;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = self.pool(ctx.pool);
        // Replacing a previous attempt's guard releases its in-flight count.
        ctx.upstream = None;
        let Some(picked) = pool.select(&ctx.failed) else {
            return Error::e_explain(HTTPStatus(503), "no usable upstream instance");
        };
        let addr = picked.addr();
        ctx.upstream = Some(picked);
        ctx.upstream_start = Some(Instant::now());
        let mut peer = HttpPeer::new(addr, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.settings.connect_timeout);
        o.read_timeout = Some(if ctx.websocket {
            self.settings.websocket_idle
        } else {
            self.settings.read_timeout
        });
        o.idle_timeout = Some(self.settings.keepalive_idle);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The signature binds the method and target as forwarded; read them before the
        // header map is borrowed.
        // (Both clones are reference-count bumps, not copies.)
        let method = req.method.clone();
        let uri = req.uri.clone();
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        with_plain_request(req, |h| {
            self.add_upstream_headers(session, h, ctx, method.as_str(), target)
        })
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(s) = ctx.upstream_start {
            ctx.upstream_header = Some(s.elapsed());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let path = session.req_header().uri.path();
        self.headers
            .decorate_response(resp, path, ctx.tls, &ctx.request_id);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.upstream_failure();
        if let Some(u) = &ctx.upstream {
            let addr = u.addr();
            self.pool(ctx.pool).record_failure(addr);
            ctx.failed.push(addr);
        }
        // Nothing reached the upstream, but only idempotent requests are retried (a policy a
        // reader of the access log can rely on).
        if is_idempotent(&session.req_header().method)
            && ctx.failed.len() <= self.settings.connect_retries
        {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if matches!(e.esource(), ErrorSource::Upstream) {
            self.metrics.upstream_failure();
            if let Some(u) = &ctx.upstream {
                self.pool(ctx.pool).record_failure(u.addr());
            }
        }
        if !is_idempotent(&session.req_header().method) || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if matches!(e.esource(), ErrorSource::Upstream) =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            if let Err(write_err) =
                pages::error_page(session, code, &self.headers, ctx.tls, &ctx.request_id).await
            {
                tracing::debug!(error = %write_err, "could not write the error page");
            }
        }
        ctx.status = code;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.metrics.inflight(-1.0);
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        let status = session
            .response_written()
            .map_or(ctx.status, |r| r.status.as_u16());
        let upstream = ctx.upstream_header.map(|d| d.as_secs_f64());
        // One clock reading for the histogram and the log line.
        let total = ctx.start.elapsed();
        self.metrics
            .request(ctx.route, status, total.as_secs_f64(), upstream);
        self.access_log(session, ctx, status, total, e);
        ctx.upstream = None;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::{ip_value, json_str, request_id_value};

    #[test]
    fn hand_formatted_values_match_display() {
        for n in [0u64, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX] {
            assert_eq!(
                request_id_value("0123456789ab", n),
                format!("0123456789ab-{n:x}").as_str()
            );
        }
        let mut ips: Vec<IpAddr> = (0..=255u8)
            .map(|o| IpAddr::V4(Ipv4Addr::new(o, 255 - o, o / 10, o % 100)))
            .collect();
        ips.push("2001:db8::1".parse().unwrap());
        ips.push("::ffff:10.0.0.1".parse().unwrap());
        for ip in ips {
            assert_eq!(ip_value(ip), ip.to_string().as_str());
        }
    }

    #[test]
    fn access_log_strings_are_escaped() {
        let mut b = Vec::new();
        json_str(&mut b, "evil\"host\\\n\u{1}ok\u{e9}");
        let s = String::from_utf8(b).unwrap();
        assert_eq!(s, "\"evil\\\"host\\\\\\u000a\\u0001ok\u{e9}\"");
        let parsed: String = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed, "evil\"host\\\n\u{1}ok\u{e9}");
    }
}

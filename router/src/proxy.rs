//! The one `ProxyHttp` implementation: an orchestrator that reads like the request's path, a
//! hook per concern.
//!
//! - `request_filter`: the context is set once ([`RequestCtx::begin`]), then the responders run
//!   in order ([`crate::respond`]): hygiene, operator paths refused, ACME challenge, HTTPS redirect,
//!   resolution, rate limit. The first that answers ends the request with its reply.
//! - `upstream_peer`: pool choice (`/api/cron/*` on apex/admin → workers) and least-connections
//!   selection.
//! - `upstream_request_filter`: header hygiene and the signed tenant context ([`crate::forward`]).
//! - `fail_to_connect` / `error_while_proxy`: passive failure marking and retries.
//! - `response_filter`: security headers, `Cache-Control` rules.
//! - `fail_to_proxy`: branded error pages (problem+json when the client prefers JSON).
//! - `logging`: metrics and one JSON access-log line.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;
use tenant_config::edge::EdgeSigner;

use crate::access_log::AccessLog;
use crate::compression::LazyCompression;
use crate::ctx::{RequestCtx, RequestIds};
use crate::headers::{with_plain_request, HeaderPolicy};
use crate::limits::Limiter;
use crate::metrics::{Metrics, RouteLabel};
use crate::resolve::Resolver;
use crate::respond::{self, Step};
use crate::upstream::{Pool, PoolChoice};
use crate::{forward, pages};

/// Settings the proxy reads on every request, fixed at start.
pub struct ProxySettings {
    /// Plain HTTP answers with a redirect to HTTPS.
    pub redirect_http_to_https: bool,
    /// Port in the redirect's `Location` (`tls.public_https_port`).
    pub public_https_port: u16,
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
    /// Request-head size limits ([`respond::hygiene`]).
    pub head_limits: respond::hygiene::HeadLimits,
    /// Longest gap between two reads of a request body (nginx `client_body_timeout`).
    pub client_body_timeout: Duration,
}

/// What the proxy works with, built by `server.rs`.
pub struct EdgeProxy {
    /// Host → route and tenant.
    pub resolver: Resolver,
    /// Platform instances.
    pub platform: Arc<Pool>,
    /// Workers instances.
    pub workers: Arc<Pool>,
    /// Header rules.
    pub headers: HeaderPolicy,
    /// Signs the tenant context.
    pub signer: EdgeSigner,
    /// Registered metrics.
    pub metrics: Arc<Metrics>,
    /// Per-request settings.
    pub settings: ProxySettings,
    /// Ids for requests that bring none.
    pub ids: RequestIds,
    /// Requests being handled; shutdown waits for this to reach zero.
    pub inflight: Arc<AtomicI64>,
    /// The batched access log (`None`: off).
    pub access_log: Option<Arc<AccessLog>>,
    /// Rate limits (`None`: off).
    pub limiter: Option<Arc<Limiter>>,
    /// HTTP-01 answers from the database (`None`: no database, every challenge is a 404).
    pub challenges: Option<Arc<crate::acme::challenge::Answers>>,
}

impl EdgeProxy {
    fn pool(&self, choice: PoolChoice) -> &Pool {
        match choice {
            PoolChoice::Platform => &self.platform,
            PoolChoice::Workers => &self.workers,
        }
    }

    /// The responders, in order; the first reply ends the request.
    async fn respond(&self, req: &RequestHeader, raw_head: &[u8], ctx: &mut RequestCtx) -> Step {
        respond::hygiene::respond(req, raw_head, ctx, &self.settings.head_limits)?;
        respond::internal::respond(req, ctx)?;
        respond::acme::respond(req, ctx, self.challenges.as_deref()).await?;
        let redirect = self.settings.redirect_http_to_https;
        let port = self.settings.public_https_port;
        respond::redirect::respond(req, ctx, redirect, port, self.resolver.rules())?;
        respond::resolution::respond(req, ctx, &self.resolver, &self.metrics).await?;
        respond::rate_limit::respond(req, ctx, self.limiter.as_deref()).await?;
        ControlFlow::Continue(())
    }
}

/// Cron endpoints on the apex and admin hosts go to the workers; everything else (tenants
/// included) to the platform.
fn pool_for(route: RouteLabel, path: &str) -> PoolChoice {
    if matches!(route, RouteLabel::Apex | RouteLabel::Admin) && path.starts_with("/api/cron/") {
        PoolChoice::Workers
    } else {
        PoolChoice::Platform
    }
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

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Paired with the decrement in `logging`, which pingora runs for every request.
        self.metrics.inflight(1.0);
        self.inflight.fetch_add(1, Ordering::Relaxed);
        RequestCtx::new()
    }

    /// Pingora calls this right after `new_ctx` with the context `connection.rs` put on the
    /// session: the head is parsed, the header deadline is met.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        signal: Box<dyn std::any::Any + Send + Sync>,
    ) {
        crate::connection::head_received(signal);
    }

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if let Some(level) = self.settings.compression_level {
            modules.add_module(LazyCompression::module(level));
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.begin(session, &self.ids, &self.headers);
        session.set_read_timeout(Some(self.settings.client_body_timeout));
        // HTTP/1 only: HTTP/2 heads have no raw form (and cannot carry these framing shapes).
        let raw_head = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes())
            .unwrap_or_default();
        match self.respond(session.req_header(), &raw_head, ctx).await {
            ControlFlow::Continue(()) => Ok(false),
            ControlFlow::Break(reply) => {
                if ctx.refusal.is_some() {
                    // The body was not read and may be a smuggled request: never reuse.
                    session.set_keepalive(None);
                }
                ctx.status = reply.status;
                reply.write(session, &self.headers, ctx).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.pool = pool_for(ctx.route, session.req_header().uri.path());
        // Replacing a previous attempt's guard releases its in-flight count.
        ctx.upstream = None;
        let Some(picked) = self.pool(ctx.pool).select(&ctx.failed) else {
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
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The signature binds the method and target as forwarded; read them before the
        // header map is borrowed (both clones are reference-count bumps, not copies).
        let method = req.method.clone();
        let uri = req.uri.clone();
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        with_plain_request(req, |h| {
            forward::upstream_headers(h, ctx, &self.headers, &self.signer, method.as_str(), target)
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
        for (name, value) in ctx.limit_headers.drain(..) {
            resp.insert_header(name, value)?;
        }
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
                    // The body stalled past `client_body_timeout` (nginx answers the same).
                    ErrorType::ReadTimedout => 408,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            if let Err(write_err) = pages::error_for(session.req_header(), code, ctx.request_id())
                .write(session, &self.headers, ctx)
                .await
            {
                tracing::debug!(error = %write_err, "could not write the error page");
            }
        }
        // A client that went away gets nothing written, and is logged with nginx's 499.
        ctx.status = if code == 0 { CLIENT_CLOSED } else { code };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// A client that closed or broke its own connection is not the router's failure: no
    /// ERROR line (the access log records it as 499 with the error), only an INFO one.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, e: &Error) -> bool {
        let client_gone = is_client_gone(e);
        if client_gone {
            tracing::info!(request_id = ctx.request_id(), error = %e, "client closed the connection");
        }
        client_gone
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
        if let Some(reason) = ctx.refusal {
            self.metrics.refused(reason);
        }
        if let Some(log) = &self.access_log {
            log.request(session, ctx, status, total, e);
        }
        ctx.upstream = None;
    }
}

/// nginx's status for a request whose client closed the connection before the answer.
pub const CLIENT_CLOSED: u16 = 499;

/// Whether `e` is the client closing or breaking its own connection.
fn is_client_gone(e: &Error) -> bool {
    matches!(e.esource(), ErrorSource::Downstream)
        && matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
        )
}

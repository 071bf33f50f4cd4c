//! The client connection around Pingora's HTTP/1 proxy: what has to be decided per
//! connection rather than per request, and what Pingora cannot decide alone.
//!
//! [`EdgeApp`] is the listening service's application. It takes each accepted connection and
//! runs Pingora's request loop itself (the same steps as Pingora's own `ServerApp` for
//! HTTP/1) so that it can add:
//!
//! - **a header deadline** (`client_header_timeout`): Pingora's read timeout is per read, so a
//!   head trickled a byte at a time never expires. Each request's work is raced against a timer
//!   of ours, which stops mattering once the head is parsed ([`head_received`], called from
//!   `on_connection_reuse`). The first request's deadline runs from the accept, a later one's from its
//!   first byte; before that first byte the connection is idle and `keepalive_timeout` applies.
//!   A connection cut off mid-head is logged (`408`, reason `header_timeout`) and counted.
//! - **a per-address connection cap** (`max_connections_per_ip`, off by default): the
//!   connection over the cap is closed at once, logged and counted (`conn_limit`). TLS
//!   connections take their slot in the TLS listener before the handshake ([`EdgeApp::admit`],
//!   `tls/accept.rs`), so pending handshakes and h2 connections count too.
//! - **pipelining and half-close** set on every session: pipelined requests are answered in
//!   order, and a client that shuts down its sending side after a complete request still gets
//!   its answer (Pingora's `abort_on_close` off).
//! - **a record of Pingora's own refusals**: heads Pingora's parser refuses are answered by
//!   Pingora (its `400`) before any hook runs; a write before the head was handed over is how
//!   they are recognised, so they are at least logged and counted (`pingora_400`).
//!
//! HTTP/2 (negotiated by ALPN on TLS) goes to Pingora's own loop unchanged.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::access_log::AccessLog;
use crate::ctx::RequestIds;
use crate::metrics::Metrics;
use crate::proxy::EdgeProxy;

/// The per-connection limits [`EdgeApp`] enforces, from `[client_limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest time to receive a whole request head.
    pub header_timeout: Duration,
    /// Longest idle wait between requests on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// Most concurrent connections per peer address; `0` is no cap.
    pub max_per_ip: u32,
    /// Answer pipelined requests in order.
    pub pipelining: bool,
}

/// The proxy service's application: Pingora's HTTP proxy behind the connection rules above.
pub struct EdgeApp {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    limits: ConnectionLimits,
    per_ip: Option<PerIp>,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
    ids: Arc<RequestIds>,
}

impl EdgeApp {
    /// Wraps `proxy` (built by `pingora::proxy::http_proxy`).
    pub fn new(
        proxy: HttpProxy<EdgeProxy>,
        limits: ConnectionLimits,
        metrics: Arc<Metrics>,
        access_log: Option<Arc<AccessLog>>,
    ) -> Self {
        Self {
            proxy: Arc::new(proxy),
            per_ip: (limits.max_per_ip > 0).then(|| PerIp::new(limits.max_per_ip)),
            limits,
            metrics,
            access_log,
            ids: Arc::new(RequestIds::new()),
        }
    }

    /// Takes a per-address slot for one more connection from `client` (no slot when there is
    /// no cap or no address). At the cap the refusal is logged and counted (`conn_limit`) and
    /// the caller closes the connection. The TLS listener calls this before the handshake, so
    /// pending handshakes count against the same cap as open connections.
    pub fn admit(&self, client: Option<IpAddr>) -> Admission {
        match (&self.per_ip, client) {
            (Some(per_ip), Some(ip)) => match per_ip.acquire(ip) {
                Some(slot) => Admission::Open(Some(ConnSlot { _slot: slot })),
                None => {
                    self.refused(client, 0, "conn_limit");
                    Admission::Refused
                }
            },
            _ => Admission::Open(None),
        }
    }

    /// Logs and counts a refusal decided on the connection (no request to hang it on).
    fn refused(&self, client: Option<IpAddr>, status: u16, reason: &'static str) {
        self.refused_as(client, status, reason, None);
    }

    /// [`EdgeApp::refused`] with the request id the client was already given, if any.
    fn refused_as(
        &self,
        client: Option<IpAddr>,
        status: u16,
        reason: &'static str,
        id: Option<String>,
    ) {
        self.metrics.refused(reason);
        if let Some(log) = &self.access_log {
            let id = id.unwrap_or_else(|| self.ids.next().to_str().unwrap_or_default().to_owned());
            log.connection_event(&id, client, status, reason);
        }
    }

    /// One request's work on the connection, raced against the header deadline.
    async fn one_request(
        self: &Arc<Self>,
        mut session: ServerSession,
        state: &Arc<ConnState>,
        timer: &mut Pin<Box<Sleep>>,
        shutdown: &ShutdownWatch,
    ) -> Outcome {
        let limits = self.limits;
        // Handed back by Pingora to `on_connection_reuse` right after `new_ctx`: the head is in.
        session.set_connection_user_context(Some(Box::new(HeadSignal(state.clone()))));
        let mut work = self.proxy.process_new_http(session, shutdown);
        // The request's work raced against the head's deadline, by hand: `select!` cost a few
        // hundred instructions per request in its bookkeeping, and the deadline's poll is one
        // load once the head is in.
        let finished = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            state
                .poll_deadline(cx, timer.as_mut(), limits)
                .map(|()| None)
        })
        .await;
        match finished {
            Some(r) if r.is_none() && state.wrote_before_head.load(Ordering::Relaxed) => {
                Outcome::PingoraRefused
            }
            Some(r) => Outcome::Done(r),
            None if state.first_byte().is_some() => Outcome::HeaderTimeout,
            None => Outcome::Idle,
        }
    }
}

enum Outcome {
    /// Pingora's loop finished the request (`Some`: the connection can take another).
    Done(Option<ReusedHttpStream>),
    /// Pingora answered before any hook ran (an unparsable head).
    PingoraRefused,
    /// The head did not arrive in time.
    HeaderTimeout,
    /// No request began within the keep-alive time.
    Idle,
}

#[async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let client = peer_ip(&stream);
        // A TLS connection was admitted by the TLS listener before its handshake and holds its
        // slot for its whole life (`tls/accept.rs`); only plain connections are counted here.
        let _slot = if stream.get_ssl_digest().is_some() {
            None
        } else {
            match self.admit(client) {
                Admission::Open(slot) => slot,
                Admission::Refused => return None,
            }
        };
        let state = Arc::new(ConnState::new());
        let watched: Stream = Box::new(Watched {
            inner: stream,
            state: state.clone(),
            ids: self.ids.clone(),
            replacement: None,
        });
        let mut session = ServerSession::new_http1(watched);
        session.set_keepalive(if *shutdown.borrow() {
            None
        } else {
            Some(self.limits.keepalive_timeout.as_secs())
        });
        session.set_pipelining_enabled(self.limits.pipelining);
        // One timer for the connection's life, armed at the first request's deadline and moved
        // only when it fires early or a head must be cut off sooner: no timer work per request.
        let mut timer = Box::pin(tokio::time::sleep(self.limits.header_timeout));
        let mut first = true;
        loop {
            session.set_abort_on_close(false);
            state.begin_request(first);
            match self
                .one_request(session, &state, &mut timer, shutdown)
                .await
            {
                Outcome::Done(Some(reused)) => {
                    let (stream, settings) = reused.consume();
                    session = ServerSession::new_http1(stream);
                    if let Some(settings) = settings {
                        settings.apply_to_session(&mut session);
                    }
                    first = false;
                }
                Outcome::Done(None) | Outcome::Idle => return None,
                Outcome::PingoraRefused => {
                    let (status, id) = state
                        .replaced
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .map_or((400, None), |(s, id)| (s, Some(id)));
                    self.refused_as(client, status, "pingora_400", id);
                    return None;
                }
                Outcome::HeaderTimeout => {
                    self.refused(client, 408, "header_timeout");
                    return None;
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// The connection's state, carried through Pingora as the session's connection user context:
/// Pingora hands it to `ProxyHttp::on_connection_reuse` right after it made the request's
/// context, that is once the head is parsed (cheaper than a task-local around every poll).
pub struct HeadSignal(Arc<ConnState>);

/// Tells the connection that the current request's head is complete, so its header deadline
/// no longer applies. Called from `on_connection_reuse` with the context [`EdgeApp`] set; any
/// other value is ignored.
pub fn head_received(signal: Box<dyn std::any::Any + Send + Sync>) {
    if let Ok(s) = signal.downcast::<HeadSignal>() {
        s.0.head_done.store(true, Ordering::Relaxed);
    }
}

/// What the connection's reads and writes tell the request loop. Everything here is touched
/// by the connection's own task only (the reads happen inside the request's work, polled by
/// the same task as the deadline), so relaxed atomics suffice and no wake-up is needed: the
/// deadline is polled right after any read that changed it.
struct ConnState {
    /// The clock the times below count from.
    base: Instant,
    /// Nanoseconds after `base` (plus one) at which the current request's first byte arrived;
    /// `0`: none yet.
    first_byte_ns: AtomicU64,
    /// Nanoseconds after `base` (plus one) at which the timer first found the connection idle
    /// for this request; `0`: not yet.
    idle_since_ns: AtomicU64,
    /// The current request's head has been parsed and handed to the proxy.
    head_done: AtomicBool,
    /// Something was written before the head was handed over: Pingora's own refusal.
    wrote_before_head: AtomicBool,
    /// The status and request id of the answer written in place of Pingora's refusal.
    replaced: Mutex<Option<(u16, String)>>,
}

impl ConnState {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            first_byte_ns: AtomicU64::new(0),
            idle_since_ns: AtomicU64::new(0),
            head_done: AtomicBool::new(false),
            wrote_before_head: AtomicBool::new(false),
            replaced: Mutex::new(None),
        }
    }

    /// Resets for the next request. The first request on a connection counts from the accept
    /// (as nginx's `client_header_timeout` does); later ones from their first byte.
    fn begin_request(&self, first: bool) {
        self.head_done.store(false, Ordering::Relaxed);
        self.wrote_before_head.store(false, Ordering::Relaxed);
        self.first_byte_ns
            .store(u64::from(first), Ordering::Relaxed);
        self.idle_since_ns.store(0, Ordering::Relaxed);
    }

    fn at(&self, stored: u64) -> Option<Instant> {
        (stored != 0).then(|| self.base + Duration::from_nanos(stored - 1))
    }

    fn stamp(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn first_byte(&self) -> Option<Instant> {
        self.at(self.first_byte_ns.load(Ordering::Relaxed))
    }

    fn on_read(&self, n: usize) {
        if n > 0 && self.first_byte_ns.load(Ordering::Relaxed) == 0 {
            self.first_byte_ns.store(self.stamp(), Ordering::Relaxed);
        }
    }

    /// Ready when the current head is overdue (or, before its first byte, the connection has
    /// idled past the keep-alive time); never once the head has arrived.
    ///
    /// The timer is moved only when it fires before anything is due (to the actual due time),
    /// or when a first byte makes the head due sooner than the timer is set for. Under steady
    /// traffic neither happens per request. The idle time is counted from when the timer first
    /// finds the connection idle, so an idle connection closes between `keepalive_timeout` and
    /// `keepalive_timeout + client_header_timeout` after its last request.
    fn poll_deadline(
        &self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        limits: ConnectionLimits,
    ) -> Poll<()> {
        loop {
            if self.head_done.load(Ordering::Relaxed) {
                return Poll::Pending;
            }
            if timer.as_mut().poll(cx).is_pending() {
                if let Some(due) = self.first_byte().map(|t| t + limits.header_timeout) {
                    if due < timer.deadline().into_std() {
                        timer.as_mut().reset(due.into());
                        continue;
                    }
                }
                return Poll::Pending;
            }
            let now = Instant::now();
            let due = match self.first_byte() {
                Some(t) => t + limits.header_timeout,
                None => {
                    if self.idle_since_ns.load(Ordering::Relaxed) == 0 {
                        self.idle_since_ns.store(self.stamp(), Ordering::Relaxed);
                    }
                    let idle = self.at(self.idle_since_ns.load(Ordering::Relaxed));
                    idle.unwrap_or(now) + limits.keepalive_timeout
                }
            };
            if now >= due {
                return Poll::Ready(());
            }
            timer.as_mut().reset(due.into());
        }
    }
}

/// The client stream with its reads and writes reported to [`ConnState`]; everything else
/// passes through, except Pingora's own refusal of a head it could not parse (written before
/// any hook of ours ran, with `Server: Pingora` and no request id): that answer is replaced by
/// the router's (same status, a request id, a short body, `Connection: close`).
struct Watched {
    inner: Stream,
    state: Arc<ConnState>,
    ids: Arc<RequestIds>,
    /// Our answer in place of Pingora's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Watched {
    /// A write before the head was handed over: Pingora's refusal. The first one is swapped
    /// for ours; ours is written out, and Pingora's bytes are reported written and dropped.
    fn poll_refusal(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.state.wrote_before_head.store(true, Ordering::Relaxed);
        if self.replacement.is_none() {
            let Some((status, ours, id)) = own_refusal(buf, &self.ids) else {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            };
            *self
                .state
                .replaced
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((status, id));
            self.replacement = Some((ours, 0));
        }
        if let Some((ours, done)) = &mut self.replacement {
            while *done < ours.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &ours[*done..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *done += n,
                    other => return other,
                }
            }
        }
        Poll::Ready(Ok(buf.len()))
    }
}

/// The router's answer for a refusal Pingora wrote (`buf` starts with its status line): the
/// same status, with a request id, as `(status, bytes, request id)`. `None` for anything that
/// is not an HTTP/1 error status line.
fn own_refusal(buf: &[u8], ids: &RequestIds) -> Option<(u16, Vec<u8>, String)> {
    let code = buf.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    let status = std::str::from_utf8(code).ok()?.parse::<u16>().ok()?;
    let phrase = http::StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())?
        .canonical_reason()
        .unwrap_or("Error");
    let id = ids.next().to_str().unwrap_or_default().to_owned();
    let body = format!("{status} {phrase}: malformed_request\nrequest id: {id}\n");
    let head = format!(
        "HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nx-request-id: {id}\r\nx-content-type-options: nosniff\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    Some((status, [head.into_bytes(), body.into_bytes()].concat(), id))
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.state.on_read(buf.filled().len() - before);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.state.head_done.load(Ordering::Relaxed) {
            return self.poll_refusal(cx, buf);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.state.head_done.load(Ordering::Relaxed) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_refusal(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Watched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The peer's IP address, when the stream is a TCP one.
pub fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
}

/// [`EdgeApp::admit`]'s answer.
pub enum Admission {
    /// Serve it, holding the slot (if one was counted) until the connection ends.
    Open(Option<ConnSlot>),
    /// Over the per-address cap: close it.
    Refused,
}

/// One connection counted against `max_connections_per_ip`; the count goes down when it is
/// dropped, so whoever holds it for the connection's life keeps the cap honest.
pub struct ConnSlot {
    _slot: Slot,
}

/// Open connections per peer address, for the cap.
struct PerIp {
    max: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl PerIp {
    fn new(max: u32) -> Self {
        Self {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the cap.
    fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            open: self.open.clone(),
        })
    }
}

/// One counted connection; released when the connection ends.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_capped_and_released() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = per_ip.acquire(a).unwrap();
        let _s2 = per_ip.acquire(a).unwrap();
        assert!(per_ip.acquire(a).is_none());
        assert!(per_ip.acquire(b).is_some());
        drop(s1);
        assert!(per_ip.acquire(a).is_some());
    }

    fn wait<'a>(
        s: &'a ConnState,
        timer: &'a mut Pin<Box<Sleep>>,
        limits: ConnectionLimits,
    ) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| s.poll_deadline(cx, timer.as_mut(), limits))
    }

    #[tokio::test]
    async fn deadline_counts_from_the_first_byte_after_idle() {
        let limits = ConnectionLimits {
            header_timeout: Duration::from_millis(50),
            keepalive_timeout: Duration::from_millis(300),
            max_per_ip: 0,
            pipelining: true,
        };
        let s = ConnState::new();
        let mut timer = Box::pin(tokio::time::sleep(limits.header_timeout));
        // First request: due at the accept plus the header time.
        s.begin_request(true);
        let start = Instant::now();
        wait(&s, &mut timer, limits).await;
        assert!(start.elapsed() < Duration::from_millis(200));
        // Idle: the keep-alive time applies (counted from when the timer finds it idle).
        s.begin_request(false);
        let start = Instant::now();
        wait(&s, &mut timer, limits).await;
        let idle = start.elapsed();
        assert!(idle >= Duration::from_millis(300), "{idle:?}");
        assert!(idle < Duration::from_millis(600), "{idle:?}");
        // A byte arrives while the timer is set far ahead: the head is due sooner.
        s.begin_request(false);
        timer
            .as_mut()
            .reset((Instant::now() + Duration::from_secs(60)).into());
        let start = Instant::now();
        s.on_read(1);
        wait(&s, &mut timer, limits).await;
        assert!(start.elapsed() < Duration::from_millis(250));
        // Once the head is in, the deadline never fires.
        s.head_done.store(true, Ordering::Relaxed);
        let fired = tokio::time::timeout(Duration::from_millis(100), wait(&s, &mut timer, limits));
        assert!(fired.await.is_err());
    }
}

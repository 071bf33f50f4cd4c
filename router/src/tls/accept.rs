//! The TLS listener's application: accept TCP through Pingora's listening service, do the
//! handshake with our rustls `ServerConfig`, hand the decrypted stream to the same
//! application the plain listener uses ([`crate::connection::EdgeApp`]).
//!
//! [`TlsConn`] is the handshaken stream as Pingora's `IO`: it reports the TLS digest (version,
//! cipher) so `ctx.tls` is set and HSTS/`X-Forwarded-Proto: https` follow, and the ALPN
//! protocol so an `h2` connection goes to Pingora's HTTP/2 loop.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use metrics::Counter;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsAcceptor;

/// Handshake counters by outcome, registered once.
struct HandshakeCounters {
    tls13_full: Counter,
    tls13_resumed: Counter,
    tls12_full: Counter,
    tls12_resumed: Counter,
    failed: Counter,
    timeout: Counter,
}

impl HandshakeCounters {
    fn new() -> Self {
        let c = |version: &'static str, kind: &'static str| metrics::counter!("router_tls_handshakes_total", "version" => version, "kind" => kind);
        Self {
            tls13_full: c("TLSv1.3", "full"),
            tls13_resumed: c("TLSv1.3", "resumed"),
            tls12_full: c("TLSv1.2", "full"),
            tls12_resumed: c("TLSv1.2", "resumed"),
            failed: c("none", "failed"),
            timeout: c("none", "timeout"),
        }
    }

    fn done(&self, version: Option<ProtocolVersion>, kind: Option<HandshakeKind>) {
        let resumed = matches!(kind, Some(HandshakeKind::Resumed));
        let c = match (version, resumed) {
            (Some(ProtocolVersion::TLSv1_3), false) => &self.tls13_full,
            (Some(ProtocolVersion::TLSv1_3), true) => &self.tls13_resumed,
            (_, false) => &self.tls12_full,
            (_, true) => &self.tls12_resumed,
        };
        c.increment(1);
    }
}

/// What the TLS listener asks of the application before it spends a handshake on a
/// connection: whether the peer may open one more (the per-address cap of
/// `[client_limits]`). Asked before the handshake because a handshake is the expensive part:
/// counting only after it would let one address hold any number of pending handshakes.
pub trait Admit {
    /// Held for the connection's whole life (handshake and requests, HTTP/1 and h2).
    type Slot: Send + 'static;
    /// A slot for one more connection from `peer`, or `None`: close it unanswered.
    fn admit_connection(&self, peer: Option<IpAddr>) -> Option<Self::Slot>;
}

impl Admit for crate::connection::EdgeApp {
    type Slot = Option<crate::connection::ConnSlot>;

    fn admit_connection(&self, peer: Option<IpAddr>) -> Option<Self::Slot> {
        match self.admit(peer) {
            crate::connection::Admission::Open(slot) => Some(slot),
            crate::connection::Admission::Refused => None,
        }
    }
}

/// The TLS listener's application: handshake, then `inner` (shared with the plain listener).
pub struct TlsApp<A> {
    inner: Arc<A>,
    acceptor: TlsAcceptor,
    timeout: Duration,
    counters: HandshakeCounters,
}

impl<A> TlsApp<A> {
    /// Serves `inner` behind TLS with `config`; handshakes slower than `timeout` are dropped.
    pub fn new(inner: Arc<A>, config: Arc<ServerConfig>, timeout: Duration) -> Self {
        Self {
            inner,
            acceptor: TlsAcceptor::from(config),
            timeout,
            counters: HandshakeCounters::new(),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Admit + Send + Sync + 'static> ServerApp for TlsApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // The per-address slot is taken before the handshake and kept until the connection
        // ends; the inner application does not count TLS connections again.
        let _slot = self
            .inner
            .admit_connection(crate::connection::peer_ip(&stream))?;
        let tls = match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.counters.failed.increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                self.counters.timeout.increment(1);
                return None;
            }
        };
        let conn = tls.get_ref().1;
        self.counters
            .done(conn.protocol_version(), conn.handshake_kind());
        let stream: Stream = Box::new(TlsConn::new(tls));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// The plain listener's application when the same [`crate::connection::EdgeApp`] also serves
/// the TLS listener: Pingora's services each own their application, so both hold an `Arc`.
pub struct Shared<A>(pub Arc<A>);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Shared<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.0.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await;
    }
}

/// A server-side TLS connection over Pingora's TCP stream, as Pingora's `IO`.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<Stream>,
    digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("version", &self.digest.version)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    fn new(inner: tokio_rustls::server::TlsStream<Stream>) -> Self {
        let conn = inner.get_ref().1;
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or_default();
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        // We offer only these two.
        let alpn = match conn.alpn_protocol() {
            Some(b"h2") => Some(ALPN::H2),
            Some(b"http/1.1") => Some(ALPN::H1),
            _ => None,
        };
        Self {
            digest: Arc::new(SslDigest::new(cipher, version, None, None, Vec::new())),
            alpn,
            inner,
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        // close_notify, then the TCP shutdown; a peer that is already gone is not an error.
        let _ = AsyncWriteExt::shutdown(&mut self.inner).await;
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().0.id()
    }
}

impl Ssl for TlsConn {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().0.get_timing_digest()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().0.get_proxy_digest()
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().0.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.get_mut().0.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for TlsConn {}

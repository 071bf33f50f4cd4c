//! A real HTTP origin for proxy tests, in-process on a free loopback port.
//!
//! - `GET /api/health` (and `/health`) answers 200 (or 503 after [`Origin::set_healthy`]`(false)`).
//! - `/ws` accepts a WebSocket and echoes every message.
//! - `/big` answers 32 KiB of compressible text.
//! - `/slow?ms=N` waits N milliseconds, then echoes.
//! - anything else echoes the request as JSON: `{"origin", "method", "path", "target", "headers"}`
//!   (`target`: path and query as received).
//!
//! [`Origin::kill`] aborts the listener and every open connection, like a crashed process.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// Builder for an [`Origin`].
#[derive(Debug, Clone)]
pub struct OriginBuilder {
    name: String,
    bind: SocketAddr,
}

/// Starts building an origin that reports `name` in its echoes.
pub fn origin(name: &str) -> OriginBuilder {
    OriginBuilder {
        name: name.into(),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

struct Shared {
    name: String,
    healthy: AtomicBool,
    requests: AtomicU64,
}

/// A running origin.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl OriginBuilder {
    /// Listens on `addr` instead of a free port on 127.0.0.1 (another loopback address, so
    /// that several origins share one port as a DNS name's addresses do).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Binds (a free port unless [`Self::bind`] said otherwise) and serves on the current
    /// Tokio runtime.
    pub async fn start(self) -> Origin {
        let listener = TcpListener::bind(self.bind).await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let shared = Arc::new(Shared {
            name: self.name,
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the task drops every one of them.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let s = s.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| handle(s.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        });
                    }
                    Some(_) = conns.join_next() => {}
                }
            }
        });
        Origin {
            addr,
            shared,
            tasks: Some(task),
        }
    }
}

impl Origin {
    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Makes `/api/health` and `/health` answer 200 (true) or 503 (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests served, health checks excluded.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection.
    pub fn kill(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.kill();
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    // `/api/health` is what the router probes by default; `/health` for older settings.
    if path == "/health" || path == "/api/health" {
        let ok = s.healthy.load(Ordering::SeqCst);
        let code = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return Ok(json(code, serde_json::json!({ "origin": s.name })));
    }
    s.requests.fetch_add(1, Ordering::SeqCst);
    if path == "/ws" {
        return Ok(websocket(req));
    }
    if path == "/big" {
        let mut r = Response::new(Full::new(Bytes::from("donate generously. ".repeat(1724))));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(r);
    }
    if path == "/slow" {
        let ms = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "origin": s.name,
            "method": req.method().as_str(),
            "path": path,
            "target": req.uri().path_and_query().map_or("", |p| p.as_str()),
            "headers": headers,
        }),
    ))
}

fn websocket(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "not a websocket" }),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

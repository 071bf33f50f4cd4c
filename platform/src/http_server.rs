//! The public HTTP/1 server: hyper's connection loop around the axum app, configured where
//! `axum::serve` cannot be.
//!
//! Why not `axum::serve`: it keeps hyper's default cap of 100 request header fields and has no
//! setting for it. The router forwards any request with up to 256 client header fields (its own
//! limit, Pingora's parser cap) and adds about a dozen of its own (forwarding, request id,
//! tenant context, signature), so behind it the platform answered an empty `431` to requests
//! the edge had accepted (above about 89 client fields). [`MAX_REQUEST_HEADERS`] leaves room for
//! both. The router has already refused heads over its size limits, so a larger count costs no
//! new exposure.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Most request header fields accepted: the router's 256 plus its own additions, with margin.
pub const MAX_REQUEST_HEADERS: usize = 300;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets every open
/// connection finish its in-flight request (idle keep-alive connections close), and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .max_headers(MAX_REQUEST_HEADERS)
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

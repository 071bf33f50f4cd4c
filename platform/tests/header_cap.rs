//! The public listener accepts every head the router forwards: up to 256 client header
//! fields (the router's cap) plus the dozen the router adds. `axum::serve` answered an empty
//! `431` above 100 fields; `http_server.rs` raises the cap.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use tenant_config::config::{MapEnv, PlatformConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status of the answer to a GET with `fields` extra header fields, on a fresh connection.
async fn status_with_fields(port: u16, fields: usize) -> u16 {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let extra: String = (0..fields).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    let req = format!(
        "GET /api/openapi.json HTTP/1.1\r\nHost: platform.test\r\n{extra}Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_head_the_router_forwards_is_accepted() {
    let db = testkit::database().await;
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef"),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(platform::serve(listener, state, async {
        let _ = stopped.await;
    }));
    // 256 client fields (the router's cap) and the router's own dozen, plus Host here.
    assert_eq!(status_with_fields(port, 256 + 12).await, 200);
    assert_eq!(status_with_fields(port, 90).await, 200);
    // Far past anything the router forwards: still refused.
    assert_eq!(status_with_fields(port, 400).await, 431);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown finished")
        .unwrap()
        .unwrap();
}

//! The router's operator listener and what its public listener refuses:
//!
//! - the operator listener answers `/health` and `/ready` in the shape every binary shares,
//!   with `Content-Length`, keeping the connection open for the next request (keep-alive
//!   honoured, `Connection: close` honoured), `HEAD` without a body;
//! - `/ready` follows the platform pool's health;
//! - `/metrics`, `/ready`, `/health` (and their other spellings) are refused on the public
//!   listener for tenant, custom-domain, apex and admin hosts and with no host, and never
//!   reach the platform; `/api/health` is forwarded to the platform's status-only answer;
//! - the router's own error pages are problem+json when the request prefers JSON;
//! - `router healthcheck` exits 0 while ready, 1 while not ready (`--live`: 0 while the
//!   process serves) and 1 with the listener gone.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
domains = ['grace-church.localhost']

[[tenant]]
slug = 'hope'
name = 'Hope'
status = 'suspended'
";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Reads one HTTP/1.1 response framed by `Content-Length` from `s`; the head (lower-cased)
/// and the body. Fails if the response has no length (it would be delimited by a close).
fn read_response(s: &mut TcpStream, head_only: bool) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed inside the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap_or_else(|| panic!("no content-length: {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

fn request(s: &mut TcpStream, method: &str, path: &str, extra: &str) {
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n"
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_listener_framing_and_health_shape() {
    let mut origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();

    // Three requests on one connection: each framed by Content-Length, the connection kept.
    let mut s = TcpStream::connect(("127.0.0.1", r.metrics_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    request(&mut s, "GET", "/health", "");
    let (head, body) = read_response(&mut s, false);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_seconds"].is_u64(), "{v}");
    assert_eq!(v["checks"]["platform"]["status"], "up", "{v}");
    assert_eq!(v["checks"]["platform"]["detail"], "1/1 usable", "{v}");
    assert!(v["checks"]["platform"]["latency_ms"].is_number(), "{v}");

    request(&mut s, "HEAD", "/metrics", "");
    let (head, _) = read_response(&mut s, true);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    request(&mut s, "GET", "/metrics", "");
    let (_, body) = read_response(&mut s, false);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("router_requests_total"), "{text}");
    // What `promtool check metrics` asks first: every family has HELP text; and the standard
    // process families are there.
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.len() > 10, "{text}");
    for family in &typed {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {family} "))),
            "{family} has no HELP text"
        );
    }
    for family in [
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(typed.contains(&family), "{family} missing: {text}");
    }
    request(&mut s, "GET", "/nope", "");
    let (head, body) = read_response(&mut s, false);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert_eq!(body, b"not found\n");

    // Connection: close is honoured: the answer, then the close.
    request(&mut s, "GET", "/ready", "Connection: close\r\n");
    let (head, body) = read_response(&mut s, false);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!body.is_empty());
    let mut rest = [0u8; 16];
    assert_eq!(
        s.read(&mut rest).unwrap(),
        0,
        "closed after Connection: close"
    );

    // /ready follows the platform pool; so does the healthcheck command.
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_router"))
            .env_clear()
            .arg("--config")
            .arg(&r.config)
            .arg("healthcheck")
            .output()
            .unwrap()
    };
    let ok = check();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    origin.set_healthy(false);
    let mut down = false;
    for _ in 0..50 {
        let resp = client().get(r.metrics_url("/ready")).send().await.unwrap();
        if resp.status() == 503 {
            let v: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(v["checks"]["platform"]["status"], "down", "{v}");
            assert_eq!(v["status"], "degraded", "other checks still up: {v}");
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(down, "/ready follows the platform's health checks");
    assert_eq!(check().status.code(), Some(1), "not ready");
    // Liveness (`--live`, for runtimes that restart unhealthy containers) still passes.
    let live = Command::new(env!("CARGO_BIN_EXE_router"))
        .env_clear()
        .arg("--config")
        .arg(&r.config)
        .args(["healthcheck", "--live"])
        .output()
        .unwrap();
    assert_eq!(
        live.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    // Liveness stays 200 while the router itself serves.
    assert_eq!(
        client()
            .get(r.metrics_url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    origin.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_fails_when_the_operator_listener_is_gone() {
    let origin = testkit::origin("platform").start().await;
    let mut r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();
    let config = r.config.clone();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_router"))
            .env_clear()
            .arg("--config")
            .arg(&config)
            .arg("healthcheck")
            .output()
            .unwrap()
    };
    let ok = check();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    r.process.signal("TERM");
    assert!(r.process.wait_exit(Duration::from_secs(15)).is_some());
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_paths_are_refused_on_every_public_host() {
    let origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();
    let hosts = [
        Some("grace.platform.test"),
        Some("grace-church.localhost"),
        Some("platform.test"),
        Some("www.platform.test"),
        Some("admin.platform.test"),
        None,
    ];
    let paths = [
        "/metrics",
        "/ready",
        "/health",
        "/healthz",
        "/metrics/",
        "//metrics",
        "/METRICS",
        "/%6detrics",
        "/x/../ready",
        "/health?full=1",
    ];
    let before = origin.requests();
    for host in hosts {
        for path in paths {
            let mut req = client().get(r.url(path));
            if let Some(h) = host {
                req = req.header("host", h);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 404, "{host:?} {path}");
            let body = resp.text().await.unwrap();
            for leak in ["router_", "latency_ms", "uptime", "usable"] {
                assert!(!body.contains(leak), "{host:?} {path} leaks {leak}: {body}");
            }
        }
    }
    assert_eq!(
        origin.requests(),
        before,
        "none of them reached the platform"
    );

    // The operator path refusal is problem+json for a JSON client.
    let resp = client()
        .get(r.url("/metrics"))
        .header("host", "grace.platform.test")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // /api/health goes to the platform's status-only answer on every host kind, also for
    // the hosts balancers and monitors send (an address, `localhost`, an unknown name).
    for host in [
        "grace.platform.test",
        "grace-church.localhost",
        "platform.test",
        "admin.platform.test",
        "127.0.0.1",
        "localhost:3001",
        "unknown.example.org",
    ] {
        let resp = client()
            .get(r.url("/api/health"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["origin"], "platform", "forwarded: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_follow_accept() {
    let mut origin = testkit::origin("platform").start().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();
    // Platform unreachable: the router's own 502.
    origin.kill();
    let get = |path: &'static str, accept: Option<&'static str>| {
        let mut req = client()
            .get(r.url(path))
            .header("host", "grace.platform.test");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
            (status, ct, id, resp.text().await.unwrap())
        }
    };
    let (status, ct, id, body) = get("/api/tenant", Some("application/json")).await;
    assert!(status == 502 || status == 503, "{status}");
    assert_eq!(ct, "application/problem+json", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], status);
    assert_eq!(v["request_id"], id.as_str());
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    // No Accept on an API path: JSON too.
    let (_, ct, _, _) = get("/api/tenant", None).await;
    assert_eq!(ct, "application/problem+json");
    // A browser gets the HTML page, on an API path as well.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (_, ct, _, body) = get("/api/tenant", Some(browser)).await;
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(body.contains("<!doctype html>"));
    let (_, ct, _, _) = get("/give", None).await;
    assert!(ct.starts_with("text/html"), "{ct}");

    // The suspended-tenant answer too, without naming the tenant in JSON.
    let resp = client()
        .get(r.url("/api/tenant"))
        .header("host", "hope.platform.test")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body = resp.text().await.unwrap();
    assert!(!body.contains("Hope"), "{body}");
}

//! The router binary end to end: real PostgreSQL, real origins on loopback, real HTTP and
//! WebSocket clients.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tenant_config::edge::{EdgeContext, EdgeSignatureError, EdgeSigner};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SEED: &str = "
    INSERT INTO tenants (slug, name, status, plan_id) VALUES
        ('grace', 'Grace Church', 'active', 'growth'),
        ('hope', 'Hope <Chapel>', 'suspended', 'starter');
    INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
        SELECT id, 'give.gracechurch.org', 'active', 't1' FROM tenants WHERE slug = 'grace';";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(r: &testkit::RouterProcess, host: &str, path: &str) -> reqwest::Response {
    client()
        .get(r.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

async fn echo(r: &testkit::RouterProcess, host: &str, path: &str) -> Value {
    let resp = get(r, host, path).await;
    assert_eq!(resp.status(), 200, "{host}{path}");
    resp.json().await.unwrap()
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"][name].as_str()
}

/// Verifies the signature the origin received with the shared verifier.
fn verify(v: &Value) -> Result<(), EdgeSignatureError> {
    let ctx = EdgeContext {
        request_id: header(v, "x-request-id").unwrap(),
        route: header(v, "x-route").unwrap(),
        tenant_id: header(v, "x-tenant-id"),
        host: header(v, "x-original-host").unwrap(),
        method: v["method"].as_str().unwrap(),
        target: v["target"].as_str().unwrap(),
        content_length: header(v, "content-length"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    EdgeSigner::new(testkit::EDGE_SECRET.as_bytes()).verify(
        header(v, "x-edge-signature").unwrap_or_default(),
        &ctx,
        now,
        30,
    )
}

struct Stack {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    platform: Vec<testkit::Origin>,
    _workers: testkit::Origin,
    router: testkit::RouterProcess,
}

async fn stack(platform_instances: usize) -> Stack {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    owner.batch_execute(SEED).await.unwrap();
    let mut platform = Vec::new();
    for i in 0..platform_instances {
        platform.push(testkit::origin(&format!("platform-{i}")).start().await);
    }
    let workers = testkit::origin("workers").start().await;
    let addrs: Vec<String> = platform.iter().map(|o| o.host_port()).collect();
    let router = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&addrs)
        .workers(&[workers.host_port()])
        .start();
    Stack {
        _db: db,
        owner,
        platform,
        _workers: workers,
        router,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_each_host_class_and_signs_the_context() {
    let s = stack(1).await;
    let r = &s.router;

    let t = echo(r, "grace.platform.test", "/give").await;
    assert_eq!(t["origin"], "platform-0");
    assert_eq!(header(&t, "x-route"), Some("tenant"));
    assert_eq!(header(&t, "x-tenant-slug"), Some("grace"));
    assert_eq!(header(&t, "x-original-host"), Some("grace.platform.test"));
    assert_eq!(verify(&t), Ok(()));
    let q = echo(
        r,
        "grace.platform.test",
        "/give/%7Eroof?fund=roof&note=a%2Fb",
    )
    .await;
    assert_eq!(
        q["target"], "/give/%7Eroof?fund=roof&note=a%2Fb",
        "path and query reach the platform byte for byte"
    );
    // "grace" is cached now; the same tenant spelled otherwise still takes normalisation
    // (the cached fast path matches only the canonical spelling) and is signed canonically.
    for spelled in ["GRACE.platform.test:8080", "grace.platform.test."] {
        let n = echo(r, spelled, "/").await;
        assert_eq!(header(&n, "x-tenant-slug"), Some("grace"), "{spelled}");
        assert_eq!(header(&n, "x-original-host"), Some("grace.platform.test"));
        assert_eq!(header(&n, "x-forwarded-host"), Some(spelled));
        assert_eq!(verify(&n), Ok(()), "{spelled}");
    }

    let c = echo(r, "Give.GraceChurch.org:8443", "/").await;
    assert_eq!(
        header(&c, "x-tenant-id"),
        header(&t, "x-tenant-id"),
        "custom domain → same tenant"
    );
    assert_eq!(verify(&c), Ok(()));

    let a = echo(r, "admin.platform.test", "/admin").await;
    assert_eq!(header(&a, "x-route"), Some("admin"));
    assert_eq!(header(&a, "x-tenant-id"), None);
    assert_eq!(verify(&a), Ok(()));

    let apex = echo(r, "www.platform.test", "/").await;
    assert_eq!(header(&apex, "x-route"), Some("apex"));

    let hook = echo(r, "platform.test", "/api/webhooks/stripe").await;
    assert_eq!(header(&hook, "x-route"), Some("webhook"));

    let cron = echo(r, "platform.test", "/api/cron/process-emails").await;
    assert_eq!(
        cron["origin"], "workers",
        "cron on the apex goes to the workers pool"
    );
    let cron_admin = echo(r, "admin.platform.test", "/api/cron/cleanup-sessions").await;
    assert_eq!(cron_admin["origin"], "workers");
    let tenant_cron = echo(r, "grace.platform.test", "/api/cron/process-emails").await;
    assert_eq!(
        tenant_cron["origin"], "platform-0",
        "tenants cannot reach the workers"
    );

    for host in [
        "nobody.platform.test",
        "unknown.example.org",
        "a.b.platform.test",
        "10.0.0.1",
        "bad host",
    ] {
        let resp = get(r, host, "/x").await;
        assert_eq!(resp.status(), 308, "{host}");
        assert_eq!(
            resp.headers()["location"],
            "https://platform.test/",
            "{host}"
        );
    }

    let suspended = get(r, "hope.platform.test", "/").await;
    assert_eq!(suspended.status(), 403);
    let body = suspended.text().await.unwrap();
    assert!(
        body.contains("Hope &lt;Chapel&gt;"),
        "name shown, escaped: {body}"
    );
    assert_eq!(
        s.platform[0].requests(),
        9,
        "redirects and 403s never reach the platform"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_headers_are_replaced_and_tampering_is_detected() {
    let s = stack(1).await;
    let resp = client()
        .get(s.router.url("/"))
        .header("host", "grace.platform.test")
        .header("x-tenant-id", "00000000-0000-0000-0000-000000000000")
        .header("x-tenant-slug", "hope")
        .header("x-edge-signature", "t=1,v1=00")
        .header("x-route", "admin")
        .header("x-forwarded-for", "203.0.113.50")
        .header("x-forwarded-host", "evil.example")
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(header(&v, "x-tenant-slug"), Some("grace"));
    assert_ne!(
        header(&v, "x-tenant-id"),
        Some("00000000-0000-0000-0000-000000000000")
    );
    assert_eq!(header(&v, "x-route"), Some("tenant"));
    assert_eq!(
        header(&v, "x-forwarded-for"),
        Some("127.0.0.1"),
        "untrusted XFF replaced"
    );
    assert_eq!(header(&v, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header(&v, "x-forwarded-host"), Some("grace.platform.test"));
    assert_eq!(header(&v, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&v, "x-request-id"),
        Some("client-chosen-id-42"),
        "well-formed id kept"
    );
    assert_eq!(verify(&v), Ok(()));

    // The same headers with one field changed no longer verify.
    let mut forged = v.clone();
    forged["headers"]["x-tenant-id"] = Value::from("00000000-0000-0000-0000-000000000001");
    assert_eq!(verify(&forged), Err(EdgeSignatureError::Mismatch));
    let mut moved = v.clone();
    moved["headers"]["x-original-host"] = Value::from("hope.platform.test");
    assert_eq!(verify(&moved), Err(EdgeSignatureError::Mismatch));
    // The signature binds the request line too: the same context on another method or path
    // does not verify.
    let mut other_method = v.clone();
    other_method["method"] = Value::from("POST");
    assert_eq!(verify(&other_method), Err(EdgeSignatureError::Mismatch));
    let mut other_path = v.clone();
    other_path["target"] = Value::from("/api/donations");
    assert_eq!(verify(&other_path), Err(EdgeSignatureError::Mismatch));

    let bad_id = client()
        .get(s.router.url("/"))
        .header("host", "grace.platform.test")
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    let v: Value = bad_id.json().await.unwrap();
    assert_ne!(header(&v, "x-request-id"), Some("bad id\twith tab"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_security_and_cache_headers_and_are_compressed() {
    let s = stack(1).await;
    let resp = get(&s.router, "grace.platform.test", "/_next/static/chunk.js").await;
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert!(h.contains_key("referrer-policy") && h.contains_key("permissions-policy"));
    assert!(
        !h.contains_key("strict-transport-security"),
        "no HSTS over plain HTTP"
    );
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert!(h.contains_key("x-request-id"));

    // `/big` on the tenant host, asking for `encoding` (or for none).
    let big_as = |encoding: Option<&'static str>| {
        let mut req = client()
            .get(s.router.url("/big"))
            .header("host", "grace.platform.test");
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        async move { req.send().await.unwrap() }
    };
    let big = big_as(Some("gzip")).await;
    assert_eq!(big.headers()["content-encoding"], "gzip");
    assert!(big.headers()["vary"]
        .to_str()
        .unwrap()
        .eq_ignore_ascii_case("accept-encoding"));
    let compressed = big.bytes().await.unwrap();
    assert!(
        compressed.len() < 4_000,
        "32 KiB of text compressed to {} bytes",
        compressed.len()
    );

    let brotli = big_as(Some("br")).await;
    assert_eq!(brotli.headers()["content-encoding"], "br");
    assert!(brotli.bytes().await.unwrap().len() < 4_000);

    // A client that accepts no encoding gets the body as the upstream sent it.
    let plain = big_as(None).await;
    assert!(!plain.headers().contains_key("content-encoding"));
    assert!(!plain.headers().contains_key("vary"));
    assert_eq!(
        plain.text().await.unwrap(),
        "donate generously. ".repeat(1724),
        "the origin's 32 KiB text, unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_passes_through() {
    let s = stack(1).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.router.port))
        .await
        .unwrap();
    let req = "ws://grace.platform.test/ws".into_client_request().unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("gift {i}"))).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), format!("gift {i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_is_ejected_and_traffic_continues() {
    let mut s = stack(2).await;
    // Both instances serve while healthy.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let v = echo(&s.router, "grace.platform.test", "/").await;
        seen.insert(v["origin"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen.len(),
        2,
        "least-connections rotates between idle instances: {seen:?}"
    );

    s.platform[0].kill();
    let started = Instant::now();
    for i in 0..60 {
        let resp = get(&s.router, "grace.platform.test", "/").await;
        assert_eq!(resp.status(), 200, "request {i} after the kill failed");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["origin"], "platform-1");
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    // The active health check notices within a few intervals.
    let mut marked = false;
    for _ in 0..50 {
        let m = client()
            .get(s.router.metrics_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dead = format!(
            "router_upstream_healthy{{pool=\"platform\",upstream=\"{}\"}} 0",
            s.platform[0].host_port()
        );
        if m.contains(&dead) {
            marked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(marked, "health check marks the killed instance down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_changes_are_seen_within_a_second() {
    let s = stack(1).await;
    assert_eq!(
        get(&s.router, "grace.platform.test", "/").await.status(),
        200
    );
    assert_eq!(
        get(&s.router, "new.platform.test", "/").await.status(),
        308,
        "unknown, cached negatively"
    );

    s.owner
        .batch_execute(
            "UPDATE tenants SET status = 'suspended' WHERE slug = 'grace';
             INSERT INTO tenants (slug, name, status) VALUES ('new', 'New Church', 'active');",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let (mut grace, mut new) = (0, 0);
    while Instant::now() < deadline {
        grace = get(&s.router, "grace.platform.test", "/")
            .await
            .status()
            .as_u16();
        new = get(&s.router, "new.platform.test", "/")
            .await
            .status()
            .as_u16();
        if grace == 403 && new == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (grace, new),
        (403, 200),
        "NOTIFY invalidated both entries within a second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_unavailable_platform() {
    let mut s = stack(1).await;
    let health = client().get(s.router.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "router health by IP host");
    let ready = client()
        .get(s.router.metrics_url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    echo(&s.router, "grace.platform.test", "/").await;
    let m = client()
        .get(s.router.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("router_requests_total{route=\"tenant\",status_class=\"2xx\"}"),
        "{m}"
    );
    assert!(m.contains("router_request_duration_seconds_bucket"));
    assert!(m.contains("router_tenant_cache_lookups_total{result=\"miss\"}"));

    s.platform[0].kill();
    let resp = get(&s.router, "grace.platform.test", "/").await;
    assert!(
        matches!(resp.status().as_u16(), 502 | 503),
        "{}",
        resp.status()
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("Temporarily unavailable"));
    assert!(
        !body.contains("127.0.0.1") && !body.to_lowercase().contains("refused"),
        "{body}"
    );
    // Access lines are written in batches at least every 200 ms.
    let mut log = s.router.process.output();
    for _ in 0..30 {
        if log.contains("\"status\":5") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = s.router.process.output();
    }
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"target\":\"access\""))
        .map(|l| serde_json::from_str(l).expect("access lines are whole JSON objects"))
        .collect();
    assert!(!lines.is_empty(), "access log lines present");
    let failed = lines
        .iter()
        .find(|l| l["status"].as_u64().is_some_and(|s| s >= 500))
        .expect("the failed request is logged");
    assert_eq!(failed["host"], "grace.platform.test");
    assert!(failed["request_id"]
        .as_str()
        .is_some_and(|id| id.len() >= 8));
    // The hand-formatted fields of a proxied request parse back to what they describe.
    let ok = lines
        .iter()
        .find(|l| l["status"] == 200 && l["route"] == "tenant")
        .expect("a proxied request is logged");
    assert_eq!(ok["tenant"], "grace");
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["method"], "GET");
    let upstream: std::net::SocketAddr = ok["upstream"].as_str().unwrap().parse().unwrap();
    assert_eq!(upstream.to_string(), s.platform[0].host_port());
    let (total, up) = (
        ok["total_ms"].as_f64().unwrap(),
        ok["upstream_ms"].as_f64().unwrap(),
    );
    assert!(total > 0.0 && up > 0.0 && up <= total, "{ok}");
    assert!(ok["bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(ok["ts_ms"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_gets_a_504_after_the_read_timeout() {
    let db = testkit::database().await;
    db.connect_as("postgres")
        .await
        .batch_execute(SEED)
        .await
        .unwrap();
    let platform = testkit::origin("platform-0").start().await;
    let workers = testkit::origin("workers").start().await;
    // One second: a timeout on Tokio's timer (the router's setting for a second and more).
    let router = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&[platform.host_port()])
        .workers(&[workers.host_port()])
        .set("upstreams", "read_timeout_ms = 1000")
        .start();
    let started = Instant::now();
    let resp = get(&router, "grace.platform.test", "/slow?ms=6000").await;
    let waited = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("Timed out"));
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    // A request within the limit still goes through.
    let ok = get(&router, "grace.platform.test", "/slow?ms=100").await;
    assert_eq!(ok.status(), 200);
}

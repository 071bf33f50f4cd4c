//! The router binary end to end: real PostgreSQL, real origins on loopback, real HTTP and
//! WebSocket clients.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tenant_config::edge::{signature_mac, EdgeContext, EdgeSignatureError, EdgeSigner};
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
        // These tests send bursts from one address; limits have their own tests.
        .set("rate_limits", "enabled = false")
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
async fn a_tenant_subdomain_is_forwarded_with_a_signed_context() {
    let s = stack(1).await;
    let t = echo(&s.router, "grace.platform.test", "/give").await;
    assert_eq!(t["origin"], "platform-0");
    assert_eq!(header(&t, "x-route"), Some("tenant"));
    assert_eq!(header(&t, "x-tenant-slug"), Some("grace"));
    assert_eq!(header(&t, "x-original-host"), Some("grace.platform.test"));
    assert_eq!(verify(&t), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_reach_the_platform_byte_for_byte() {
    let s = stack(1).await;
    let q = echo(
        &s.router,
        "grace.platform.test",
        "/give/%7Eroof?fund=roof&note=a%2Fb",
    )
    .await;
    assert_eq!(
        q["target"], "/give/%7Eroof?fund=roof&note=a%2Fb",
        "path and query reach the platform byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spellings_of_a_cached_tenant_are_signed_canonically() {
    let s = stack(1).await;
    // "grace" is cached now; the same tenant spelled otherwise still takes normalisation
    // (the cached fast path matches only the canonical spelling) and is signed canonically.
    echo(&s.router, "grace.platform.test", "/").await;
    for spelled in ["GRACE.platform.test:8080", "grace.platform.test."] {
        let n = echo(&s.router, spelled, "/").await;
        assert_eq!(header(&n, "x-tenant-slug"), Some("grace"), "{spelled}");
        assert_eq!(header(&n, "x-original-host"), Some("grace.platform.test"));
        assert_eq!(header(&n, "x-forwarded-host"), Some(spelled));
        assert_eq!(verify(&n), Ok(()), "{spelled}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_resolves_to_its_tenant() {
    let s = stack(1).await;
    let t = echo(&s.router, "grace.platform.test", "/").await;
    let c = echo(&s.router, "Give.GraceChurch.org:8443", "/").await;
    assert_eq!(
        header(&c, "x-tenant-id"),
        header(&t, "x-tenant-id"),
        "custom domain → same tenant"
    );
    assert_eq!(verify(&c), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_host_is_forwarded_without_a_tenant() {
    let s = stack(1).await;
    let a = echo(&s.router, "admin.platform.test", "/admin").await;
    assert_eq!(header(&a, "x-route"), Some("admin"));
    assert_eq!(header(&a, "x-tenant-id"), None);
    assert_eq!(verify(&a), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn www_is_the_apex() {
    let s = stack(1).await;
    let apex = echo(&s.router, "www.platform.test", "/").await;
    assert_eq!(header(&apex, "x-route"), Some("apex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_routed_without_a_tenant_lookup() {
    let s = stack(1).await;
    let hook = echo(&s.router, "platform.test", "/api/webhooks/stripe").await;
    assert_eq!(header(&hook, "x-route"), Some("webhook"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_on_the_apex_and_admin_hosts_goes_to_the_workers() {
    let s = stack(1).await;
    let cron = echo(&s.router, "platform.test", "/api/cron/process-emails").await;
    assert_eq!(
        cron["origin"], "workers",
        "cron on the apex goes to the workers pool"
    );
    let cron_admin = echo(
        &s.router,
        "admin.platform.test",
        "/api/cron/cleanup-sessions",
    )
    .await;
    assert_eq!(cron_admin["origin"], "workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_reach_the_workers() {
    let s = stack(1).await;
    let tenant_cron = echo(&s.router, "grace.platform.test", "/api/cron/process-emails").await;
    assert_eq!(
        tenant_cron["origin"], "platform-0",
        "tenants cannot reach the workers"
    );
}

const REFUSED_HOSTS: [&str; 5] = [
    "nobody.platform.test",
    "unknown.example.org",
    "a.b.platform.test",
    "10.0.0.1",
    "odd_name!.example",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_invalid_hosts_are_redirected_to_the_apex() {
    let s = stack(1).await;
    for host in REFUSED_HOSTS {
        let resp = get(&s.router, host, "/x").await;
        assert_eq!(resp.status(), 308, "{host}");
        assert_eq!(
            resp.headers()["location"],
            "https://platform.test/",
            "{host}"
        );
    }
}

/// A `Host` that is not a host at all is refused (RFC 9112 §3.2), not redirected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_hosts_are_refused_with_400() {
    let s = stack(1).await;
    for host in ["bad host", "a..platform.test", "grace.platform.test:8o"] {
        let resp = get(&s.router, host, "/x").await;
        assert_eq!(resp.status(), 400, "{host}");
        assert!(resp.headers().get("location").is_none(), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_gets_a_403_naming_it_escaped() {
    let s = stack(1).await;
    let suspended = get(&s.router, "hope.platform.test", "/").await;
    assert_eq!(suspended.status(), 403);
    let body = suspended.text().await.unwrap();
    assert!(
        body.contains("Hope &lt;Chapel&gt;"),
        "name shown, escaped: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_and_refusals_never_reach_the_platform() {
    let s = stack(1).await;
    let before = s.platform[0].requests();
    for host in REFUSED_HOSTS.into_iter().chain(["hope.platform.test"]) {
        get(&s.router, host, "/x").await;
    }
    assert_eq!(
        s.platform[0].requests(),
        before,
        "redirects and 403s never reach the platform"
    );
}

/// A request carrying every header the router owns or distrusts, each with a forged value.
async fn spoofed(s: &Stack) -> Value {
    client()
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
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A client that sends one `X-Request-Id` on two identical requests in the same second gets
/// two distinct signatures (the router's nonce), so the platform's replay set, keyed by the
/// signature, refuses neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_client_request_id_still_gets_distinct_signatures() {
    let s = stack(1).await;
    let (a, b) = (spoofed(&s).await, spoofed(&s).await);
    assert_eq!(header(&a, "x-request-id"), header(&b, "x-request-id"));
    assert_eq!(verify(&a), Ok(()));
    assert_eq!(verify(&b), Ok(()));
    let mac = |v: &Value| signature_mac(header(v, "x-edge-signature").unwrap()).unwrap();
    assert_ne!(
        mac(&a),
        mac(&b),
        "same signature twice would be refused as a replay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_headers_are_replaced() {
    let s = stack(1).await;
    let v = spoofed(&s).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_any_signed_field_is_detected() {
    let s = stack(1).await;
    let v = spoofed(&s).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_id_is_replaced() {
    let s = stack(1).await;
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
async fn responses_carry_security_and_cache_headers() {
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
}

/// `/big` (32 KiB of text) on the tenant host, asking for `encoding` (or for none).
async fn big_as(s: &Stack, encoding: Option<&'static str>) -> reqwest::Response {
    let mut req = client()
        .get(s.router.url("/big"))
        .header("host", "grace.platform.test");
    if let Some(e) = encoding {
        req = req.header("accept-encoding", e);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_used_when_accepted() {
    let s = stack(1).await;
    let big = big_as(&s, Some("gzip")).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brotli_is_used_when_accepted() {
    let s = stack(1).await;
    let brotli = big_as(&s, Some("br")).await;
    assert_eq!(brotli.headers()["content-encoding"], "br");
    assert!(brotli.bytes().await.unwrap().len() < 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_accepts_no_encoding_gets_the_body_unchanged() {
    let s = stack(1).await;
    let plain = big_as(&s, None).await;
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
async fn the_router_answers_its_own_health_on_the_operator_listener_only() {
    let s = stack(1).await;
    let health = client().get(s.router.url("/health")).send().await.unwrap();
    assert_eq!(
        health.status(),
        404,
        "not on the public listener, even by IP host"
    );
    let ready = client()
        .get(s.router.metrics_url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_requests_are_counted_in_metrics() {
    let s = stack(1).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_platform_gets_a_branded_page_that_leaks_nothing() {
    let mut s = stack(1).await;
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
}

/// The router's access lines once one matching `wanted` has been written (lines are written
/// in batches at least every 200 ms).
async fn access_lines(r: &testkit::RouterProcess, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let parse = |log: String| -> Vec<Value> {
        log.lines()
            .filter(|l| l.contains("\"target\":\"access\""))
            .map(|l| serde_json::from_str(l).expect("access lines are whole JSON objects"))
            .collect()
    };
    let mut lines = parse(r.process.output());
    for _ in 0..30 {
        if lines.iter().any(&wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        lines = parse(r.process.output());
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_logged_with_its_host_and_id() {
    let mut s = stack(1).await;
    s.platform[0].kill();
    get(&s.router, "grace.platform.test", "/").await;
    let lines = access_lines(&s.router, |l| {
        l["status"].as_u64().is_some_and(|s| s >= 500)
    })
    .await;
    assert!(!lines.is_empty(), "access log lines present");
    let failed = lines
        .iter()
        .find(|l| l["status"].as_u64().is_some_and(|s| s >= 500))
        .expect("the failed request is logged");
    assert_eq!(failed["host"], "grace.platform.test");
    assert!(failed["request_id"]
        .as_str()
        .is_some_and(|id| id.len() >= 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_request_is_logged_with_fields_that_parse_back() {
    let s = stack(1).await;
    echo(&s.router, "grace.platform.test", "/").await;
    let is_ok = |l: &Value| l["status"] == 200 && l["route"] == "tenant";
    let lines = access_lines(&s.router, is_ok).await;
    // The written fields of a proxied request parse back to what they describe.
    let ok = lines
        .iter()
        .find(|l| is_ok(l))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_challenges_are_answered_by_the_router_with_the_redirect_off() {
    let s = stack(1).await;
    let before = s.platform[0].requests();
    let resp = get(
        &s.router,
        "grace.platform.test",
        "/.well-known/acme-challenge/token123",
    )
    .await;
    // No issuance yet: every token is unknown.
    assert_eq!(resp.status(), 404);
    assert_eq!(s.platform[0].requests(), before, "never proxied");
}

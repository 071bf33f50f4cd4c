//! Upstreams by DNS name: a real DNS server (`pebble-challtestsrv`, answers with TTL 0) whose A
//! records change while the router runs. Two origins share one port on two loopback addresses,
//! as the addresses of one service name do; traffic follows the answers, a request in flight on
//! a removed instance finishes, and a failed lookup keeps the last good set. Also the
//! `check-config` side: names accepted, nonsense refused with exit 64 and the field named.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
";

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// One proxied request; the origin that answered (`None` for a non-200).
async fn hit(r: &testkit::RouterProcess, path: &str) -> Option<String> {
    let resp = client()
        .get(r.url(path))
        .header("host", "grace.platform.test")
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let v: serde_json::Value = resp.json().await.ok()?;
    v["origin"].as_str().map(str::to_owned)
}

/// Origins that answered `n` sequential requests.
async fn answered(r: &testkit::RouterProcess, n: usize) -> BTreeSet<Option<String>> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        seen.insert(hit(r, "/").await);
    }
    seen
}

/// Polls until `n` sequential requests are answered by exactly `want`.
async fn until_answered_by(r: &testkit::RouterProcess, want: &[&str], n: usize) {
    let want: BTreeSet<Option<String>> = want.iter().map(|s| Some((*s).to_owned())).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = answered(r, n).await;
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "traffic never settled on {want:?}; last seen {seen:?}\n{}",
            r.process.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metrics(r: &testkit::RouterProcess) -> String {
    client()
        .get(r.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sum of the samples of `family` whose labels contain every one of `labels`.
fn sample(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_the_name_and_removal_keeps_requests_in_flight() {
    let dns = testkit::dns_strict();
    let name = format!("platform-{}.upstreams.test", std::process::id());
    let port = testkit::free_port();
    let a = testkit::origin("a")
        .bind(SocketAddr::from((A, port)))
        .start()
        .await;
    let b = testkit::origin("b")
        .bind(SocketAddr::from((B, port)))
        .start()
        .await;

    // 1. The name answers A only.
    dns.set_a(&name, &[A]);
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[format!("{name}:{port}")])
        // Many quick requests from one address: not a rate-limit test.
        .set("rate_limits", "enabled = false")
        .set(
            "upstreams",
            &format!(
                "dns_server = \"127.0.0.1:{}\"\ndns_min_ttl_secs = 1\ndns_max_ttl_secs = 2",
                dns.port
            ),
        )
        .start();
    until_answered_by(&r, &["a"], 6).await;
    assert_eq!(b.requests(), 0, "B is not in the answer yet");

    // 2. Both: ties rotate, so both origins answer.
    dns.add_a(&name, &[B]);
    until_answered_by(&r, &["a", "b"], 8).await;
    let m = metrics(&r).await;
    for ip in ["127.0.0.2", "127.0.0.3"] {
        assert!(
            m.contains(&format!(
                "router_upstream_healthy{{pool=\"platform\",upstream=\"{ip}:{port}\"}} 1"
            )),
            "{ip} is a healthy member:\n{m}"
        );
    }

    // Two slow requests: least connections puts one on each instance.
    let slow = |r: &testkit::RouterProcess| {
        let url = r.url("/slow?ms=6000");
        tokio::spawn(async move {
            let resp = client()
                .get(url)
                .header("host", "grace.platform.test")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap();
            (status, v["origin"].as_str().unwrap_or("").to_owned())
        })
    };
    let slow1 = slow(&r);
    let slow2 = slow(&r);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. Only B: A leaves the pool while it is serving a slow request.
    dns.set_a(&name, &[B]);
    until_answered_by(&r, &["b"], 6).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "A was removed before its slow request could finish ({:?})",
        started.elapsed()
    );
    let a_before = a.requests();
    assert_eq!(
        answered(&r, 10).await,
        BTreeSet::from([Some("b".to_owned())])
    );
    assert_eq!(
        a.requests(),
        a_before,
        "nothing new reaches the removed instance"
    );
    let mut finished: Vec<(u16, String)> = vec![slow1.await.unwrap(), slow2.await.unwrap()];
    finished.sort();
    assert_eq!(
        finished,
        vec![(200, "a".to_owned()), (200, "b".to_owned())],
        "the request in flight on the removed instance completed"
    );
    let m = metrics(&r).await;
    assert_eq!(
        sample(&m, "router_upstream_members", &["pool=\"platform\""]),
        1.0,
        "A is no longer a member:\n{m}"
    );

    // 4. The name stops resolving: the last good set (B) keeps serving, and it is counted.
    dns.clear_a(&name);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(&r).await;
        let failed = sample(
            &m,
            "router_upstream_dns_lookups_total",
            &["pool=\"platform\"", "outcome=\"failed\""],
        );
        if failed >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed lookup counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        answered(&r, 6).await,
        BTreeSet::from([Some("b".to_owned())])
    );
    let m = metrics(&r).await;
    assert_eq!(
        sample(&m, "router_upstream_members", &["pool=\"platform\""]),
        1.0,
        "{m}"
    );
    assert!(
        r.process
            .output()
            .contains("upstream name lookup failed; keeping the last good addresses"),
        "the failure is logged"
    );

    // 5. Answers return: A is back.
    dns.set_a(&name, &[A]);
    until_answered_by(&r, &["a"], 6).await;
    dns.clear_a(&name);
}

fn check_config(envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, TENANTS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_router"))
        .env_clear()
        .env("ROUTER_STATIC_TENANTS", &file)
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
        .envs(envs.iter().copied())
        .arg("check-config")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_names_and_refuses_bad_upstreams_naming_the_field() {
    for ok in [
        "platform.internal:8080",
        "10.0.0.7:8080,platform.internal:8080",
        "[fd00::7]:8080",
    ] {
        let (code, err) = check_config(&[
            ("UPSTREAM_PLATFORM", ok),
            ("UPSTREAM_DNS_SERVER", "127.0.0.1:53"),
        ]);
        assert_eq!(code, Some(0), "{ok}: {err}");
    }
    // The system resolver (resolv.conf) is what a name uses without UPSTREAM_DNS_SERVER.
    let (code, err) = check_config(&[("UPSTREAM_PLATFORM", "platform.internal:8080")]);
    assert_eq!(code, Some(0), "{err}");

    for (env, value, field) in [
        (
            "UPSTREAM_PLATFORM",
            "platform.internal",
            "upstreams.platform",
        ),
        (
            "UPSTREAM_PLATFORM",
            "http://platform:8080",
            "upstreams.platform",
        ),
        (
            "UPSTREAM_PLATFORM",
            "platform..internal:8080",
            "upstreams.platform",
        ),
        (
            "UPSTREAM_PLATFORM",
            "platform.internal:0",
            "upstreams.platform",
        ),
        ("UPSTREAM_PLATFORM", "10.0.0:8080", "upstreams.platform"),
        ("UPSTREAM_PLATFORM", "fd00::7:8080", "upstreams.platform"),
        (
            "UPSTREAM_WORKERS",
            "workers internal:8090",
            "upstreams.workers",
        ),
        (
            "UPSTREAM_DNS_SERVER",
            "dns.internal",
            "upstreams.dns_server",
        ),
        ("UPSTREAM_DNS_SERVER", "10.0.0.2", "upstreams.dns_server"),
    ] {
        let (code, err) = check_config(&[(env, value)]);
        assert_eq!(code, Some(64), "{env}={value}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(field), "{env}={value} names {field}: {err}");
    }
}

#[test]
fn check_config_refuses_dns_intervals_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    for (table, field) in [
        ("dns_min_ttl_secs = 0", "upstreams.dns_min_ttl_secs"),
        (
            "dns_min_ttl_secs = 30\ndns_max_ttl_secs = 10",
            "upstreams.dns_max_ttl_secs",
        ),
    ] {
        let config = dir.path().join("router.toml");
        std::fs::write(&config, format!("[upstreams]\n{table}\n")).unwrap();
        let path = config.display().to_string();
        let (code, err) = check_config(&[("ROUTER_CONFIG", path.as_str())]);
        assert_eq!(code, Some(64), "{table}: {err}");
        assert!(err.contains(field), "{table}: {err}");
    }
}

/// A self-signed certificate for `name` with its key, made by openssl in `dir`.
fn openssl_cert(dir: &std::path::Path, stem: &str, name: &str) -> (String, String) {
    let cert = dir.join(format!("{stem}.pem")).display().to_string();
    let key = dir.join(format!("{stem}.key")).display().to_string();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .args(["-keyout", &key, "-out", &cert])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

#[test]
fn check_config_loads_operator_certificates_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = openssl_cert(dir.path(), "a", "ops.example.org");
    let (_, key_b) = openssl_cert(dir.path(), "b", "other.example.org");
    let config = dir.path().join("router.toml");
    let path = config.display().to_string();
    let write = |key: &str| {
        std::fs::write(
            &config,
            format!(
                "[listen]\nhttps = \"127.0.0.1:0\"\n[[tls.operator_certificates]]\ncert_file = {cert_a:?}\nkey_file = {key:?}\n"
            ),
        )
        .unwrap();
    };
    write(&key_a);
    let (code, err) = check_config(&[("ROUTER_CONFIG", path.as_str())]);
    assert_eq!(code, Some(0), "{err}");
    // Both files read fine, but the key is another certificate's: only loading them says so.
    write(&key_b);
    let (code, err) = check_config(&[("ROUTER_CONFIG", path.as_str())]);
    assert_eq!(code, Some(64), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("tls.operator_certificates") && err.contains("do not match"),
        "{err}"
    );
}

//! DNS-01 providers against real servers: RFC 2136 with TSIG against Debian BIND (`named` on a
//! loopback port, one zone), Route 53 at the API level against PyPI `moto` (`moto.server` on
//! loopback).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use router::acme::dns01::rfc2136::Rfc2136;
use router::acme::dns01::route53::{sigv4_authorization, Route53};
use router::acme::dns01::{record_name, Dns01Provider};

#[tokio::test]
async fn rfc2136_adds_and_removes_txt_values_signed_with_tsig_on_bind() {
    let bind = testkit::Bind::start("platform.test");
    let server = format!("127.0.0.1:{}", bind.port).parse().unwrap();
    let p = Rfc2136::new(
        server,
        "platform.test.",
        testkit::TSIG_KEY_NAME,
        &bind.tsig_secret,
        "hmac-sha256",
    )
    .unwrap();
    let name = record_name("*.platform.test");
    assert_eq!(name, "_acme-challenge.platform.test");
    p.publish(&name, "first-value").await.unwrap();
    p.publish(&name, "second-value").await.unwrap();
    let mut seen = bind.txt(&name);
    seen.sort();
    assert_eq!(
        seen,
        ["first-value", "second-value"],
        "values are added, not replaced"
    );
    p.remove(&name, "first-value").await.unwrap();
    assert_eq!(bind.txt(&name), ["second-value"], "only that value removed");
    p.remove(&name, "second-value").await.unwrap();
    assert!(bind.txt(&name).is_empty());

    // A wrong key is refused by the server; a name outside the zone never leaves the client.
    let forged = Rfc2136::new(
        server,
        "platform.test.",
        testkit::TSIG_KEY_NAME,
        "c2VjcmV0LXRoYXQtYmluZC1kb2VzLW5vdC1rbm93LTAwMDAwMDA=",
        "hmac-sha256",
    )
    .unwrap();
    let err = forged.publish(&name, "forged").await.unwrap_err();
    assert!(!err.is_empty());
    assert!(
        bind.txt(&name).is_empty(),
        "nothing published with a wrong key: {err}"
    );
    let err = p
        .publish("_acme-challenge.example.org", "x")
        .await
        .unwrap_err();
    assert!(err.contains("not in the zone"), "{err}");
}

/// A `moto` server on a free loopback port, stopped when dropped.
struct Moto {
    _process: testkit::Spawned,
    url: String,
    _dir: tempfile::TempDir,
}

fn moto() -> Moto {
    // The port is free when picked, but a test running beside this one may bind it before
    // moto does; then moto exits and the other server answers. So the server is asked for
    // moto's own API, and a fresh port is tried when it is not moto that answers.
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let port = testkit::free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        let process = testkit::Spawned::start(cmd, &dir.path().join("moto.log"));
        assert!(
            testkit::wait_for_port(port, Duration::from_secs(30)),
            "moto did not start (pip install moto[server]):\n{}",
            process.output()
        );
        if answers_as_moto(port) {
            return Moto {
                _process: process,
                url: format!("http://127.0.0.1:{port}"),
                _dir: dir,
            };
        }
        eprintln!(
            "port {port} is not moto's; trying another:\n{}",
            process.output()
        );
    }
    panic!("moto did not answer on three ports");
}

/// Whether the server on `port` answers moto's management API.
fn answers_as_moto(port: u16) -> bool {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!(
                "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut head = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() {
                return head.ends_with(b"200");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[tokio::test]
async fn route53_upserts_and_deletes_the_challenge_record_on_moto() {
    let m = moto();
    let http = reqwest::Client::new();
    // moto picks the service from the credential scope of a signed request.
    let signed = |method: &str, path: &str| {
        let host = m.url.trim_start_matches("http://").to_owned();
        let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let auth = sigv4_authorization(method, &host, path, empty, &date, "AKIDEXAMPLE", "x");
        http.request(method.parse().unwrap(), format!("{}{path}", m.url))
            .header("authorization", auth)
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", empty)
    };
    let created = signed("POST", "/2013-04-01/hostedzone")
        .body(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <Name>platform.test.</Name><CallerReference>acme-test</CallerReference>\
             </CreateHostedZoneRequest>",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let zone = created
        .split("<Id>")
        .nth(1)
        .and_then(|s| s.split("</Id>").next())
        .expect("hosted zone id")
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let p = Route53::new(&m.url, &zone, "AKIDEXAMPLE", "moto-does-not-check").unwrap();
    let name = record_name("*.platform.test");
    let rrset_path = format!("/2013-04-01/hostedzone/{zone}/rrset");
    let list = || async {
        signed("GET", &rrset_path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    p.publish(&name, "token-digest-1").await.unwrap();
    let rrsets = list().await;
    assert!(
        rrsets.contains("<Name>_acme-challenge.platform.test.</Name>")
            && rrsets.contains("token-digest-1"),
        "{rrsets}"
    );
    p.publish(&name, "token-digest-2").await.unwrap();
    let rrsets = list().await;
    assert!(rrsets.contains("token-digest-2") && !rrsets.contains("token-digest-1"));
    p.remove(&name, "token-digest-2").await.unwrap();
    assert!(!list().await.contains("_acme-challenge"), "removed");
    // A zone that does not exist: the API's error comes back as ours.
    let nowhere = Route53::new(&m.url, "ZNOSUCHZONE", "AKIDEXAMPLE", "x").unwrap();
    let err = nowhere.publish(&name, "v").await.unwrap_err();
    assert!(err.contains("refused"), "{err}");
}

/// The base-domain wildcard end to end: Pebble validates DNS-01 against BIND (its DNS server),
/// where the issuer published the TXT record by RFC 2136; the certificate is stored for
/// `*.platform.test` with no tenant and covers tenant subdomains; the record is removed after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_wildcard_is_issued_by_dns01_through_bind() {
    use std::sync::Arc;

    use router::cache::TenantCache;
    use tenant_config::certs::{CertStore, SealKey};
    use tenant_config::config::{AcmeConfig, Dns01Config, Secret, TenantCacheConfig};
    use tenant_config::db::pool_for_url;
    use tenant_config::store::PgTenantStore;
    use tenant_config::HostRules;

    let db = testkit::database().await;
    let bind = testkit::Bind::start("platform.test");
    // HTTP-01 is never used here: Pebble's httpPort points nowhere.
    let pebble = testkit::pebble(testkit::free_port())
        .dns_server(bind.port)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("root.pem");
    pebble.write_root(&roots);
    let config = AcmeConfig {
        enabled: true,
        directory_url: pebble.directory_url(),
        server_root_file: Some(pebble.server_root().to_owned()),
        trusted_roots_file: Some(roots.clone()),
        check_interval_secs: 1,
        backoff_min_secs: 1,
        order_timeout_secs: 30,
        dns01: Some(Dns01Config::Rfc2136 {
            server: format!("127.0.0.1:{}", bind.port).parse().unwrap(),
            zone: "platform.test.".into(),
            key_name: testkit::TSIG_KEY_NAME.into(),
            key_secret: Secret::new(bind.tsig_secret.clone()),
            algorithm: "hmac-sha256".into(),
        }),
        ..AcmeConfig::default()
    };
    let url = Secret::new(db.router_url());
    let pool = pool_for_url(&url, 4, 5_000).unwrap();
    let store = CertStore::new(pool.clone(), Arc::new(SealKey::generate().unwrap().0));
    let rules = HostRules::new(testkit::BASE_DOMAIN, "admin.platform.test").unwrap();
    let cache = TenantCache::new(
        Arc::new(PgTenantStore::new(pool.clone())),
        &TenantCacheConfig::default(),
    );
    let _acme = router::acme::start(
        &tokio::runtime::Handle::current(),
        &config,
        &url,
        pool,
        store.clone(),
        rules,
        cache,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let cert = loop {
        if let Some(c) = store.load_one("*.platform.test").await.unwrap() {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no wildcard certificate within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(cert.tenant_id.is_none(), "a platform name, no tenant");
    let chain = router::acme::trust::chain_ders(&cert.chain_pem).unwrap();
    let trusted = router::acme::trust::trusted_roots(Some(&roots)).unwrap();
    router::acme::trust::verifies(&chain, "*.platform.test", &trusted).unwrap();
    router::acme::trust::verifies(&chain, "grace.platform.test", &trusted)
        .expect("covers tenant subdomains");
    assert!(
        bind.txt("_acme-challenge.platform.test").is_empty(),
        "the challenge record was removed"
    );
}

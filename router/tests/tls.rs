//! The TLS listener end to end: the real router binary, real PostgreSQL, certificates made
//! here with rcgen under a test CA and written through the certificate store.
//!
//! Served certificate per SNI (exact, wildcard, fallback), the chain verified by rustls and by
//! `curl --cacert`, h2 by ALPN, HSTS and `X-Forwarded-Proto: https` on TLS requests, a hot swap
//! after a store write without restart, resumption on a second instance sharing the database,
//! the protocol/cipher policy scanned by Debian's `testssl`, and the start-up refusals for a
//! missing or malformed encryption key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use tenant_config::certs::{CertStore, SealKey};
use tenant_config::config::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A test CA that signs P-256 leaves.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    _dir: tempfile::TempDir,
    pem_file: PathBuf,
}

/// A leaf certificate: chain PEM, key PEM, DER.
struct Leaf {
    chain_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "Router TLS test CA");
        let cert = p.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_file = dir.path().join("ca.pem");
        std::fs::write(&pem_file, cert.pem()).unwrap();
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
            _dir: dir,
            pem_file,
        }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        let c = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: c.pem(),
            key_pem: key.serialize_pem(),
            der: c.der().clone(),
        }
    }
}

/// Accepts any certificate and remembers it: to look at the fallback.
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client(ca: Option<&Ca>, versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let mut c = match ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            b.with_root_certificates(roots).with_no_client_auth()
        }
        None => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    c
}

/// What one connection saw.
#[derive(Debug)]
struct Seen {
    leaf: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
    version: rustls::ProtocolVersion,
    kind: HandshakeKind,
}

/// Handshakes with `sni`, sends one HTTP/1.1 request when h2 was not negotiated (so TLS 1.3
/// tickets, sent after the handshake, reach the client), and reports what it saw.
async fn connect(port: u16, sni: &str, config: Arc<ClientConfig>) -> Result<Seen, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    let seen = Seen {
        leaf: conn.peer_certificates().unwrap()[0].clone().into_owned(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version().unwrap(),
        kind: conn.handshake_kind().unwrap(),
    };
    if seen.alpn.as_deref() != Some(b"h2") {
        let req = format!("GET /api/health HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    }
    Ok(seen)
}

fn store(db: &testkit::TestDb, key: &str) -> CertStore {
    let pool = tenant_config::db::pool_for_url(&Secret::new(db.router_url()), 2, 5_000).unwrap();
    CertStore::new(pool, Arc::new(SealKey::parse(key).unwrap()))
}

async fn put(s: &CertStore, domain: &str, leaf: &Leaf) {
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    s.put_issued(
        domain,
        None,
        &leaf.chain_pem,
        &leaf.key_pem,
        now - day,
        now + day * 30,
        now + day * 20,
    )
    .await
    .unwrap();
}

/// A router with the TLS listener on a free port; returns it and the port.
fn tls_router(
    db: &testkit::TestDb,
    key: &str,
    platform: &str,
    extra: &[(&str, &str)],
) -> (testkit::RouterProcess, u16) {
    let port = testkit::free_port();
    let mut b = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&[platform.to_owned()])
        .set("listen", &format!("https = \"127.0.0.1:{port}\""))
        .set("tls", &format!("encryption_key = {key:?}"))
        .set("tls", "ticket_rotation_secs = 3600");
    for (t, l) in extra {
        b = b.set(t, l);
    }
    let r = b.start();
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(20)),
        "TLS port not open:\n{}",
        r.process.output()
    );
    (r, port)
}

async fn metrics(r: &testkit::RouterProcess) -> String {
    reqwest::get(r.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn tenant(db: &testkit::TestDb) {
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(
            "INSERT INTO tenants (slug, name, status, plan_id) VALUES ('grace', 'Grace Church', 'active', 'growth');
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, 'give.gracechurch.org', 'active', 't1' FROM tenants WHERE slug = 'grace';",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_per_sni_verifies_negotiates_h2_and_swaps_without_restart() {
    let db = testkit::database().await;
    tenant(&db).await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    let exact = ca.leaf(&["give.gracechurch.org"]);
    let wildcard = ca.leaf(&["*.platform.test"]);
    put(&s, "give.gracechurch.org", &exact).await;
    put(&s, "*.platform.test", &wildcard).await;
    let (r, port) = tls_router(&db, &key, &origin.host_port(), &[]);

    let verified = Arc::new(client(
        Some(&ca),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    ));
    let any = Arc::new(client(None, &[&rustls::version::TLS13]));
    // Exact name, then wildcard, both verified against the test CA by rustls; h2 by ALPN.
    let seen = connect(port, "give.gracechurch.org", verified.clone())
        .await
        .unwrap();
    assert_eq!(seen.leaf, exact.der);
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(seen.version, rustls::ProtocolVersion::TLSv1_3);
    let seen = connect(port, "grace.platform.test", verified.clone())
        .await
        .unwrap();
    assert_eq!(seen.leaf, wildcard.der);
    // A wildcard covers one label only; an unknown name gets the fallback, which our CA
    // did not sign.
    for unknown in ["a.b.platform.test", "nobody.example.net"] {
        let e = connect(port, unknown, verified.clone()).await.unwrap_err();
        assert!(
            e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
            "{e}"
        );
        let seen = connect(port, unknown, any.clone()).await.unwrap();
        assert_ne!(seen.leaf, exact.der);
        assert_ne!(seen.leaf, wildcard.der);
    }
    // HTTP/1.1 only clients still work.
    let mut h1 = client(Some(&ca), &[&rustls::version::TLS12]);
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let seen = connect(port, "give.gracechurch.org", Arc::new(h1))
        .await
        .unwrap();
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(seen.version, rustls::ProtocolVersion::TLSv1_2);

    // Hot swap: a new name and a renewal, written through the store, are served within
    // seconds by the running process.
    let fresh = ca.leaf(&["new.example.org"]);
    let renewed = ca.leaf(&["give.gracechurch.org"]);
    put(&s, "new.example.org", &fresh).await;
    put(&s, "give.gracechurch.org", &renewed).await;
    let started = Instant::now();
    loop {
        let a = connect(port, "new.example.org", any.clone()).await.unwrap();
        let b = connect(port, "give.gracechurch.org", any.clone())
            .await
            .unwrap();
        if a.leaf == fresh.der && b.leaf == renewed.der {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no hot swap within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("hot swap seen after {:?}", started.elapsed());
    connect(port, "new.example.org", verified.clone())
        .await
        .unwrap();
    // Removal falls back.
    s.remove("new.example.org").await.unwrap();
    let started = Instant::now();
    while connect(port, "new.example.org", any.clone())
        .await
        .unwrap()
        .leaf
        == fresh.der
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "removal not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let m = metrics(&r).await;
    assert!(
        metric(
            &m,
            "router_tls_handshakes_total{version=\"TLSv1.3\",kind=\"full\"}"
        ) >= 5.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "router_tls_handshakes_total{version=\"TLSv1.2\",kind=\"full\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &m,
            "router_tls_handshakes_total{version=\"none\",kind=\"failed\"}"
        ) >= 2.0
    );
    assert_eq!(metric(&m, "router_tls_certificates"), 2.0);
    let expiry = metric(&m, "router_tls_earliest_expiry_seconds");
    assert!(
        (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&expiry),
        "{expiry}"
    );
    // curl verifies the chain with OpenSSL, speaks h2, and the request is proxied as HTTPS:
    // HSTS on the answer, X-Forwarded-Proto https upstream.
    let out = Command::new("curl")
        .args(["-sS", "--http2", "-D", "-", "--cacert"])
        .arg(&ca.pem_file)
        .arg("--resolve")
        .arg(format!("give.gracechurch.org:{port}:127.0.0.1"))
        .arg(format!("https://give.gracechurch.org:{port}/echo"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age="),
        "{text}"
    );
    assert!(text.contains("\"x-forwarded-proto\":\"https\""), "{text}");
    // Plain HTTP gets no HSTS.
    let plain = reqwest::Client::new()
        .get(r.url("/echo"))
        .header("host", "give.gracechurch.org")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_instance_resumes_on_another() {
    let db = testkit::database().await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    put(&s, "*.platform.test", &ca.leaf(&["*.platform.test"])).await;
    let (a, port_a) = tls_router(&db, &key, &origin.host_port(), &[]);
    let (b, port_b) = tls_router(&db, &key, &origin.host_port(), &[]);

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // HTTP/1.1 so the client reads application data (and with it the TLS 1.3 tickets).
        let mut c = client(Some(&ca), &[version]);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c.resumption = rustls::client::Resumption::in_memory_sessions(16);
        let c = Arc::new(c);
        let first = connect(port_a, "grace.platform.test", c.clone())
            .await
            .unwrap();
        assert_eq!(first.kind, HandshakeKind::Full);
        let second = connect(port_b, "grace.platform.test", c.clone())
            .await
            .unwrap();
        assert_eq!(
            second.kind,
            HandshakeKind::Resumed,
            "{version:?} on the other instance"
        );
    }
    let m = metrics(&b).await;
    assert!(
        metric(
            &m,
            "router_tls_handshakes_total{version=\"TLSv1.3\",kind=\"resumed\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "router_tls_handshakes_total{version=\"TLSv1.2\",kind=\"resumed\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "router_tls_tickets_total{outcome=\"resumed\"}") >= 2.0,
        "{m}"
    );
    let m = metrics(&a).await;
    assert!(
        metric(&m, "router_tls_tickets_total{outcome=\"issued\"}") >= 2.0,
        "{m}"
    );
    // One key for the cluster: written by whichever instance came first.
    let owner = db.connect_as("postgres").await;
    let n: i64 = owner
        .query_one("SELECT count(*) FROM tls_ticket_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let rotations = metric(&metrics(&a).await, "router_tls_ticket_key_rotations_total")
        + metric(&metrics(&b).await, "router_tls_ticket_key_rotations_total");
    assert_eq!(rotations, 1.0);

    // OpenSSL's client too: a session saved from one instance resumes on the other.
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("sess.pem");
    let s_client = |port: u16, arg: &str| {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "grace.platform.test",
                "-tls1_3",
                "-CAfile",
            ])
            .arg(&ca.pem_file)
            .arg(arg)
            .arg(&sess)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Ask for something so the post-handshake tickets arrive, then close.
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(
            &mut stdin,
            b"GET /api/health HTTP/1.1\r\nHost: grace.platform.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop(stdin);
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let out = s_client(port_a, "-sess_out");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(port_b, "-sess_in");
    assert!(out.contains("Reused, TLSv1.3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_and_cipher_policy_scanned_by_testssl() {
    let db = testkit::database().await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    put(&s, "*.platform.test", &ca.leaf(&["*.platform.test"])).await;
    let (_r, port) = tls_router(&db, &key, &origin.host_port(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scan.json");
    let out = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--protocols",
            "--std",
            "--ip",
            "127.0.0.1",
            "--jsonfile",
        ])
        .arg(&json)
        .arg(format!("grace.platform.test:{port}"))
        .output()
        .expect("testssl (Debian package testssl.sh) must be installed");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default()).unwrap_or_else(|_| {
            panic!(
                "testssl wrote no JSON:\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    let finding = |id: &str| -> String {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["finding"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("testssl reported no {id}: {report}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(old), "not offered", "{old}");
    }
    assert!(
        finding("TLS1_2").starts_with("offered"),
        "{}",
        finding("TLS1_2")
    );
    assert!(
        finding("TLS1_3").starts_with("offered"),
        "{}",
        finding("TLS1_3")
    );
    // No NULL, export, anonymous, DES/3DES, RC4 or other obsoleted ("AVERAGE": CBC, non-AEAD) suites;
    // strong AEAD suites are offered.
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(weak), "not offered", "{weak}");
    }
    assert_eq!(finding("cipherlist_STRONG"), "offered");
}

#[test]
fn a_missing_or_malformed_encryption_key_stops_the_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[domain]\nbase_domain = \"platform.test\"\n[edge]\nsigning_secret = \"test-edge-secret-0123456789abcdef0123\"\n\
                [database]\nurl = \"postgresql://platform_router@127.0.0.1:1/none\"\n";
    let cases = [
        (
            "missing",
            "[listen]\nhttps = \"127.0.0.1:0\"\n".to_owned(),
            None,
            "tls.encryption_key (CERT_ENCRYPTION_KEY): is required",
        ),
        (
            "short",
            "[listen]\nhttps = \"127.0.0.1:0\"\n".to_owned(),
            Some(hex_of(16)),
            "tls.encryption_key (CERT_ENCRYPTION_KEY): must be 32 bytes",
        ),
        (
            "garbage",
            String::new(),
            Some("not a key at all!".to_owned()),
            "tls.encryption_key (CERT_ENCRYPTION_KEY): must be 32 bytes",
        ),
    ];
    for (name, extra, key, expect) in cases {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, format!("{base}{extra}")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_router"));
        cmd.env_clear().arg("--config").arg(&file).arg("serve");
        if let Some(k) = &key {
            // Through the _FILE form, as orchestrators hand secrets over.
            let kf = dir.path().join(format!("{name}.key"));
            std::fs::write(&kf, format!("{k}\n")).unwrap();
            cmd.env("CERT_ENCRYPTION_KEY_FILE", &kf);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        if let Some(k) = key {
            assert!(!err.contains(&k), "the key is never printed");
        }
    }
}

fn hex_of(n: usize) -> String {
    "ab".repeat(n)
}

/// 10,000 certificates load at start within the 5 s budget (debug build; the release figure
/// is in docs/benchmarks.md), and the process's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_certificates_load_at_start() {
    let db = testkit::database().await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    // One key pair signs every leaf (generation is the slow part here, not what is measured).
    let kp = KeyPair::generate().unwrap();
    let key_pem = kp.serialize_pem();
    let mut domains = Vec::new();
    let mut chains = Vec::new();
    let mut sealed = Vec::new();
    for i in 0..10_000 {
        let d = format!("site{i}.example.org");
        let c = CertificateParams::new(vec![d.clone()])
            .unwrap()
            .signed_by(&kp, &ca.issuer)
            .unwrap();
        chains.push(c.pem());
        sealed.push(
            s.seal_key()
                .seal(
                    key_pem.as_bytes(),
                    &tenant_config::certs::store::key_context(&d),
                )
                .unwrap(),
        );
        domains.push(d);
    }
    let owner = db.connect_as("postgres").await;
    owner
        .execute(
            "INSERT INTO certificates (domain, status, chain_pem, private_key_encrypted, not_before, not_after, renew_after) \
             SELECT d, 'issued', c, k, now(), now() + interval '90 days', now() + interval '60 days' \
             FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(d, c, k)",
            &[&domains, &chains, &sealed],
        )
        .await
        .unwrap();
    let (r, port) = tls_router(&db, &key, &origin.host_port(), &[]);
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "router_tls_certificates"), 10_000.0);
    let took = metric(&m, "router_tls_load_seconds");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", r.process.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!(
        "10,000 certificates loaded in {took:.3} s; router RSS {} MiB",
        rss_kib / 1024
    );
    assert!(took < 5.0, "{took}");
    assert!(rss_kib < 400 * 1024, "RSS {rss_kib} KiB");
    let any = Arc::new(client(Some(&ca), &[&rustls::version::TLS13]));
    let seen = connect(port, "site9999.example.org", any).await.unwrap();
    assert_eq!(seen.kind, HandshakeKind::Full);
}

/// Operator certificates from files (a purchased wildcard, say) and a fallback from a file; a
/// stored certificate for an exact name wins over the operator's wildcard. The plain listener
/// redirects to the public HTTPS port, but not the status probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_fallback_files_and_the_redirect_port() {
    let db = testkit::database().await;
    tenant(&db).await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, leaf: &Leaf| {
        let (c, k) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, &leaf.chain_pem).unwrap();
        std::fs::write(&k, &leaf.key_pem).unwrap();
        (c.display().to_string(), k.display().to_string())
    };
    let operator = ca.leaf(&["*.platform.test", "platform.test"]);
    let fallback = ca.leaf(&["fallback.platform.test"]);
    let stored = ca.leaf(&["grace.platform.test"]);
    put(&s, "grace.platform.test", &stored).await;
    let (oc, ok) = write("operator", &operator);
    let (fc, fk) = write("fallback", &fallback);
    let (r, port) = tls_router(
        &db,
        &key,
        &origin.host_port(),
        &[
            ("tls", "public_https_port = 8443"),
            (
                "tls.fallback_certificate",
                &format!("cert_file = {fc:?}\nkey_file = {fk:?}"),
            ),
            ("listen", "redirect_http_to_https = true"),
            (
                "[tls.operator_certificates]",
                &format!("cert_file = {oc:?}\nkey_file = {ok:?}"),
            ),
        ],
    );
    let verified = Arc::new(client(Some(&ca), &[&rustls::version::TLS13]));
    assert_eq!(
        connect(port, "hope.platform.test", verified.clone())
            .await
            .unwrap()
            .leaf,
        operator.der
    );
    assert_eq!(
        connect(port, "platform.test", verified.clone())
            .await
            .unwrap()
            .leaf,
        operator.der
    );
    assert_eq!(
        connect(port, "grace.platform.test", verified.clone())
            .await
            .unwrap()
            .leaf,
        stored.der
    );
    assert_eq!(
        connect(
            port,
            "unknown.example.net",
            Arc::new(client(None, &[&rustls::version::TLS13]))
        )
        .await
        .unwrap()
        .leaf,
        fallback.der
    );
    // Removing the stored certificate falls back to the operator's wildcard, not the fallback.
    s.remove("grace.platform.test").await.unwrap();
    let started = Instant::now();
    while connect(port, "grace.platform.test", verified.clone())
        .await
        .unwrap()
        .leaf
        != operator.der
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "operator wildcard not restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = plain
        .get(r.url("/donate?x=1"))
        .header("host", "grace.platform.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "https://grace.platform.test:8443/donate?x=1"
    );
    let probe = plain
        .get(r.url("/api/health"))
        .header("host", "grace.platform.test")
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200, "the status probe is not redirected");
}

/// `max_connections_per_ip` covers pending TLS handshakes: a connection that has not sent its
/// ClientHello holds a slot from the accept on, so one address cannot park any number of
/// handshakes (each waiting out `handshake_timeout_ms`). A TLS connection is counted once (at
/// the accept, not again after the handshake), the plain and TLS listeners share the cap, and
/// a slot comes back when its connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_counts_pending_handshakes() {
    let db = testkit::database().await;
    tenant(&db).await;
    let origin = testkit::origin("p1").start().await;
    let (_, key) = SealKey::generate().unwrap();
    let ca = Ca::new();
    let s = store(&db, &key);
    put(
        &s,
        "give.gracechurch.org",
        &ca.leaf(&["give.gracechurch.org"]),
    )
    .await;
    let (r, port) = tls_router(
        &db,
        &key,
        &origin.host_port(),
        &[
            ("client_limits", "max_connections_per_ip = 2"),
            ("tls", "handshake_timeout_ms = 20000"),
        ],
    );
    let verified = Arc::new(client(
        Some(&ca),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    ));
    let mut h1 = client(Some(&ca), &[&rustls::version::TLS13]);
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let h1 = Arc::new(h1);

    // One silent connection (a pending handshake) and one full HTTP/1.1 TLS connection fit in
    // a cap of two: the TLS connection is not counted a second time after its handshake.
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = connect(port, "give.gracechurch.org", h1.clone())
        .await
        .expect("a TLS connection beside one pending handshake");
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));

    // Two pending handshakes fill the cap: a third connection is closed at once, before any
    // handshake, and the plain listener refuses the same address too.
    let silent2 = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Time for the router to accept it (a loaded machine runs the other tests beside this one).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection over the cap is closed at once, not left waiting for a ClientHello: {read:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        connect(port, "give.gracechurch.org", verified.clone())
            .await
            .is_err(),
        "no handshake over the cap"
    );
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .unwrap();
    let _ = plain
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: give.gracechurch.org\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), plain.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty(),
        "the plain listener shares the cap: {}",
        String::from_utf8_lossy(&answer)
    );

    // A pending handshake that goes away gives its slot back.
    drop(silent);
    drop(silent2);
    let start = Instant::now();
    loop {
        match connect(port, "give.gracechurch.org", verified.clone()).await {
            Ok(_) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "slots not released: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metrics(&r).await;
    assert!(
        metric(&m, "router_refused_total{reason=\"conn_limit\"}") >= 3.0,
        "refusals counted: {m}"
    );
}

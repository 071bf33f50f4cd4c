//! ACME against a real Pebble (Debian `pebble`), one Pebble per test aimed at that test's
//! router process, which answers HTTP-01 challenges from PostgreSQL.
//!
//! The issuers run in this process as separate ACME services, each with its own pool and
//! instance id, exactly as two router instances run them: they share only the database. The
//! router *process* answers the CA's validation requests, so every issuance here also shows a
//! challenge published by one instance validating through another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use router::acme::{self, trust, Acme};
use router::cache::{Key, TenantCache};
use tenant_config::certs::{CertStore, SealKey};
use tenant_config::config::{AcmeConfig, Secret, TenantCacheConfig};
use tenant_config::db::pool_for_url;
use tenant_config::store::PgTenantStore;
use tenant_config::HostRules;

const NAME: &str = "give.grace-church.example";

struct Stack {
    db: testkit::TestDb,
    _router: testkit::RouterProcess,
    pebble: testkit::Pebble,
    roots: PathBuf,
    key: Arc<SealKey>,
    _dir: tempfile::TempDir,
}

async fn stack(validity_secs: Option<u64>) -> Stack {
    stack_aimed(validity_secs, None).await
}

/// `http01`: where Pebble sends HTTP-01 validations instead of the router (a dead port makes
/// every validation fail).
async fn stack_aimed(validity_secs: Option<u64>, http01: Option<u16>) -> Stack {
    let db = testkit::database().await;
    db.connect_as("postgres")
        .await
        .batch_execute(&format!(
            "INSERT INTO tenants (slug, name, status) VALUES ('grace', 'Grace', 'active');
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, '{NAME}', 'pending_verification', 't1' FROM tenants;
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, 'unverified.grace-church.example', 'pending_verification', 't2' FROM tenants;"
        ))
        .await
        .unwrap();
    let router = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&["127.0.0.1:9".into()])
        .start();
    let mut builder = testkit::pebble(http01.unwrap_or(router.port));
    if let Some(s) = validity_secs {
        builder = builder.validity_secs(s);
    }
    let pebble = builder.start();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("pebble-root.pem");
    pebble.write_root(&roots);
    Stack {
        db,
        _router: router,
        pebble,
        roots,
        key: Arc::new(SealKey::generate().unwrap().0),
        _dir: dir,
    }
}

impl Stack {
    fn config(&self) -> AcmeConfig {
        AcmeConfig {
            enabled: true,
            directory_url: self.pebble.directory_url(),
            contact: vec!["mailto:ops@platform.test".into()],
            server_root_file: Some(self.pebble.server_root().to_owned()),
            trusted_roots_file: Some(self.roots.clone()),
            check_interval_secs: 1,
            backoff_min_secs: 1,
            backoff_max_secs: 4,
            order_timeout_secs: 30,
            ..AcmeConfig::default()
        }
    }

    /// One ACME service, as one router instance runs it.
    fn instance(&self, config: &AcmeConfig) -> (Arc<Acme>, CertStore, TenantCache) {
        self.instance_when(config, None)
    }

    /// [`Stack::instance`] that orders nothing until `http_listen` accepts connections.
    fn instance_when(
        &self,
        config: &AcmeConfig,
        http_listen: Option<std::net::SocketAddr>,
    ) -> (Arc<Acme>, CertStore, TenantCache) {
        let url = Secret::new(self.db.router_url());
        let pool = pool_for_url(&url, 4, 5_000).unwrap();
        let store = CertStore::new(pool.clone(), self.key.clone());
        let rules = HostRules::new(testkit::BASE_DOMAIN, "admin.platform.test").unwrap();
        let cache = TenantCache::new(
            Arc::new(PgTenantStore::new(pool.clone())),
            &TenantCacheConfig::default(),
        );
        let acme = acme::start_when_listening(
            &tokio::runtime::Handle::current(),
            config,
            &url,
            pool,
            store.clone(),
            rules,
            cache.clone(),
            http_listen,
        )
        .unwrap();
        (acme, store, cache)
    }

    async fn sql(&self, q: &str) {
        self.db
            .connect_as("postgres")
            .await
            .batch_execute(q)
            .await
            .unwrap();
    }

    async fn count(&self, q: &str) -> i64 {
        self.db
            .connect_as("postgres")
            .await
            .query_one(q, &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn verify(&self) {
        self.sql(&format!(
            "UPDATE tenant_domains SET status = 'verified', verified_at = now() WHERE domain = '{NAME}'"
        ))
        .await;
    }
}

/// Waits (bounded) for the stored certificate of `NAME` to satisfy `done`.
async fn wait_for_cert(
    store: &CertStore,
    limit: Duration,
    mut done: impl FnMut(&tenant_config::certs::StoredCert) -> bool,
) -> tenant_config::certs::StoredCert {
    let start = Instant::now();
    loop {
        if let Some(c) = store.load_one(NAME).await.unwrap() {
            if done(&c) {
                return c;
            }
        }
        assert!(
            start.elapsed() < limit,
            "no (new) certificate for {NAME} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_chains_to(cert: &tenant_config::certs::StoredCert, root_file: &std::path::Path) {
    let chain = trust::chain_ders(&cert.chain_pem).unwrap();
    let roots = trust::trusted_roots(Some(root_file)).unwrap();
    trust::verifies(&chain, NAME, &roots).expect("the chain verifies to Pebble's root");
    assert!(cert.key_pem.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_domain_gets_one_certificate_even_with_two_instances_racing() {
    let s = stack(None).await;
    let config = AcmeConfig {
        check_interval_secs: 3_600,
        ..s.config()
    };
    let (a, store, _) = s.instance(&config);
    let (b, _, cache_b) = s.instance(&config);
    // Nothing is ordered before verification, whatever the handshakes ask for.
    a.on_missing(NAME);
    b.on_missing(NAME);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.count("SELECT count(*) FROM acme_orders").await, 0);

    // Verification: both instances hear NOTIFY domain_verified, and B also sees handshakes.
    s.verify().await;
    cache_b.get(Key::Domain(NAME)).await.unwrap();
    for _ in 0..20 {
        b.on_missing(NAME);
    }
    let cert = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    assert_chains_to(&cert, &s.roots);
    assert_eq!(cert.domain, NAME);
    // Give a loser every chance to order too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let orders: Vec<(String, Option<String>, Option<String>)> =
        s.db.connect_as("postgres")
            .await
            .query(
                "SELECT kind, outcome, error FROM acme_orders ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    assert_eq!(
        orders.len(),
        1,
        "exactly one order across both instances: {orders:?}"
    );
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND state = 'issued' AND renew_at > now()"
        ))
        .await,
        1
    );
    assert_eq!(
        s.count("SELECT count(*) FROM acme_accounts").await,
        1,
        "one account"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM acme_challenges").await,
        0,
        "challenge answers removed after the order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_or_unknown_names_are_never_ordered() {
    let s = stack(None).await;
    let (a, _, cache) = s.instance(&s.config());
    // In memory: the unverified domain is known as unknown, junk names are not at all.
    cache
        .get(Key::Domain("unverified.grace-church.example"))
        .await
        .unwrap();
    for sni in [
        "unverified.grace-church.example",
        "junk.example",
        "grace.platform.test",
        "admin.platform.test",
        "not a name",
        "",
    ] {
        for _ in 0..50 {
            a.on_missing(sni);
        }
    }
    // Several scans (interval 1 s) pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.count("SELECT count(*) FROM acme_orders").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM acme_names").await, 0);
    assert_eq!(
        s.count("SELECT count(*) FROM acme_accounts").await,
        0,
        "the CA was never contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_at_two_thirds_and_on_demand() {
    // 30-second certificates: renewal is due 20 s after issuance.
    let s = stack(Some(30)).await;
    let (_a, store, _) = s.instance(&s.config());
    s.verify().await;
    let first = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    let life = first.not_after - first.not_before.unwrap();
    assert!(life.num_seconds() <= 31, "short-lived: {life}");
    let second = wait_for_cert(&store, Duration::from_secs(60), |c| {
        c.not_after > first.not_after
    })
    .await;
    assert_chains_to(&second, &s.roots);
    let renewed_after = (second.not_before.unwrap() - first.not_before.unwrap()).num_seconds();
    assert!(
        (15..=30).contains(&renewed_after),
        "renewed about two thirds into the lifetime, not {renewed_after} s after issue"
    );
    // A forced renewal: the renewal point moved to now.
    s.sql(&format!(
        "UPDATE acme_names SET renew_at = now() WHERE name = '{NAME}'"
    ))
    .await;
    let third = wait_for_cert(&store, Duration::from_secs(30), |c| {
        c.not_after > second.not_after
    })
    .await;
    assert!((third.not_before.unwrap() - second.not_before.unwrap()).num_seconds() < 15);
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders WHERE kind = 'renew' AND outcome = 'issued'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_keeps_the_certificate_and_backs_off_then_a_new_root_is_followed() {
    let mut s = stack(None).await;
    let (_a, store, _) = s.instance(&s.config());
    s.verify().await;
    let first = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    let account: Vec<u8> =
        s.db.connect_as("postgres")
            .await
            .query_one("SELECT credentials_encrypted FROM acme_accounts", &[])
            .await
            .unwrap()
            .get(0);

    // The CA goes away and a renewal is due: it fails, backs off, and the certificate stays.
    s.pebble.stop();
    s.sql(&format!(
        "UPDATE acme_names SET renew_at = now() WHERE name = '{NAME}'"
    ))
    .await;
    let start = Instant::now();
    while s
        .count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND failures >= 2"
        ))
        .await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no failed attempts recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND state = 'renewing'
               AND last_error IS NOT NULL AND next_attempt_at > now() - interval '1 second'"
        ))
        .await,
        1,
        "status shows the renewal failing, with the error and the next attempt"
    );
    // Attempts that never reached the CA are not orders: nothing for the budgets to count,
    // so an outage cannot use up a name's budget and push its renewal out by a week.
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM acme_orders WHERE name = '{NAME}' AND outcome <> 'issued'"
        ))
        .await,
        0,
        "failed attempts against a CA that is down are not counted as orders"
    );
    let kept = store.load_one(NAME).await.unwrap().expect("still served");
    assert_eq!(kept.not_after, first.not_after);

    // Pebble comes back with a new root and no memory of our account: the router registers
    // again and replaces the certificate that no longer chains to a trusted root.
    s.pebble.restart();
    s.pebble.write_root(&s.roots);
    let renewed = wait_for_cert(&store, Duration::from_secs(60), |c| {
        c.not_after != first.not_after
    })
    .await;
    assert_chains_to(&renewed, &s.roots);
    let account_now: Vec<u8> =
        s.db.connect_as("postgres")
            .await
            .query_one("SELECT credentials_encrypted FROM acme_accounts", &[])
            .await
            .unwrap()
            .get(0);
    assert_ne!(
        account, account_now,
        "registered again after accountDoesNotExist"
    );
}

/// Forwards `127.0.0.1:<from>` to `127.0.0.1:<to>` (Pebble's `httpPort` is fixed before the
/// router's port is known). Stops with the test's runtime.
async fn forward(from: u16, to: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", from))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
}

/// `curl` over TLS to the router with `sni`: (exit code, HTTP status or error text).
fn curl(port: u16, sni: &str, cacert: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .arg("--resolve")
    .arg(format!("{sni}:{port}:127.0.0.1"));
    match cacert {
        Some(ca) => cmd.arg("--cacert").arg(ca),
        None => cmd.arg("-k"),
    };
    let out = cmd.arg(format!("https://{sni}:{port}/")).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The whole path in one router process: the domain is verified, the router hears it, orders
/// from Pebble (HTTP-01 answered by itself from the database), stores the certificate and serves
/// it on SNI, verified by curl against Pebble's root. Unknown and unverified names get the
/// fallback certificate and no order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_orders_stores_and_serves_a_verified_domain() {
    let db = testkit::database().await;
    db.connect_as("postgres")
        .await
        .batch_execute(&format!(
            "INSERT INTO tenants (slug, name, status) VALUES ('grace', 'Grace', 'active');
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, '{NAME}', 'pending_verification', 't1' FROM tenants;"
        ))
        .await
        .unwrap();
    let http01 = testkit::free_port();
    let pebble = testkit::pebble(http01).start();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("pebble-root.pem");
    pebble.write_root(&roots);
    let https = testkit::free_port();
    let (_, key) = SealKey::generate().unwrap();
    let router = acme_router(&db, &pebble, &roots, https, &key);
    forward(http01, router.port).await;

    // Before verification: handshakes for it (and for junk) order nothing.
    for sni in [NAME, "junk.example", "unverified.example.org"] {
        let (code, text) = curl(https, sni, None);
        assert_eq!(code, 0, "fallback certificate served to {sni}: {text}");
    }
    let (code, _) = curl(https, NAME, Some(&roots));
    assert_ne!(code, 0, "no trusted certificate yet");

    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(&format!(
            "UPDATE tenant_domains SET status = 'verified', verified_at = now() WHERE domain = '{NAME}'"
        ))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let (code, text) = curl(https, NAME, Some(&roots));
        if code == 0 {
            assert!(
                text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()),
                "TLS verified against Pebble's root and an HTTP answer came back: {text}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "certificate not served within 60 s: {text}\n{}",
            router.process.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for sni in ["junk.example", "unverified.example.org"] {
        let (code, _) = curl(https, sni, Some(&roots));
        assert_ne!(code, 0, "{sni} never got a certificate");
    }
    let orders: Vec<String> = owner
        .query("SELECT name FROM acme_orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        orders,
        vec![NAME.to_owned()],
        "one order, for the verified name only"
    );
    let metrics = reqwest::get(router.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("router_acme_refused_names_total{reason=\"not_verified\"}"),
        "refused SNI names are counted"
    );
    assert!(metrics.contains("router_acme_orders_total{kind=\"issue\",outcome=\"issued\"} 1"));
}

/// Validations that keep failing (nothing answers where Pebble looks) pause the name after
/// `max_failed_validations`, with the error and the end of the pause shown; no order follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_validations_pause_the_name() {
    let s = stack_aimed(None, Some(testkit::free_port())).await;
    let config = AcmeConfig {
        max_failed_validations: 2,
        backoff_min_secs: 1,
        backoff_max_secs: 1,
        ..s.config()
    };
    let (_a, _, _) = s.instance(&config);
    s.verify().await;
    let start = Instant::now();
    while s
        .count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND paused_until > now() + interval '1 hour'"
        ))
        .await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(40), "never paused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let invalid = "SELECT count(*) FROM acme_orders WHERE outcome = 'invalid'";
    assert_eq!(
        s.count(invalid).await,
        2,
        "paused after the second failed validation"
    );
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND state = 'failed' AND last_error IS NOT NULL"
        ))
        .await,
        1
    );
    // Scans keep running (every second): the paused name is not ordered again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.count("SELECT count(*) FROM acme_orders").await, 2);
}

/// The per-name budget: with room for one order per window, a forced renewal is deferred to
/// when the first order leaves the window, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_name_budget_defers_orders() {
    let s = stack(None).await;
    let config = AcmeConfig {
        name_budget: 1,
        ..s.config()
    };
    let (_a, store, _) = s.instance(&config);
    s.verify().await;
    wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    s.sql(&format!(
        "UPDATE acme_names SET renew_at = now() WHERE name = '{NAME}'"
    ))
    .await;
    let start = Instant::now();
    while s
        .count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}'
               AND last_error LIKE 'order budget reached%' AND next_attempt_at > now() + interval '6 days'"
        ))
        .await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(20), "never deferred");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders").await,
        1,
        "no second order"
    );
}

/// A router process with its TLS listener on `https` and ACME aimed at `pebble`.
fn acme_router(
    db: &testkit::TestDb,
    pebble: &testkit::Pebble,
    roots: &std::path::Path,
    https: u16,
    key: &str,
) -> testkit::RouterProcess {
    testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&["127.0.0.1:9".into()])
        .set("listen", &format!("https = \"127.0.0.1:{https}\""))
        .set("tls", &format!("encryption_key = {key:?}"))
        .set("acme", "enabled = true")
        .set(
            "acme",
            &format!("directory_url = {:?}", pebble.directory_url()),
        )
        .set(
            "acme",
            &format!(
                "server_root_file = {:?}",
                pebble.server_root().display().to_string()
            ),
        )
        .set(
            "acme",
            &format!("trusted_roots_file = {:?}", roots.display().to_string()),
        )
        .set("acme", "check_interval_secs = 1")
        .set("acme", "backoff_min_secs = 1")
        .start()
}

/// Two router processes (B and C, ACME on) race for one verified name: exactly one order.
/// Pebble's validation reaches only a third router, A, which orders nothing itself: the
/// challenge published by whichever of B and C won is answered by another instance from the
/// database. B and C both serve the certificate (the loser learns of it by NOTIFY). A flood of
/// junk SNI names leaves at most a couple of log lines and no database rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_router_processes_order_once_and_both_serve() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute(&format!(
            "INSERT INTO tenants (slug, name, status) VALUES ('grace', 'Grace', 'active');
             INSERT INTO tenant_domains (tenant_id, domain, status, verification_token)
                 SELECT id, '{NAME}', 'pending_verification', 't1' FROM tenants;"
        ))
        .await
        .unwrap();
    let http01 = testkit::free_port();
    let pebble = testkit::pebble(http01).start();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("pebble-root.pem");
    pebble.write_root(&roots);
    let (_, key) = SealKey::generate().unwrap();
    let a = testkit::router(env!("CARGO_BIN_EXE_router"))
        .database(&db.router_url())
        .platform(&["127.0.0.1:9".into()])
        .start();
    let (https_b, https_c) = (testkit::free_port(), testkit::free_port());
    let b = acme_router(&db, &pebble, &roots, https_b, &key);
    let c = acme_router(&db, &pebble, &roots, https_c, &key);
    forward(http01, a.port).await;
    owner
        .batch_execute(&format!(
            "UPDATE tenant_domains SET status = 'verified', verified_at = now() WHERE domain = '{NAME}'"
        ))
        .await
        .unwrap();
    for https in [https_b, https_c] {
        let start = Instant::now();
        while curl(https, NAME, Some(&roots)).0 != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not served on :{https}\nB:\n{}\nC:\n{}",
                b.process.output(),
                c.process.output()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let orders: Vec<uuid::Uuid> = owner
        .query("SELECT instance FROM acme_orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(orders.len(), 1, "exactly one order across two routers");
    let hits = |r: &testkit::RouterProcess| {
        r.process
            .output()
            .matches("/.well-known/acme-challenge/")
            .count()
    };
    assert!(hits(&a) > 0, "A answered the challenge");
    assert_eq!(
        hits(&b) + hits(&c),
        0,
        "the ordering routers were never asked"
    );

    // Junk SNI: the fallback each time, one log line at most per 10 s, no rows.
    for i in 0..40 {
        let (code, _) = curl(https_b, &format!("junk-{i}.example"), None);
        assert_eq!(code, 0);
    }
    let lines = b
        .process
        .output()
        .matches("certificate not ordered for this name")
        .count();
    assert!(
        lines <= 2,
        "refusals are logged rate-limited, not {lines} lines"
    );
    let rows: i64 = owner
        .query_one("SELECT count(*) FROM acme_names", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "only the verified name has ACME state");
}

/// `check-config` refuses ACME settings that cannot work, with one line naming the field.
#[test]
fn bad_acme_settings_are_named_by_check_config() {
    let cases = [
        (vec![("ACME_ENABLED", "true")], "acme.enabled"),
        (
            vec![
                ("ACME_ENABLED", "true"),
                ("ROUTER_HTTPS_LISTEN", "127.0.0.1:8443"),
                ("ACME_DIRECTORY_URL", "http://ca.example/dir"),
            ],
            "acme.directory_url",
        ),
        (
            vec![
                ("ACME_ENABLED", "true"),
                ("ROUTER_HTTPS_LISTEN", "127.0.0.1:8443"),
                ("ACME_CONTACT", "ops@example.org"),
            ],
            "acme.contact",
        ),
    ];
    for (vars, field) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_router"))
            .env_clear()
            .env("DATABASE_URL", "postgres://router@127.0.0.1:1/platform")
            .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
            .env(
                "CERT_ENCRYPTION_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            )
            .envs(vars)
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{field}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(field), "{field}: {err}");
    }
    // A lease shorter than an order can take (two polls of order_timeout_secs plus the
    // margin): a second instance could take over a live order.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("router.toml");
    std::fs::write(
        &file,
        "[acme]\nenabled = true\nlease_secs = 250\norder_timeout_secs = 120\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .env_clear()
        .env("DATABASE_URL", "postgres://router@127.0.0.1:1/platform")
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
        .env(
            "CERT_ENCRYPTION_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .env("ROUTER_HTTPS_LISTEN", "127.0.0.1:8443")
        .env("ROUTER_CONFIG", &file)
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("acme.lease_secs") && err.contains("300"),
        "{err}"
    );
}

/// HTTP-01 answers with the HTTPS redirect on and off: a token another instance published is
/// answered on its own host only; unknown, malformed or cross-host tokens get a 404, never the
/// redirect and never the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_answered_from_the_database_with_the_redirect_on_or_off() {
    let db = testkit::database().await;
    let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    db.connect_as("postgres")
        .await
        .batch_execute(&format!(
            "INSERT INTO acme_challenges (token, domain, key_authorization, expires_at)
             VALUES ('{token}', '{NAME}', '{token}.thumbprint', now() + interval '5 minutes'),
                    ('expiredtoken0000000000', '{NAME}', 'old', now() - interval '1 second')"
        ))
        .await
        .unwrap();
    for redirect in [false, true] {
        let r = testkit::router(env!("CARGO_BIN_EXE_router"))
            .database(&db.router_url())
            .platform(&["127.0.0.1:9".into()])
            .set("listen", &format!("redirect_http_to_https = {redirect}"))
            .start();
        let get = |host: &str, path: String| {
            let url = r.url(&path);
            let host = host.to_owned();
            async move {
                let resp = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap()
                    .get(url)
                    .header("host", host)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap())
            }
        };
        let path = |t: &str| format!("/.well-known/acme-challenge/{t}");
        assert_eq!(
            get(NAME, path(token)).await,
            (200, format!("{token}.thumbprint")),
            "redirect {redirect}"
        );
        for (host, t) in [
            ("other.example.org", token),
            (NAME, "unknowntoken00000000000000"),
            (NAME, "expiredtoken0000000000"),
            (NAME, "bad.token!"),
            (NAME, "short"),
        ] {
            assert_eq!(
                get(host, path(t)).await.0,
                404,
                "{host} {t} redirect {redirect}"
            );
        }
        if redirect {
            assert_eq!(
                get(NAME, "/".into()).await.0,
                308,
                "everything else is redirected"
            );
        }
    }
}

/// A domain removed from its tenant loses its certificate: the scan deletes it from the store
/// (every router drops it on the notification) and forgets the name's ACME state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_domain_stops_being_served() {
    let s = stack(None).await;
    let (_a, store, _) = s.instance(&s.config());
    s.verify().await;
    wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    s.sql(&format!(
        "UPDATE tenant_domains SET status = 'removed', removed_at = now() WHERE domain = '{NAME}'"
    ))
    .await;
    let start = Instant::now();
    while store.load_one(NAME).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "certificate kept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.count("SELECT count(*) FROM certificates").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM acme_names").await, 0);
}

/// Orders that never reached the CA do not count against the per-name budget: with room for
/// one certificate per window, a name whose CA was down for several attempts still gets its
/// certificate as soon as the CA is back, instead of being put off for a week. The failed
/// attempts are governed by the backoff and leave no `acme_orders` rows (the global throttle
/// counts only orders the CA created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_orders_do_not_use_up_the_per_name_budget() {
    let mut s = stack(None).await;
    let config = AcmeConfig {
        name_budget: 1,
        ..s.config()
    };
    s.pebble.stop();
    let (_a, store, _) = s.instance(&config);
    s.verify().await;
    let start = Instant::now();
    while s
        .count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND failures >= 3"
        ))
        .await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no failed attempts recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders").await,
        0,
        "attempts against a CA that is down are not orders"
    );
    s.pebble.restart();
    s.pebble.write_root(&s.roots);
    let cert = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    assert_chains_to(&cert, &s.roots);
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND last_error LIKE 'order budget%'"
        ))
        .await,
        0,
        "never deferred by the budget"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders WHERE outcome = 'issued'")
            .await,
        1
    );
}

/// A certificate that no longer chains to a trusted root (Pebble, like `ops/dev/up.sh`'s,
/// makes a new root on every start) is replaced even when the per-name budget is used up:
/// a certificate no client can verify is no duplicate, and the dev stack would otherwise stay
/// on an old root from its sixth start in a week.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_root_is_replaced_despite_a_used_up_budget() {
    let mut s = stack(None).await;
    let config = AcmeConfig {
        name_budget: 1,
        ..s.config()
    };
    let (_a, store, _) = s.instance(&config);
    s.verify().await;
    let first = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders WHERE outcome = 'issued'")
            .await,
        1,
        "the budget is used up"
    );
    s.pebble.restart();
    s.pebble.write_root(&s.roots);
    let renewed = wait_for_cert(&store, Duration::from_secs(60), |c| {
        c.not_after != first.not_after
    })
    .await;
    assert_chains_to(&renewed, &s.roots);
    // Once replaced, the budget holds again: a forced renewal of the trusted certificate is
    // deferred.
    s.sql(&format!(
        "UPDATE acme_names SET renew_at = now() WHERE name = '{NAME}'"
    ))
    .await;
    let start = Instant::now();
    while s
        .count(&format!(
            "SELECT count(*) FROM acme_names WHERE name = '{NAME}' AND last_error LIKE 'order budget reached%'"
        ))
        .await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(20), "never deferred");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders WHERE outcome = 'issued'")
            .await,
        2
    );
}

/// The budget never holds a renewal past the certificate's expiry: with room for one
/// certificate per week and 30-second certificates, the renewal due at two thirds of the
/// lifetime is ordered anyway, and a new certificate is in place before the old one expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_never_defers_a_renewal_past_expiry() {
    let s = stack(Some(30)).await;
    let config = AcmeConfig {
        name_budget: 1,
        ..s.config()
    };
    let (_a, store, _) = s.instance(&config);
    s.verify().await;
    let first = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    let second = wait_for_cert(&store, Duration::from_secs(60), |c| {
        c.not_after > first.not_after
    })
    .await;
    assert!(
        second.not_before.unwrap() < first.not_after,
        "renewed before the first certificate expired"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM acme_orders WHERE outcome = 'issued'")
            .await,
        2
    );
}

/// Nothing is ordered before the plain HTTP listener accepts connections (the CA's HTTP-01
/// validation arrives there): a verified name waits, no account is registered and no order
/// placed; once the listener is up, the certificate follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_ordered_before_the_http_listener_accepts() {
    let http01 = testkit::free_port();
    let s = stack_aimed(None, Some(http01)).await;
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], http01).into();
    let (_a, store, _) = s.instance_when(&s.config(), Some(listen));
    s.verify().await;
    // Several scan intervals (1 s) and the verification notification pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        s.count("SELECT count(*) FROM acme_accounts").await,
        0,
        "the CA was not contacted"
    );
    assert_eq!(s.count("SELECT count(*) FROM acme_names").await, 0);
    // The "listener" comes up: a forward to the router process that answers challenges.
    forward(http01, s._router.port).await;
    let cert = wait_for_cert(&store, Duration::from_secs(60), |_| true).await;
    assert_chains_to(&cert, &s.roots);
    assert_eq!(
        s.count("SELECT count(*) FROM acme_names WHERE failed_validations > 0")
            .await,
        0,
        "no validation was refused at a closed port"
    );
}

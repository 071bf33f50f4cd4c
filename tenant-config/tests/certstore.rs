//! The certificate store and the shared ticket keys against a real PostgreSQL, as the
//! router's login role (platform_edge's privileges).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tenant_config::certs::tickets::rotate_and_load;
use tenant_config::certs::{CertStore, CertStoreError, SealKey};
use tenant_config::config::Secret;
use tenant_config::db::listen::{ListenEvent, ListenStream};

fn store(db: &testkit::TestDb, key: SealKey) -> CertStore {
    let pool = tenant_config::db::pool_for_url(&Secret::new(db.router_url()), 4, 5_000).unwrap();
    CertStore::new(pool, Arc::new(key))
}

#[tokio::test]
async fn put_issued_seals_notifies_and_loads() {
    let db = testkit::database().await;
    let (key, text) = SealKey::generate().unwrap();
    let s = store(&db, key);
    let config = tenant_config::db::tls::PgTarget::parse(&db.router_url()).unwrap();
    let mut changes = ListenStream::new(config, &[tenant_config::certs::CHANNEL], "test");
    assert_eq!(changes.next().await, ListenEvent::Connected);

    let now = Utc::now();
    let day = chrono::Duration::days(1);
    s.put_issued(
        "shop.example.org",
        None,
        "CHAIN-1",
        "KEY-1",
        now - day,
        now + day * 90,
        now + day * 60,
    )
    .await
    .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .unwrap(),
        ListenEvent::Notification {
            channel: "certificates_changed".into(),
            payload: "shop.example.org".into()
        }
    );
    let got = s.load_one("shop.example.org").await.unwrap().unwrap();
    assert_eq!(
        (got.chain_pem.as_str(), got.key_pem.as_str()),
        ("CHAIN-1", "KEY-1")
    );
    assert!(!format!("{got:?}").contains("KEY-1"));

    // At rest the key is sealed: not the PEM, and bound to its row.
    let owner = db.connect_as("postgres").await;
    let sealed: Vec<u8> = owner
        .query_one(
            "SELECT private_key_encrypted FROM certificates WHERE domain = 'shop.example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!sealed.windows(5).any(|w| w == b"KEY-1"));
    assert_eq!(sealed[0], 1);

    // A renewal replaces the row; a copied key does not open under another name.
    s.put_issued(
        "shop.example.org",
        None,
        "CHAIN-2",
        "KEY-2",
        now,
        now + day * 90,
        now + day * 60,
    )
    .await
    .unwrap();
    assert_eq!(
        s.load_one("shop.example.org")
            .await
            .unwrap()
            .unwrap()
            .chain_pem,
        "CHAIN-2"
    );
    s.put_issued("*.platform.test", None, "W", "WK", now, now + day, now)
        .await
        .unwrap();
    owner
        .execute(
            "UPDATE certificates SET private_key_encrypted = \
             (SELECT private_key_encrypted FROM certificates WHERE domain = 'shop.example.org') \
             WHERE domain = '*.platform.test'",
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(
        s.load_one("*.platform.test").await,
        Err(CertStoreError::Seal { .. })
    ));
    // Loading everything skips that row and keeps the good one.
    let mut names = Vec::new();
    let stats = s.for_each_issued(|c| names.push(c.domain)).await.unwrap();
    assert_eq!(names, ["shop.example.org"]);
    assert_eq!((stats.loaded, stats.unreadable), (1, 1));

    // Expired certificates are not served; bad names are refused before any query.
    s.put_issued(
        "old.example.org",
        None,
        "C",
        "K",
        now - day * 3,
        now - day,
        now - day * 2,
    )
    .await
    .unwrap();
    assert!(s.load_one("old.example.org").await.unwrap().is_none());
    assert!(matches!(
        s.put_issued("Shop.Example.org", None, "C", "K", now, now + day, now)
            .await,
        Err(CertStoreError::InvalidDomain(_))
    ));

    // Another key cannot read the store.
    let wrong = store(&db, SealKey::generate().unwrap().0);
    assert!(matches!(
        wrong.load_one("shop.example.org").await,
        Err(CertStoreError::Seal { .. })
    ));
    let same = store(&db, SealKey::parse(&text).unwrap());
    assert_eq!(
        same.load_one("shop.example.org")
            .await
            .unwrap()
            .unwrap()
            .key_pem,
        "KEY-2"
    );

    assert!(s.remove("shop.example.org").await.unwrap());
    assert!(s.load_one("shop.example.org").await.unwrap().is_none());
}

/// 10,000 certificates stream out of the store well inside the 5 s start-up budget (this is
/// the database and unsealing part; the router's parse is measured in router/tests/tls.rs).
#[tokio::test]
async fn ten_thousand_load_fast() {
    let db = testkit::database().await;
    let (key, _) = SealKey::generate().unwrap();
    let s = store(&db, key);
    // Realistic sizes: a ~1.6 KB chain and a ~240 B key per row.
    let chain = "C".repeat(1_600);
    let pem = "K".repeat(240);
    let owner = db.connect_as("postgres").await;
    let mut domains = Vec::new();
    let mut sealed = Vec::new();
    for i in 0..10_000 {
        let d = format!("site{i}.example.org");
        sealed.push(
            s.seal_key()
                .seal(
                    pem.as_bytes(),
                    &tenant_config::certs::store::key_context(&d),
                )
                .unwrap(),
        );
        domains.push(d);
    }
    owner
        .execute(
            "INSERT INTO certificates (domain, status, chain_pem, private_key_encrypted, not_before, not_after, renew_after) \
             SELECT d, 'issued', $2, k, now(), now() + interval '90 days', now() + interval '60 days' \
             FROM unnest($1::text[], $3::bytea[]) AS u(d, k)",
            &[&domains, &chain, &sealed],
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    s.for_each_issued(|c| {
        n += 1;
        bytes = bytes.max(c.chain_pem.len() + c.key_pem.len());
    })
    .await
    .unwrap();
    let took = started.elapsed();
    eprintln!("certstore: streamed {n} certificates in {took:?}");
    assert_eq!(n, 10_000);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn ticket_keys_rotate_once_per_period_across_instances() {
    let db = testkit::database().await;
    let (key, text) = SealKey::generate().unwrap();
    let a = store(&db, key);
    let b = store(&db, SealKey::parse(&text).unwrap());
    let period = Duration::from_secs(3600);
    let life = Duration::from_secs(3600);
    let lead = Duration::from_secs(60);
    let first = rotate_and_load(a.pool(), a.seal_key(), period, life, lead)
        .await
        .unwrap();
    assert!(first.rotated);
    assert_eq!(first.keys.len(), 1);
    // The other instance finds the key fresh and shares it.
    let second = rotate_and_load(b.pool(), b.seal_key(), period, life, lead)
        .await
        .unwrap();
    assert!(!second.rotated);
    assert_eq!(second.keys.len(), 1);
    assert_eq!(second.keys[0].key, first.keys[0].key);
    // Both at once: still one new key when due. Age the key past the period.
    let owner = db.connect_as("postgres").await;
    owner
        .execute(
            "UPDATE tls_ticket_keys SET active_from = active_from - interval '3599 seconds', \
             expires_at = expires_at - interval '3599 seconds'",
            &[],
        )
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        rotate_and_load(a.pool(), a.seal_key(), period, life, lead),
        rotate_and_load(b.pool(), b.seal_key(), period, life, lead)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.rotated ^ y.rotated, "exactly one instance rotates");
    assert_eq!(x.keys.len(), 2);
    assert_eq!(y.keys.len(), 2);
    // The new key starts encrypting when the old one's period ends, not at once.
    assert!(x.keys[1].active_from > Utc::now());
    // Expired keys are deleted.
    owner
        .execute(
            "UPDATE tls_ticket_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[&x.keys[0].id],
        )
        .await
        .unwrap();
    let z = rotate_and_load(a.pool(), a.seal_key(), period, life, lead)
        .await
        .unwrap();
    assert_eq!(z.keys.len(), 1);
    // A wrong key fails loudly rather than handing out garbage.
    let wrong = store(&db, SealKey::generate().unwrap().0);
    assert!(
        rotate_and_load(wrong.pool(), wrong.seal_key(), period, life, lead)
            .await
            .is_err()
    );
}

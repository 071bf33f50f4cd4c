//! ACME Renewal Information and `Retry-After`, against a minimal local ARI responder.
//!
//! Pebble 2.4 has no ARI endpoint, so this **stand-in** plays a CA directory that advertises
//! `renewalInfo`: it answers the directory, nonces, `GET renewalInfo/<id>` with a suggested
//! window and `Retry-After: 3600`, and refuses new orders with `429 rateLimited` and
//! `Retry-After: 120`. It is not a CA; it checks our side of RFC 9773 and that our HTTP client
//! keeps the `Retry-After` instant-acme drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use instant_acme::{Account, AccountCredentials, Identifier, NewOrder};
use router::acme::ari;
use router::acme::client::{client_roots, KeepRetryAfter, RetryAfter, REQUEST_TIMEOUT};
use router::acme::schedule;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const START: &str = "2031-01-10T00:00:00Z";
const END: &str = "2031-01-12T00:00:00Z";

/// Serves the stand-in on a thread; returns its base URL.
fn stand_in(ca: &testkit::tls::TestCa) -> String {
    let certs: Vec<_> = CertificateDer::pem_file_iter(&ca.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&ca.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let b = base.clone();
    std::thread::spawn(move || {
        // Bounded: the test makes a handful of requests.
        for stream in listener.incoming().take(50) {
            let Ok(tcp) = stream else { continue };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let (status, extra, body) = answer(&b, &line);
            let resp = format!(
                "HTTP/1.1 {status}\r\nReplay-Nonce: nonce-{}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                rand_nonce(),
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    base
}

fn rand_nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn answer(base: &str, line: &str) -> (&'static str, String, String) {
    let json = "Content-Type: application/json\r\n".to_owned();
    if line.starts_with("GET /dir ") {
        let dir = serde_json::json!({
            "newNonce": format!("{base}/nonce"),
            "newAccount": format!("{base}/acct"),
            "newOrder": format!("{base}/order"),
            "revokeCert": format!("{base}/revoke"),
            "keyChange": format!("{base}/key"),
            "renewalInfo": format!("{base}/ari"),
        });
        return ("200 OK", json, dir.to_string());
    }
    if line.starts_with("HEAD /nonce ") {
        return ("200 OK", String::new(), String::new());
    }
    if line.starts_with("GET /ari/") {
        let body = serde_json::json!({"suggestedWindow": {"start": START, "end": END}});
        return (
            "200 OK",
            format!("{json}Retry-After: 3600\r\n"),
            body.to_string(),
        );
    }
    if line.starts_with("POST /order ") {
        let body = serde_json::json!({
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "stand-in: too many new orders",
            "status": 429,
        });
        return (
            "429 Too Many Requests",
            "Content-Type: application/problem+json\r\nRetry-After: 120\r\n".to_owned(),
            body.to_string(),
        );
    }
    ("404 Not Found", String::new(), String::new())
}

#[tokio::test]
async fn ari_window_and_retry_after_from_the_stand_in() {
    let ca = testkit::tls::TestCa::new("ari stand-in", "DNS:localhost,IP:127.0.0.1");
    let base = stand_in(&ca);
    let (_, pkcs8) = instant_acme::Key::generate_pkcs8().unwrap();
    let creds: AccountCredentials = serde_json::from_value(serde_json::json!({
        "id": format!("{base}/acct/1"),
        "key_pkcs8": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pkcs8.secret_pkcs8_der()),
        "directory": format!("{base}/dir"),
    }))
    .unwrap();
    let slot = RetryAfter::default();
    let http = KeepRetryAfter::new(
        client_roots(Some(&ca.ca)).unwrap(),
        slot.clone(),
        REQUEST_TIMEOUT,
    )
    .unwrap();
    let account = Account::builder_with_http(Box::new(http))
        .from_credentials(creds)
        .await
        .unwrap();

    // Any certificate with an Authority Key Identifier names itself to ARI.
    let leaf = CertificateDer::from_pem_file(&ca.cert).unwrap();
    let w = ari::window(&account, &leaf)
        .await
        .unwrap()
        .expect("the stand-in advertises renewalInfo");
    let (start, end): (DateTime<Utc>, DateTime<Utc>) =
        (START.parse().unwrap(), END.parse().unwrap());
    assert_eq!((w.start, w.end), (start, end));
    assert!(
        (Duration::from_secs(3_590)..=Duration::from_secs(3_600)).contains(&w.retry_after),
        "Retry-After kept: {:?}",
        w.retry_after
    );
    let now: DateTime<Utc> = "2031-01-01T00:00:00Z".parse().unwrap();
    let at = schedule::in_window(w.start, w.end, now, &mut rand::rng());
    assert!(
        at >= start && at <= end,
        "renewal at a point inside the window: {at}"
    );

    // A 429 on new-order: instant-acme reports the problem; our client kept Retry-After.
    let ids = [Identifier::Dns("give.example.org".into())];
    let err = account
        .new_order(&NewOrder::new(&ids))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("rateLimited"), "{err}");
    let kept = slot.take().expect("Retry-After of the 429 kept");
    assert!(
        (Duration::from_secs(110)..=Duration::from_secs(120)).contains(&kept),
        "{kept:?}"
    );
    // And backoff never retries sooner than that.
    let delay = schedule::backoff(
        1,
        Duration::from_secs(60),
        Duration::from_secs(3_600),
        Some(kept),
        &mut rand::rng(),
    );
    assert!(delay >= kept);
}

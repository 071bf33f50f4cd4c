//! TLS to Redis (`rediss://`) against a real `redis-server` on its TLS port with a test CA,
//! without client certificates (as ElastiCache) and with an auth token: the right CA connects,
//! another CA is refused, and `/ready` reports Redis through TLS.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use platform::state::LazyRedis;
use testkit::tls::TestCa;

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(ca: &TestCa, port: u16) -> Server {
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(&ca.cert)
        .arg("--tls-key-file")
        .arg(&ca.key)
        .arg("--tls-ca-cert-file")
        .arg(&ca.ca)
        .args([
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "test-token-123",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package) with TLS support");
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(10)),
        "redis-server TLS port did not open"
    );
    Server(child)
}

async fn ping(url: &str, ca: Option<&str>) -> Result<String, String> {
    let r = LazyRedis::new(url, ca)?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), r.get())
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn rediss_verifies_the_server_and_authenticates() {
    tenant_config::db::tls::install_crypto_provider();
    let ca = TestCa::new("redis-test-ca", "DNS:localhost");
    let other = TestCa::new("someone-else", "DNS:localhost");
    let port = testkit::free_port();
    let _server = start(&ca, port);
    let url = format!("rediss://:test-token-123@localhost:{port}/0");
    let ca_path = ca.ca.display().to_string();
    assert_eq!(ping(&url, Some(&ca_path)).await, Ok("PONG".into()));
    let wrong = other.ca.display().to_string();
    assert!(
        ping(&url, Some(&wrong)).await.is_err(),
        "another CA must be refused"
    );
    let no_token = format!("rediss://localhost:{port}/0");
    assert!(
        ping(&no_token, Some(&ca_path)).await.is_err(),
        "the token is required"
    );
    // The platform's readiness goes through the same client.
    let db = testkit::database().await;
    let env = tenant_config::config::MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_CA_FILE", ca_path.as_str()),
        ("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef"),
    ]);
    let config: tenant_config::config::PlatformConfig =
        tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let report = serde_json::to_value(platform::health::report(&state).await).unwrap();
    assert_eq!(report["checks"]["redis"]["status"], "up", "{report}");
}

/// A CA file with no PEM certificate in it (empty, or the same CA in DER) used to pass
/// `check-config` and then fail every connection with an empty trust store; it is refused when
/// the client is built, in one line naming `redis.ca_file`, as is a CA file next to a plain
/// `redis://` URL (which would silently ignore it).
#[tokio::test]
async fn a_ca_file_without_a_pem_certificate_is_refused_up_front() {
    tenant_config::db::tls::install_crypto_provider();
    let ca = TestCa::new("redis-der-ca", "DNS:localhost");
    let port = testkit::free_port();
    let _server = start(&ca, port);
    let url = format!("rediss://:test-token-123@localhost:{port}/0");
    let dir = tempfile::tempdir().unwrap();
    let der = dir.path().join("ca.der");
    let status = Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&ca.ca)
        .arg("-out")
        .arg(&der)
        .status()
        .unwrap();
    assert!(status.success());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for path in [&der, &empty] {
        let path = path.display().to_string();
        let err = match LazyRedis::new(&url, Some(&path)) {
            Ok(_) => panic!(
                "{path}: accepted, every connection would fail: {:?}",
                ping(&url, Some(&path)).await
            ),
            Err(e) => e,
        };
        assert!(err.starts_with("redis.ca_file "), "{err}");
        assert!(err.contains("no PEM certificate"), "{err}");
        assert!(
            !err.contains("test-token-123") && !err.contains('\n'),
            "{err}"
        );
    }
    let plain = format!("redis://:test-token-123@localhost:{port}/0");
    let err = LazyRedis::new(&plain, Some(&ca.ca.display().to_string()))
        .err()
        .unwrap();
    assert!(
        err.starts_with("redis.ca_file: ") && !err.contains("test-token-123"),
        "{err}"
    );
    // The PEM form of the same CA connects.
    assert_eq!(
        ping(&url, Some(&ca.ca.display().to_string())).await,
        Ok("PONG".into())
    );
}

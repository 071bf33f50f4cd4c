//! The router's command line with a static tenant file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

fn router(dir: &std::path::Path, tenants: &str) -> Command {
    let file = dir.join("tenants.toml");
    std::fs::write(&file, tenants).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_router"));
    c.env_clear()
        .env("ROUTER_STATIC_TENANTS", &file)
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef");
    c
}

#[test]
fn check_config_validates_the_static_tenant_file() {
    let dir = tempfile::tempdir().unwrap();
    let ok = router(dir.path(), "[[tenant]]\nslug = 'grace'\nname = 'Grace'\n")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = router(dir.path(), "[[tenant]]\nslug = 'www'\nname = 'W'\n")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("tenant 1") && err.contains("reserved"),
        "{err}"
    );
}

#[test]
fn missing_tenant_source_is_a_config_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_router"))
        .env_clear()
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database") && err.contains("static_tenants"),
        "{err}"
    );
}

/// The rate limits' Redis CA file is checked as `serve` uses it: a file with no PEM
/// certificate in it (empty, DER) or a CA file next to a plain `redis://` URL fails
/// `check-config` with one line naming `redis.ca_file`, instead of a limiter whose every Redis
/// call fails.
#[test]
fn check_config_refuses_a_redis_ca_file_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let der = dir.path().join("ca.der");
    std::fs::write(&der, [0x30u8, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x01]).unwrap();
    for (url, ca) in [
        ("rediss://:token@cache.example:6379/0", &empty),
        ("rediss://:token@cache.example:6379/0", &der),
        ("redis://:token@cache.example:6379/0", &empty),
    ] {
        let out = router(dir.path(), "[[tenant]]\nslug = 'grace'\nname = 'Grace'\n")
            .env("REDIS_URL", url)
            .env("REDIS_CA_FILE", ca)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{url} {}", ca.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("redis.ca_file"), "{err}");
        assert!(!err.contains("token"), "secret echoed: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

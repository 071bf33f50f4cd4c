//! The binary's command line: help, check-config, and exit code 64 with one line on bad config.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

fn platform() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_platform"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn good_env(c: &mut Command) -> &mut Command {
    c.env(
        "DATABASE_URL",
        "postgres://platform_web@127.0.0.1:5432/platform",
    )
    .env("REDIS_URL", "redis://127.0.0.1:6379/0")
    .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
}

#[test]
fn help_lists_the_subcommands() {
    let out = platform().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check-config", "migrate"] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}

#[test]
fn check_config_accepts_a_valid_environment() {
    let out = good_env(&mut platform())
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("admin host admin.platform.localhost"),
        "{text}"
    );
    assert!(
        !text.contains("platform_web@"),
        "no secrets printed: {text}"
    );
}

fn assert_bad_config(out: std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

#[test]
fn bad_config_exits_64_naming_the_field() {
    let out = platform()
        .env("REDIS_URL", "redis://127.0.0.1:6379/0")
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "database");

    let out = good_env(&mut platform())
        .env("DATABASE_URL", "mysql://nope")
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "database.url");

    let out = good_env(&mut platform())
        .env("STRIPE_PLATFORM_FEE_PERCENT", "2.555")
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "stripe.platform_fee_percent");

    let out = good_env(&mut platform())
        .env("EDGE_SIGNING_SECRET", "short")
        .arg("serve")
        .output()
        .unwrap();
    assert_bad_config(out, "edge.signing_secret");
}

#[test]
fn unknown_and_malformed_file_entries_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[database]\nurl = 'postgres://x@127.0.0.1/db'\npool = 3\n",
    )
    .unwrap();
    let out = good_env(&mut platform())
        .arg("--config")
        .arg(&unknown)
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "database");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "listen = '127.0.0.1:1'\n[database\n").unwrap();
    let out = good_env(&mut platform())
        .arg("--config")
        .arg(&broken)
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "line 2");

    let out = good_env(&mut platform())
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert_bad_config(out, "missing.toml");
}

/// What passes `check-config` starts: it builds the same handles as `serve`. `rediss://` and
/// the TLS database modes are accepted; an unreadable CA bundle or an unknown `sslmode` fails
/// the check with one line naming the field.
#[test]
fn check_config_builds_what_serve_builds() {
    for (var, value) in [
        ("REDIS_URL", "rediss://:token@cache.example:6379/0"),
        (
            "DATABASE_URL",
            "postgres://platform_web@db.example:5432/platform?sslmode=verify-full",
        ),
        (
            "DATABASE_URL",
            "postgres://platform_web@db.example:5432/platform?sslmode=require",
        ),
    ] {
        let out = good_env(&mut platform())
            .env(var, value)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{var}={value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (var, value, field) in [
        ("REDIS_CA_FILE", "/nonexistent/ca.pem", "redis.ca_file"),
        (
            "DATABASE_URL",
            "postgres://h/db?sslmode=sometimes",
            "database.url",
        ),
        (
            "DATABASE_MIGRATION_URL",
            "postgres://h/db?sslmode=bogus",
            "migration_url",
        ),
    ] {
        let out = good_env(&mut platform())
            .env(var, value)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{var}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A CA file with no PEM certificate in it fails the check, not every connection later.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = good_env(&mut platform())
        .env("REDIS_URL", "rediss://:token@cache.example:6379/0")
        .env("REDIS_CA_FILE", empty.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("redis.ca_file") && err.contains("no PEM certificate"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

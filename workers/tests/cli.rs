//! The workers' command line.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

fn workers() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workers"));
    c.env_clear()
        .env(
            "DATABASE_URL",
            "postgres://platform_workers@127.0.0.1:5432/platform",
        )
        .env("CRON_SECRET", "0123456789abcdef0123456789abcdef");
    c
}

#[test]
fn check_config_passes_and_fails_cleanly() {
    let ok = workers().arg("check-config").output().unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let weak = workers()
        .env("CRON_SECRET", "hunter2")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(weak.status.code(), Some(64));
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(err.contains("cron_secret"), "{err}");
    assert!(!err.contains("hunter2"), "secret echoed: {err}");

    let smtp = workers()
        .env("SMTP_URL", "http://mail")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(smtp.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&smtp.stderr).contains("smtp.url"));
}

#[test]
fn help_names_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_workers"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("run") && text.contains("check-config"),
        "{text}"
    );
}

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

/// What passes `check-config` starts: the mail transport is built the same way by both, so the
/// STARTTLS spelling the docs use passes and a scheme lettre cannot use fails at the check,
/// naming the field; a database URL with a TLS mode tokio-postgres alone refuses is accepted.
#[test]
fn check_config_builds_what_run_builds() {
    for (var, value) in [
        ("SMTP_URL", "smtp+starttls://user:pass@smtp.example.org:587"),
        ("SMTP_URL", "smtps://apikey:SG.x@smtp.sendgrid.net:465"),
        (
            "DATABASE_URL",
            "postgres://platform_workers@db.example:5432/platform?sslmode=verify-full",
        ),
    ] {
        let out = workers()
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
        ("SMTP_URL", "smtpx://mail.example.org", "smtp.url"),
        (
            "DATABASE_URL",
            "postgres://h/db?sslmode=sometimes",
            "sslmode",
        ),
        (
            "DATABASE_URL",
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/rds.pem",
            "sslrootcert",
        ),
    ] {
        let out = workers()
            .env(var, value)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{var}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A password without a user is refused at the check, not at the first send.
    let out = workers()
        .env("SMTP_PASSWORD", "SG.key")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.username"));
}

/// A sender the mailer cannot parse (an unquoted comma in the name, an empty domain label)
/// used to pass the check and start, then fail every message; it is refused at the check with
/// one line naming `smtp.from`. The quoted form of the same name passes.
#[test]
fn check_config_refuses_a_sender_the_mailer_cannot_use() {
    for from in [
        "Donations, Inc. <a@x.org>",
        "a@x..org",
        "Donations <a@x.org> extra",
        "a@x.org, b@x.org",
    ] {
        for cmd in ["check-config", "run"] {
            let out = workers().env("EMAIL_FROM", from).arg(cmd).output().unwrap();
            assert_eq!(out.status.code(), Some(64), "{cmd} {from}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("smtp.from"), "{from}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
    }
    let out = workers()
        .env("EMAIL_FROM", "\"Donations, Inc.\" <receipts@example.org>")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The seeds name the relay `EMAIL_HOST`/`EMAIL_PORT` (SendGrid on 587) with `EMAIL_USER`/
/// `EMAIL_PASSWORD`: that passes, and half of it, or it next to `SMTP_URL`, is refused naming
/// the field rather than silently sending to the local default.
#[test]
fn check_config_maps_the_seeds_email_host_and_port() {
    let out = workers()
        .env("EMAIL_HOST", "smtp.sendgrid.net")
        .env("EMAIL_PORT", "587")
        .env("EMAIL_USER", "apikey")
        .env("EMAIL_PASSWORD", "SG.secret-key")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (vars, field) in [
        (&[("EMAIL_HOST", "smtp.sendgrid.net")][..], "smtp.port"),
        (&[("EMAIL_PORT", "587")][..], "smtp.host"),
        (
            &[("EMAIL_HOST", "smtp.sendgrid.net/x"), ("EMAIL_PORT", "587")][..],
            "smtp.host",
        ),
        (
            &[("EMAIL_HOST", "smtp.sendgrid.net"), ("EMAIL_PORT", "70000")][..],
            "smtp.port",
        ),
        (
            &[
                ("EMAIL_HOST", "smtp.sendgrid.net"),
                ("EMAIL_PORT", "465"),
                ("SMTP_URL", "smtps://smtp.sendgrid.net:465"),
            ][..],
            "smtp.url",
        ),
    ] {
        let mut c = workers();
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.arg("check-config").output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{vars:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

//! The `workers` binary as operators run it: consumers surviving a killed worker, graceful
//! hand-back at shutdown, the cron HTTP endpoint and `workers trigger` (auth, overlap, exit
//! codes), and mail delivery through a real SMTP sink that first fails.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::NoTls;

const CRON_SECRET: &str = "cron-secret-for-tests-0123456789abcdef";
const BIN: &str = env!("CARGO_BIN_EXE_workers");

fn command(db: &testkit::TestDb, smtp_url: &str, listen_port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("DATABASE_URL", db.workers_url())
        .env("CRON_SECRET", CRON_SECRET)
        .env("SMTP_URL", smtp_url)
        .env("EMAIL_FROM", "Donations <receipts@platform.test>")
        .env("WORKERS_LISTEN", format!("127.0.0.1:{listen_port}"))
        // Never the default port: tests run side by side.
        .env(
            "WORKERS_OPERATOR_LISTEN",
            format!("127.0.0.1:{}", testkit::free_port()),
        )
        .env("WORKERS_LEASE_SECS", "2")
        .env("WORKERS_SCHEDULER", "false")
        .env("WORKERS_SHUTDOWN_GRACE_SECS", "1")
        .env("LOG_LEVEL", "info");
    c
}

fn start(db: &testkit::TestDb, smtp_url: &str) -> (testkit::Spawned, u16, tempfile::TempDir) {
    let (p, port, _, dir) = start_ports(db, smtp_url);
    (p, port, dir)
}

/// Starts `workers run`; the public and the operator port.
fn start_ports(
    db: &testkit::TestDb,
    smtp_url: &str,
) -> (testkit::Spawned, u16, u16, tempfile::TempDir) {
    let (port, operator) = (testkit::free_port(), testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(db, smtp_url, port);
    cmd.env("WORKERS_OPERATOR_LISTEN", format!("127.0.0.1:{operator}"))
        .arg("run");
    let p = testkit::Spawned::start(cmd, &dir.path().join("workers.log"));
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(20))
            && testkit::wait_for_port(operator, Duration::from_secs(5)),
        "workers did not listen: {}",
        p.output()
    );
    (p, port, operator, dir)
}

async fn owner(db: &testkit::TestDb) -> tokio_postgres::Client {
    db.connect_as("postgres").await
}

async fn wait_for(client: &tokio_postgres::Client, sql: &str, want: i64, limit: Duration) -> i64 {
    let start = std::time::Instant::now();
    loop {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        if n == want || start.elapsed() > limit {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_workers_jobs_complete_once_on_another() {
    let db = testkit::database().await;
    let o = owner(&db).await;
    o.execute(
        "INSERT INTO jobs (kind, payload) SELECT 'noop', '{\"sleep_ms\": 4000}' FROM generate_series(1, 20)",
        &[],
    )
    .await
    .unwrap();
    let (mut first, _, _d1) = start(&db, "smtp://127.0.0.1:9");
    let running = wait_for(
        &o,
        "SELECT count(*) FROM jobs WHERE state = 'running'",
        20,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(running, 20, "first worker claimed the batch");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    let (_second, _, _d2) = start(&db, "smtp://127.0.0.1:9");
    let done = wait_for(
        &o,
        "SELECT count(*) FROM jobs WHERE state = 'completed'",
        20,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done, 20);
    // Each ran a second time exactly once, after the first worker's lease expired.
    let attempts: Vec<i32> = o
        .query("SELECT attempt FROM jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(attempts.iter().all(|a| *a == 2), "{attempts:?}");
}

#[tokio::test]
async fn shutdown_hands_unfinished_jobs_back() {
    let db = testkit::database().await;
    let o = owner(&db).await;
    o.execute("INSERT INTO jobs (kind, payload) SELECT 'noop', '{\"sleep_ms\": 30000}' FROM generate_series(1, 3)", &[])
        .await
        .unwrap();
    let (mut w, _, _d) = start(&db, "smtp://127.0.0.1:9");
    assert_eq!(
        wait_for(
            &o,
            "SELECT count(*) FROM jobs WHERE state = 'running'",
            3,
            Duration::from_secs(15)
        )
        .await,
        3
    );
    w.signal("TERM");
    let code = w.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", w.output());
    let rows = o
        .query("SELECT state, attempt, locked_by FROM jobs", &[])
        .await
        .unwrap();
    for r in rows {
        assert_eq!(r.get::<_, String>(0), "available");
        assert_eq!(
            r.get::<_, i32>(1),
            0,
            "the interrupted attempt is not counted"
        );
        assert!(r.get::<_, Option<String>>(2).is_none());
    }
}

async fn http(port: u16, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("http://127.0.0.1:{port}{path}"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn cron_triggers_are_authenticated_and_never_overlap() {
    let db = testkit::database().await;
    let o = owner(&db).await;
    let admin: uuid::Uuid = o
        .query_one(
            "INSERT INTO admin_users (email, password_hash) VALUES ('a@x.test', 'x') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    o.execute(
        "INSERT INTO sessions (token_hash, kind, admin_user_id, csrf_token_hash, idle_expires_at, absolute_expires_at)
         VALUES (sha256('expired'), 'admin', $1, sha256('c'), now() - interval '1 hour', now() - interval '1 minute'),
                (sha256('live'), 'admin', $1, sha256('c'), now() + interval '1 hour', now() + interval '2 hours')",
        &[&admin],
    )
    .await
    .unwrap();
    let (_w, port, operator, _d) = start_ports(&db, "smtp://127.0.0.1:9");
    assert_eq!(http(port, "/api/cron/cleanup-sessions", None).await.0, 401);
    assert_eq!(
        http(
            port,
            "/api/cron/cleanup-sessions",
            Some("wrong-secret-wrong-secret-wrong-secret")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        http(port, "/api/cron/format-disk", Some(CRON_SECRET))
            .await
            .0,
        404
    );
    let (status, body) = http(port, "/api/cron/cleanup-sessions", Some(CRON_SECRET)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counts"]["sessions"], 1);
    assert!(body["run_id"].as_i64().is_some());
    let left: i64 = o
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "only the expired session went");

    // Another runner holds the job's lock: HTTP answers 409, the CLI exits 3, both recorded.
    let (holder, conn) = tokio_postgres::connect(&db.workers_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    holder
        .execute("SELECT pg_advisory_lock(7300003)", &[])
        .await
        .unwrap();
    assert_eq!(
        http(port, "/api/cron/cleanup-sessions", Some(CRON_SECRET))
            .await
            .0,
        409
    );
    let out = command(&db, "smtp://127.0.0.1:9", testkit::free_port())
        .args(["trigger", "cleanup-sessions"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(holder);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = command(&db, "smtp://127.0.0.1:9", testkit::free_port())
        .args(["trigger", "cleanup-sessions"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unknown = command(&db, "smtp://127.0.0.1:9", testkit::free_port())
        .args(["trigger", "nope"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(64));
    let runs: Vec<(String, String)> = o
        .query(
            "SELECT trigger, outcome FROM cron_runs WHERE job = 'cleanup-sessions' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expect = |t: &str, out: &str| (t.to_owned(), out.to_owned());
    assert_eq!(
        runs,
        vec![
            expect("http", "succeeded"),
            expect("http", "skipped"),
            expect("cli", "skipped"),
            expect("cli", "succeeded")
        ]
    );
    // Metrics (on the operator port) show the last success per job.
    let text = reqwest::get(format!("http://127.0.0.1:{operator}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("workers_cron_last_success_timestamp_seconds{job=\"cleanup-sessions\"}")
        })
        .unwrap();
    let ts: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ts > 1.7e9, "{line}");
}

#[tokio::test]
async fn receipts_retry_through_a_failing_relay_then_arrive_once() {
    let db = testkit::database().await;
    let o = owner(&db).await;
    let tenant: uuid::Uuid = o
        .query_one(
            "INSERT INTO tenants (slug, name, settings) VALUES ('grace', 'Grace Church',
               '{\"branding\": {\"primary_color\": \"#884422\"}}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    o.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         VALUES ($1, 'receipt:test', 'donation_receipt', 'ann@example.org',
                 '{\"donor_name\": \"Ann\", \"amount_minor\": 2550, \"currency\": \"usd\", \"fund\": \"roof\", \"donation_id\": \"d-1\"}')",
        &[&tenant],
    )
    .await
    .unwrap();
    // The relay is down: nothing listens on this port yet.
    let port = testkit::free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let trigger = || {
        command(&db, &url, testkit::free_port())
            .args(["trigger", "process-emails"])
            .output()
            .unwrap()
    };
    let out = trigger();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"retried\":1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = o
        .query_one("SELECT status, attempts, next_attempt_at > now(), last_error, message_id FROM email_outbox", &[])
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, i32>(1)),
        ("pending".into(), 1)
    );
    assert!(r.get::<_, bool>(2), "backs off");
    assert!(!r.get::<_, String>(3).is_empty());
    let message_id: String = r.get(4);
    // Not due yet: a run now sends nothing.
    let sink = testkit::SmtpSink::start_on(port);
    let out = trigger();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"sent\":0"));
    o.execute("UPDATE email_outbox SET next_attempt_at = now()", &[])
        .await
        .unwrap();
    let out = trigger();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"sent\":1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.contains(&format!("Message-ID: {message_id}")), "{m}");
    assert!(m.contains("Subject: Your receipt from Grace Church"));
    assert!(m.contains("To: ann@example.org"));
    assert!(m.contains("25.50 USD") && m.contains("#884422"));
    let status: String = o
        .query_one("SELECT status FROM email_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "sent");
    trigger();
    assert_eq!(sink.messages().len(), 1, "sent once");
}

/// The seeds' `EMAIL_HOST`/`EMAIL_PORT` (no `SMTP_URL`) are where mail goes: they used to be
/// ignored, and every receipt went to the default `127.0.0.1:2525` instead. A port other than
/// 587 and 465 is plain SMTP, as the local sink speaks.
#[tokio::test]
async fn the_seeds_email_host_and_port_are_where_mail_goes() {
    let db = testkit::database().await;
    let o = owner(&db).await;
    let tenant: uuid::Uuid = o
        .query_one(
            "INSERT INTO tenants (slug, name) VALUES ('grace', 'Grace Church') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    o.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         VALUES ($1, 'receipt:seeds', 'donation_receipt', 'ann@example.org',
                 '{\"donor_name\": \"Ann\", \"amount_minor\": 1000, \"currency\": \"usd\", \"fund\": \"general\", \"donation_id\": \"d-2\"}')",
        &[&tenant],
    )
    .await
    .unwrap();
    let sink = testkit::SmtpSink::start();
    let mut cmd = command(&db, "unused", testkit::free_port());
    cmd.env_remove("SMTP_URL")
        .env("EMAIL_HOST", "127.0.0.1")
        .env("EMAIL_PORT", sink.port.to_string())
        .args(["trigger", "process-emails"]);
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"sent\":1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: ann@example.org"), "{}", mails[0]);
    assert!(
        mails[0].contains("Message-ID: <") && mails[0].contains("@platform.test>"),
        "the Message-ID's domain is the sender's: {}",
        mails[0]
    );
}

#[tokio::test]
async fn trigger_exits_1_when_the_run_fails() {
    // A Kubernetes CronJob, a systemd timer or EventBridge must see a failed run as a failure:
    // any exit code other than 0. (3 is kept for "already running elsewhere".)
    let db = testkit::database().await;
    let o = owner(&db).await;
    // The cleanup job's third step cannot run: its table is gone.
    o.execute(
        "ALTER TABLE acme_challenges RENAME TO acme_challenges_gone",
        &[],
    )
    .await
    .unwrap();
    let out = command(&db, "smtp://127.0.0.1:9", testkit::free_port())
        .args(["trigger", "cleanup-sessions"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: String = o
        .query_one(
            "SELECT outcome FROM cron_runs WHERE job = 'cleanup-sessions' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outcome, "failed");
}

//! The real binary on SIGTERM: for `PLATFORM_DRAIN_DELAY_SECS` its public `/api/health` and
//! operator `/ready` answer 503 while other requests are still served (so the router's health
//! check takes it out before it stops accepting), then it exits 0. With the delay at 0 it stops
//! at once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Status code of `GET path` on `127.0.0.1:port`, or `None` when nothing answers.
fn status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Polls `ok` every 50 ms for up to `limit`.
fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ok()
}

struct Instance {
    proc: testkit::Spawned,
    public: u16,
    operator: u16,
    _dir: tempfile::TempDir,
}

async fn start(delay: &str) -> Instance {
    let db = testkit::database().await;
    let dir = tempfile::tempdir().unwrap();
    let (public, operator) = (testkit::free_port(), testkit::free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.web_url())
        .env("REDIS_URL", testkit::redis().url())
        .env("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
        .env("PLATFORM_LISTEN", format!("127.0.0.1:{public}"))
        .env("PLATFORM_OPERATOR_LISTEN", format!("127.0.0.1:{operator}"))
        .env("PLATFORM_DRAIN_DELAY_SECS", delay)
        .arg("serve");
    let proc = testkit::Spawned::start(cmd, &dir.path().join("platform.log"));
    let ready = wait_until(Duration::from_secs(20), || {
        status(operator, "/ready") == Some(200)
    });
    assert!(ready, "platform became ready:\n{}", proc.output());
    assert_eq!(status(public, "/api/health"), Some(200));
    Instance {
        proc,
        public,
        operator,
        _dir: dir,
    }
}

#[tokio::test]
async fn sigterm_reports_unavailable_while_still_serving_then_exits() {
    let mut p = start("3").await;
    let sent = Instant::now();
    p.proc.signal("TERM");
    let took_out = wait_until(Duration::from_secs(2), || {
        status(p.public, "/api/health") == Some(503)
    });
    assert!(took_out, "/api/health turns 503 after SIGTERM");
    assert_eq!(status(p.operator, "/ready"), Some(503), "/ready too");
    assert_eq!(
        status(p.operator, "/health"),
        Some(200),
        "liveness stays up"
    );
    assert_eq!(
        status(p.public, "/api/openapi.json"),
        Some(200),
        "an ordinary request is still served in the lame-duck period"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "checks ran inside the period"
    );
    let code = p.proc.wait_exit(Duration::from_secs(15));
    let lasted = sent.elapsed();
    assert_eq!(code, Some(0), "clean exit:\n{}", p.proc.output());
    assert!(
        lasted >= Duration::from_millis(2_900),
        "the listener stayed open for the whole delay (exited after {lasted:?})"
    );
    assert_eq!(status(p.public, "/api/openapi.json"), None, "closed after");
}

#[tokio::test]
async fn zero_delay_stops_at_once() {
    let mut p = start("0").await;
    let sent = Instant::now();
    p.proc.signal("TERM");
    assert_eq!(p.proc.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "no lame-duck period with PLATFORM_DRAIN_DELAY_SECS=0 ({:?})",
        sent.elapsed()
    );
}

//! One health shape for the three binaries, and the probe behind their `healthcheck` command.
//!
//! Every binary serves `/health` and `/ready` on its private operator listener (never on the
//! public one) with the same body, so one dashboard query, one alert and one runbook fit all
//! three:
//!
//! ```json
//! {"status":"healthy","version":"0.1.0","uptime_seconds":42,
//!  "checks":{"database":{"status":"up","latency_ms":0.8}}}
//! ```
//!
//! `status` is `healthy` when every check is up, `unhealthy` when every check is down and
//! `degraded` in between. Each check names its dependency and says `up` or `down`, how long the
//! probe took, and, when down, a short reason (never a connection string or a secret). `detail`
//! carries a number an operator wants next to the verdict (pending migrations, usable
//! instances). What makes a binary *ready* is its own rule; the shape is shared.
//!
//! The public side of each service says only `{"status":"ok"}` or `{"status":"unavailable"}`
//! (the seeds' `/api/health`): versions, latencies and pool sizes help an attacker more than a
//! monitor on the internet.
//!
//! [`probe_ready`] is the client half: a few lines of HTTP/1.1 over a plain socket, so container
//! images need no curl for their `HEALTHCHECK`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Overall verdict of a [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check is up.
    Healthy,
    /// Some checks are down.
    Degraded,
    /// Every check is down.
    Unhealthy,
}

/// One dependency's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// How long the probe took, in milliseconds.
    pub latency_ms: f64,
    /// A number or word worth seeing next to the verdict (e.g. pending migrations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Short reason when down: the first line of the error, at most 120 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    /// An `up` check.
    pub fn up(latency: Duration) -> Self {
        Self {
            status: "up",
            latency_ms: ms(latency),
            detail: None,
            error: None,
        }
    }

    /// A `down` check with its reason, shortened.
    pub fn down(latency: Duration, error: &str) -> Self {
        Self {
            status: "down",
            latency_ms: ms(latency),
            detail: None,
            error: Some(short(error)),
        }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether the check passed.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

fn ms(d: Duration) -> f64 {
    // Microsecond resolution is plenty and keeps the numbers short.
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// First line, bounded: enough to diagnose, never a dump.
pub fn short(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

/// Runs `probe` with a time limit and times it; an error or the timeout makes a `down` check.
pub async fn timed<F, T, E>(limit: Duration, probe: F) -> (Check, Option<T>)
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let outcome = tokio::time::timeout(limit, probe).await;
    let took = start.elapsed();
    match outcome {
        Ok(Ok(v)) => (Check::up(took), Some(v)),
        Ok(Err(e)) => (Check::down(took, &e.to_string()), None),
        Err(_) => (Check::down(took, "timed out"), None),
    }
}

/// The body of `/health` and `/ready` on every operator listener.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Overall verdict.
    pub status: Status,
    /// The binary's version.
    pub version: &'static str,
    /// Seconds since the process started serving.
    pub uptime_seconds: u64,
    /// Per-dependency results, by name (serialised in this order).
    pub checks: Checks,
}

/// Named checks in a fixed order: a small ordered map that serialises as a JSON object.
#[derive(Debug, Clone, Default)]
pub struct Checks(pub Vec<(&'static str, Check)>);

impl Serialize for Checks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, check) in &self.0 {
            m.serialize_entry(name, check)?;
        }
        m.end()
    }
}

impl Checks {
    /// The check called `name`.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }
}

impl Report {
    /// A report over `checks`, the status derived from them.
    pub fn new(
        version: &'static str,
        started: Instant,
        checks: Vec<(&'static str, Check)>,
    ) -> Self {
        let up = checks.iter().filter(|(_, c)| c.is_up()).count();
        let status = if up == checks.len() {
            Status::Healthy
        } else if up == 0 {
            Status::Unhealthy
        } else {
            Status::Degraded
        };
        Self {
            status,
            version,
            uptime_seconds: started.elapsed().as_secs(),
            checks: Checks(checks),
        }
    }

    /// Whether every check is up.
    pub fn all_up(&self) -> bool {
        self.status == Status::Healthy
    }
}

/// The public `/api/health` body: a status and nothing else.
pub fn public_body(ready: bool) -> &'static str {
    if ready {
        r#"{"status":"ok"}"#
    } else {
        r#"{"status":"unavailable"}"#
    }
}

/// Longest the `healthcheck` command waits for an answer in all (container runtimes give the
/// command its own timeout, usually 3–10 s; this stays well inside it).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a client on this host reaches a listener bound to `addr`: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn local_target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// `GET path` on `addr` (an operator listener); the status code, or why there is none.
pub fn probe(addr: SocketAddr, path: &str, limit: Duration) -> Result<u16, String> {
    let target = local_target(addr);
    let deadline = Instant::now() + limit;
    let mut stream =
        TcpStream::connect_timeout(&target, limit).map_err(|e| format!("{target}: {e}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left())).ok();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{target}: {e}"))?;
    // The status line is all we need: read until its end, or 64 bytes.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 64 {
        stream.set_read_timeout(Some(left())).ok();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{target}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_ascii_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(format!("{target}: not an HTTP answer")),
    }
}

/// The `healthcheck` command of every binary: probes `/ready` on its operator listener (or
/// `/health` with `live`) and returns the exit code (0 on a 200, 1 anything else), printing one
/// line.
///
/// `/ready` suits gates: compose's `service_healthy`, a deploy script, a load balancer. A
/// runtime that *restarts* unhealthy containers (ECS, Docker Swarm) should use `live`: a
/// database outage then does not restart every instance at once, which would only add cold
/// starts to the outage.
pub fn healthcheck(binary: &str, operator: &str, live: bool) -> i32 {
    let path = if live { "/health" } else { "/ready" };
    let addr: SocketAddr = match operator.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("{binary}: healthcheck: operator listen address {operator:?} is not ip:port");
            return 1;
        }
    };
    let verdict = if live { "alive" } else { "ready" };
    match probe(addr, path, PROBE_TIMEOUT) {
        Ok(200) => {
            println!("{binary}: {verdict} ({})", local_target(addr));
            0
        }
        Ok(code) => {
            eprintln!("{binary}: not {verdict}: {path} answered {code}");
            1
        }
        Err(e) => {
            eprintln!("{binary}: not {verdict}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_checks() {
        let t = Instant::now();
        let up = || Check::up(Duration::from_micros(1500));
        let down = || Check::down(Duration::ZERO, "refused\nmore");
        assert_eq!(
            Report::new("1", t, vec![("a", up()), ("b", up())]).status,
            Status::Healthy
        );
        assert_eq!(
            Report::new("1", t, vec![("a", up()), ("b", down())]).status,
            Status::Degraded
        );
        assert_eq!(
            Report::new("1", t, vec![("a", down())]).status,
            Status::Unhealthy
        );
        let c = down();
        assert_eq!(c.error.as_deref(), Some("refused"));
        assert_eq!(up().latency_ms, 1.5);
    }

    #[test]
    fn unspecified_is_probed_on_loopback() {
        assert_eq!(
            local_target("0.0.0.0:9".parse().unwrap()),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            local_target("[::]:9".parse().unwrap()),
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            local_target("10.1.2.3:9".parse().unwrap()),
            "10.1.2.3:9".parse().unwrap()
        );
    }

    #[test]
    fn probe_reads_the_status_and_fails_on_a_closed_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 256];
            let n = s.read(&mut req).unwrap();
            assert!(req[..n].starts_with(b"GET /ready HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(probe(addr, "/ready", PROBE_TIMEOUT), Ok(503));
        server.join().unwrap();
        // The listener is gone: nothing answers on that port now.
        assert!(probe(addr, "/ready", Duration::from_millis(500)).is_err());
    }
}

//! HTTP/1.1 request hygiene at the edge, over raw TCP (no client library that would normalise
//! what is sent): a conformance corpus of request-line, header, framing and host shapes, run
//! against the router and against a real nginx with equal limits, which must agree on accept
//! vs refuse except for the listed deliberate differences; refusals carry the request id, one
//! access-log line and a metric; pipelined and half-closed requests are answered; a slowloris
//! does not stop other clients; the per-address connection cap.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
domains = ['grace-church.localhost']
";

const HOST: &str = "grace.platform.test";

/// An origin that takes any head and any body and answers `200 ok <path>`: the corpus is
/// about what the front refuses, so the origin refuses nothing (an ordinary HTTP server has
/// its own header-count cap, which would hide the router's decision).
async fn permissive_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    // Serve every complete request in the buffer.
                    while let Some(end) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let body_end = if head.contains("transfer-encoding: chunked") {
                            match find(&buf[end + 4..], b"0\r\n\r\n") {
                                Some(i) => end + 4 + i + 5,
                                None => break,
                            }
                        } else {
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            end + 4 + len
                        };
                        buf.drain(..body_end);
                        let body = format!("ok {path}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: String,
}

/// Reads responses from `s` until `count` are complete, EOF, or `wait` passes.
async fn read_responses(s: &mut TcpStream, count: usize, wait: Duration) -> Vec<Resp> {
    read_responses_to(s, count, wait, false).await
}

/// As [`read_responses`]; `head_only`: answers to `HEAD`, whose bodies are never sent.
async fn read_responses_to(
    s: &mut TcpStream,
    count: usize,
    wait: Duration,
    head_only: bool,
) -> Vec<Resp> {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|_| !head_only)
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            out.push(Resp { status, head, body });
            if out.len() == count {
                return out;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}

/// Sends `raw` on a fresh connection and returns the first response's status (0: none).
async fn send(port: u16, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A refused head may be answered before all of it is written; that is fine.
    let _ = s.write_all(raw).await;
    read_responses_to(&mut s, 1, Duration::from_secs(5), raw.starts_with(b"HEAD "))
        .await
        .first()
        .map_or(0, |r| r.status)
}

fn router_with(origin: &str, settings: &[(&str, &str)]) -> testkit::RouterProcess {
    let mut b = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.to_owned()])
        .set("rate_limits", "enabled = false");
    for (t, l) in settings {
        b = b.set(t, l);
    }
    b.start()
}

/// A corpus case: name, raw bytes, the router's expected status.
struct Case {
    name: &'static str,
    raw: Vec<u8>,
    router: u16,
}

fn case(name: &'static str, raw: impl Into<Vec<u8>>, router: u16) -> Case {
    Case {
        name,
        raw: raw.into(),
        router,
    }
}

fn get_with(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{extra}Connection: close\r\n\r\n")
}

fn corpus() -> Vec<Case> {
    let big = |n: usize| "v".repeat(n);
    let headers =
        |count: usize| -> String { (0..count).map(|i| format!("X-H{i}: {i}\r\n")).collect() };
    vec![
        // Request line.
        case("plain GET", get_with(""), 200),
        case("HEAD", format!("HEAD / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 200),
        case("bare LF line ends", format!("GET / HTTP/1.1\nHost: {HOST}\nConnection: close\n\n"), 200),
        case("URI of 7000 bytes", format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n", big(7000)), 200),
        case("URI of 9000 bytes", format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n", big(9000)), 414),
        case("request line of 8190 bytes", format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n", big(8176)), 200),
        case("request line of 8191 bytes", format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n", big(8177)), 414),
        case("header line of 8190 bytes", get_with(&format!("X-Big: {}\r\n", big(8183))), 200),
        case("header line of 8191 bytes", get_with(&format!("X-Big: {}\r\n", big(8184))), 431),
        case("garbage request line", "GARBAGE\r\n\r\n", 400),
        case("extra token in request line", format!("GET / HTTP/1.1 x\r\nHost: {HOST}\r\n\r\n"), 400),
        case("unknown HTTP version", format!("GET / HTTP/1.7\r\nHost: {HOST}\r\n\r\n"), 400),
        case("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 308),
        case("target without a slash", format!("GET zz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("asterisk-form OPTIONS", format!("OPTIONS * HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("CONNECT authority-form", format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 405),
        case("NUL in the path", format!("GET /a\0b HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("control character in the path", format!("GET /a\x01b HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("encoded NUL in the path", format!("GET /a%00b HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("dot segments above the root", format!("GET /a/../../etc/passwd HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 400),
        case("dot segments inside the root", format!("GET /a/./b/../c HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 200),
        case("UTF-8 in the path", format!("GET /caf\u{e9} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 200),
        // Host.
        case("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        case("two Host fields", format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nHost: {HOST}\r\n\r\n"), 400),
        case("Host with port", format!("GET / HTTP/1.1\r\nHost: {HOST}:80\r\nConnection: close\r\n\r\n"), 200),
        case("absolute-form, same Host", format!("GET http://{HOST}/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 200),
        case("HTTP/1.0 absolute-form without Host", format!("GET http://{HOST}/x HTTP/1.0\r\n\r\n"), 200),
        case("absolute-form without Host", format!("GET http://{HOST}/x HTTP/1.1\r\nConnection: close\r\n\r\n"), 400),
        case("empty Host", "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n", 400),
        case("Host with a space", "GET / HTTP/1.1\r\nHost: gr ace.example\r\nConnection: close\r\n\r\n", 400),
        case("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n", 400),
        case("Host with an empty label", "GET / HTTP/1.1\r\nHost: a..example\r\nConnection: close\r\n\r\n", 400),
        case("Host with a letter port", format!("GET / HTTP/1.1\r\nHost: {HOST}:8o\r\nConnection: close\r\n\r\n"), 400),
        case("Host with a trailing dot", format!("GET / HTTP/1.1\r\nHost: {HOST}.\r\nConnection: close\r\n\r\n"), 200),
        case("absolute-form, other Host", format!("GET http://{HOST}/x HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"), 400),
        // Headers.
        case("header line of 7000 bytes", get_with(&format!("X-Big: {}\r\n", big(7000))), 200),
        case("header line of 9000 bytes", get_with(&format!("X-Big: {}\r\n", big(9000))), 431),
        case("cookie of 12000 bytes", get_with(&format!("Cookie: a={}\r\n", big(12000))), 431),
        case("3 lines of 7000 bytes", get_with(&(0..3).map(|i| format!("X-{i}: {}\r\n", big(7000))).collect::<String>()), 200),
        case("6 lines of 7000 bytes", get_with(&(0..6).map(|i| format!("X-{i}: {}\r\n", big(7000))).collect::<String>()), 431),
        case("150 small headers", get_with(&headers(150)), 200),
        case("250 small headers", get_with(&headers(250)), 200),
        case("300 small headers", get_with(&headers(300)), 400),
        case("space before colon", format!("GET / HTTP/1.1\r\nHost : {HOST}\r\n\r\n"), 400),
        case("obs-fold continuation", get_with("X-A: a\r\n  folded\r\n"), 400),
        case("NUL in a value", get_with("X-A: a\0b\r\n"), 400),
        // Framing.
        case("POST with Content-Length", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"), 200),
        case("POST chunked", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 200),
        case("Content-Length and chunked", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        case("chunked and Content-Length", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"), 400),
        case("Transfer-Encoding gzip, chunked", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400),
        case("Transfer-Encoding gzip", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: gzip\r\n\r\n"), 400),
        case("Transfer-Encoding on HTTP/1.0", format!("POST / HTTP/1.0\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        case("two equal Content-Length", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 400),
        case("two different Content-Length", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 400),
        case("Content-Length not a number", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: five\r\n\r\nhello"), 400),
        case("Content-Length with sign", format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: +5\r\n\r\nhello"), 400),
    ]
}

/// Cases where the router and nginx deliberately disagree on accept vs refuse, with why.
const DIFFERENCES: &[(&str, &str)] = &[
    (
        "unknown HTTP version",
        "httparse (Pingora's parser) knows HTTP/1.0 and 1.1 only and Pingora answers 400; \
         nginx serves any HTTP/1.x minor version as 1.1 (RFC 9112 allows either)",
    ),
    (
        "300 small headers",
        "Pingora's parser stops at 256 fields and answers 400 before any hook; nginx only \
         counts bytes (300 short lines fit its 32 KiB)",
    ),
    (
        "Host with a letter port",
        "RFC 9110 §7.2 makes the port digits and RFC 9112 §3.2 says a server MUST refuse an \
         invalid Host; nginx ignores what follows the colon",
    ),
    (
        "absolute-form, other Host",
        "Pingora refuses a Host that differs from the absolute-form authority (an ambiguous \
         authority); nginx routes by the target and ignores Host",
    ),
];

fn start_nginx(dir: &std::path::Path) -> (testkit::Spawned, u16) {
    assert!(
        Command::new("nginx").arg("-v").output().is_ok(),
        "nginx is not installed (apt-get install nginx-light)"
    );
    let port = testkit::free_port();
    // The router's defaults, in nginx's words.
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_header_timeout 10s; client_body_timeout 60s; keepalive_timeout 75s;
  client_header_buffer_size 1k; large_client_header_buffers 4 8k;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port} default_server; server_name _;
    location / {{ return 200 \"ok\"; }} }}
}}",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut c = Command::new("nginx");
    c.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
    let nginx = testkit::Spawned::start(c, &dir.join("stdout.log"));
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(10)),
        "nginx did not start"
    );
    (nginx, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_passes_and_agrees_with_nginx() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, nginx_port) = start_nginx(dir.path());
    let mut failures = Vec::new();
    let mut table = String::new();
    for c in corpus() {
        let ours = send(r.port, &c.raw).await;
        let theirs = send(nginx_port, &c.raw).await;
        table.push_str(&format!("{:<36} router {ours} nginx {theirs}\n", c.name));
        if ours != c.router {
            failures.push(format!(
                "{}: router answered {ours}, expected {}",
                c.name, c.router
            ));
        }
        let accepted = |s: u16| (200..400).contains(&s);
        let differs = DIFFERENCES.iter().any(|(n, _)| *n == c.name);
        if accepted(ours) != accepted(theirs) && !differs {
            failures.push(format!("{}: router {ours} vs nginx {theirs}", c.name));
        }
        if differs && accepted(ours) == accepted(theirs) {
            failures.push(format!("{}: listed as a difference but both agree", c.name));
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{failures:#?}\n{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_request_id_a_log_line_and_a_metric() {
    let origin = permissive_origin().await;
    let r = router_with(
        &origin,
        &[("client_limits", "large_client_header_buffers = \"2 2k\"")],
    );
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nX-Request-Id: hyg-test-1\r\n\r\n")
        .await
        .unwrap();
    let resp = read_responses(&mut s, 1, Duration::from_secs(5)).await;
    let resp = &resp[0];
    assert_eq!(resp.status, 400, "no Host is refused, not redirected");
    assert!(resp.body.contains("missing_host") && resp.body.contains("hyg-test-1"));
    let lower = resp.head.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: hyg-test-1"), "{}", resp.head);
    assert!(lower.contains("content-type: text/plain"), "{}", resp.head);
    assert!(!lower.contains("server: pingora"), "{}", resp.head);
    assert!(lower.contains("connection: close"), "{}", resp.head);
    // The configured limits apply: a 3000-byte header line no longer fits one 2k buffer.
    let line = format!("X-Big: {}\r\n", "v".repeat(3000));
    assert_eq!(send(r.port, get_with(&line).as_bytes()).await, 431);
    assert_eq!(
        send(
            r.port,
            format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", "u".repeat(2100)).as_bytes()
        )
        .await,
        414
    );
    // Nothing reached the origin's tenant lookup: no origin request was needed at all.
    tokio::time::sleep(Duration::from_millis(600)).await; // access-log flush interval
    let log = std::fs::read_to_string(r.dir().join("router.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"request_id\":\"hyg-test-1\""))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("\"reason\":\"missing_host\"") && lines[0].contains("\"status\":400")
    );
    let metrics = reqwest::get(r.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (reason, n) in [
        ("missing_host", 1),
        ("header_line_too_large", 1),
        ("uri_too_long", 1),
        ("conn_limit", 0),
    ] {
        let series = format!("router_refused_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&series), "{series} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_all_answered_in_order() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let one = |p: &str, last: bool| {
        format!(
            "GET /{p} HTTP/1.1\r\nHost: {HOST}\r\n{}\r\n",
            if last { "Connection: close\r\n" } else { "" }
        )
    };
    let burst = format!(
        "{}{}POST /b HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\n\r\nabc{}",
        one("a", false),
        one("a2", false),
        one("c", true)
    );
    s.write_all(burst.as_bytes()).await.unwrap();
    let resps = read_responses(&mut s, 4, Duration::from_secs(10)).await;
    let bodies: Vec<&str> = resps.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["ok /a", "ok /a2", "ok /b", "ok /c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_clients_get_their_answer() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    for raw in [
        format!("GET /half HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!("POST /half HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\nhi"),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap(); // SHUT_WR, as `nc -N` does
        let resps = read_responses(&mut s, 1, Duration::from_secs(5)).await;
        assert_eq!(resps.len(), 1, "no answer after half-close: {raw:?}");
        assert_eq!(resps[0].status, 200);
        assert_eq!(resps[0].body, "ok /half");
        // And the router then closes its side.
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(eof.is_ok(), "connection left open after the answer");
    }
}

/// 250 connections trickle a head a byte at a time; with a 2 s header deadline they are cut
/// off, and ordinary requests are answered within a second all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_stop_other_clients() {
    let origin = permissive_origin().await;
    let r = router_with(
        &origin,
        &[("client_limits", "client_header_timeout_secs = 2")],
    );
    let port = r.port;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..250 {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes())
                .await
                .unwrap();
            let opened = Instant::now();
            // One byte of a never-ending header every 300 ms, until the router hangs up.
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if s.write_all(b"X").await.is_err() {
                    break;
                }
                let mut b = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
                if opened.elapsed() > Duration::from_secs(15) {
                    return None;
                }
            }
            Some(opened.elapsed())
        }));
    }
    // Ordinary requests while the slow ones are open.
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let status = send(port, get_with("").as_bytes()).await;
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        worst < Duration::from_secs(1),
        "an ordinary request took {worst:?}"
    );
    for h in slow {
        let held = h
            .await
            .unwrap()
            .expect("a slow connection was never cut off");
        assert!(held < Duration::from_secs(4), "cut off only after {held:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let metrics = reqwest::get(r.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("router_refused_total{reason=\"header_timeout\"} 250"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The header deadline ends with the head: a response slower than it, and a second request
/// on the same connection, are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_deadline_stops_at_the_head() {
    let origin = testkit::origin("platform").start().await;
    let r = router_with(
        &origin.host_port(),
        &[("client_limits", "client_header_timeout_secs = 1")],
    );
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    for _ in 0..2 {
        s.write_all(format!("GET /slow?ms=1500 HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let resp = read_responses(&mut s, 1, Duration::from_secs(5)).await;
        assert_eq!(resp.first().map(|r| r.status), Some(200));
    }
}

/// A body that stops arriving is cut off after `client_body_timeout` with a `408`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_a_408() {
    let origin = permissive_origin().await;
    let r = router_with(
        &origin,
        &[("client_limits", "client_body_timeout_secs = 1")],
    );
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let t = Instant::now();
    s.write_all(
        format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\n\r\nabc").as_bytes(),
    )
    .await
    .unwrap();
    let resp = read_responses(&mut s, 1, Duration::from_secs(5)).await;
    assert_eq!(resp.first().map(|r| r.status), Some(408));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_when_configured() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[("client_limits", "max_connections_per_ip = 3")]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(("127.0.0.1", r.port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fourth is closed at once, unanswered.
    let mut extra = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let _ = extra.write_all(get_with("").as_bytes()).await;
    assert!(read_responses(&mut extra, 1, Duration::from_secs(3))
        .await
        .is_empty());
    // One of the three is still served; when it closes, a new one is accepted.
    held[0].write_all(get_with("").as_bytes()).await.unwrap();
    let resp = read_responses(&mut held[0], 1, Duration::from_secs(3)).await;
    assert_eq!(resp[0].status, 200);
    drop(held.remove(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(r.port, get_with("").as_bytes()).await, 200);
    let metrics = reqwest::get(r.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("router_refused_total{reason=\"conn_limit\"} 1"));
}

/// A refusal speaks JSON to API clients (problem+json naming the reason and the request id),
/// plain text to everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_problem_json_for_api_clients() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    for (raw, json) in [
        (
            "GET /api/tenant HTTP/1.1\r\nHost: a..b\r\nAccept: application/json\r\n\r\n".to_owned(),
            true,
        ),
        (
            "GET /api/tenant HTTP/1.1\r\nHost: a..b\r\n\r\n".to_owned(),
            true,
        ),
        ("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n".to_owned(), false),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let resp = read_responses(&mut s, 1, Duration::from_secs(5)).await;
        let resp = &resp[0];
        assert_eq!(resp.status, 400, "{raw:?}");
        let lower = resp.head.to_ascii_lowercase();
        if json {
            assert!(
                lower.contains("content-type: application/problem+json"),
                "{}",
                resp.head
            );
            let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
            assert_eq!(v["status"], 400);
            assert_eq!(v["detail"], "bad_host");
            assert!(v["request_id"].as_str().is_some_and(|id| !id.is_empty()));
        } else {
            assert!(lower.contains("content-type: text/plain"), "{}", resp.head);
            assert!(resp.body.contains("bad_host"));
        }
    }
}

/// What Pingora refuses while parsing (two `Host` fields, differing `Content-Length`s, an
/// HTTP version it does not know) is answered by the router: the same status, a request id in
/// the header, the body and the access log, no `Server: Pingora`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingora_refusals_carry_the_routers_request_id() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    for raw in [
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "GET / HTTP/1.7\r\nHost: a.example\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let resp = read_responses(&mut s, 1, Duration::from_secs(5)).await;
        let resp = &resp[0];
        assert_eq!(resp.status, 400, "{raw:?}");
        let lower = resp.head.to_ascii_lowercase();
        assert!(!lower.contains("server: pingora"), "{}", resp.head);
        let id = lower
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("no request id: {}", resp.head))
            .trim()
            .to_owned();
        assert!(resp.body.contains(&id), "{}", resp.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = r.process.output();
        assert!(
            out.lines().any(|l| l.contains(&id) && l.contains("pingora_400")),
            "the log line carries the same id: {out}"
        );
    }
}

/// A client that goes away in the middle of its body is logged as nginx logs it (499, one
/// access-log line), not as a router ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_body_is_a_499_not_an_error() {
    let origin = permissive_origin().await;
    let r = router_with(&origin, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(
        format!(
            "POST /abort-test HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\nonly ten!!"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let mut out = String::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        out = r.process.output();
        if out.contains("/abort-test") {
            break;
        }
    }
    let line = out
        .lines()
        .find(|l| l.contains("\"target\":\"access\"") && l.contains("/abort-test"))
        .unwrap_or_else(|| panic!("no access-log line: {out}"));
    assert!(line.contains("\"status\":499"), "{line}");
    assert!(
        !out.lines().any(|l| l.contains("\"level\":\"ERROR\"")),
        "a client leaving is not an error: {out}"
    );
}

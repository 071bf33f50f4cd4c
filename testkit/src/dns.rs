//! `pebble-challtestsrv` (Debian package `pebble`) as a real DNS server whose TXT and A records
//! tests set through its management API.
//!
//! [`dns`] answers every A/AAAA query it has no record for with 127.0.0.1/::1 (the server's
//! defaults, which ACME-style tests rely on). [`dns_strict`] is a second server without those
//! defaults: a name answers exactly the A records a test added, and nothing after
//! [`DnsServer::clear_a`] (for tests of what a resolver does with changing answers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{on_exit, wait_until};

/// The binary's DNS server.
#[derive(Debug)]
pub struct DnsServer {
    /// DNS port (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// Management API port.
    pub management_port: u16,
}

static DNS: OnceLock<DnsServer> = OnceLock::new();
static DNS_STRICT: OnceLock<DnsServer> = OnceLock::new();

/// Starts the server on first call.
pub fn dns() -> &'static DnsServer {
    DNS.get_or_init(|| start(&[]))
}

/// Starts the server without default addresses on first call (unknown names have no A/AAAA).
pub fn dns_strict() -> &'static DnsServer {
    DNS_STRICT.get_or_init(|| start(&["-defaultIPv4", "", "-defaultIPv6", ""]))
}

fn start(extra: &[&str]) -> DnsServer {
    let port = crate::free_port();
    let management_port = crate::free_port();
    let child = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{port}")])
        .args(["-management", &format!("127.0.0.1:{management_port}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("testkit: start pebble-challtestsrv (is the pebble package installed?)");
    on_exit(format!("kill {}", child.id()));
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            management_port
        ))
        .is_ok()
            && TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "testkit: pebble-challtestsrv did not start"
    );
    std::mem::forget(child);
    DnsServer {
        port,
        management_port,
    }
}

impl DnsServer {
    fn post(&self, path: &str, body: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.management_port))
            .expect("challtestsrv management");
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to challtestsrv");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "challtestsrv {path}: {out}"
        );
    }

    /// Publishes a TXT record (`host` without the trailing dot).
    pub fn set_txt(&self, host: &str, value: &str) {
        let body = format!("{{\"host\":\"{host}.\",\"value\":\"{value}\"}}");
        self.post("/set-txt", &body);
    }

    /// Removes the TXT records of `host`.
    pub fn clear_txt(&self, host: &str) {
        self.post("/clear-txt", &format!("{{\"host\":\"{host}.\"}}"));
    }

    /// Adds A records for `host` (appended to any it has); answered with TTL 0.
    pub fn add_a(&self, host: &str, addrs: &[std::net::Ipv4Addr]) {
        let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        let body = format!(
            "{{\"host\":\"{host}.\",\"addresses\":[{}]}}",
            list.join(",")
        );
        self.post("/add-a", &body);
    }

    /// Removes every A record of `host`.
    pub fn clear_a(&self, host: &str) {
        self.post("/clear-a", &format!("{{\"host\":\"{host}.\"}}"));
    }

    /// Replaces the A records of `host` with `addrs`.
    pub fn set_a(&self, host: &str, addrs: &[std::net::Ipv4Addr]) {
        self.clear_a(host);
        self.add_a(host, addrs);
    }
}

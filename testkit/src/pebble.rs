//! Debian's Pebble (a test ACME CA) with its own `pebble-challtestsrv` as DNS server, on free
//! loopback ports, one per test: Pebble's `httpPort` (where it sends HTTP-01 validations) is
//! fixed at start, so each test gets a Pebble aimed at its own router.
//!
//! Pebble's HTTPS certificate is made with `openssl` ([`crate::tls::TestCa`]); its issuing root
//! is new on every start and read from the management API ([`Pebble::root_pem`]). Started with
//! `PEBBLE_VA_NOSLEEP=1` (no random validation delay) and `PEBBLE_WFE_NONCEREJECT=0` (it would
//! otherwise reject 5 % of nonces, more than instant-acme's three retries absorb). The DNS
//! server answers every A query with 127.0.0.1 and no AAAA, so validations reach the router on
//! loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::spawn::{wait_for_port, Spawned};
use crate::tls::TestCa;

/// Builder for a Pebble.
#[derive(Debug, Clone)]
pub struct PebbleBuilder {
    http_port: u16,
    validity_secs: Option<u64>,
    dns_server: Option<u16>,
}

/// A Pebble whose HTTP-01 validations go to `127.0.0.1:<http_port>`.
pub fn pebble(http_port: u16) -> PebbleBuilder {
    PebbleBuilder {
        http_port,
        validity_secs: None,
        dns_server: None,
    }
}

/// A running Pebble and its DNS server (both stopped when dropped).
pub struct Pebble {
    process: Option<Spawned>,
    _dns: Option<Spawned>,
    /// ACME port (`https://127.0.0.1:<port>/dir`).
    pub port: u16,
    /// Management API port (`/roots/0`).
    pub management_port: u16,
    /// The DNS server Pebble asks (UDP/TCP).
    pub dns_port: u16,
    /// The DNS server's management port (`/set-txt`, `/add-a`).
    pub dns_management_port: u16,
    ca: TestCa,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl PebbleBuilder {
    /// Certificates valid for `secs` seconds (Pebble's `certificateValidityPeriod`).
    pub fn validity_secs(mut self, secs: u64) -> Self {
        self.validity_secs = Some(secs);
        self
    }

    /// Asks this DNS server (on 127.0.0.1) instead of starting a challtestsrv: a
    /// [`crate::Bind`] for DNS-01 by RFC 2136.
    pub fn dns_server(mut self, port: u16) -> Self {
        self.dns_server = Some(port);
        self
    }

    /// Starts the DNS server and Pebble and waits for both.
    pub fn start(self) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("testkit-pebble-")
            .tempdir()
            .expect("testkit: pebble dir");
        let ca = TestCa::new("testkit pebble", "DNS:localhost,IP:127.0.0.1");
        let (port, management_port) = (crate::free_port(), crate::free_port());
        let (mut dns_port, dns_management_port) = (crate::free_port(), crate::free_port());
        let mut dns = Command::new("pebble-challtestsrv");
        dns.args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let dns = match self.dns_server {
            Some(port) => {
                dns_port = port;
                None
            }
            None => {
                let dns = Spawned::start(dns, &dir.path().join("challtestsrv.log"));
                assert!(
                    wait_for_port(dns_management_port, Duration::from_secs(10)),
                    "testkit: pebble-challtestsrv did not start:\n{}",
                    dns.output()
                );
                Some(dns)
            }
        };
        let validity = self.validity_secs.map_or(String::new(), |s| {
            format!(",\n    \"certificateValidityPeriod\": {s}")
        });
        let config = dir.path().join("pebble.json");
        std::fs::write(
            &config,
            format!(
                "{{\"pebble\": {{\n    \"listenAddress\": \"127.0.0.1:{port}\",\n    \
                 \"managementListenAddress\": \"127.0.0.1:{management_port}\",\n    \
                 \"certificate\": {:?},\n    \"privateKey\": {:?},\n    \
                 \"httpPort\": {},\n    \"tlsPort\": {},\n    \
                 \"ocspResponderURL\": \"\",\n    \"externalAccountBindingRequired\": false{validity}\n}}}}\n",
                ca.cert.display().to_string(),
                ca.key.display().to_string(),
                self.http_port,
                crate::free_port(),
            ),
        )
        .expect("testkit: write pebble.json");
        let mut p = Pebble {
            process: None,
            _dns: dns,
            port,
            management_port,
            dns_port,
            dns_management_port,
            ca,
            config,
            dir,
        };
        p.start_process();
        p
    }
}

impl Pebble {
    fn start_process(&mut self) {
        let mut cmd = Command::new("pebble");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)]);
        let process = Spawned::start(cmd, &self.dir.path().join("pebble.log"));
        let up = wait_for_port(self.port, Duration::from_secs(20))
            && wait_for_port(self.management_port, Duration::from_secs(10));
        assert!(up, "testkit: pebble did not start:\n{}", process.output());
        self.process = Some(process);
    }

    /// `https://127.0.0.1:<port>/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root that signed Pebble's own HTTPS certificate (for the ACME client).
    pub fn server_root(&self) -> &Path {
        &self.ca.ca
    }

    /// The root Pebble issues under right now, from its management API (PEM).
    pub fn root_pem(&self) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
            .arg(&self.ca.ca)
            .arg(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            ))
            .output()
            .expect("testkit: run curl");
        assert!(
            out.status.success(),
            "testkit: pebble root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("PEM is text")
    }

    /// Writes [`Pebble::root_pem`] to `path`.
    pub fn write_root(&self, path: &Path) {
        std::fs::write(path, self.root_pem()).expect("testkit: write pebble root");
    }

    /// Stops Pebble (the DNS server keeps running).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts Pebble again on the same ports: a new root, and every account forgotten.
    pub fn restart(&mut self) {
        self.process = None;
        self.start_process();
    }

    /// What Pebble printed so far.
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Spawned::output)
            .unwrap_or_default()
    }
}

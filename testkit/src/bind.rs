//! Debian's BIND (`named`, package `bind9`) as the primary of one test zone on a free loopback
//! port, accepting RFC 2136 updates of TXT records signed with a TSIG key made by
//! `tsig-keygen`. Every name in the zone resolves to 127.0.0.1, so it can also be Pebble's DNS
//! server for DNS-01 (challtestsrv answers UPDATE with NOTIMP).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::spawn::{wait_for_port, Spawned};

/// The TSIG key's name.
pub const TSIG_KEY_NAME: &str = "acme-key";

/// A running `named` (stopped when dropped).
pub struct Bind {
    _process: Spawned,
    /// DNS port (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// The zone, without the trailing dot.
    pub zone: String,
    /// The TSIG secret (base64), algorithm hmac-sha256.
    pub tsig_secret: String,
    dir: tempfile::TempDir,
}

impl Bind {
    /// Starts `named` serving `zone`.
    pub fn start(zone: &str) -> Bind {
        let dir = tempfile::Builder::new()
            .prefix("testkit-bind-")
            .tempdir()
            .expect("testkit: bind dir");
        let d = dir.path();
        let key = Command::new("tsig-keygen")
            .args(["-a", "hmac-sha256", TSIG_KEY_NAME])
            .output()
            .expect("testkit: run tsig-keygen (is bind9 installed?)");
        let key = String::from_utf8(key.stdout).expect("key text");
        let tsig_secret = key
            .split("secret \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("tsig-keygen printed a secret")
            .to_owned();
        let port = crate::free_port();
        let dirs = d.display().to_string();
        std::fs::write(
            d.join("named.conf"),
            format!(
                "options {{\n  directory \"{dirs}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  \
                 listen-on-v6 {{ none; }};\n  pid-file \"{dirs}/named.pid\";\n  \
                 session-keyfile \"{dirs}/session.key\";\n  recursion no;\n  \
                 dnssec-validation no;\n  allow-query {{ any; }};\n}};\n\
                 controls {{ }};\n{key}\n\
                 zone \"{zone}\" {{\n  type primary;\n  file \"{dirs}/zone.db\";\n  \
                 update-policy {{ grant {TSIG_KEY_NAME} zonesub TXT; }};\n}};\n"
            ),
        )
        .expect("testkit: write named.conf");
        std::fs::write(
            d.join("zone.db"),
            format!(
                "$TTL 60\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 0\n\
                 @ IN NS ns.{zone}.\nns IN A 127.0.0.1\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n"
            ),
        )
        .expect("testkit: write zone");
        // named as root would switch to the `bind` user when asked; the files are ours, so
        // it runs as whoever runs the test.
        let mut cmd = Command::new("named");
        cmd.args(["-g", "-4", "-c"]).arg(d.join("named.conf"));
        let process = Spawned::start(cmd, &d.join("named.log"));
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "testkit: named did not start:\n{}",
            process.output()
        );
        let bind = Bind {
            _process: process,
            port,
            zone: zone.to_owned(),
            tsig_secret,
            dir,
        };
        // The port opens before the zone is loaded; an update sent in between is answered
        // SERVFAIL (seen on a loaded machine). Ready means the zone's SOA is served.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while bind.soa().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "testkit: named never served the {zone} zone:\n{}",
                bind._process.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bind
    }

    /// The zone's SOA record as `dig +short` prints it (empty until the zone is loaded).
    fn soa(&self) -> String {
        Command::new("dig")
            .args([
                "+short",
                "+norecurse",
                "+time=1",
                "+tries=1",
                "-p",
                &self.port.to_string(),
                "@127.0.0.1",
            ])
            .args([self.zone.as_str(), "SOA"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// The TXT values at `name` (without the trailing dot), asked with `dig`.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                "+short",
                "+norecurse",
                "-p",
                &self.port.to_string(),
                "@127.0.0.1",
            ])
            .args([name, "TXT"])
            .output()
            .expect("testkit: run dig (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_matches('"').to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Folder with named.conf, the zone and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

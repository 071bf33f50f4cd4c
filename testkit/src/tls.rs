//! Test certificates made with the `openssl` command: a CA and a server certificate for given
//! names, for TLS tests against real PostgreSQL and Redis on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway CA with one server certificate, in a temporary folder.
#[derive(Debug)]
pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("testkit: run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "testkit: openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A CA named `name` and a P-256 server certificate whose subjectAltName is `san`
    /// (e.g. `DNS:localhost`), valid for two days.
    pub fn new(name: &str, san: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-ca-")
            .tempdir()
            .expect("testkit: temp dir");
        let d = dir.path();
        std::fs::write(d.join("ext.cnf"), format!("subjectAltName={san}\n"))
            .expect("testkit: write ext.cnf");
        let subj = format!("/CN={name}");
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &subj,
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=server",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        Self {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            _dir: dir,
        }
    }

    /// Lets `user` (e.g. `postgres`) read the files, as servers running under their own
    /// account require; the key stays private to that user. Needs root; a no-op otherwise.
    pub fn give_to(&self, user: &str) {
        if !crate::process::is_root() {
            return;
        }
        let dir = self.ca.parent().unwrap_or(Path::new("."));
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(dir)
            .status()
            .map(|s| s.success());
        assert!(
            matches!(ok, Ok(true)),
            "testkit: chown of {}",
            dir.display()
        );
        let _ = Command::new("chmod").arg("755").arg(dir).status();
        let _ = Command::new("chmod").arg("600").arg(&self.key).status();
    }
}

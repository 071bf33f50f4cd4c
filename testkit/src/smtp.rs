//! An SMTP sink for tests: PyPI `aiosmtpd` on a free loopback port, storing every message it
//! accepts in a Maildir that tests read. Each test starts its own (so it can also stop it to
//! play a failing relay); it is killed by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::wait_until;

/// A running sink.
pub struct SmtpSink {
    /// SMTP port on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub fn start() -> SmtpSink {
        Self::start_on(crate::free_port())
    }

    /// Starts a sink on `port` (to bring a "failing" relay back on the address already
    /// configured).
    pub fn start_on(port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir for the maildir");
        let maildir = dir.path().join("mail");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("testkit: start python3 -m aiosmtpd");
        crate::process::on_exit(format!("kill {}", child.id()));
        assert!(
            wait_until(Duration::from_secs(15), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "testkit: aiosmtpd did not start; install it with `python3 -m pip install -r ops/requirements-test.txt`"
        );
        SmtpSink {
            port,
            maildir,
            _dir: dir,
            child,
        }
    }

    /// `smtp://127.0.0.1:<port>` for the workers' `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let d: &Path = &self.maildir.join(sub);
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

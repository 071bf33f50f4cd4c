//! Child processes for tests (the binaries under test): started with a clean environment,
//! output captured to a file, stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::wait_until;

/// A running child process, killed (SIGKILL) on drop unless already stopped.
pub struct Spawned {
    child: Child,
    log: PathBuf,
}

impl Spawned {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Spawned {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open child log");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn child process");
        Spawned {
            child,
            log: log.to_owned(),
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `QUIT`, `INT`).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Waits up to `limit` for the process to exit; returns its exit code if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(limit, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        code
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    wait_until(limit, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
}

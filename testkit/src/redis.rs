//! A throwaway Redis server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{on_exit, wait_until};

/// A running Redis, shared by the tests of one binary. Tests isolate themselves with key
/// prefixes (or [`RedisServer::url_db`]).
#[derive(Debug)]
pub struct RedisServer {
    /// Loopback port.
    pub port: u16,
    /// Server process id.
    pub pid: u32,
    /// Held so the process handle lives as long as the server; the reaper stops it.
    _child: std::sync::Mutex<std::process::Child>,
}

impl RedisServer {
    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// URL for logical database `db` (0–15).
    pub fn url_db(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (`SIGSTOP`) so tests can watch clients see it go away, then resumes it.
    pub fn pause(&self) {
        let _ = Command::new("kill")
            .args(["-STOP", &self.pid.to_string()])
            .status();
    }

    /// Undoes [`RedisServer::pause`].
    pub fn resume(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
    }
}

static REDIS: OnceLock<RedisServer> = OnceLock::new();

/// The binary's Redis, started on first call.
pub fn redis() -> &'static RedisServer {
    REDIS.get_or_init(start)
}

fn start() -> RedisServer {
    for _ in 0..5 {
        let port = crate::free_port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("testkit: start redis-server (is the redis-server package installed?)");
        let pid = child.id();
        on_exit(format!("kill -CONT {pid} 2>/dev/null; kill {pid}"));
        if wait_until(Duration::from_secs(10), || ping(port)) {
            return RedisServer {
                port,
                pid,
                _child: std::sync::Mutex::new(child),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("testkit: redis-server did not start after 5 attempts");
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

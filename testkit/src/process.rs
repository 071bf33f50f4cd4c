//! Process helpers: running commands as the `postgres` user, and the exit-time reaper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// True when this process runs as root, where PostgreSQL must be run as another user.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command for a PostgreSQL program, run as `postgres` when we are root.
pub fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Directory holding `initdb`, `pg_ctl` and `postgres`: `$PG_BIN`, else the newest Debian
/// `/usr/lib/postgresql/<v>/bin`, else whatever `pg_ctl` on `PATH` resolves to.
pub fn pg_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    PathBuf::from("")
}

/// Runs a command to completion, panicking with its output when it fails (test setup only).
pub fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("testkit: cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "testkit: {what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Keeps reapers' pipes open for the life of the process; never read, only dropped at exit.
static REAPERS: Mutex<Vec<(Child, ChildStdin)>> = Mutex::new(Vec::new());

/// Starts a shell that waits for this process to end, then runs `cleanup`.
pub fn on_exit(cleanup: String) {
    let mut child = Command::new("sh")
        .arg("-c")
        // `read` returns when the pipe closes, which happens only when we exit.
        .arg(format!("read _ignored; {cleanup}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("testkit: spawn reaper shell");
    let stdin = child.stdin.take().expect("piped stdin");
    REAPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((child, stdin));
}

/// Stops every reaper now (used by tests of the testkit itself).
#[allow(dead_code)]
pub fn trigger_reapers() {
    let mut list = REAPERS.lock().unwrap_or_else(|p| p.into_inner());
    for (mut child, mut stdin) in list.drain(..) {
        let _ = stdin.write_all(b"\n");
        drop(stdin);
        let _ = child.wait();
    }
}

/// Polls until `ready` returns true, for at most `limit`.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Single-quotes a string for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

//! The standard process metrics every binary exports (`process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, `process_open_fds`, `process_start_time_seconds`), read from
//! `/proc/self` when `/metrics` is scraped. On systems without `/proc` they are simply absent.

use std::sync::OnceLock;

/// HELP text for the process families.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of this process."
    );
    describe_counter!(
        "process_cpu_seconds_total",
        Unit::Seconds,
        "User and system CPU time this process has used."
    );
    describe_gauge!("process_open_fds", "Open file descriptors of this process.");
    describe_gauge!(
        "process_start_time_seconds",
        Unit::Seconds,
        "When this process started, in Unix time."
    );
}

/// Refreshes the process metrics; call before rendering `/metrics`.
pub fn update() {
    // Read once: the start time does not change (and the kernel's boot time, from which it is
    // counted, is only stable to the second).
    static START: OnceLock<Option<f64>> = OnceLock::new();
    if let Some(start) = *START.get_or_init(start_time_seconds) {
        metrics::gauge!("process_start_time_seconds").set(start);
    }
    if let Some(rss) = rss_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    if let Some(cpu) = cpu_seconds() {
        // Whole seconds: the counter holds integers.
        metrics::counter!("process_cpu_seconds_total").absolute(cpu as u64);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(dir.count() as f64);
    }
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// When the process started, in Unix time, as the kernel recorded it (not when `/metrics`
/// was first scraped, which is what a value taken at the first [`update`] would say): the
/// boot time (`btime` in `/proc/stat`) plus the process's `starttime` (field 22 of
/// `/proc/self/stat`, in clock ticks since boot), as Prometheus' own client libraries do.
pub fn start_time_seconds() -> Option<f64> {
    start_from_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The start time of the process whose `/proc/<pid>/stat` text is `stat`.
fn start_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 3 (state) is the first after the command name, so field 22 is the 20th here.
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some(boot + ticks / 100.0)
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_is_read() {
        assert!(super::rss_bytes().unwrap_or(0) > 0);
        assert!(super::cpu_seconds().is_some());
    }

    /// The start time is the process's, not the time of the first reading: a child started,
    /// then left to run, reports the second it was started (btime is whole seconds, so allow
    /// one), however late it is asked.
    #[test]
    fn start_time_is_when_the_process_started() {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let ours = super::start_time_seconds().unwrap_or(0.0);
        assert!(ours > 1.0e9 && ours <= now() + 1.0, "{ours}");
        // A process of known age: `sleep` started now, its start time read 1.5 s later.
        let before = now();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap_or_else(|e| panic!("sleep: {e}"));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        let started = super::start_from_stat(&stat).unwrap_or(0.0);
        assert!(
            (started - before).abs() < 1.1,
            "started {started}, spawned at {before}"
        );
    }
}

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
    static START: OnceLock<f64> = OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    metrics::gauge!("process_start_time_seconds").set(start);
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
}

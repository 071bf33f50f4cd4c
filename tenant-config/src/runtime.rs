//! Process plumbing every binary shares: logging set-up and the shutdown signal.

use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

use crate::config::{LogConfig, LogFormat};

/// Keeps the log writer thread alive; dropping it flushes what is buffered.
static LOG_GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
/// The same writer, for hot paths that format their own lines (the router's access log).
static LOG_WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// The log writer installed by [`init_logging`], for code that writes pre-formatted JSON lines
/// (one `write` per line, ordered with the `tracing` events). `None` before `init_logging`.
pub fn log_writer() -> Option<NonBlocking> {
    LOG_WRITER.get().cloned()
}

/// Installs the global `tracing` subscriber: JSON lines (one event per line) or pretty text.
///
/// Lines are handed to a writer thread, so a request never waits on a `write` to stderr (at
/// proxy rates one write syscall per access-log line was a measurable share of CPU). The buffer
/// blocks rather than drops when full: log lines are not silently lost. Call [`flush_logs`]
/// before exiting the process.
///
/// An invalid filter falls back to `info` with a warning rather than refusing to start: the
/// directive was already checked by `check-config` where it matters.
pub fn init_logging(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.level);
    let bad_filter = filter.is_err();
    let filter = filter.unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    *LOG_GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    let _ = LOG_WRITER.set(writer.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if bad_filter {
        tracing::warn!(level = %cfg.level, "invalid log.level filter, using info");
    }
}

/// Flushes buffered log lines (before `std::process::exit`, which skips destructors).
pub fn flush_logs() {
    drop(LOG_GUARD.lock().unwrap_or_else(|e| e.into_inner()).take());
}

/// Resolves on Ctrl-C or `SIGTERM` (what ECS, systemd and Kubernetes send to stop a task).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Runs `main` on a multi-threaded Tokio runtime and returns its exit code (1 when the runtime
/// itself cannot start).
pub fn block_on(binary: &str, main: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            1
        }
    }
}

/// Binds a TCP listener, or reports the address and error as one line.
pub async fn bind(binary: &str, addr: &str) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("{binary}: cannot listen on {addr}: {e}");
            None
        }
    }
}

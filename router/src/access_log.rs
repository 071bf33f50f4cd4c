//! The access log: one JSON line per request, written in batches.
//!
//! Handing every line to the log writer on its own cost a channel send, a wake-up of the writer
//! thread and a `write(2)` per request — about a sixth of the router's CPU per request in the
//! benchmark. Lines are formatted into a per-thread scratch buffer, appended to one shared
//! buffer, and the buffer goes to the writer when it holds [`FLUSH_BYTES`] or when the flusher
//! (every [`FLUSH_INTERVAL`]) finds it non-empty. A chunk only ever holds whole lines, so lines
//! never interleave with other log output. The price: a crash loses at most one interval of
//! access lines (shutdown flushes them).
//!
//! The line is written with [`JsonLine`] rather than the generic `tracing` JSON formatter,
//! which cost several microseconds per request in the benchmark.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora::proxy::Session;
use pingora::Error;
use tracing_appender::non_blocking::NonBlocking;

use crate::ctx::RequestCtx;
use crate::json_line::JsonLine;

/// A batch is written once it grows past this many bytes.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// Pending lines are written at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// Batched access-log lines on their way to the process's log writer.
pub struct AccessLog {
    writer: NonBlocking,
    pending: Mutex<Vec<u8>>,
    /// The last written batch's buffer, kept for the next one: a fresh `Vec` would grow from
    /// nothing again, reallocating and copying a dozen times per batch.
    spare: Mutex<Vec<u8>>,
}

impl AccessLog {
    /// Batches lines for `writer`.
    pub fn new(writer: NonBlocking) -> Self {
        Self {
            writer,
            pending: Mutex::new(Vec::with_capacity(FLUSH_BYTES * 2)),
            spare: Mutex::new(Vec::with_capacity(FLUSH_BYTES * 2)),
        }
    }

    /// Formats one line with `format` (which must write a complete line, newline included)
    /// into this thread's scratch buffer and queues it.
    ///
    /// Bytes, not a `String`: every piece written is UTF-8 already (JSON escaping keeps it
    /// so), and skipping a check per piece is part of what keeps the line cheap.
    pub fn line(&self, format: impl FnOnce(&mut Vec<u8>)) {
        SCRATCH.with(|scratch| {
            let mut line = scratch.borrow_mut();
            line.clear();
            format(&mut line);
            self.push(&line);
        });
    }

    /// Queues the access line of a finished request.
    pub fn request(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        status: u16,
        total: Duration,
        error: Option<&Error>,
    ) {
        self.line(|l| request_line(l, session, ctx, status, total, error));
    }

    /// Queues the line of a connection the router ended before any request was complete.
    pub fn connection_event(
        &self,
        request_id: &str,
        client: Option<std::net::IpAddr>,
        status: u16,
        reason: &str,
    ) {
        self.line(|l| connection_line(l, request_id, client, status, reason));
    }

    fn push(&self, line: &[u8]) {
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.extend_from_slice(line);
            (pending.len() >= FLUSH_BYTES).then(|| self.swap_out(&mut pending))
        };
        if let Some(chunk) = full {
            self.write(chunk);
        }
    }

    /// Takes the pending batch, leaving the spare buffer (cleared, capacity kept) in its place.
    fn swap_out(&self, pending: &mut Vec<u8>) -> Vec<u8> {
        let mut next = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        next.clear();
        next.reserve(FLUSH_BYTES * 2);
        std::mem::replace(pending, next)
    }

    /// Writes whatever is pending (the flusher's tick, and shutdown).
    pub fn flush(&self) {
        let chunk = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            self.swap_out(&mut pending)
        };
        self.write(chunk);
    }

    fn write(&self, chunk: Vec<u8>) {
        // The writer is lossless (it blocks when its queue is full) and never fails on write.
        // It copies what it is given, so the buffer is free for reuse at once.
        let _ = self.writer.clone().write_all(&chunk);
        *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = chunk;
    }
}

/// One request's fields, in a fixed order.
fn request_line(
    out: &mut Vec<u8>,
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    total: Duration,
    error: Option<&Error>,
) {
    let req = session.req_header();
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // The host is escaped unless it is the canonical name, shared with what was sent (letters,
    // digits, dots and hyphens only); the request id (checked or generated), the method (an
    // HTTP token), the route and the upstream address never need it.
    let canonical_as_sent = ctx
        .host
        .as_ref()
        .is_some_and(|h| h.as_bytes().as_ptr() == ctx.host_sent.as_bytes().as_ptr());
    let mut l = JsonLine::new(out);
    l.u64("ts_ms", ts_ms)
        .raw_fields(r#","level":"INFO","target":"access""#)
        .raw_str("request_id", ctx.request_id())
        .raw_str("method", req.method.as_str());
    match ctx.host() {
        Some(h) if canonical_as_sent => l.raw_str("host", h),
        _ => l.str("host", &String::from_utf8_lossy(ctx.host_sent.as_bytes())),
    };
    l.str("path", req.uri.path())
        .raw_str("route", ctx.route.as_str())
        .opt_str("tenant", ctx.tenant.as_deref().map(|t| t.slug.as_str()))
        .ip("client", ctx.client_ip)
        .u64("status", u64::from(status))
        .u64("bytes", session.body_bytes_sent() as u64)
        .millis("total_ms", Some(total))
        .millis("upstream_ms", ctx.upstream_header);
    match &ctx.upstream {
        Some(u) => l.raw_str("upstream", u.addr_text()),
        None => l.null("upstream"),
    };
    if let Some(m) = &ctx.limit {
        // Zone names are tokens (a-z, digits, '-', '_'): no escaping needed.
        l.raw_str("limit", m.outcome).raw_str("limit_zone", &m.zone);
    }
    if let Some(reason) = ctx.refusal {
        // Reasons are fixed snake_case words (`respond::hygiene::REASONS`).
        l.raw_str("reason", reason);
    }
    if let Some(e) = error {
        l.raw_str("error", e.etype().as_str());
    }
    l.finish();
}

/// A connection ended by the router before there was a request to log (header deadline,
/// per-address cap, a head only Pingora answered): the same fields as a request line where
/// they are known, with the reason.
fn connection_line(
    out: &mut Vec<u8>,
    request_id: &str,
    client: Option<std::net::IpAddr>,
    status: u16,
    reason: &str,
) {
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut l = JsonLine::new(out);
    l.u64("ts_ms", ts_ms)
        .raw_fields(r#","level":"INFO","target":"access""#)
        .raw_str("request_id", request_id)
        .null("method")
        .null("host")
        .null("path")
        .raw_str("route", "refused")
        .ip("client", client)
        .u64("status", u64::from(status))
        .raw_str("reason", reason);
    l.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_batched_whole_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let file = std::fs::File::create(&path).unwrap();
        let (writer, guard) = tracing_appender::non_blocking(file);
        let log = AccessLog::new(writer);
        log.line(|l| l.extend_from_slice(b"{\"n\":1}\n"));
        log.line(|l| l.extend_from_slice(b"{\"n\":2}\n"));
        // Nothing reaches the writer before a flush or a full batch.
        assert!(!log.pending.lock().unwrap().is_empty());
        log.flush();
        assert!(log.pending.lock().unwrap().is_empty());
        // A batch that passes the threshold is written without waiting for the flusher.
        let big = "x".repeat(1000);
        for _ in 0..70 {
            log.line(|l| {
                l.extend_from_slice(big.as_bytes());
                l.push(b'\n');
            });
        }
        assert!(log.pending.lock().unwrap().len() < FLUSH_BYTES);
        log.flush();
        drop(guard);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 72);
        assert_eq!(lines[..2], ["{\"n\":1}", "{\"n\":2}"]);
        assert!(lines[2..].iter().all(|l| *l == big));
    }
}

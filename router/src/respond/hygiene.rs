//! Request hygiene: refusing heads the platform must never see, first of all the responders,
//! so a refused request costs no tenant lookup and no upstream work.
//!
//! What is refused, and why (RFC 9112 and what nginx refuses with the same settings):
//!
//! - `414` a request line longer than one header buffer (`large_client_header_buffers` size);
//! - `431` more header fields than `max_header_fields`, a header line longer than one buffer,
//!   or a head larger than all buffers together;
//! - `400` an HTTP/1.1 request without `Host` (RFC 9112 §3.2); two are Pingora's refusal;
//! - `400` a `Host` whose value is not a host (RFC 9112 §3.2 says a server MUST refuse an
//!   invalid one): empty, a character no host name or IP literal has (space, `/`, `@`, a
//!   control), an empty label (`a..b`), or a port that is not digits;
//! - `400` a request target that is neither origin-form (`/…`) nor absolute-form (`*`, an
//!   authority, `zz`), a path carrying a control character (raw, or as `%00`–`%1F`/`%7F`:
//!   Pingora percent-encodes raw ones before any hook, so both look alike here), or a path
//!   whose `..` segments climb above the root — what nginx refuses with its 400s;
//! - `400` `Content-Length` together with `Transfer-Encoding` (the request-smuggling shape;
//!   RFC 9112 §6.1 allows a server to refuse it, nginx and HAProxy do), a `Transfer-Encoding`
//!   other than a single `chunked`, more than one `Content-Length`, or one that is not a
//!   number.
//!
//! Pingora has already refused some shapes with its own `400` before this runs (an unparsable
//! head, more than 256 fields or 1 MiB, differing `Content-Length`s, a final coding other than
//! `chunked`, `Transfer-Encoding` on HTTP/1.0, two `Host` fields, a `Host` differing from an
//! absolute-form target); `crate::connection` logs and counts those. Pingora also drops
//! `Content-Length` from the parsed head when `Transfer-Encoding` is present, so that case is
//! read from the raw head.
//!
//! A refusal is a short plain-text body naming the reason and the request id; the connection
//! closes after it (an unread body may be a smuggled request). The reason goes to the access
//! log (`reason`) and to `router_refused_total{reason}`.

use std::ops::ControlFlow;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use super::{Reply, Step};
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;

/// The head-size limits, from `[client_limits]`.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line and longest header line, in bytes (one buffer).
    pub line: usize,
    /// Largest whole head, in bytes (all buffers).
    pub total: usize,
    /// Most header fields.
    pub fields: usize,
}

/// Every refusal reason, as in the access log and the metric's `reason` label. The first
/// group is decided here; the last three on the connection (`crate::connection`).
pub const REASONS: &[&str] = &[
    "uri_too_long",
    "too_many_headers",
    "header_line_too_large",
    "header_section_too_large",
    "missing_host",
    "bad_host",
    "bad_request_target",
    "content_length_with_transfer_encoding",
    "bad_transfer_encoding",
    "duplicate_content_length",
    "bad_content_length",
    "header_timeout",
    "conn_limit",
    "pingora_400",
];

/// Refuses a request that breaks a rule above; everything else continues. `raw_head` is the
/// head exactly as received (request line to the blank line).
pub fn respond(
    req: &RequestHeader,
    raw_head: &[u8],
    ctx: &mut RequestCtx,
    limits: &HeadLimits,
) -> Step {
    match check(req, raw_head, ctx.host_header, limits) {
        None => ControlFlow::Continue(()),
        Some((status, reason)) => {
            ctx.route = RouteLabel::Refused;
            ctx.refusal = Some(reason);
            ControlFlow::Break(refusal(req, status, reason, ctx.request_id()))
        }
    }
}

/// The first rule `req` breaks, as `(status, reason)`.
///
/// `host_header`: whether the request has a `Host` field (read once by `RequestCtx::begin`).
/// Two `Host` fields never get here: Pingora refuses them while parsing.
pub fn check(
    req: &RequestHeader,
    raw_head: &[u8],
    host_header: bool,
    limits: &HeadLimits,
) -> Option<(u16, &'static str)> {
    // "<method> <target> HTTP/1.1\r\n", as sent: like nginx, a line must fit one buffer with
    // its line end.
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + 9 + 2;
    if line > limits.line {
        return Some((414, "uri_too_long"));
    }
    let h = &req.headers;
    if h.len() > limits.fields {
        return Some((431, "too_many_headers"));
    }
    if raw_head.len() > limits.total {
        return Some((431, "header_section_too_large"));
    }
    // A head shorter than one buffer cannot have a longer line.
    if raw_head.len() > limits.line
        && h.iter()
            .any(|(n, v)| n.as_str().len() + 2 + v.len() + 2 > limits.line)
    {
        return Some((431, "header_line_too_large"));
    }
    // HTTP/2 carries the host in `:authority` (Pingora puts it in the URI), not in a Host
    // field (RFC 9113 §8.3.1): only a request with neither is missing it.
    if !host_header
        && (req.version == http::Version::HTTP_11
            || (req.version >= http::Version::HTTP_2 && req.uri.authority().is_none()))
    {
        return Some((400, "missing_host"));
    }
    if bad_target(req) {
        return Some((400, "bad_request_target"));
    }
    if host_header && h.get(HOST).is_some_and(|v| !host_syntax_ok(v.as_bytes())) {
        return Some((400, "bad_host"));
    }
    // Single lookups first: nearly every request has neither field.
    if let Some(first) = h.get(TRANSFER_ENCODING) {
        // Pingora removed Content-Length from the parsed head; the raw head still has it.
        if has_field(raw_head, b"content-length") {
            return Some((400, "content_length_with_transfer_encoding"));
        }
        if h.get_all(TRANSFER_ENCODING).iter().nth(1).is_some()
            || !first
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Some((400, "bad_transfer_encoding"));
        }
    }
    if let Some(first) = h.get(CONTENT_LENGTH) {
        if h.get_all(CONTENT_LENGTH).iter().nth(1).is_some() {
            return Some((400, "duplicate_content_length"));
        }
        let v = first.as_bytes().trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Some((400, "bad_content_length"));
        }
    }
    None
}

/// Whether the request target is one the platform must never see: not origin-form or
/// absolute-form, a control character in the path, or dot segments above the root.
fn bad_target(req: &RequestHeader) -> bool {
    let target = req.raw_path();
    let path = if target.first() == Some(&b'/') {
        let end = target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(target.len());
        &target[..end]
    } else if is_absolute_form(target) {
        // Pingora keeps the whole URL as the raw target and only its path in the URI (and
        // has already checked the authority against `Host`).
        req.uri.path().as_bytes()
    } else {
        return true;
    };
    let mut dot_after_slash = false;
    for (i, &b) in path.iter().enumerate() {
        match b {
            0..=0x20 | 0x7f => return true,
            b'%' if path.get(i + 1..i + 3).is_some_and(encodes_control) => return true,
            b'.' if i > 0 && path[i - 1] == b'/' => dot_after_slash = true,
            _ => {}
        }
    }
    dot_after_slash && climbs_above_root(path)
}

/// Whether a target starts with an `http` or `https` scheme (RFC 9112 §3.2.2).
fn is_absolute_form(target: &[u8]) -> bool {
    let starts = |scheme: &[u8]| {
        target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme)
    };
    starts(b"http://") || starts(b"https://")
}

/// `[hi, lo]` is the hex pair of a control character (`%00`–`%1F`, `%7F`).
fn encodes_control(pair: &[u8]) -> bool {
    match (pair[0], pair[1].to_ascii_lowercase()) {
        (b'0' | b'1', lo) => lo.is_ascii_hexdigit(),
        (b'7', b'f') => true,
        _ => false,
    }
}

/// Whether walking the path's segments (`.` stays, `..` goes up) ever leaves the root.
fn climbs_above_root(path: &[u8]) -> bool {
    let mut depth = 0usize;
    for segment in path.split(|&b| b == b'/').skip(1) {
        match segment {
            b"." | b"" => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// Whether a `Host` value has the shape of `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2):
/// a registered name of unreserved, sub-delimiter and `%` characters without empty inner
/// labels, or a bracketed IP literal; the port, if any, digits only.
fn host_syntax_ok(value: &[u8]) -> bool {
    let (name, port): (&[u8], &[u8]) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &value[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        return match &value[close + 1..] {
            [] => true,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        };
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &[]),
        }
    };
    !name.is_empty()
        && port.iter().all(u8::is_ascii_digit)
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
        && !name.windows(2).any(|w| w == b"..")
}

/// Whether the raw head has a field named `name` (lowercase), at the start of a line.
fn has_field(raw_head: &[u8], name: &[u8]) -> bool {
    raw_head.split(|&b| b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].trim_ascii_start().first() == Some(&b':')
    })
}

/// The refusal's reply: status line text, the reason and the request id, as plain text, or as
/// problem+json for a client that prefers JSON (an API path, or `Accept` asking for it).
fn refusal(req: &RequestHeader, status: u16, reason: &str, request_id: &str) -> Reply {
    let title = match status {
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    if crate::pages::wants_json(req) {
        return crate::pages::problem(status, title, reason, request_id);
    }
    let body = format!("{status} {title}: {reason}\nrequest id: {request_id}\n");
    Reply::new(status, "text/plain; charset=utf-8", Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        line: 8192,
        total: 32768,
        fields: 256,
    };

    /// A head parsed the simple way (test heads are well formed), then as Pingora leaves it.
    fn req(head: &str) -> (RequestHeader, Vec<u8>) {
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap().split(' ');
        let (method, path, version) = (
            first.next().unwrap(),
            first.next().unwrap(),
            first.next().unwrap(),
        );
        let mut out = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        if version == "HTTP/1.0" {
            out.set_version(http::Version::HTTP_10);
        }
        let mut saw_te = false;
        for line in lines.take_while(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap();
            saw_te |= name.eq_ignore_ascii_case("transfer-encoding");
            out.append_header(name.trim().to_owned(), value.trim())
                .unwrap();
        }
        if saw_te {
            out.remove_header(&CONTENT_LENGTH);
        }
        (out, head.as_bytes().to_vec())
    }

    fn verdict(head: &str) -> Option<&'static str> {
        let (r, raw) = req(head);
        let host = r.headers.contains_key(http::header::HOST);
        check(&r, &raw, host, &LIMITS).map(|(_, reason)| reason)
    }

    #[test]
    fn ordinary_requests_pass() {
        assert_eq!(verdict("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"), None);
        assert_eq!(verdict("GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(
            verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            None
        );
        assert_eq!(
            verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"),
            None
        );
    }

    #[test]
    fn framing_and_host_shapes_are_refused() {
        for (head, reason) in [
            ("GET / HTTP/1.1\r\n\r\n", "missing_host"),
            ("GET http://a/ HTTP/1.1\r\n\r\n", "missing_host"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "content_length_with_transfer_encoding",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "bad_transfer_encoding",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                "bad_transfer_encoding",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                "duplicate_content_length",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
                "bad_content_length",
            ),
        ] {
            assert_eq!(verdict(head), Some(reason), "{head:?}");
        }
    }

    #[test]
    fn hosts_and_targets_that_are_not_are_refused() {
        for (head, reason) in [
            ("GET / HTTP/1.1\r\nHost: \r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: a b.example\r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: a.example:8o\r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "bad_host"),
            ("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "bad_host"),
            ("GET zz HTTP/1.1\r\nHost: a\r\n\r\n", "bad_request_target"),
            (
                "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET /a%1Fb HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET /a%7fb HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET /a/./../../b HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
            (
                "GET http://a/../x HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad_request_target",
            ),
        ] {
            assert_eq!(verdict(head), Some(reason), "{head:?}");
        }
        for head in [
            "GET / HTTP/1.1\r\nHost: grace.example.\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: GRACE.example:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: under_score.example\r\n\r\n",
            "GET /a/../b/./c?q=%00&r=/../.. HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a%20b/%2e%2e/%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(verdict(head), None, "{head:?}");
        }
    }

    #[test]
    fn a_line_fits_its_buffer_with_its_line_end() {
        // "GET /" + path + " HTTP/1.1\r\n" is 16 + path bytes.
        let uri = |n: usize| format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(n));
        assert_eq!(verdict(&uri(8192 - 16)), None);
        assert_eq!(verdict(&uri(8192 - 15)), Some("uri_too_long"));
        // "X-Big: " + value + "\r\n" is 9 + value bytes.
        let field = |n: usize| {
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
                "b".repeat(n)
            )
        };
        assert_eq!(verdict(&field(8192 - 9)), None);
        assert_eq!(verdict(&field(8192 - 8)), Some("header_line_too_large"));
    }

    #[test]
    fn sizes_follow_the_buffers() {
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8200));
        assert_eq!(verdict(&long_uri), Some("uri_too_long"));
        let long_line = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(8190)
        );
        assert_eq!(verdict(&long_line), Some("header_line_too_large"));
        let fits = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(8000)
        );
        assert_eq!(verdict(&fits), None);
        let many_lines: String = (0..6)
            .map(|i| format!("X-{i}: {}\r\n", "c".repeat(7000)))
            .collect();
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\n{many_lines}\r\n");
        assert_eq!(verdict(&big), Some("header_section_too_large"));
        let fields: String = (0..257).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        assert_eq!(verdict(&many), Some("too_many_headers"));
    }

    #[test]
    fn the_raw_head_is_searched_by_field_name_only() {
        assert!(has_field(
            b"POST / HTTP/1.1\r\ncontent-length : 3\r\n",
            b"content-length"
        ));
        assert!(!has_field(
            b"POST / HTTP/1.1\r\nx-content-length: 3\r\n",
            b"content-length"
        ));
        assert!(!has_field(
            b"POST /content-length: HTTP/1.1\r\n",
            b"content-length"
        ));
    }
}

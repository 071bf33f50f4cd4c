//! Limits on what a client may send the router and how slowly, in nginx's vocabulary
//! (`client_header_timeout`, `client_body_timeout`, `keepalive_timeout`,
//! `large_client_header_buffers`, a `limit_conn`-style per-address connection cap).
//!
//! The router is the only thing between the internet and the platform, so these decide what a
//! hostile or broken client can hold or smuggle: heads larger than the buffers are refused
//! (`414`/`431`), heads trickled slower than the header deadline are cut off, and one address
//! can be kept from holding hundreds of connections.

use serde::Deserialize;

use super::ConfigError;

/// Pingora refuses (with its own `400`) any head above 1 MiB before the router sees it, so
/// larger buffers could never be used.
pub const PINGORA_MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Pingora's parser stops at 256 header fields (its own `400` above that).
pub const PINGORA_MAX_HEADER_FIELDS: usize = 256;

/// The `[client_limits]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Longest time, in seconds, for a client to send a whole request head: from the
    /// connection's accept for its first request, from the first byte for later ones (nginx
    /// `client_header_timeout`, seconds here).
    pub client_header_timeout_secs: u64,
    /// Longest gap, in seconds, between two reads of a request body (nginx
    /// `client_body_timeout`).
    pub client_body_timeout_secs: u64,
    /// How long an idle keep-alive connection waits for its next request, in seconds (nginx
    /// `keepalive_timeout`).
    pub keepalive_timeout_secs: u64,
    /// nginx's `large_client_header_buffers`: `"<number> <size>"` (`k`/`m` suffixes). The
    /// request line must fit in one buffer (else `414`), every header line in one buffer and
    /// the whole head in all of them (else `431`).
    pub large_client_header_buffers: String,
    /// Most header fields in one request (`431` above). Pingora itself refuses more than 256.
    pub max_header_fields: usize,
    /// Most concurrent connections from one client address; `0` means no cap (nginx
    /// `limit_conn`, off by default). The peer address counts, not a forwarded one.
    pub max_connections_per_ip: u32,
    /// Answer requests pipelined on one connection in order (RFC 9112 §9.3). Off: the
    /// connection closes after the first answer and the rest are not read.
    pub pipelining: bool,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            client_header_timeout_secs: 10,
            client_body_timeout_secs: 60,
            keepalive_timeout_secs: 75,
            large_client_header_buffers: "4 8k".into(),
            max_header_fields: PINGORA_MAX_HEADER_FIELDS,
            max_connections_per_ip: 0,
            pipelining: true,
        }
    }
}

/// `large_client_header_buffers` read into numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuffers {
    /// How many buffers.
    pub count: usize,
    /// Bytes per buffer: the longest request line and the longest header line.
    pub size: usize,
}

impl HeaderBuffers {
    /// The largest whole head, in bytes.
    pub fn total(&self) -> usize {
        self.count * self.size
    }
}

impl ClientLimits {
    /// The header buffers, parsed (validation has checked they parse).
    pub fn header_buffers(&self) -> Result<HeaderBuffers, ConfigError> {
        parse_buffers(&self.large_client_header_buffers).ok_or_else(|| {
            ConfigError::invalid(
                "client_limits.large_client_header_buffers",
                format!(
                    "{:?} is not \"<number> <size>\" (for example \"4 8k\")",
                    self.large_client_header_buffers
                ),
            )
        })
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&'static str, u64, u64, u64); 3] = [
            (
                "client_limits.client_header_timeout_secs",
                self.client_header_timeout_secs,
                1,
                3_600,
            ),
            (
                "client_limits.client_body_timeout_secs",
                self.client_body_timeout_secs,
                1,
                3_600,
            ),
            (
                "client_limits.keepalive_timeout_secs",
                self.keepalive_timeout_secs,
                1,
                3_600,
            ),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        let b = self.header_buffers()?;
        if !(1..=64).contains(&b.count) || !(1024..=PINGORA_MAX_HEADER_BYTES).contains(&b.size) {
            return Err(ConfigError::invalid(
                "client_limits.large_client_header_buffers",
                "needs 1 to 64 buffers of 1k to 1m each",
            ));
        }
        if b.total() > PINGORA_MAX_HEADER_BYTES {
            return Err(ConfigError::invalid(
                "client_limits.large_client_header_buffers",
                "more than 1m in all: Pingora refuses larger heads before the router sees them",
            ));
        }
        if !(1..=PINGORA_MAX_HEADER_FIELDS).contains(&self.max_header_fields) {
            return Err(ConfigError::invalid(
                "client_limits.max_header_fields",
                format!("must be between 1 and {PINGORA_MAX_HEADER_FIELDS} (Pingora's own cap)"),
            ));
        }
        if self.max_connections_per_ip > 1_000_000 {
            return Err(ConfigError::invalid(
                "client_limits.max_connections_per_ip",
                "must be at most 1000000 (0 turns the cap off)",
            ));
        }
        Ok(())
    }
}

/// `"4 8k"` → 4 buffers of 8192 bytes. Sizes take `k` or `m` (either case) or plain bytes.
fn parse_buffers(s: &str) -> Option<HeaderBuffers> {
    let mut parts = s.split_whitespace();
    let count = parts.next()?.parse().ok()?;
    let size = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (digits, unit) = match size.as_bytes().last()? {
        b'k' | b'K' => (&size[..size.len() - 1], 1024),
        b'm' | b'M' => (&size[..size.len() - 1], 1024 * 1024),
        _ => (size, 1),
    };
    let n: usize = digits.parse().ok()?;
    Some(HeaderBuffers {
        count,
        size: n.checked_mul(unit)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nginx_like_and_valid() {
        let d = ClientLimits::default();
        d.validate().unwrap();
        assert_eq!(
            d.header_buffers().unwrap(),
            HeaderBuffers {
                count: 4,
                size: 8192
            }
        );
        assert_eq!(d.header_buffers().unwrap().total(), 32 * 1024);
    }

    #[test]
    fn buffer_sizes_parse_like_nginx() {
        assert_eq!(parse_buffers("8 16K").map(|b| b.total()), Some(128 * 1024));
        assert_eq!(parse_buffers("1 1m").map(|b| b.size), Some(1024 * 1024));
        assert_eq!(parse_buffers(" 2   4096 ").map(|b| b.size), Some(4096));
        for bad in ["", "4", "4 8k 1", "four 8k", "4 8g", "4 -8k", "4 k"] {
            assert_eq!(parse_buffers(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonsense_is_refused() {
        let cases: [fn(&mut ClientLimits); 8] = [
            |c| c.client_header_timeout_secs = 0,
            |c| c.client_body_timeout_secs = 99_999,
            |c| c.keepalive_timeout_secs = 0,
            |c| c.large_client_header_buffers = "4 8q".into(),
            |c| c.large_client_header_buffers = "0 8k".into(),
            |c| c.large_client_header_buffers = "4 512k".into(),
            |c| c.max_header_fields = 0,
            |c| c.max_header_fields = 257,
        ];
        for (i, set) in cases.iter().enumerate() {
            let mut c = ClientLimits::default();
            set(&mut c);
            assert!(c.validate().is_err(), "case {i} accepted");
        }
    }
}

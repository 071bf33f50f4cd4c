//! Hand-rolled text for the few numbers and addresses written on every request.
//!
//! `core::fmt` goes through dynamic dispatch and padding logic for every argument; for the
//! client address, the request id and the access-log line that was a measurable share of the
//! router's instructions per request (over a thousand each for an address or a float with
//! three decimals). These helpers write the same text as `Display` (checked in the tests).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// An IPv4 address in dotted-decimal form, on the stack.
pub struct Ipv4Text {
    buf: [u8; 15],
    len: usize,
}

impl Ipv4Text {
    /// Formats `ip`.
    pub fn new(ip: Ipv4Addr) -> Self {
        let mut t = Self {
            buf: [0; 15],
            len: 0,
        };
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            if octet >= 100 {
                t.push(b'0' + octet / 100);
            }
            if octet >= 10 {
                t.push(b'0' + octet / 10 % 10);
            }
            t.push(b'0' + octet % 10);
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// The text, ASCII digits and dots.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(tenant_config::edge::decimal(n, &mut [0u8; 20]));
}

/// Appends `d` in milliseconds with three decimals (microsecond resolution, truncated), as
/// `{:.3}` of the millisecond float would print it up to rounding in the last digit.
pub fn push_millis(out: &mut Vec<u8>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_u64(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Appends `ip` as `Display` would; IPv4 by hand, IPv6 (rare here) through `fmt`.
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(Ipv4Text::new(v4).as_bytes()),
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_display() {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            f(&mut b);
            String::from_utf8(b).unwrap()
        };
        for n in [0u64, 7, 10, 99, 100, 12_345, u64::MAX] {
            assert_eq!(text(&|b| push_u64(b, n)), n.to_string());
        }
        for o in 0..=255u8 {
            let ip = Ipv4Addr::new(o, 255 - o, o / 10, o % 100);
            assert_eq!(Ipv4Text::new(ip).as_bytes(), ip.to_string().as_bytes());
            assert_eq!(text(&|b| push_ip(b, IpAddr::V4(ip))), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(text(&|b| push_ip(b, v6)), "2001:db8::1");
    }

    #[test]
    fn millis_have_three_decimals() {
        for (d, text) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_micros(7), "0.007"),
            (Duration::from_micros(1_234), "1.234"),
            (Duration::from_nanos(1_234_999), "1.234"),
            (Duration::from_secs(61), "61000.000"),
        ] {
            let mut b = Vec::new();
            push_millis(&mut b, d);
            assert_eq!(b, text.as_bytes());
        }
    }
}

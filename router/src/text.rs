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

    /// The text, ASCII.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and dots were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let digits = tenant_config::edge::decimal(n, &mut buf);
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(digits).unwrap_or_default());
}

/// Appends `d` in milliseconds with three decimals (microsecond resolution, truncated), as
/// `{:.3}` of the millisecond float would print it up to rounding in the last digit.
pub fn push_millis(out: &mut String, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_u64(out, us / 1000);
    out.push('.');
    let frac = us % 1000;
    out.push(char::from(b'0' + (frac / 100) as u8));
    out.push(char::from(b'0' + (frac / 10 % 10) as u8));
    out.push(char::from(b'0' + (frac % 10) as u8));
}

/// Appends `ip` as `Display` would; IPv4 by hand, IPv6 (rare here) through `fmt`.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.push_str(Ipv4Text::new(v4).as_str()),
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_display() {
        for n in [0u64, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for o in 0..=255u8 {
            let ip = Ipv4Addr::new(o, 255 - o, o / 10, o % 100);
            assert_eq!(Ipv4Text::new(ip).as_str(), ip.to_string());
            let mut s = String::new();
            push_ip(&mut s, IpAddr::V4(ip));
            assert_eq!(s, ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut s = String::new();
        push_ip(&mut s, v6);
        assert_eq!(s, "2001:db8::1");
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
            let mut s = String::new();
            push_millis(&mut s, d);
            assert_eq!(s, text);
        }
    }
}

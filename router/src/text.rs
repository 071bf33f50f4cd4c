//! Client addresses as text on the stack: written into a header and the access log on every
//! request, where `to_string` would allocate and go through `core::fmt` each time.

use std::net::IpAddr;

use http::HeaderValue;

/// The longest text form of an address (IPv6 with an embedded IPv4 tail).
const MAX: usize = 45;

/// An address's `Display` text, without allocating.
pub struct IpText {
    buf: [u8; MAX],
    len: usize,
}

impl IpText {
    /// Formats `ip`: IPv4 (nearly every request) with `itoa` per octet, IPv6 through `fmt`.
    pub fn new(ip: IpAddr) -> Self {
        let mut t = Self {
            buf: [0; MAX],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.put(b".");
                    }
                    t.put(itoa::Buffer::new().format(octet).as_bytes());
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut w = &mut t.buf[..];
                let _ = write!(w, "{v6}");
                t.len = MAX - w.len();
            }
        }
        t
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The text (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text as a header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(self.as_bytes()).unwrap_or(HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn matches_display() {
        let mut ips: Vec<IpAddr> = (0..=255u8)
            .map(|o| IpAddr::V4(Ipv4Addr::new(o, 255 - o, o / 10, o % 100)))
            .collect();
        ips.push("2001:db8::1".parse().unwrap());
        ips.push("::ffff:10.0.0.1".parse().unwrap());
        ips.push(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        );
        for ip in ips {
            assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
            assert_eq!(IpText::new(ip).header_value(), ip.to_string().as_str());
        }
    }
}

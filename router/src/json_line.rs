//! A small writer for one JSON object per line (the access log), without `serde` or `fmt` on
//! the request path: numbers through `itoa`, strings through a table-driven escaper.
//!
//! Keys are the caller's string literals and are written as they are; values are escaped.

use std::net::IpAddr;
use std::time::Duration;

use crate::text::IpText;

/// How each byte is written inside a JSON string: `0` as itself, `b'u'` as `\u00XX`, anything
/// else as a backslash and that byte.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, quotes included. Runs that need no escaping (nearly
/// always the whole string) are copied in one piece.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let e = ESCAPE[c as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if e == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// One JSON object being written into a line buffer.
pub struct JsonLine<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonLine<'a> {
    /// Starts an object at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !std::mem::take(&mut self.empty) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string value, escaped.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        push_str(self.key(key), value);
        self
    }

    /// A string value the caller knows needs no escaping (a checked request id, an HTTP
    /// token, a label, an address): copied as it is.
    pub fn raw_str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        self
    }

    /// JSON text the caller wrote itself, appended as it is (constant fields in one copy).
    /// Must start with a comma unless it is the first field.
    pub fn raw_fields(&mut self, json: &str) -> &mut Self {
        self.empty = false;
        self.out.extend_from_slice(json.as_bytes());
        self
    }

    /// A string value, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// `null`.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).extend_from_slice(b"null");
        self
    }

    /// An unsigned integer.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A duration in milliseconds with three decimals (microseconds, truncated), or `null`.
    pub fn millis(&mut self, key: &str, value: Option<Duration>) -> &mut Self {
        let Some(d) = value else {
            return self.null(key);
        };
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let out = self.key(key);
        out.extend_from_slice(itoa::Buffer::new().format(us / 1000).as_bytes());
        let frac = us % 1000;
        out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
        self
    }

    /// An address as a string, or `null`.
    pub fn ip(&mut self, key: &str, value: Option<IpAddr>) -> &mut Self {
        match value {
            Some(ip) => {
                let out = self.key(key);
                out.push(b'"');
                out.extend_from_slice(IpText::new(ip).as_bytes());
                out.push(b'"');
                self
            }
            None => self.null(key),
        }
    }

    /// Closes the object and the line.
    pub fn finish(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: impl FnOnce(&mut JsonLine<'_>)) -> String {
        let mut b = Vec::new();
        let mut l = JsonLine::new(&mut b);
        f(&mut l);
        l.finish();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn access_log_strings_are_escaped() {
        let mut b = Vec::new();
        push_str(&mut b, "evil\"host\\\n\u{1}ok\u{e9}");
        let s = String::from_utf8(b).unwrap();
        assert_eq!(s, "\"evil\\\"host\\\\\\u000a\\u0001ok\u{e9}\"");
        let parsed: String = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed, "evil\"host\\\n\u{1}ok\u{e9}");
    }

    #[test]
    fn every_control_character_round_trips() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let text = line(|l| {
            l.str("s", &all);
        });
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["s"], all.as_str());
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
            assert_eq!(
                line(|l| {
                    l.millis("ms", Some(d));
                }),
                format!("{{\"ms\":{text}}}\n")
            );
        }
    }

    #[test]
    fn a_line_is_one_json_object() {
        let text = line(|l| {
            l.u64("n", u64::MAX)
                .raw_fields(",\"k\":\"v\"")
                .raw_str("id", "req-1")
                .null("none")
                .opt_str("some", Some("x"))
                .ip("v4", Some("10.0.0.1".parse().unwrap()))
                .ip("v6", Some("2001:db8::1".parse().unwrap()))
                .millis("late", None);
        });
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["n"], u64::MAX);
        assert!(v["none"].is_null() && v["late"].is_null());
        assert_eq!(v["some"], "x");
        assert_eq!((&v["k"], &v["id"]), (&"v".into(), &"req-1".into()));
        assert_eq!(v["v4"], "10.0.0.1");
        assert_eq!(v["v6"], "2001:db8::1");
    }
}

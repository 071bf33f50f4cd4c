//! Upstream instance addresses: a literal `ip:port`, or a DNS name and port that the router
//! resolves to all its addresses and re-resolves while running.
//!
//! A name is what container platforms hand out (an ECS service-discovery name, a Cloud Map
//! name, a Kubernetes Service), so the text form accepts both and is checked here, at
//! configuration load, so that a typo is a one-line error (exit 64) and not a pool that never
//! fills.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

/// One configured upstream: an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum UpstreamAddr {
    /// `10.0.0.7:8080`, `[fd00::7]:8080`: used as is, no DNS.
    Ip(SocketAddr),
    /// `platform.internal:8080`: every address the name resolves to, at this port.
    Name {
        /// Lower-case DNS name without a trailing dot.
        host: String,
        /// Port on every resolved address.
        port: u16,
    },
}

impl UpstreamAddr {
    /// Parses `ip:port`, `[ipv6]:port` or `name:port`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(format!("{s:?}: port 0 is not a port to connect to"));
            }
            return Ok(Self::Ip(addr));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("{s:?} needs a port (host:port or ip:port)"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "{s:?} is not ip:port (an IPv6 address goes in brackets: [fd00::7]:8080)"
            ));
        }
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("{s:?}: {port:?} is not a port (1-65535)")),
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        check_name(&host).map_err(|why| format!("{s:?}: {why}"))?;
        Ok(Self::Name { host, port })
    }

    /// Whether this entry needs DNS.
    pub fn is_name(&self) -> bool {
        matches!(self, Self::Name { .. })
    }
}

/// A host name the resolver can be asked for: LDH labels of 1-63 bytes, 253 at most, and
/// not something that only looks like a mistyped IPv4 address.
fn check_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("the host name is empty");
    }
    if host.len() > 253 {
        return Err("the host name is longer than 253 characters");
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every dot-separated label needs 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a host name has only letters, digits, '-', '_' and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'");
        }
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not a valid IPv4 address");
    }
    Ok(())
}

impl TryFrom<String> for UpstreamAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<SocketAddr> for UpstreamAddr {
    fn from(a: SocketAddr) -> Self {
        Self::Ip(a)
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(a) => a.fmt(f),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names() {
        assert_eq!(
            UpstreamAddr::parse("10.0.0.7:8080"),
            Ok(UpstreamAddr::Ip("10.0.0.7:8080".parse().unwrap()))
        );
        assert_eq!(
            UpstreamAddr::parse("[fd00::7]:8080"),
            Ok(UpstreamAddr::Ip("[fd00::7]:8080".parse().unwrap()))
        );
        assert_eq!(
            UpstreamAddr::parse(" Platform.Internal.:8080 "),
            Ok(UpstreamAddr::Name {
                host: "platform.internal".into(),
                port: 8080
            })
        );
        assert_eq!(
            UpstreamAddr::parse("platform:80").unwrap().to_string(),
            "platform:80"
        );
        assert!(UpstreamAddr::parse("svc_a.ns.svc.cluster.local:80")
            .unwrap()
            .is_name());
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for (bad, why) in [
            ("platform.internal", "needs a port"),
            ("platform.internal:", "not a port"),
            ("platform.internal:http", "not a port"),
            ("platform.internal:70000", "not a port"),
            ("platform.internal:0", "not a port"),
            ("10.0.0.7:0", "port 0"),
            ("fd00::7:8080", "brackets"),
            ("10.0.0:8080", "IPv4"),
            ("999.1.1.1:80", "IPv4"),
            ("bad..name:80", "label"),
            ("-bad.name:80", "'-'"),
            ("bad name:80", "letters"),
            ("http://platform:80", "not ip:port"),
            (":80", "empty"),
        ] {
            let err = UpstreamAddr::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

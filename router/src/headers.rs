//! Header hygiene: what the router removes from client requests, what it adds before
//! forwarding, and the headers every response carries.
//!
//! Values fixed by configuration are parsed into `HeaderValue`s once at start, so the request
//! path does no parsing or formatting for them.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use tenant_config::config::{CacheRule, Cidr, RouterConfig};

/// Request headers that only the router may set; any client-sent copy is removed.
const OWNED_PREFIXES: [&str; 2] = ["x-tenant-", "x-edge-"];
/// Single headers the router owns.
const OWNED: [&str; 3] = ["x-route", "x-original-host", "x-real-ip"];
/// Forwarding headers, believed only from trusted proxies.
const FORWARDING: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];
/// Upstream response headers that advertise internals.
const LEAKY_RESPONSE: [&str; 3] = ["server", "x-powered-by", "x-aspnet-version"];

/// Parsed header policy.
pub struct HeaderPolicy {
    trusted: Vec<Cidr>,
    /// Names as static strings: Pingora stores a `&'static str` name without copying it, where
    /// a non-standard `HeaderName` would be copied on every insert.
    security: Vec<(&'static str, HeaderValue)>,
    hsts: Option<HeaderValue>,
    cache_rules: Vec<(String, HeaderValue)>,
}

impl HeaderPolicy {
    /// Parses the configured values (already validated as printable ASCII).
    pub fn from_config(config: &RouterConfig) -> Result<Self, String> {
        let s = &config.security_headers;
        let value = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| format!("security header value {v:?} is invalid"))
        };
        let mut security = Vec::new();
        for (name, v) in [
            ("x-content-type-options", &s.x_content_type_options),
            ("x-frame-options", &s.x_frame_options),
            ("referrer-policy", &s.referrer_policy),
            ("permissions-policy", &s.permissions_policy),
        ] {
            if !v.is_empty() {
                security.push((name, value(v)?));
            }
        }
        let hsts = if s.strict_transport_security.is_empty() {
            None
        } else {
            Some(value(&s.strict_transport_security)?)
        };
        let cache_rules = config
            .cache_control
            .iter()
            .map(|CacheRule { prefix, value: v }| Ok((prefix.clone(), value(v)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            trusted: config.trusted_proxy_blocks(),
            security,
            hsts,
            cache_rules,
        })
    }

    /// Whether `peer` may set forwarding headers.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }

    /// Removes every header the client may not set. Forwarding headers survive only from a
    /// trusted peer.
    pub fn strip_client_headers(&self, req: &mut RequestHeader, trusted_peer: bool) {
        let owned = |n: &HeaderName| {
            let n = n.as_str();
            OWNED_PREFIXES.iter().any(|p| n.starts_with(p))
                || OWNED.contains(&n)
                || (!trusted_peer && FORWARDING.contains(&n))
        };
        // Almost every request carries none of them: look before collecting.
        if !req.headers.keys().any(owned) {
            return;
        }
        let doomed: Vec<HeaderName> = req.headers.keys().filter(|n| owned(n)).cloned().collect();
        for name in doomed {
            req.remove_header(&name);
        }
    }

    /// Adds security headers (HSTS only over TLS), applies the `Cache-Control` rule for `path`,
    /// removes headers that advertise the upstream's software, and echoes the request id.
    pub fn decorate_response(
        &self,
        resp: &mut ResponseHeader,
        path: &str,
        tls: bool,
        request_id: &HeaderValue,
    ) {
        // One pass over the upstream's (few) header names instead of a hashed lookup per
        // header we might remove or add: which leaky headers to drop, which of our security
        // headers the upstream already chose.
        let mut leaky = false;
        let mut present = 0u64;
        for name in resp.headers.keys() {
            let name = name.as_str();
            leaky |= LEAKY_RESPONSE.contains(&name);
            if let Some(i) = self.security.iter().position(|(n, _)| *n == name) {
                present |= 1 << i;
            }
        }
        if leaky {
            for name in LEAKY_RESPONSE {
                resp.remove_header(name);
            }
        }
        for (i, (name, value)) in self.security.iter().enumerate() {
            // Upstream choices (e.g. a stricter frame policy) win over our defaults.
            if present & (1 << i) == 0 {
                let _ = resp.insert_header(*name, value.clone());
            }
        }
        if tls {
            if let Some(h) = &self.hsts {
                let _ = resp.insert_header("strict-transport-security", h.clone());
            }
        }
        if let Some((_, v)) = self
            .cache_rules
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            let _ = resp.insert_header("cache-control", v.clone());
        }
        let _ = resp.insert_header("x-request-id", request_id.clone());
    }
}

/// A request id worth keeping: 8–128 characters of `[A-Za-z0-9._:-]`. Anything else is
/// replaced, so a client cannot inject log-breaking text through it.
pub fn is_well_formed_request_id(v: &[u8]) -> bool {
    (8..=128).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The client address as seen through trusted proxies: walking `X-Forwarded-For` from the
/// right, the first address that is not a trusted proxy. Unparseable entries stop the walk.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, policy: &HeaderPolicy) -> IpAddr {
    if !policy.is_trusted(peer) {
        return peer;
    }
    let Some(list) = xff else { return peer };
    let mut client = peer;
    for part in list.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !policy.is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use tenant_config::config::{load, MapEnv};

    use super::*;

    fn policy(trusted: &str) -> HeaderPolicy {
        let env = MapEnv::from_pairs([
            ("EDGE_SIGNING_SECRET", "0123456789abcdef0123456789abcdef"),
            ("ROUTER_STATIC_TENANTS", "/dev/null"),
            ("ROUTER_TRUSTED_PROXIES", trusted),
        ]);
        let c: RouterConfig = load(None, &env).unwrap();
        HeaderPolicy::from_config(&c).unwrap()
    }

    #[test]
    fn strips_owned_and_untrusted_forwarding_headers() {
        let p = policy("10.0.0.0/8");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("X-Tenant-Id", "evil"),
            ("x-tenant-slug", "evil"),
            ("X-Edge-Signature", "forged"),
            ("x-route", "admin"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("accept", "text/html"),
        ] {
            req.append_header(k, v).unwrap();
        }
        let mut trusted = req.clone();
        p.strip_client_headers(&mut req, false);
        let left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
        p.strip_client_headers(&mut trusted, true);
        assert!(trusted.headers.contains_key("x-forwarded-for"));
        assert!(!trusted.headers.contains_key("x-tenant-id"));
    }

    #[test]
    fn client_ip_walks_trusted_hops_only() {
        let p = policy("10.0.0.0/8");
        let lb: IpAddr = "10.0.0.5".parse().unwrap();
        let outside: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(outside, Some("1.1.1.1"), &p),
            outside,
            "untrusted peer: ignore XFF"
        );
        assert_eq!(
            client_ip(lb, Some("198.51.100.7, 10.0.0.9"), &p).to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_ip(lb, Some("garbage"), &p), lb);
        assert_eq!(client_ip(lb, None, &p), lb);
    }

    #[test]
    fn request_ids() {
        assert!(is_well_formed_request_id(b"3f2a9c1e-77aa-4d2b"));
        assert!(!is_well_formed_request_id(b"short"));
        assert!(!is_well_formed_request_id(b"has space in it"));
        assert!(!is_well_formed_request_id(b"line\nbreak-injected"));
        assert!(!is_well_formed_request_id(&[b'a'; 129]));
    }
}

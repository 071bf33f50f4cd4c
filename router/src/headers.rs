//! Header hygiene: what the router removes from client requests, what it adds before
//! forwarding, and the headers every response carries.
//!
//! Values fixed by configuration are parsed into `HeaderValue`s once at start, so the request
//! path does no parsing or formatting for them.

use std::net::IpAddr;

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use tenant_config::config::{CacheRule, Cidr, RouterConfig};
use tenant_config::edge;

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
const LEAKY_RESPONSE: [HeaderName; 3] = [
    http::header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
];

/// Header names the router writes, parsed once (`from_static` is checked at compile time).
pub const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-real-ip`.
pub const REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `x-forwarded-proto`.
pub const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-request-id`, on the upstream request and on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static(edge::REQUEST_ID_HEADER);
/// `x-original-host`.
pub const ORIGINAL_HOST: HeaderName = HeaderName::from_static(edge::ORIGINAL_HOST_HEADER);
/// `x-route`.
pub const ROUTE: HeaderName = HeaderName::from_static(edge::ROUTE_HEADER);
/// `x-tenant-id`.
pub const TENANT_ID: HeaderName = HeaderName::from_static(edge::TENANT_ID_HEADER);
/// `x-tenant-slug`.
pub const TENANT_SLUG: HeaderName = HeaderName::from_static(edge::TENANT_SLUG_HEADER);
/// `x-edge-signature`.
pub const SIGNATURE: HeaderName = HeaderName::from_static(edge::SIGNATURE_HEADER);

/// Runs `f` on the request's plain `http` header map, then puts the request back together.
///
/// Why: each `RequestHeader::insert_header` parses the name again (allocating a copy of every
/// custom one) and also writes a second, case-preserving name map, and both grow as the router
/// adds its ten headers. On the plain map our names are pre-parsed constants and one
/// reservation covers them. The cost: names reach the upstream without the client's original
/// case (Pingora writes standard ones title-cased, others in lower case), which HTTP allows
/// and our platform (hyper) ignores. A request target the URI cannot reproduce and the
/// end-of-stream flag are carried over.
pub fn with_plain_request<T>(
    req: &mut RequestHeader,
    f: impl FnOnce(&mut HeaderMap) -> pingora::Result<T>,
) -> pingora::Result<T> {
    let from_uri = req
        .uri
        .path_and_query()
        .map_or(&b"/"[..], |p| p.as_str().as_bytes());
    let raw_target = (req.raw_path() != from_uri).then(|| req.raw_path().to_vec());
    let end_stream = req.send_end_stream();
    // An empty `http` request (no allocation) holds the place while we own the parts.
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(req, placeholder).into();
    let result = f(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw_target {
        req.set_raw_path(&raw)?;
    }
    if let Some(e) = end_stream {
        req.set_send_end_stream(e);
    }
    result
}

/// The same for a response (see [`with_plain_request`]); a non-standard reason phrase is
/// carried over.
pub fn with_plain_response<T>(resp: &mut ResponseHeader, f: impl FnOnce(&mut HeaderMap) -> T) -> T {
    // Only a non-standard reason phrase is stored, and only that needs carrying over.
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, placeholder).into();
    let result = f(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
    if let Some(r) = reason {
        let _ = resp.set_reason_phrase(Some(&r));
    }
    result
}

/// Parsed header policy.
pub struct HeaderPolicy {
    trusted: Vec<Cidr>,
    /// Names built from static strings, so cloning one per response copies nothing.
    security: Vec<(HeaderName, HeaderValue)>,
    hsts: Option<HeaderValue>,
    /// `Content-Security-Policy` for HTML responses that bring none.
    csp: Option<HeaderValue>,
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
                security.push((HeaderName::from_static(name), value(v)?));
            }
        }
        let hsts = if s.strict_transport_security.is_empty() {
            None
        } else {
            Some(value(&s.strict_transport_security)?)
        };
        let csp = if s.content_security_policy.is_empty() {
            None
        } else {
            Some(value(&s.content_security_policy)?)
        };
        let cache_rules = config
            .cache_control
            .iter()
            .map(|CacheRule { prefix, value: v }| Ok((prefix.clone(), value(v)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            trusted: config.trusted_proxies.clone(),
            security,
            hsts,
            csp,
            cache_rules,
        })
    }

    /// Whether `peer` may set forwarding headers.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }

    /// Removes every header the client may not set. Forwarding headers survive only from a
    /// trusted peer.
    pub fn strip_client_headers(&self, headers: &mut HeaderMap, trusted_peer: bool) {
        let owned = |n: &HeaderName| {
            let n = n.as_str();
            OWNED_PREFIXES.iter().any(|p| n.starts_with(p))
                || OWNED.contains(&n)
                || (!trusted_peer && FORWARDING.contains(&n))
        };
        // Almost every request carries none of them: look before collecting.
        if !headers.keys().any(owned) {
            return;
        }
        let doomed: Vec<HeaderName> = headers.keys().filter(|n| owned(n)).cloned().collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// Adds security headers (HSTS only when the client's connection is HTTPS: ours, or a
    /// trusted balancer's), applies the `Cache-Control` rule for `path` to a success that has
    /// none, a default `Content-Security-Policy` to HTML that has none, removes headers that
    /// advertise the upstream's software, and echoes the request id.
    ///
    /// Works on the plain `http` map ([`with_plain_response`]).
    pub fn decorate_response(
        &self,
        resp: &mut ResponseHeader,
        path: &str,
        tls: bool,
        request_id: &HeaderValue,
    ) {
        let status = resp.status.as_u16();
        with_plain_response(resp, |h| self.decorate(h, status, path, tls, request_id));
    }

    fn decorate(
        &self,
        headers: &mut HeaderMap,
        status: u16,
        path: &str,
        tls: bool,
        request_id: &HeaderValue,
    ) {
        headers.reserve(self.security.len() + 4);
        // One pass over the upstream's (few) header names for the leaky ones: a removal hashes
        // the name even when nothing is there.
        let mut leaky = 0u8;
        for name in headers.keys() {
            if let Some(i) = LEAKY_RESPONSE.iter().position(|n| n == name) {
                leaky |= 1 << i;
            }
        }
        for (i, name) in LEAKY_RESPONSE.iter().enumerate() {
            if leaky & (1 << i) != 0 {
                headers.remove(name);
            }
        }
        for (name, value) in &self.security {
            // Upstream choices (e.g. a stricter frame policy) win over our defaults; the entry
            // hashes the name once, as the insert alone would.
            if let Entry::Vacant(slot) = headers.entry(name.clone()) {
                slot.insert(value.clone());
            }
        }
        if tls {
            if let Some(h) = &self.hsts {
                headers.insert(http::header::STRICT_TRANSPORT_SECURITY, h.clone());
            }
        }
        // Path rules cache successes only (a 404 under a static prefix must not be kept for a
        // year) and never replace what the platform decided.
        if (200..300).contains(&status) || status == 304 {
            if let Some((_, v)) = self
                .cache_rules
                .iter()
                .find(|(p, _)| path.starts_with(p.as_str()))
            {
                if let Entry::Vacant(slot) = headers.entry(http::header::CACHE_CONTROL) {
                    slot.insert(v.clone());
                }
            }
        }
        // The default policy only on HTML that brings none: the platform sets its own,
        // stricter one per page, and a policy on JSON or images means nothing.
        if let Some(csp) = &self.csp {
            let html = headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if html {
                if let Entry::Vacant(slot) = headers.entry(http::header::CONTENT_SECURITY_POLICY) {
                    slot.insert(csp.clone());
                }
            }
        }
        headers.insert(REQUEST_ID, request_id.clone());
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
        let mut trusted = req.headers.clone();
        let mut untrusted = req.headers.clone();
        p.strip_client_headers(&mut untrusted, false);
        let left: Vec<&str> = untrusted.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
        p.strip_client_headers(&mut trusted, true);
        assert!(trusted.contains_key("x-forwarded-for"));
        assert!(!trusted.contains_key("x-tenant-id"));
    }

    #[test]
    fn decorating_keeps_status_reason_and_upstream_choices() {
        let p = policy("10.0.0.0/8");
        let mut resp = ResponseHeader::build(404, None).unwrap();
        resp.set_reason_phrase(Some("Gone Fishing")).unwrap();
        resp.append_header("X-Frame-Options", "DENY").unwrap();
        resp.append_header("Server", "secret/1.0").unwrap();
        resp.append_header("Set-Cookie", "a=1").unwrap();
        resp.append_header("Set-Cookie", "b=2").unwrap();
        p.decorate_response(
            &mut resp,
            "/",
            false,
            &HeaderValue::from_static("req-12345678"),
        );
        assert_eq!(resp.status, 404);
        assert_eq!(resp.get_reason_phrase(), Some("Gone Fishing"));
        assert_eq!(
            resp.headers["x-frame-options"], "DENY",
            "upstream choice wins"
        );
        assert_eq!(resp.headers["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers["x-request-id"], "req-12345678");
        assert!(!resp.headers.contains_key("server"));
        assert!(
            !resp.headers.contains_key("strict-transport-security"),
            "no HSTS over plain HTTP"
        );
        let cookies: Vec<_> = resp.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "repeated headers survive in order");
    }

    #[test]
    fn cache_rules_apply_to_successes_without_their_own() {
        let p = policy("10.0.0.0/8");
        let id = HeaderValue::from_static("req-12345678");
        let cc = |status: u16, sent: Option<&str>, path: &str| {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            if let Some(v) = sent {
                resp.append_header("Cache-Control", v).unwrap();
            }
            p.decorate_response(&mut resp, path, false, &id);
            resp.headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let year = Some("public, max-age=31536000, immutable".to_owned());
        assert_eq!(cc(200, None, "/_next/static/a.js"), year);
        assert_eq!(cc(404, None, "/_next/static/missing.js"), None);
        assert_eq!(cc(500, None, "/assets/x.css"), None);
        assert_eq!(
            cc(200, Some("no-store"), "/_next/static/a.js").as_deref(),
            Some("no-store"),
            "the platform's choice stands"
        );
        assert_eq!(
            cc(200, None, "/static/logo.png").as_deref(),
            Some("public, max-age=86400"),
            "the seed's one day"
        );
    }

    #[test]
    fn default_csp_only_on_html_without_one() {
        let p = policy("10.0.0.0/8");
        let id = HeaderValue::from_static("req-12345678");
        let csp = |ct: &str, sent: Option<&str>| {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("Content-Type", ct).unwrap();
            if let Some(v) = sent {
                resp.append_header("Content-Security-Policy", v).unwrap();
            }
            p.decorate_response(&mut resp, "/", true, &id);
            resp.headers
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert!(csp("text/html; charset=utf-8", None).is_some());
        assert_eq!(csp("application/json", None), None);
        assert_eq!(
            csp("text/html", Some("default-src 'none'")).as_deref(),
            Some("default-src 'none'")
        );
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

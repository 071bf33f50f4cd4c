//! The per-request context shared by the proxy's hooks. What every later step reads about the
//! connection and the request's identity (request id, host, TLS, peer, client address) is set
//! once, by [`RequestCtx::begin`], at the top of `request_filter`.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use pingora::proxy::Session;
use tenant_config::host::canonical_host;

use crate::cache::TenantEntry;
use crate::headers::{
    client_ip, is_well_formed_request_id, HeaderPolicy, FORWARDED_PROTO, REQUEST_ID, XFF,
};
use crate::metrics::RouteLabel;
use crate::upstream::{InFlight, PoolChoice};

/// Per-request state.
pub struct RequestCtx {
    /// Taken when the context is made, right after the request head was read.
    pub start: Instant,
    /// `x-request-id`: the client's own when well formed (shared with the parsed request), else
    /// one generated here. Always ASCII.
    pub request_id: HeaderValue,
    /// A generated id when `request_id` is the client's own: the edge signature's nonce, so two
    /// requests a client sends with one id never share a signature (the platform would refuse
    /// the second as a replay). `None` when `request_id` was generated here (it is unique).
    pub own_id: Option<HeaderValue>,
    /// `Host` exactly as the client sent it (shared with the parsed request).
    pub host_sent: HeaderValue,
    /// The host in canonical form (the same bytes as `host_sent` when the client already sent
    /// it so, as nearly every client does); `None` when it is not a valid name.
    pub host: Option<HeaderValue>,
    /// The client reached the edge over HTTPS: this connection is TLS, or a trusted proxy (a
    /// TLS-terminating load balancer) says so with `X-Forwarded-Proto: https`. Decides HSTS and
    /// the HTTP→HTTPS redirect, so a balancer's plain-HTTP hop does not loop on redirects.
    pub tls: bool,
    /// The connection's peer address (`None` on a Unix socket).
    pub peer: Option<IpAddr>,
    /// The peer is a trusted proxy, whose forwarding headers are believed.
    pub trusted_peer: bool,
    /// The client: the peer, or through trusted proxies the address they forwarded for.
    pub client_ip: Option<IpAddr>,
    /// An upgrade (WebSocket) request.
    pub websocket: bool,
    /// The metrics and `x-route` label.
    pub route: RouteLabel,
    /// The resolved tenant, on tenant routes.
    pub tenant: Option<Arc<TenantEntry>>,
    /// The pool `upstream_peer` chose.
    pub pool: PoolChoice,
    /// The instance in use (holds its in-flight count).
    pub upstream: Option<InFlight>,
    /// Instances that failed for this request.
    pub failed: Vec<SocketAddr>,
    /// When the current upstream attempt began.
    pub upstream_start: Option<Instant>,
    /// Time to the upstream's response header.
    pub upstream_header: Option<Duration>,
    /// Status of a response the router wrote itself.
    pub status: u16,
    /// A rate-limit decision worth logging (limited or delayed).
    pub limit: Option<crate::limits::Mark>,
    /// `RateLimit-Policy`/`RateLimit` for the response (zones that advertise).
    pub limit_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Why the request was refused by the hygiene checks (`respond::hygiene::REASONS`).
    pub refusal: Option<&'static str>,
    /// The request has a `Host` field (an absolute-form target alone does not count).
    pub host_header: bool,
}

impl RequestCtx {
    /// An empty context; [`RequestCtx::begin`] fills it in.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            request_id: HeaderValue::from_static(""),
            own_id: None,
            host_sent: HeaderValue::from_static(""),
            host: None,
            tls: false,
            peer: None,
            trusted_peer: false,
            client_ip: None,
            websocket: false,
            route: RouteLabel::Router,
            tenant: None,
            pool: PoolChoice::Platform,
            upstream: None,
            failed: Vec::new(),
            upstream_start: None,
            upstream_header: None,
            status: 0,
            limit: None,
            limit_headers: Vec::new(),
            refusal: None,
            host_header: false,
        }
    }

    /// Reads the request's identity and connection once: request id, host (sent and
    /// canonical), TLS, peer and client address.
    pub fn begin(&mut self, session: &Session, ids: &RequestIds, policy: &HeaderPolicy) {
        let req = session.req_header();
        (self.request_id, self.own_id) = match req.headers.get(REQUEST_ID) {
            Some(v) if is_well_formed_request_id(v.as_bytes()) => (v.clone(), Some(ids.next())),
            _ => (ids.next(), None),
        };
        let host_field = req.headers.get(http::header::HOST);
        self.host_header = host_field.is_some();
        self.host_sent = match host_field {
            Some(h) => h.clone(),
            // An absolute-form request line without a Host header (HTTP/1.0): the target's
            // authority is the host (RFC 9112 §3.2.2). Pingora keeps only the path in the URI,
            // so it is read from the raw target.
            // HTTP/2 carries it in `:authority`, which Pingora puts in the URI.
            None => absolute_form_authority(req.raw_path())
                .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
                .and_then(|h| HeaderValue::from_bytes(h).ok())
                .unwrap_or(HeaderValue::from_static("")),
        };
        self.host = match self.host_sent.to_str().map(canonical_host) {
            // Already canonical: share the bytes.
            Ok(Ok(Cow::Borrowed(_))) => Some(self.host_sent.clone()),
            // The general path can return the name unchanged (e.g. punycode labels).
            Ok(Ok(Cow::Owned(h))) if h.as_bytes() == self.host_sent.as_bytes() => {
                Some(self.host_sent.clone())
            }
            Ok(Ok(Cow::Owned(h))) => HeaderValue::from_str(&h).ok(),
            _ => None,
        };
        self.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        self.websocket = session.is_upgrade_req();
        self.peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = self.peer {
            self.trusted_peer = policy.is_trusted(peer);
            // Only a trusted peer's X-Forwarded-For is read at all.
            if self.trusted_peer && !self.tls {
                self.tls = forwarded_https(req.headers.get(FORWARDED_PROTO));
            }
            self.client_ip = Some(if self.trusted_peer {
                let xff = req.headers.get(XFF).and_then(|v| v.to_str().ok());
                client_ip(peer, xff, policy)
            } else {
                peer
            });
        }
    }

    /// The request id as text (ids are ASCII by construction).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The edge signature's nonce: an id generated for this request alone.
    pub fn nonce(&self) -> &str {
        self.own_id
            .as_ref()
            .unwrap_or(&self.request_id)
            .to_str()
            .unwrap_or_default()
    }

    /// The canonical host; `None` when it is not a valid name.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }
}

/// A trusted proxy's `X-Forwarded-Proto` names HTTPS. With several hops the first value is the
/// client's side.
fn forwarded_https(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.as_bytes().split(|&b| b == b',').next())
        .is_some_and(|first| first.trim_ascii().eq_ignore_ascii_case(b"https"))
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

/// The authority of an absolute-form target (`http://host[:port]/path`), without user info
/// (a target carrying one gets none: it is not a host this router serves).
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    let rest = [&b"http://"[..], &b"https://"[..]]
        .iter()
        .find_map(|scheme| {
            (target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme))
                .then(|| &target[scheme.len()..])
        })?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains(&b'@')).then_some(authority)
}

/// Request ids for requests that bring none: a random per-process prefix and a counter, unique
/// without a syscall per request.
pub struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    /// A fresh prefix (12 hex digits).
    pub fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> HeaderValue {
        request_id_value(&self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// `<prefix>-<n in hex>`, assembled by hand: `fmt` machinery costs more than the rest of the
/// id. Prefixes longer than 47 bytes are cut to fit.
fn request_id_value(prefix: &str, n: u64) -> HeaderValue {
    let p = &prefix.as_bytes()[..prefix.len().min(47)];
    let mut buf = [0u8; 64];
    buf[..p.len()].copy_from_slice(p);
    buf[p.len()] = b'-';
    let mut len = p.len() + 1;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        buf[len + i] = b"0123456789abcdef"[nibble as usize];
    }
    len += digits;
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::{forwarded_https, request_id_value};
    use http::HeaderValue;

    #[test]
    fn forwarded_https_reads_the_first_hop() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(forwarded_https(v("https").as_ref()));
        assert!(forwarded_https(v("HTTPS , http").as_ref()));
        assert!(!forwarded_https(v("http, https").as_ref()));
        assert!(!forwarded_https(None));
    }

    #[test]
    fn absolute_form_targets_give_their_authority() {
        use super::absolute_form_authority as a;
        assert_eq!(a(b"http://grace.example/x"), Some(&b"grace.example"[..]));
        assert_eq!(
            a(b"HTTPS://grace.example:8443?q"),
            Some(&b"grace.example:8443"[..])
        );
        assert_eq!(a(b"http://u@grace.example/"), None);
        assert_eq!(a(b"/x"), None);
        assert_eq!(a(b"http:///x"), None);
    }

    #[test]
    fn hand_formatted_request_ids_match_display() {
        for n in [0u64, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX] {
            assert_eq!(
                request_id_value("0123456789ab", n),
                format!("0123456789ab-{n:x}").as_str()
            );
        }
    }
}

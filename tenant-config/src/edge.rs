//! The signed tenant context the router attaches to every request it forwards.
//!
//! The router strips client-sent `x-tenant-*`/`x-edge-*` headers and adds its own, plus
//! `x-edge-signature`: an HMAC-SHA256, under a secret shared by router and platform, over the
//! request id, route, tenant id, host, method, path and query, `Content-Length` and a
//! timestamp. The platform verifies it with this same code, so reaching a platform instance
//! directly never lets anyone pose as a tenant, and a captured header cannot be reused for
//! another host, method, path or body length. Within the skew window the platform also refuses
//! a request id it has already seen (its replay set), so a captured request cannot be replayed
//! as it is either.
//!
//! The body itself is not covered: the router forwards headers before it has read the body.
//! Binding `Content-Length` still stops a signed small request from carrying a bigger body.
//!
//! Secrets roll without downtime: platforms accept the current and the previous secret
//! ([`verify_any`]) while routers move to the new one.
//!
//! Header format: `t=<unix seconds>,n=<nonce>,v2=<64 hex digits>`; the nonce is 1 to
//! [`NONCE_MAX`] characters of `A-Z a-z 0-9 - _`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-edge-signature";
/// Header carrying the request id (signed).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header carrying the route (`admin`, `apex`, `tenant`, `webhook`).
pub const ROUTE_HEADER: &str = "x-route";
/// Header carrying the tenant id on tenant routes.
pub const TENANT_ID_HEADER: &str = "x-tenant-id";
/// Header carrying the tenant slug on tenant routes.
pub const TENANT_SLUG_HEADER: &str = "x-tenant-slug";
/// Header carrying the host the client asked for (signed).
pub const ORIGINAL_HOST_HEADER: &str = "x-original-host";

type HmacSha256 = Hmac<Sha256>;

/// Longest nonce a signature may carry.
pub const NONCE_MAX: usize = 40;

/// `t=` + at most 20 digits + `,n=` + the nonce + `,v2=` + 64 hex digits.
const SIGNATURE_MAX: usize = 2 + 20 + 3 + NONCE_MAX + 4 + 64;

/// Whether `nonce` may be carried in a signature header.
pub fn is_valid_nonce(nonce: &[u8]) -> bool {
    (1..=NONCE_MAX).contains(&nonce.len())
        && nonce
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A signature header value held on the stack.
#[derive(Clone, Copy)]
pub struct Signature {
    buf: [u8; SIGNATURE_MAX],
    len: usize,
}

impl Signature {
    /// The header value bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, letters and punctuation are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// The signed fields of one forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeContext<'a> {
    /// `x-request-id`.
    pub request_id: &'a str,
    /// `x-route`.
    pub route: &'a str,
    /// `x-tenant-id`, when the route has a tenant.
    pub tenant_id: Option<&'a str>,
    /// `x-original-host` (normalised host the client asked for).
    pub host: &'a str,
    /// Request method as forwarded (`GET`, `POST`, …).
    pub method: &'a str,
    /// Path and query as forwarded (`/api/donations?x=1`).
    pub target: &'a str,
    /// `Content-Length` as forwarded, when the request has one.
    pub content_length: Option<&'a str>,
}

/// Why a signature was refused. Deliberately coarse: callers answer 401 without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeSignatureError {
    /// Header missing or not in the `t=…,n=…,v2=…` format.
    #[error("edge signature header is malformed")]
    Malformed,
    /// Timestamp further from now than the allowed skew.
    #[error("edge signature is outside the allowed clock skew")]
    Stale,
    /// The MAC does not match the fields.
    #[error("edge signature does not match")]
    Mismatch,
}

/// Signs and verifies with one key; cheap to clone, the key schedule is computed once.
#[derive(Clone)]
pub struct EdgeSigner {
    mac: HmacSha256,
}

impl std::fmt::Debug for EdgeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeSigner(***)")
    }
}

impl EdgeSigner {
    /// A signer for the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    fn mac_for(&self, ctx: &EdgeContext<'_>, timestamp: u64, nonce: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        // Fields are separated by '\n', which no header value or request target can contain,
        // so distinct field tuples always produce distinct messages.
        mac.update(b"v2\n");
        mac.update(itoa::Buffer::new().format(timestamp).as_bytes());
        for field in [
            nonce,
            ctx.request_id,
            ctx.route,
            ctx.tenant_id.unwrap_or("-"),
            ctx.host,
            ctx.method,
            ctx.target,
            ctx.content_length.unwrap_or("-"),
        ] {
            mac.update(b"\n");
            mac.update(field.as_bytes());
        }
        mac
    }

    /// The header value for `ctx` at `timestamp` (Unix seconds) with `nonce` (unique to this
    /// request; see [`is_valid_nonce`]).
    pub fn sign(&self, ctx: &EdgeContext<'_>, timestamp: u64, nonce: &str) -> String {
        self.signature(ctx, timestamp, nonce).as_str().to_owned()
    }

    /// Like [`EdgeSigner::sign`], built on the stack: the router signs every request and turns
    /// the bytes straight into a header value. A nonce that [`is_valid_nonce`] refuses is
    /// replaced by `!`, which the platform refuses in turn: a caller bug fails closed.
    pub fn signature(&self, ctx: &EdgeContext<'_>, timestamp: u64, nonce: &str) -> Signature {
        let nonce = if is_valid_nonce(nonce.as_bytes()) {
            nonce
        } else {
            "!"
        };
        let tag = self.mac_for(ctx, timestamp, nonce).finalize().into_bytes();
        let mut sig = Signature {
            buf: [0; SIGNATURE_MAX],
            len: 0,
        };
        let mut put = |bytes: &[u8]| {
            sig.buf[sig.len..sig.len + bytes.len()].copy_from_slice(bytes);
            sig.len += bytes.len();
        };
        put(b"t=");
        put(itoa::Buffer::new().format(timestamp).as_bytes());
        put(b",n=");
        put(nonce.as_bytes());
        put(b",v2=");
        let mut hex = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        let _ = hex::encode_to_slice(tag, &mut hex);
        put(&hex);
        sig
    }

    /// Checks `header` against `ctx`, accepting timestamps within `max_skew_secs` of `now`.
    /// The MAC comparison is constant-time.
    pub fn verify(
        &self,
        header: &str,
        ctx: &EdgeContext<'_>,
        now: u64,
        max_skew_secs: u64,
    ) -> Result<(), EdgeSignatureError> {
        let (ts, nonce, tag) = parse_header(header).ok_or(EdgeSignatureError::Malformed)?;
        if ts.abs_diff(now) > max_skew_secs {
            return Err(EdgeSignatureError::Stale);
        }
        self.mac_for(ctx, ts, nonce)
            .verify_slice(&tag)
            .map_err(|_| EdgeSignatureError::Mismatch)
    }
}

/// Checks `header` against each of `signers` in turn (the current secret first, then the one
/// being rolled out), succeeding if any matches. A stale or malformed header fails at once.
pub fn verify_any(
    signers: &[EdgeSigner],
    header: &str,
    ctx: &EdgeContext<'_>,
    now: u64,
    max_skew_secs: u64,
) -> Result<(), EdgeSignatureError> {
    let mut result = Err(EdgeSignatureError::Mismatch);
    for s in signers {
        result = s.verify(header, ctx, now, max_skew_secs);
        if !matches!(result, Err(EdgeSignatureError::Mismatch)) {
            return result;
        }
    }
    result
}

/// The MAC carried by a well-formed header: the key of the platform's replay set.
pub fn signature_mac(header: &str) -> Option<[u8; 32]> {
    parse_header(header).map(|(_, _, mac)| mac)
}

/// Parses `t=<digits>,n=<nonce>,v2=<64 hex>` strictly (`v1`, which bound no method or path,
/// and a header without a nonce are refused).
fn parse_header(header: &str) -> Option<(u64, &str, [u8; 32])> {
    let (t, rest) = header.split_once(',')?;
    let (n, v2) = rest.split_once(',')?;
    let t = t.strip_prefix("t=")?;
    let n = n.strip_prefix("n=")?;
    let v2 = v2.strip_prefix("v2=")?;
    if t.is_empty()
        || t.len() > 20
        || !t.bytes().all(|b| b.is_ascii_digit())
        || !is_valid_nonce(n.as_bytes())
        || v2.len() != 64
    {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(v2, &mut tag).ok()?;
    Some((t.parse().ok()?, n, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: EdgeContext<'static> = EdgeContext {
        request_id: "req-1",
        route: "tenant",
        tenant_id: Some("6f1c4a9e-0000-4000-8000-000000000001"),
        host: "grace.platform.example",
        method: "POST",
        target: "/api/donations?src=mail",
        content_length: Some("42"),
    };

    #[test]
    fn signature_is_a_plain_hmac_of_the_newline_joined_fields() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let s = EdgeSigner::new(secret);
        let long_host = format!("{}.example", "a".repeat(600));
        for host in ["grace.platform.example", long_host.as_str()] {
            let ctx = EdgeContext { host, ..CTX };
            let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap();
            mac.update(
                format!(
                    "v2\n1700000000\nn-1\nreq-1\ntenant\n6f1c4a9e-0000-4000-8000-000000000001\n{host}\nPOST\n/api/donations?src=mail\n42"
                )
                .as_bytes(),
            );
            let want = hex::encode(mac.finalize().into_bytes());
            assert_eq!(
                s.sign(&ctx, 1_700_000_000, "n-1"),
                format!("t=1700000000,n=n-1,v2={want}")
            );
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let s = EdgeSigner::new(b"0123456789abcdef0123456789abcdef");
        let h = s.sign(&CTX, 1_700_000_000, "n-1");
        assert!(h.starts_with("t=1700000000,n=n-1,v2="), "{h}");
        assert_eq!(s.verify(&h, &CTX, 1_700_000_010, 30), Ok(()));
        for tampered in [
            EdgeContext {
                request_id: "req-2",
                ..CTX
            },
            EdgeContext {
                route: "admin",
                ..CTX
            },
            EdgeContext {
                tenant_id: None,
                ..CTX
            },
            EdgeContext {
                tenant_id: Some("6f1c4a9e-0000-4000-8000-000000000002"),
                ..CTX
            },
            EdgeContext {
                host: "evil.example",
                ..CTX
            },
            EdgeContext {
                method: "GET",
                ..CTX
            },
            EdgeContext {
                target: "/api/donations",
                ..CTX
            },
            EdgeContext {
                target: "/api/admin/tenants?src=mail",
                ..CTX
            },
            EdgeContext {
                content_length: Some("4200"),
                ..CTX
            },
            EdgeContext {
                content_length: None,
                ..CTX
            },
        ] {
            assert_eq!(
                s.verify(&h, &tampered, 1_700_000_000, 30),
                Err(EdgeSignatureError::Mismatch)
            );
        }
        let other = EdgeSigner::new(b"another secret entirely, 32 chars!");
        assert_eq!(
            other.verify(&h, &CTX, 1_700_000_000, 30),
            Err(EdgeSignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_two_secrets_verifies_during_a_roll() {
        let old = EdgeSigner::new(b"old secret, thirty-two characters");
        let new = EdgeSigner::new(b"new secret, thirty-two characters");
        let stranger = EdgeSigner::new(b"not ours at all, thirty-two chars");
        let both = [new.clone(), old.clone()];
        for s in [&old, &new] {
            let h = s.sign(&CTX, 1_000, "n-1");
            assert_eq!(verify_any(&both, &h, &CTX, 1_000, 5), Ok(()));
        }
        let h = stranger.sign(&CTX, 1_000, "n-1");
        assert_eq!(
            verify_any(&both, &h, &CTX, 1_000, 5),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_any(&both, &old.sign(&CTX, 1_000, "n-1"), &CTX, 1_010, 5),
            Err(EdgeSignatureError::Stale)
        );
        assert_eq!(
            verify_any(&[], &h, &CTX, 1_000, 5),
            Err(EdgeSignatureError::Mismatch)
        );
    }

    #[test]
    fn the_nonce_is_signed_and_makes_equal_requests_differ() {
        let s = EdgeSigner::new(b"k");
        let a = s.sign(&CTX, 1_000, "n-1");
        let b = s.sign(&CTX, 1_000, "n-2");
        assert_ne!(signature_mac(&a), signature_mac(&b));
        assert_eq!(s.verify(&b, &CTX, 1_000, 5), Ok(()));
        // Moving a signature to another nonce breaks it.
        let moved = a.replace("n=n-1", "n=n-2");
        assert_eq!(
            s.verify(&moved, &CTX, 1_000, 5),
            Err(EdgeSignatureError::Mismatch)
        );
        // A nonce that cannot be carried fails closed.
        let bad = s.sign(&CTX, 1_000, "no spaces");
        assert_eq!(
            s.verify(&bad, &CTX, 1_000, 5),
            Err(EdgeSignatureError::Malformed)
        );
    }

    #[test]
    fn stale_and_malformed() {
        let s = EdgeSigner::new(b"k");
        let h = s.sign(&CTX, 1_000, "n-1");
        assert_eq!(
            s.verify(&h, &CTX, 1_031, 30),
            Err(EdgeSignatureError::Stale)
        );
        assert_eq!(s.verify(&h, &CTX, 969, 30), Err(EdgeSignatureError::Stale));
        assert_eq!(s.verify(&h, &CTX, 1_030, 30), Ok(()));
        let tag = &h[h.find("v2=").unwrap() + 3..];
        for bad in [
            "",
            "t=1000",
            "v2=00,t=1000",
            &format!("t=,v2={tag}"),
            &format!("t=-5,v2={tag}"),
            &format!("t=1000,v2={}", &tag[..63]),
            &format!("t=1000,v2={}zz", &tag[..62]),
            &format!("t=1000,v1={tag}"),
            &format!("t=1000,v3={tag}"),
            &format!("t=1000,n=n-1,v3={tag}"),
            &format!("t=1000,n=,v2={tag}"),
            &format!("t=1000,n=a b,v2={tag}"),
            &format!("t=1000,n={},v2={tag}", "n".repeat(NONCE_MAX + 1)),
            &format!("t=1000,n=n-1,v2={tag},x"),
        ] {
            assert_eq!(
                s.verify(bad, &CTX, 1_000, 30),
                Err(EdgeSignatureError::Malformed),
                "{bad:?}"
            );
        }
    }
}

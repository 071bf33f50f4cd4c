//! The upstream request's headers: what the client may not send is removed, the forwarding
//! headers and the tenant context are set, and the context is signed (v2: request id, route,
//! tenant, canonical host, method, path and query, `Content-Length`).
//!
//! Runs on the plain `http` header map ([`crate::headers::with_plain_request`]) with
//! pre-parsed names. Behind a load balancer every request comes from a trusted peer, so that
//! branch is kept as cheap as the direct one: the appended `X-Forwarded-For` is assembled in
//! one buffer from the context's peer address.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderValue};
use pingora::prelude::*;
use tenant_config::edge::{EdgeContext, EdgeSigner};

use crate::ctx::RequestCtx;
use crate::headers::{
    HeaderPolicy, FORWARDED_HOST, FORWARDED_PROTO, ORIGINAL_HOST, REAL_IP, REQUEST_ID, ROUTE,
    SIGNATURE, TENANT_ID, TENANT_SLUG, XFF,
};
use crate::text::IpText;

/// Rewrites `h` for the upstream. `method` and `target` are the request line as forwarded.
pub fn upstream_headers(
    h: &mut HeaderMap,
    ctx: &RequestCtx,
    policy: &HeaderPolicy,
    signer: &EdgeSigner,
    method: &str,
    target: &str,
) -> Result<()> {
    h.reserve(12);
    policy.strip_client_headers(h, ctx.trusted_peer);
    let route = ctx.route.as_str();
    if let Some(ip) = ctx.client_ip {
        let ip = IpText::new(ip).header_value();
        let xff = match (ctx.trusted_peer, h.get(XFF), ctx.peer) {
            // Only a trusted peer's header survived stripping: append the hop we saw.
            (true, Some(prev), Some(peer)) if prev.to_str().is_ok() => {
                appended(prev, peer).unwrap_or_else(|| ip.clone())
            }
            _ => ip.clone(),
        };
        h.insert(XFF, xff);
        h.insert(REAL_IP, ip);
    }
    if !(ctx.trusted_peer && h.contains_key(FORWARDED_PROTO)) {
        let proto = if ctx.tls { "https" } else { "http" };
        h.insert(FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    // Forwarded only when it is plain visible ASCII (an invalid host never gets a tenant).
    if !(ctx.trusted_peer && h.contains_key(FORWARDED_HOST)) && ctx.host_sent.to_str().is_ok() {
        h.insert(FORWARDED_HOST, ctx.host_sent.clone());
    }
    h.insert(REQUEST_ID, ctx.request_id.clone());
    h.insert(
        ORIGINAL_HOST,
        ctx.host.clone().unwrap_or(HeaderValue::from_static("")),
    );
    h.insert(ROUTE, HeaderValue::from_static(route));
    let tenant = ctx.tenant.as_deref();
    if let Some(t) = tenant {
        h.insert(TENANT_ID, t.id_value.clone());
        h.insert(TENANT_SLUG, t.slug_value.clone());
    }
    let signature = signer.signature(
        &EdgeContext {
            request_id: ctx.request_id(),
            route,
            tenant_id: tenant.map(|t| t.id_text.as_str()),
            host: ctx.host().unwrap_or_default(),
            method,
            target,
            content_length: h
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()),
        },
        unix_now(),
        ctx.nonce(),
    );
    let signature = HeaderValue::from_bytes(signature.as_bytes())
        .or_err(InternalError, "edge signature header")?;
    h.insert(SIGNATURE, signature);
    Ok(())
}

/// `<prev>, <peer>`: one allocation, no formatting machinery.
fn appended(prev: &HeaderValue, peer: std::net::IpAddr) -> Option<HeaderValue> {
    let peer = IpText::new(peer);
    let mut b = BytesMut::with_capacity(prev.len() + 2 + peer.as_bytes().len());
    b.put_slice(prev.as_bytes());
    b.put_slice(b", ");
    b.put_slice(peer.as_bytes());
    HeaderValue::from_maybe_shared(b.freeze()).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::appended;

    #[test]
    fn the_seen_hop_is_appended() {
        let prev = http::HeaderValue::from_static("198.51.100.7, 10.0.0.9");
        assert_eq!(
            appended(&prev, "10.0.0.5".parse().unwrap()).unwrap(),
            "198.51.100.7, 10.0.0.9, 10.0.0.5"
        );
    }
}

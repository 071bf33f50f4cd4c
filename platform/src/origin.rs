//! Cross-origin protection for every state-changing request, before any handler runs.
//!
//! Session forms carry a CSRF token, but some forms work without a session — the logins and
//! the donation form — and a token cannot protect those (there is nothing to bind it to). A
//! page on another site could still post them in a visitor's browser: log the visitor into the
//! attacker's account (login CSRF) or start gifts in their name. Browsers say where a request
//! came from, so it is refused here when they say "elsewhere":
//!
//! - `Sec-Fetch-Site` (every current browser): anything but `same-origin` or `none` (typed into
//!   the address bar) is refused — `same-site` too, since every tenant is a subdomain of the
//!   same base domain and one tenant's pages must not post to another's;
//! - else `Origin`: its host must be the host the request was made to;
//! - neither header (curl, servers, Stripe's webhooks, very old browsers): allowed — such a
//!   client is not a victim's browser being steered by another site.
//!
//! `GET`, `HEAD` and `OPTIONS` change nothing and are never refused.

use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// Middleware: refuses a state-changing request a browser says came from another origin (403).
pub async fn protect(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || same_origin(req.headers())
    {
        next.run(req).await
    } else {
        tracing::info!(
            path = req.uri().path(),
            "cross-origin state-changing request refused"
        );
        AppError::Forbidden.into_response()
    }
}

/// Whether the browser's own headers place the request on the host it was sent to (or say
/// nothing at all).
fn same_origin(h: &HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return true;
    };
    // The host the client asked for: the router's signed copy, else the Host field.
    let host = h
        .get(tenant_config::edge::ORIGINAL_HOST_HEADER)
        .filter(|v| !v.is_empty())
        .or_else(|| h.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(host_only);
    match (origin.to_str().ok().and_then(origin_host), host) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(&h),
        // `Origin: null` (a sandboxed frame, a redirect across sites) or no usable host.
        _ => false,
    }
}

/// The host of an `Origin` value (`scheme://host[:port]`), without the port.
fn origin_host(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    Some(host_only(rest))
}

/// `host[:port]` → `host`, lower case, without a trailing dot (IPv6 literals keep brackets).
fn host_only(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()])
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn browsers_saying_elsewhere_are_refused() {
        let host = ("x-original-host", "grace.platform.test");
        for (pairs, ok) in [
            (vec![host], true),
            (vec![host, ("sec-fetch-site", "same-origin")], true),
            (vec![host, ("sec-fetch-site", "none")], true),
            (vec![host, ("sec-fetch-site", "same-site")], false),
            (vec![host, ("sec-fetch-site", "cross-site")], false),
            (
                vec![host, ("origin", "http://grace.platform.test:8000")],
                true,
            ),
            (vec![host, ("origin", "https://GRACE.platform.test")], true),
            (vec![host, ("origin", "https://hope.platform.test")], false),
            (vec![host, ("origin", "null")], false),
            (
                vec![("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
                true,
            ),
            (
                vec![
                    host,
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://evil.example"),
                ],
                true,
            ),
        ] {
            assert_eq!(same_origin(&headers(&pairs)), ok, "{pairs:?}");
        }
    }
}

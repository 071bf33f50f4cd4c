//! Operator paths never cross the public listeners.
//!
//! `/metrics`, `/ready` and `/health` (and the Kubernetes spellings `/healthz`, `/readyz`,
//! `/livez`, and anything below any of them) belong to each binary's private operator
//! listener. The router answers them on its public listeners with a `404`, whatever the host
//! (tenant, custom domain, apex, admin, or none), before the HTTPS redirect and any tenant
//! lookup: a refusal must not depend on a database answer, and a `308` would only invite the
//! client to ask again over TLS. The platform and workers no longer serve these paths on their
//! public ports either; this is the second lock, so one forgotten route upstream cannot expose
//! donation counters, versions or pending migrations.
//!
//! The path is compared after the normalisations an upstream framework might apply, so
//! `//metrics`, `/Metrics`, `/metrics/`, `/./metrics`, `/x/../metrics` and percent-encoded
//! letters (`/%6detrics`) are refused too.
//!
//! `/api/health` is not an operator path: it is the seeds' public status probe, forwarded to
//! the platform, which answers `{"status":"ok"}` or `{"status":"unavailable"}` and nothing
//! else. Forwarding (rather than the router answering for itself) is deliberate: an uptime
//! monitor or a deploy smoke test calling `https://<host>/api/health` then learns whether the
//! whole path works (router, tenant resolution, a ready platform instance with its database and
//! Redis), which a router-only answer could not tell it.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::pages;

/// Paths served only on the operator listeners (first segment, after normalisation).
pub const OPERATOR_PATHS: &[&str] = &["metrics", "ready", "health", "healthz", "readyz", "livez"];

/// Whether `path` names an operator endpoint, after percent-decoding of unreserved
/// characters, case folding, empty and dot segment removal and a trailing slash or `;params`.
pub fn is_operator_path(path: &str) -> bool {
    let decoded = decode_unreserved(path);
    let mut segments: Vec<String> = Vec::new();
    for seg in decoded.split('/') {
        // `;` starts path parameters in some servers (`/metrics;x`).
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_ascii_lowercase()),
        }
    }
    segments
        .first()
        .is_some_and(|first| OPERATOR_PATHS.contains(&first.as_str()))
}

/// Percent-decodes the escapes a server may legitimately decode before routing (letters,
/// digits, `-._~`, `/` and `;`); any other escape stays as written.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(c) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if c.is_ascii_alphanumeric() || b"-._~/;".contains(&c) {
                    out.push(char::from(c));
                    i += 3;
                    continue;
                }
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

/// Refuses operator paths with a `404` (problem+json or HTML by `Accept`); everything else
/// continues.
pub fn respond(req: &RequestHeader, ctx: &mut RequestCtx) -> Step {
    if !is_operator_path(req.uri.path()) {
        return ControlFlow::Continue(());
    }
    ctx.route = RouteLabel::Router;
    ControlFlow::Break(pages::error_for(req, 404, ctx.request_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_paths_in_every_spelling() {
        for p in [
            "/metrics",
            "/ready",
            "/health",
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics/",
            "/metrics/x",
            "//metrics",
            "/METRICS",
            "/Health",
            "/./metrics",
            "/x/../metrics",
            "/%6detrics",
            "/%6Detrics",
            "/metrics;x",
            "/%2Fmetrics",
        ] {
            assert!(is_operator_path(p), "{p} must be refused");
        }
    }

    #[test]
    fn public_paths_pass() {
        for p in [
            "/",
            "/api/health",
            "/api/tenant",
            "/api/metrics",
            "/api/admin/metrics",
            "/staff",
            "/healthy-living",
            "/metricsx",
            "/static/health.css",
            "/%",
            "/%6",
            "/%zz",
        ] {
            assert!(!is_operator_path(p), "{p} must pass");
        }
    }
}

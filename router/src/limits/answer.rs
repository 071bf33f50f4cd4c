//! What a limited request is told: the status, `Retry-After`, the IETF `RateLimit-Policy` and
//! `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-10, structured-field lists), and a
//! short problem+json or HTML body by `Accept`.

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};

use crate::pages;
use crate::respond::Reply;

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// One zone's figures for the headers.
#[derive(Debug, Clone)]
pub struct ZoneState<'a> {
    /// Zone name (a token: `a-z0-9-_`).
    pub name: &'a str,
    /// Requests per window and the window in seconds.
    pub quota: (u32, u32),
    /// Requests that would still pass at once.
    pub remaining: u64,
    /// Seconds until the quota is whole again (or, limited, until a request passes).
    pub reset_secs: u64,
}

/// `"api";q=10;w=1, …` and `"api";r=3;t=1, …`.
pub fn headers(zones: &[ZoneState<'_>]) -> Vec<(HeaderName, HeaderValue)> {
    let mut policy = String::with_capacity(32 * zones.len());
    let mut state = String::with_capacity(32 * zones.len());
    for (i, z) in zones.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        policy.push_str(&format!("\"{}\";q={};w={}", z.name, z.quota.0, z.quota.1));
        state.push_str(&format!(
            "\"{}\";r={};t={}",
            z.name, z.remaining, z.reset_secs
        ));
    }
    let v = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
    vec![
        (RATELIMIT_POLICY.clone(), v(policy)),
        (RATELIMIT.clone(), v(state)),
    ]
}

/// The limited answer.
pub fn limited(
    status: u16,
    zone: &ZoneState<'_>,
    accept: Option<&str>,
    path: &str,
    request_id: &str,
) -> Reply {
    let mut reply = if crate::pages::prefers_json(accept, path) {
        let body = format!(
            "{{\"type\":\"about:blank\",\"title\":\"Too Many Requests\",\"status\":{status},\
             \"detail\":\"Rate limit {} exceeded; retry in {} s.\",\"request_id\":{}}}",
            zone.name,
            zone.reset_secs,
            serde_json::Value::from(request_id)
        );
        Reply::new(status, "application/problem+json", body)
    } else {
        let mut r = pages::error(429, request_id);
        r.status = status;
        r
    };
    reply = reply.header(RETRY_AFTER, HeaderValue::from(zone.reset_secs));
    for (n, v) in headers(std::slice::from_ref(zone)) {
        reply = reply.header(n, v);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_structured_lists() {
        let z = [
            ZoneState {
                name: "api",
                quota: (10, 1),
                remaining: 3,
                reset_secs: 1,
            },
            ZoneState {
                name: "plan",
                quota: (30, 1),
                remaining: 59,
                reset_secs: 2,
            },
        ];
        let h = headers(&z);
        assert_eq!(h[0].1, "\"api\";q=10;w=1, \"plan\";q=30;w=1");
        assert_eq!(h[1].1, "\"api\";r=3;t=1, \"plan\";r=59;t=2");
    }

    #[test]
    fn body_follows_accept() {
        let z = ZoneState {
            name: "auth",
            quota: (5, 60),
            remaining: 0,
            reset_secs: 12,
        };
        let j = limited(429, &z, Some("application/json"), "/login", "r-1");
        assert_eq!(j.content_type, "application/problem+json");
        assert!(std::str::from_utf8(&j.body)
            .unwrap()
            .contains("\"status\":429"));
        let h = limited(429, &z, Some("text/html,*/*"), "/api/x", "r-1");
        assert!(h.content_type.starts_with("text/html"));
        let retry = h.headers.iter().find(|(n, _)| n == RETRY_AFTER).unwrap();
        assert_eq!(retry.1, "12");
    }
}

//! Platform requests signed as the router signs them, for in-process platform tests: one
//! fixture instead of a copy per test file. Every request gets a fresh request id, since the
//! platform refuses a signature it has already seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tenant_config::edge::{EdgeContext, EdgeSigner};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The router's context for one host: route, tenant, secret and (optionally) a fixed time.
#[derive(Debug, Clone)]
pub struct Signed {
    secret: String,
    route: String,
    host: String,
    tenant: Option<String>,
    at: Option<u64>,
    id_prefix: String,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signed {
    /// Requests on `route` (`tenant`, `admin`, …) for `host`, signed with `secret`.
    pub fn new(secret: &str, route: &str, host: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            route: route.to_owned(),
            host: host.to_owned(),
            tenant: None,
            at: None,
            id_prefix: "req-test".to_owned(),
        }
    }

    /// Carries the tenant id header (tenant routes).
    pub fn tenant(mut self, id: impl ToString) -> Self {
        self.tenant = Some(id.to_string());
        self
    }

    /// Signs at `ts` (Unix seconds) instead of now.
    pub fn at(mut self, ts: u64) -> Self {
        self.at = Some(ts);
        self
    }

    /// Request ids start with `prefix` (then `-<n>`), to find them in the audit log.
    pub fn id_prefix(mut self, prefix: &str) -> Self {
        self.id_prefix = prefix.to_owned();
        self
    }

    /// A request id not used before in this process.
    pub fn next_request_id(&self) -> String {
        format!(
            "{}-{:06}",
            self.id_prefix,
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The signature header for these exact fields. The nonce is the request id when it can
    /// carry one (so the same id signed twice is the same signature, as a replay would be),
    /// else a fresh one.
    pub fn signature(
        &self,
        request_id: &str,
        method: &str,
        target: &str,
        content_length: Option<&str>,
    ) -> String {
        let nonce = if tenant_config::edge::is_valid_nonce(request_id.as_bytes()) {
            request_id.to_owned()
        } else {
            format!("t{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
        };
        EdgeSigner::new(self.secret.as_bytes()).sign(
            &EdgeContext {
                request_id,
                route: &self.route,
                tenant_id: self.tenant.as_deref(),
                host: &self.host,
                method,
                target,
                content_length,
            },
            self.at.unwrap_or_else(unix_now),
            &nonce,
        )
    }

    /// A request builder for `method target` with the router's headers and signature. With a
    /// body of `body_len` bytes it also carries that `Content-Length` (which is signed).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        body_len: Option<usize>,
    ) -> http::request::Builder {
        let id = self.next_request_id();
        let len = body_len.map(|n| n.to_string());
        let sig = self.signature(&id, method, target, len.as_deref());
        let mut b = http::Request::builder()
            .method(method)
            .uri(target)
            .header("x-request-id", id)
            .header("x-route", &self.route)
            .header("x-original-host", &self.host)
            .header("x-edge-signature", sig);
        if let Some(t) = &self.tenant {
            b = b.header("x-tenant-id", t);
        }
        if let Some(l) = len {
            b = b.header("content-length", l);
        }
        b
    }
}

//! The answers the router gives without proxying, as an ordered list of small responders.
//!
//! Each responder looks at the request and either lets it continue or answers it with a
//! [`Reply`]; `proxy.rs` runs them in order (`?` on [`Step`] stops at the first answer):
//!
//! 1. [`hygiene`]: refusals of malformed, oversized or ambiguous heads (`400`/`414`/`431`),
//!    before anything else looks at the request.
//! 2. [`internal`]: operator paths (`/metrics`, `/ready`, `/health`, …) refused with a `404`
//!    on every host: they live on the private operator listener only.
//! 3. [`acme`]: HTTP-01 challenge paths, answered whether or not HTTPS redirects are on.
//! 4. [`redirect`]: plain HTTP → `308` to HTTPS when configured.
//! 5. [`resolution`]: webhooks, host → route and tenant, and the refusals that come of it.
//! 6. [`rate_limit`]: `limit_req` zones and plan limits ([`crate::limits`]).

pub mod acme;
pub mod hygiene;
pub mod internal;
pub mod rate_limit;
pub mod redirect;
pub mod resolution;

use std::ops::ControlFlow;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::headers::HeaderPolicy;

/// A responder's verdict: continue to the next one, or answer with the [`Reply`].
pub type Step = ControlFlow<Reply>;

/// A complete response the router writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type` of `body`.
    pub content_type: &'static str,
    /// Headers beyond the ones every reply gets (`Location`, later `Retry-After`, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body; may be empty.
    pub body: Bytes,
}

impl Reply {
    /// A reply with no extra headers.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Writes the reply with the headers every response carries (security headers, request id)
    /// and `Cache-Control: no-store`. A `HEAD` request gets the head only.
    pub async fn write(
        self,
        session: &mut Session,
        policy: &HeaderPolicy,
        ctx: &RequestCtx,
    ) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(self.status, Some(4 + self.headers.len()))?;
        resp.insert_header(http::header::CONTENT_TYPE, self.content_type)?;
        resp.insert_header(
            http::header::CONTENT_LENGTH,
            itoa::Buffer::new().format(self.body.len()),
        )?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        for (name, value) in self.headers {
            resp.insert_header(name, value)?;
        }
        policy.decorate_response(&mut resp, "", ctx.tls, &ctx.request_id);
        let head_only = session.req_header().method == http::Method::HEAD;
        let body = self.body;
        session
            .write_response_header(Box::new(resp), head_only || body.is_empty())
            .await?;
        if !head_only && !body.is_empty() {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

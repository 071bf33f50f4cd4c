//! Per-tenant rate limits (`ResolvedTenant::rate_limit`). A slot in the order for the coming
//! issue, after resolution so the tenant is known; its `429` will carry `Retry-After` and
//! `RateLimit` headers through [`super::Reply::header`]. Today every request continues.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;

/// Lets every request continue (nothing is limited yet).
pub fn respond(_req: &RequestHeader, _ctx: &mut RequestCtx) -> Step {
    ControlFlow::Continue(())
}

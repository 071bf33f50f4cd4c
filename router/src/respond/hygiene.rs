//! Request hygiene: refusing requests the platform should never see (oversized or malformed
//! heads, disallowed methods). A slot in the order for the coming issue; today every request
//! continues. Header stripping happens later, on the upstream request (`forward.rs`).

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;

/// Lets every request continue (nothing is refused yet).
pub fn respond(_req: &RequestHeader, _ctx: &mut RequestCtx) -> Step {
    ControlFlow::Continue(())
}

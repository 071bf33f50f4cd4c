//! ACME HTTP-01 challenges (`/.well-known/acme-challenge/<token>`). Answered before the HTTPS
//! redirect, so a challenge never gets a `308` instead of its token, and never proxied.
//!
//! Issuance is not enabled yet: every token is unknown, so the answer is a `404`. The
//! certificate store will answer known tokens here.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::pages;

/// The challenge path prefix.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Answers challenge paths; everything else continues.
pub fn respond(req: &RequestHeader, ctx: &mut RequestCtx) -> Step {
    if !req.uri.path().starts_with(CHALLENGE_PREFIX) {
        return ControlFlow::Continue(());
    }
    ctx.route = RouteLabel::Router;
    ControlFlow::Break(pages::error(404, ctx.request_id()))
}

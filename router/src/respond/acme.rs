//! ACME HTTP-01 challenges (`/.well-known/acme-challenge/<token>`). Answered before the HTTPS
//! redirect, so a challenge never gets a `308` instead of its token, and never proxied.
//!
//! Answers come from `acme_challenges` in PostgreSQL ([`crate::acme::challenge::Answers`]), so
//! the instance the CA reaches need not be the one that placed the order. A token of the wrong
//! shape, an unknown or expired token, or a token asked for on another host than the one it was
//! issued for gets a `404`; without a database every challenge is a `404`.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::{Reply, Step};
use crate::acme::challenge::Answers;
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::pages;

/// The challenge path prefix.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Answers challenge paths; everything else continues.
pub async fn respond(req: &RequestHeader, ctx: &mut RequestCtx, answers: Option<&Answers>) -> Step {
    let Some(token) = req.uri.path().strip_prefix(CHALLENGE_PREFIX) else {
        return ControlFlow::Continue(());
    };
    ctx.route = RouteLabel::Router;
    let Some(answers) = answers else {
        return ControlFlow::Break(pages::error(404, ctx.request_id()));
    };
    match answers.lookup(token).await {
        Ok(Some(a)) if ctx.host() == Some(a.domain.as_str()) => ControlFlow::Break(Reply::new(
            200,
            "text/plain",
            a.key_authorization.into_bytes(),
        )),
        Ok(_) => ControlFlow::Break(pages::error(404, ctx.request_id())),
        Err(e) => {
            tracing::warn!(error = %e, "ACME challenge lookup failed");
            ControlFlow::Break(pages::error(503, ctx.request_id()))
        }
    }
}

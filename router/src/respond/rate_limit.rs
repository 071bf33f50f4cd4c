//! Rate limits, after resolution so the tenant and route are known: asks the
//! [`Limiter`](crate::limits::Limiter) and answers a limited request with its reply (`429`,
//! `Retry-After`, `RateLimit` fields), holds a delayed one, and keeps the `RateLimit` headers
//! of an allowed one for the response.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;
use crate::limits::{self, Decision, Limiter};

/// Lets the request continue unless a zone limits it.
pub async fn respond(req: &RequestHeader, ctx: &mut RequestCtx, limiter: Option<&Limiter>) -> Step {
    let Some(limiter) = limiter else {
        return ControlFlow::Continue(());
    };
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let facts = limits::facts(req.method.as_str(), req.uri.path(), ctx);
    match limiter.check(&facts, accept, ctx.request_id()).await {
        None => ControlFlow::Continue(()),
        Some(Decision::Limit(reply, mark)) => {
            ctx.limit = Some(mark);
            ControlFlow::Break(reply)
        }
        Some(Decision::Allow { headers, delay }) => {
            if let Some((d, mark)) = delay {
                ctx.limit = Some(mark);
                tokio::time::sleep(d).await;
            }
            ctx.limit_headers = headers;
            ControlFlow::Continue(())
        }
    }
}

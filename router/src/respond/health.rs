//! The router's own health paths on the proxy listener, for load balancers that probe by IP
//! address (no usable host name). With a host name, `/health` belongs to the site behind it.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::{Reply, Step};
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::upstream::Pool;

/// `/health` is always healthy; `/ready` needs a usable platform instance.
pub fn respond(req: &RequestHeader, ctx: &mut RequestCtx, platform: &Pool) -> Step {
    let path = req.uri.path();
    if ctx.host.is_some() || !(path == "/health" || path == "/ready") {
        return ControlFlow::Continue(());
    }
    ctx.route = RouteLabel::Router;
    let (status, body) = if path == "/ready" && platform.usable_count() == 0 {
        (503, r#"{"status":"no healthy platform instance"}"#)
    } else {
        (200, r#"{"status":"healthy"}"#)
    };
    ControlFlow::Break(Reply::new(status, "application/json", body))
}

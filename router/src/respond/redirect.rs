//! Plain HTTP → HTTPS (`308`, same host and target) when `listen.redirect_http_to_https` is
//! on. A request with no usable host goes to the apex.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;
use tenant_config::HostRules;

use super::Step;
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::pages;

/// Redirects plain-HTTP requests when `enabled`.
pub fn respond(
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    enabled: bool,
    rules: &HostRules,
) -> Step {
    if !enabled || ctx.tls {
        return ControlFlow::Continue(());
    }
    ctx.route = RouteLabel::Redirect;
    let target = match ctx.host() {
        Some(h) => {
            let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
            format!("https://{h}{pq}")
        }
        None => format!("https://{}/", rules.base()),
    };
    ControlFlow::Break(pages::redirect(&target))
}

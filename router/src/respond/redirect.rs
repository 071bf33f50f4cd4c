//! Plain HTTP → HTTPS (`308`, same host and target, the public HTTPS port) when
//! `listen.redirect_http_to_https` is on. A request with no usable host goes to the apex.
//!
//! Spared (answered over plain HTTP as before): ACME HTTP-01 challenges and the operator
//! paths (earlier responders answer them), and the public status probe `/api/health`, which
//! balancers call on the plain port.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;
use tenant_config::HostRules;

use super::Step;
use crate::ctx::RequestCtx;
use crate::metrics::RouteLabel;
use crate::pages;

/// The status probe forwarded over plain HTTP even when redirecting.
pub(crate) const STATUS_PROBE: &str = "/api/health";

/// Redirects plain-HTTP requests when `enabled`, to `https_port` (omitted when 443).
pub fn respond(
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    enabled: bool,
    https_port: u16,
    rules: &HostRules,
) -> Step {
    if !enabled || ctx.tls || req.uri.path() == STATUS_PROBE {
        return ControlFlow::Continue(());
    }
    ctx.route = RouteLabel::Redirect;
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = match ctx.host() {
        Some(h) => {
            let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
            format!("https://{h}{port}{pq}")
        }
        None => format!("https://{}{port}/", rules.base()),
    };
    ControlFlow::Break(pages::redirect(&target))
}

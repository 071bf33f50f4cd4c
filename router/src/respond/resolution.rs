//! Host → route and tenant. Webhooks skip the tenant lookup (Stripe calls them on the apex
//! host; the platform authenticates them itself); everything else goes through the
//! [`Resolver`], and the refusals it decides on are answered here.

use std::ops::ControlFlow;

use pingora::http::RequestHeader;

use super::Step;
use crate::ctx::RequestCtx;
use crate::metrics::{Metrics, RouteLabel};
use crate::pages;
use crate::resolve::{Decision, Resolver};

/// Path prefix of Stripe's webhooks.
pub const WEBHOOK_PREFIX: &str = "/api/webhooks/";

/// Sets the route (and tenant) of a request to forward, or answers it: `403` for a suspended
/// tenant, `308` to the apex for an unknown or invalid host, `503` when the store is down with
/// nothing cached. The public status probe (`GET`/`HEAD /api/health`) is forwarded on the apex
/// route from any host: load balancers and monitors often send an address or `localhost` as
/// the host, and a redirect would read to them as "down".
pub async fn respond(
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    resolver: &Resolver,
    metrics: &Metrics,
) -> Step {
    if req.uri.path().starts_with(WEBHOOK_PREFIX) {
        ctx.route = RouteLabel::Webhook;
        return ControlFlow::Continue(());
    }
    // An invalid host resolves as the empty name: a redirect to the apex.
    let (decision, outcome) = resolver.resolve(ctx.host().unwrap_or_default()).await;
    if let Some(o) = outcome {
        metrics.cache(o);
    }
    match decision {
        Decision::Forward { route, tenant } => {
            ctx.route = route.into();
            ctx.tenant = tenant;
            ControlFlow::Continue(())
        }
        Decision::Suspended(t) => {
            ctx.route = RouteLabel::Suspended;
            ControlFlow::Break(pages::suspended_for(req, &t.name, ctx.request_id()))
        }
        Decision::RedirectToApex if is_status_probe(req) => {
            ctx.route = RouteLabel::Apex;
            ControlFlow::Continue(())
        }
        Decision::RedirectToApex => {
            ctx.route = RouteLabel::Redirect;
            ControlFlow::Break(pages::redirect(&format!(
                "https://{}/",
                resolver.rules().base()
            )))
        }
        Decision::Unavailable => {
            ctx.route = RouteLabel::Unavailable;
            ControlFlow::Break(pages::error_for(req, 503, ctx.request_id()))
        }
    }
}

/// `GET` or `HEAD` of the public status probe, with or without a query.
fn is_status_probe(req: &RequestHeader) -> bool {
    (req.method == http::Method::GET || req.method == http::Method::HEAD)
        && req.uri.path() == super::redirect::STATUS_PROBE
}

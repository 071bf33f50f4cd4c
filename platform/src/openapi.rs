//! The OpenAPI document at `GET /api/openapi.json`, generated at build time from the
//! `#[utoipa::path]` annotations on the handlers and the `ToSchema` derives on their types, so
//! it changes whenever the code does. Schemathesis runs against it in the tests.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Donation platform",
        description = "Tenant, staff, admin and webhook API. Requests reach the platform through the edge router, which resolves the tenant from the Host header and signs the context (x-edge-signature); direct requests without it are refused.",
    ),
    paths(
        crate::health::public,
        crate::site::home,
        crate::tenant::profile::get_profile,
        crate::tenant::donations::status,
        crate::giving::create::create,
        crate::giving::cancel::api,
        crate::giving::cancel::page,
        crate::giving::cancel::confirm,
        crate::tenant::staff::login,
        crate::tenant::staff::logout,
        crate::tenant::donations::list,
        crate::tenant::reports::list,
        crate::tenant::reports::csv,
        crate::tenant::settings::get,
        crate::tenant::settings::put,
        crate::admin::auth::login,
        crate::admin::auth::logout,
        crate::admin::tenants::list,
        crate::admin::tenants::create,
        crate::admin::tenants::show,
        crate::admin::tenants::suspend,
        crate::admin::tenants::resume,
        crate::admin::plans::list,
        crate::admin::plans::set_plan,
        crate::admin::tenants::set_stripe_account,
        crate::admin::tenants::stripe_onboarding,
        crate::admin::domains::list,
        crate::admin::domains::add,
        crate::admin::domains::verify,
        crate::admin::domains::remove,
        crate::admin::overview::platform_metrics,
        crate::admin::overview::jobs,
        crate::admin::overview::audit_log,
        crate::webhooks::receive,
        crate::webhooks::receive_connect,
    ),
    modifiers(&Security),
    tags(
        (name = "operations", description = "Status-only health (details, readiness and metrics are on the private operator listener)"),
        (name = "tenant", description = "Public tenant API on <slug>.<base> and custom domains"),
        (name = "staff", description = "Tenant staff, on the tenant's host"),
        (name = "admin", description = "Platform admins, on the admin host"),
        (name = "webhooks", description = "Stripe events, verified by Stripe-Signature"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "edge_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-edge-signature",
                "Set by the router: HMAC-SHA256 over request id, route, tenant and host, with x-request-id, x-route, x-original-host and x-tenant-id",
            ))),
        );
        c.add_security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::admin::auth::SESSION_COOKIE,
            ))),
        );
        c.add_security_scheme(
            "staff_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::tenant::staff::STAFF_COOKIE,
            ))),
        );
        c.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-csrf-token"))),
        );
    }
}

/// `GET /api/openapi.json` (rendered once).
pub async fn document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

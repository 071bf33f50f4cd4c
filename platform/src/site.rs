//! `GET /`, whose answer depends on the host the router resolved: the tenant's donation page,
//! the admin console's dashboard, or the platform's own landing page on the apex.

use askama::Template;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::access::{Access, AdminCap};
use crate::edge::{EdgeRequest, TenantRequest};
use crate::state::AppState;
use crate::web::{csp, render};

#[derive(Template)]
#[template(path = "site/apex.html")]
struct Apex {
    admin_url: String,
    base: String,
}

/// `GET /` on any host.
#[utoipa::path(get, path = "/", operation_id = "get_root", tag = "tenant", responses((status = 200, description = "The tenant's donation page, the console's dashboard or the platform's landing page, by host", body = String, content_type = "text/html"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn home(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let edge = match EdgeRequest::from_request_parts(&mut parts, &state).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match edge.route.as_str() {
        "tenant" => match TenantRequest::from_request_parts(&mut parts, &state).await {
            Ok(t) => crate::giving::pages::landing(&state, &t)
                .await
                .unwrap_or_else(IntoResponse::into_response),
            Err(e) => e.into_response(),
        },
        "admin" => {
            // The dashboard reads platform figures: every admin role holds `read`.
            parts.extensions.insert(Access::Admin(AdminCap::Read));
            match crate::admin::pages::AdminPage::from_request_parts(&mut parts, &state).await {
                Ok(p) => crate::admin::pages::dashboard(State(state), p)
                    .await
                    .unwrap_or_else(IntoResponse::into_response),
                Err(r) => r,
            }
        }
        _ => render(
            StatusCode::OK,
            &Apex {
                admin_url: state.domains.public.origin(state.domains.rules.admin()),
                base: state.domains.rules.base().to_owned(),
            },
            &csp(None),
            false,
        ),
    }
}

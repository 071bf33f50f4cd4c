//! Cancelling a recurring gift with the token from its link: `GET /give/cancel` shows a
//! confirmation form, `POST /give/cancel` (that form) and `POST /api/recurring/{id}/cancel`
//! (JSON) cancel it. The token is an HMAC of the gift id (see [`crate::giving::cancel_token`]),
//! compared in constant time; a wrong token and an unknown gift answer the same 404.

use axum::extract::{Path, State};
use axum::response::Html;
use axum::Json;
use payments::Opts;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::edge::TenantRequest;
use crate::error::{path_uuid, AppError};
use crate::giving::stripe_error;
use crate::input::ApiJson;
use crate::state::AppState;

/// The secret half of the link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Token from the cancel link.
    pub token: String,
}

/// The link's query string (and the confirmation form's fields).
#[derive(Debug, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CancelLink {
    /// Recurring gift id.
    pub gift: String,
    /// Token.
    pub token: String,
}

/// Result of a cancellation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    /// Recurring gift id.
    pub id: Uuid,
    /// Always `canceled` on success.
    pub status: String,
}

async fn cancel(
    state: &AppState,
    req: &TenantRequest,
    id: Uuid,
    token: &str,
) -> Result<Cancelled, AppError> {
    // Checked before touching the database: a forged link costs one HMAC.
    if !crate::giving::check_cancel_token(state, id, token) {
        return Err(AppError::NotFound);
    }
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    let row = tx
        .query_opt(
            "SELECT r.stripe_subscription_id, r.status, t.stripe_account_id
             FROM recurring_donations r JOIN tenants t ON t.id = r.tenant_id WHERE r.id = $1",
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let status: String = row.get(1);
    if status == "canceled" {
        return Ok(Cancelled { id, status });
    }
    let subscription: Option<String> = row.get(0);
    let account: Option<String> = row.get(2);
    if let (Some(sub), Some(account)) = (subscription, account) {
        let stripe = state.payments.stripe()?;
        let r: Result<serde_json::Value, _> = stripe
            .client
            .delete(
                &format!("subscriptions/{sub}"),
                Opts {
                    account: Some(&account),
                    idempotency_key: None,
                },
            )
            .await;
        match r {
            Ok(_) => {}
            // Already gone on Stripe's side: record it here too.
            Err(payments::StripeError::Api { status: 404, .. }) => {}
            Err(e) => return Err(stripe_error(e)),
        }
    }
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    tx.execute(
        "UPDATE recurring_donations SET status = 'canceled', canceled_at = now(), updated_at = now()
         WHERE id = $1 AND status <> 'canceled'",
        &[&id],
    )
    .await?;
    tx.execute(
        "INSERT INTO audit_log (actor_type, tenant_id, action, target_type, target_id, request_id)
         VALUES ('system', $1, 'recurring.canceled_by_donor', 'recurring_donation', $2, $3)",
        &[&req.tenant.0, &id.to_string(), &req.edge.request_id],
    )
    .await?;
    tx.commit().await?;
    Ok(Cancelled {
        id,
        status: "canceled".into(),
    })
}

/// `POST /api/recurring/{id}/cancel`.
#[utoipa::path(post, path = "/api/recurring/{id}/cancel", operation_id = "post_recurring_by_id_cancel", tag = "tenant", params(("id" = String, Path, description = "Recurring gift id (UUID)")), request_body = CancelBody, responses((status = 200, body = Cancelled), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn api(
    State(state): State<AppState>,
    req: TenantRequest,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Json<Cancelled>, AppError> {
    let id = path_uuid(&id)?;
    Ok(Json(cancel(&state, &req, id, &body.token).await?))
}

/// `GET /give/cancel?gift=…&token=…`: a confirmation page; nothing changes on GET (mail
/// scanners follow links).
#[utoipa::path(get, path = "/give/cancel", operation_id = "get_give_cancel", tag = "tenant", params(CancelLink), responses((status = 200, description = "Confirmation form", body = String, content_type = "text/html"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn page(
    State(state): State<AppState>,
    req: TenantRequest,
    crate::input::ApiQuery(link): crate::input::ApiQuery<CancelLink>,
) -> Result<Html<String>, AppError> {
    let id = crate::error::uuid_field("gift", &link.gift)?;
    // The form is shown only for a real link to a gift of this tenant: a forged token, an
    // unknown gift and another tenant's gift (invisible under row-level security) all answer
    // the same 404, so the page reveals nothing the POST would refuse.
    if !crate::giving::check_cancel_token(&state, id, &link.token) {
        return Err(AppError::NotFound);
    }
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    let exists = tx
        .query_opt("SELECT 1 FROM recurring_donations WHERE id = $1", &[&id])
        .await?
        .is_some();
    tx.commit().await?;
    if !exists {
        return Err(AppError::NotFound);
    }
    let name = crate::tenant::profile::load(&state, req.tenant)
        .await?
        .name
        .clone();
    Ok(Html(render(&CancelPage {
        name,
        gift: id.to_string(),
        token: link.token,
    })?))
}

#[derive(askama::Template)]
#[template(path = "site/cancel.html")]
struct CancelPage {
    name: String,
    gift: String,
    token: String,
}

#[derive(askama::Template)]
#[template(path = "site/cancelled.html")]
struct CancelledPage {
    name: String,
}

fn render<T: askama::Template>(page: &T) -> Result<String, AppError> {
    page.render()
        .map_err(|e| AppError::Internal(format!("template: {e}")))
}

/// `POST /give/cancel` (the confirmation form).
#[utoipa::path(post, path = "/give/cancel", operation_id = "post_give_cancel", tag = "tenant", request_body(content = CancelLink, content_type = "application/x-www-form-urlencoded"), responses((status = 200, description = "Cancelled", body = String, content_type = "text/html"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    req: TenantRequest,
    crate::input::ApiForm(link): crate::input::ApiForm<CancelLink>,
) -> Result<Html<String>, AppError> {
    let id = crate::error::uuid_field("gift", &link.gift)?;
    cancel(&state, &req, id, &link.token).await?;
    let name = crate::tenant::profile::load(&state, req.tenant)
        .await?
        .name
        .clone();
    Ok(Html(render(&CancelledPage { name })?))
}

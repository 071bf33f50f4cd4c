//! Plans: what an admin can put a tenant on, and moving a tenant to another one.
//!
//! A plan sets the tenant-wide rate limit and how many custom domains the tenant may have. A
//! change takes effect on every router at once (the `tenants` row change notifies
//! `tenant_changed`, and each router drops the cached tenant with its old limit). A move to a
//! plan that allows fewer custom domains than the tenant has is refused rather than leaving
//! domains the plan does not pay for.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tenant_config::TenantId;

use super::auth::AdminSession;
use super::tenants::{view, TenantView, COLUMNS};
use super::{audit, begin};
use crate::error::AppError;
use crate::input::ApiJson;
use crate::state::AppState;

/// A plan as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    /// Id (`starter`, `growth`, …).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Price per month in minor units of `currency`.
    pub monthly_price_minor: i64,
    /// Currency of the price.
    pub currency: String,
    /// Tenant-wide requests per second the router allows.
    pub rate_limit_rps: i32,
    /// Requests allowed at once above the rate.
    pub rate_limit_burst: i32,
    /// Custom domains a tenant on this plan may have.
    pub max_custom_domains: i32,
    /// Whether tenants can be put on it.
    pub active: bool,
}

/// `GET /api/admin/plans`: every plan, active ones first.
#[utoipa::path(get, path = "/api/admin/plans", operation_id = "get_admin_plans", tag = "admin", responses((status = 200, body = Vec<PlanView>), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> Result<Json<Vec<PlanView>>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let rows = tx
        .query(
            "SELECT id, name, monthly_price_minor, currency, rate_limit_rps, rate_limit_burst,
                    max_custom_domains, active
             FROM plans ORDER BY active DESC, monthly_price_minor, id",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(
        rows.iter()
            .map(|r| PlanView {
                id: r.get(0),
                name: r.get(1),
                monthly_price_minor: r.get(2),
                currency: r.get(3),
                rate_limit_rps: r.get(4),
                rate_limit_burst: r.get(5),
                max_custom_domains: r.get(6),
                active: r.get(7),
            })
            .collect(),
    ))
}

/// Body of `PUT /api/admin/tenants/{id}/plan`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    /// The plan to move the tenant to (an active plan's id).
    pub plan_id: String,
}

/// `PUT /api/admin/tenants/{id}/plan`: moves a tenant to another active plan (audited). 409
/// when the tenant has more custom domains than the new plan allows.
#[utoipa::path(put, path = "/api/admin/tenants/{id}/plan", operation_id = "put_admin_tenants_by_id_plan", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), request_body = PlanChange, responses((status = 200, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, role without the capability)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "More custom domains than the plan allows", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "Unknown or inactive plan; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn set_plan(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PlanChange>,
) -> Result<Json<TenantView>, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let unknown = || AppError::Invalid {
        field: "plan_id".into(),
        message: "unknown plan".into(),
    };
    if body.plan_id.is_empty() || body.plan_id.len() > 32 {
        return Err(unknown());
    }
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    // Lock the tenant row so a domain added meanwhile cannot slip past the count.
    let current: Option<String> = tx
        .query_opt(
            "SELECT plan_id FROM tenants WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?
        .get(0);
    let allowed: i32 = tx
        .query_opt(
            "SELECT max_custom_domains FROM plans WHERE id = $1 AND active",
            &[&body.plan_id],
        )
        .await?
        .ok_or_else(unknown)?
        .get(0);
    let domains: i64 = tx
        .query_one(
            "SELECT count(*) FROM tenant_domains WHERE tenant_id = $1 AND status <> 'removed'",
            &[&id],
        )
        .await?
        .get(0);
    if domains > i64::from(allowed) {
        return Err(AppError::Conflict(format!(
            "the tenant has {domains} custom domain(s) and the {} plan allows {allowed}: remove some first",
            body.plan_id
        )));
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE tenants SET plan_id = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &body.plan_id],
        )
        .await?;
    audit(
        &tx,
        &admin.actor,
        "tenant.plan",
        Some(id),
        ("tenant", &id.to_string()),
        serde_json::json!({ "from": current, "to": body.plan_id }),
    )
    .await?;
    tx.commit().await?;
    state.profiles.invalidate(TenantId(id)).await;
    Ok(Json(view(&row)))
}

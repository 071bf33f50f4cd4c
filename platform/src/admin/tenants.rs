//! Tenant management on the admin host: list, create, suspend, resume. Each change is audited
//! in the same transaction, fires the `tenant_changed` notification (a trigger) that routers
//! use to drop their cache, and drops this service's cached profile.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenant_config::slug::validate_slug;
use tenant_config::TenantId;
use uuid::Uuid;

use super::auth::AdminSession;
use super::{audit, begin};
use crate::error::AppError;
use crate::input::ApiJson;
use crate::state::AppState;

/// A tenant as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Id.
    pub id: Uuid,
    /// Subdomain label.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `trial`, `active`, `suspended`, `cancelled`.
    pub status: String,
    /// Plan.
    pub plan_id: String,
    /// Why it was suspended, if it is.
    pub suspended_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Stripe connected account (`acct_…`), once set.
    pub stripe_account_id: Option<String>,
    /// `not_connected`, `pending`, `restricted`, `enabled`, `rejected` (kept current by
    /// `account.updated` webhooks).
    pub stripe_account_status: String,
}

pub(super) const COLUMNS: &str = "id, slug, name, status, plan_id, suspended_reason, created_at, stripe_account_id, stripe_account_status";

pub(super) fn view(r: &tokio_postgres::Row) -> TenantView {
    TenantView {
        id: r.get(0),
        slug: r.get(1),
        name: r.get(2),
        status: r.get(3),
        plan_id: r.get(4),
        suspended_reason: r.get(5),
        created_at: r.get(6),
        stripe_account_id: r.get(7),
        stripe_account_status: r.get(8),
    }
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tenants in this status.
    pub status: Option<String>,
    /// Only tenants whose slug or name contains this text (any case).
    pub q: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// `GET /api/admin/tenants`.
#[utoipa::path(get, path = "/api/admin/tenants", operation_id = "get_admin_tenants", tag = "admin", params(ListQuery), responses((status = 200, body = Vec<TenantView>), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
    crate::input::ApiQuery(q): crate::input::ApiQuery<ListQuery>,
) -> Result<Json<Vec<TenantView>>, AppError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::Invalid {
            field: "limit".into(),
            message: "must be between 1 and 200".into(),
        });
    }
    let offset = q.offset.unwrap_or(0).max(0);
    if let Some(s) = &q.status {
        s.parse::<tenant_config::TenantStatus>()
            .map_err(|_| AppError::Invalid {
                field: "status".into(),
                message: "unknown status".into(),
            })?;
    }
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM tenants WHERE ($1::text IS NULL OR status = $1)
                   AND ($4::text IS NULL OR strpos(lower(slug || ' ' || name), lower($4)) > 0)
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ),
            &[
                &q.status,
                &limit,
                &offset,
                &q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()),
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(rows.iter().map(view).collect()))
}

/// `GET /api/admin/tenants/{id}`.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", operation_id = "get_admin_tenants_by_id", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), responses((status = 200, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn show(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(view(&row)))
}

/// New tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Subdomain label (tenant-config slug rules).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan id (default `starter`).
    pub plan_id: Option<String>,
}

/// Creates a tenant after validating slug, name and plan; audited when an admin did it.
/// Shared by the admin API and the `platform tenant create` command.
pub async fn create_tenant(
    db: &tenant_config::db::Pool,
    slug: &str,
    name: &str,
    plan: &str,
    actor: Option<&super::Actor>,
) -> Result<TenantView, AppError> {
    validate_slug(slug).map_err(|e| AppError::Invalid {
        field: "slug".into(),
        message: e.to_string(),
    })?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::Invalid {
            field: "name".into(),
            message: "must be 1 to 200 characters".into(),
        });
    }
    let mut conn = db.get().await?;
    let tx = begin(&mut conn).await?;
    let plan_ok = tx
        .query_opt("SELECT 1 FROM plans WHERE id = $1 AND active", &[&plan])
        .await?
        .is_some();
    if !plan_ok {
        return Err(AppError::Invalid {
            field: "plan_id".into(),
            message: "unknown plan".into(),
        });
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO tenants (slug, name, plan_id) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
            ),
            &[&slug, &name, &plan],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                AppError::Conflict("a tenant with this slug exists".into())
            }
            _ => e.into(),
        })?;
    let v = view(&row);
    if let Some(actor) = actor {
        audit(
            &tx,
            actor,
            "tenant.create",
            Some(v.id),
            ("tenant", &v.id.to_string()),
            serde_json::json!({ "slug": v.slug, "plan_id": v.plan_id }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(v)
}

/// `POST /api/admin/tenants`.
#[utoipa::path(post, path = "/api/admin/tenants", operation_id = "post_admin_tenants", tag = "admin", request_body = NewTenant, responses((status = 201, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn create(
    State(state): State<AppState>,
    admin: AdminSession,
    ApiJson(t): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<TenantView>), AppError> {
    let plan = t.plan_id.as_deref().unwrap_or("starter");
    let v = create_tenant(&state.db, &t.slug, &t.name, plan, Some(&admin.actor)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Suspension reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    /// Shown to admins, kept in the audit log.
    pub reason: String,
}

async fn set_status(
    state: &AppState,
    admin: &AdminSession,
    id: &str,
    to: &str,
    reason: Option<&str>,
) -> Result<Json<TenantView>, AppError> {
    let id = crate::error::path_uuid(id)?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE tenants SET status = $2, suspended_reason = $3, status_changed_at = now(), updated_at = now()
                 WHERE id = $1 AND status <> 'cancelled' RETURNING {COLUMNS}"
            ),
            &[&id, &to, &reason],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let v = view(&row);
    let action = if to == "suspended" {
        "tenant.suspend"
    } else {
        "tenant.resume"
    };
    audit(
        &tx,
        &admin.actor,
        action,
        Some(id),
        ("tenant", &id.to_string()),
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    state.profiles.invalidate(TenantId(id)).await;
    Ok(Json(v))
}

/// `POST /api/admin/tenants/{id}/suspend`.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/suspend", operation_id = "post_admin_tenants_by_id_suspend", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), request_body = Suspend, responses((status = 200, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn suspend(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
    ApiJson(s): ApiJson<Suspend>,
) -> Result<Json<TenantView>, AppError> {
    let reason = s.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::Invalid {
            field: "reason".into(),
            message: "must be 1 to 500 characters".into(),
        });
    }
    set_status(&state, &admin, &id, "suspended", Some(reason)).await
}

/// `POST /api/admin/tenants/{id}/resume`.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/resume", operation_id = "post_admin_tenants_by_id_resume", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), responses((status = 200, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, AppError> {
    set_status(&state, &admin, &id, "active", None).await
}

/// Body of `PUT /api/admin/tenants/{id}/stripe-account`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeAccount {
    /// The tenant's connected account id (`acct_…`), or `null` to disconnect.
    pub account_id: Option<String>,
}

/// `PUT /api/admin/tenants/{id}/stripe-account`: links a connected account. Its status starts as
/// `pending` and becomes `enabled` when Stripe's `account.updated` says charges are enabled;
/// only then does the tenant take donations.
#[utoipa::path(put, path = "/api/admin/tenants/{id}/stripe-account", operation_id = "put_admin_tenants_by_id_stripe_account", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), request_body = StripeAccount, responses((status = 200, body = TenantView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn set_stripe_account(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StripeAccount>,
) -> Result<Json<TenantView>, AppError> {
    let id = crate::error::path_uuid(&id)?;
    if let Some(a) = &body.account_id {
        let ok = a.len() <= 255
            && a.strip_prefix("acct_")
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok {
            return Err(AppError::Invalid {
                field: "account_id".into(),
                message: "must be a Stripe account id (acct_ followed by letters and digits)"
                    .into(),
            });
        }
    }
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let result = tx
        .query_opt(
            &format!(
                "UPDATE tenants SET stripe_account_id = $2,
                        stripe_account_status = CASE
                            WHEN $2::text IS NULL THEN 'not_connected'
                            WHEN stripe_account_id IS NOT DISTINCT FROM $2 THEN stripe_account_status
                            ELSE 'pending' END,
                        stripe_account_event_at = CASE
                            WHEN stripe_account_id IS NOT DISTINCT FROM $2 THEN stripe_account_event_at
                            ELSE NULL END,
                        updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &body.account_id],
        )
        .await;
    let row = match result {
        Ok(r) => r.ok_or(AppError::NotFound)?,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(AppError::Conflict(
                "that Stripe account is linked to another tenant".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit(
        &tx,
        &admin.actor,
        "tenant.stripe_account",
        Some(id),
        ("tenant", &id.to_string()),
        serde_json::json!({ "account_id": body.account_id }),
    )
    .await?;
    tx.commit().await?;
    state.profiles.invalidate(TenantId(id)).await;
    Ok(Json(view(&row)))
}

/// Body of `POST /api/admin/tenants/{id}/stripe-onboarding`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Onboarding {
    /// The tenant's contact address, prefilled on Stripe's form.
    pub email: Option<String>,
    /// Two-letter country of the organisation (default `US`).
    pub country: Option<String>,
}

/// Where to send the tenant's administrator to finish Stripe's onboarding.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnboardingLink {
    /// The connected account (created now, or the one already linked).
    pub account_id: String,
    /// Stripe-hosted onboarding page (single use, expires).
    pub url: String,
    /// Unix time the link expires.
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct AccountLink {
    url: String,
    expires_at: i64,
}

/// `POST /api/admin/tenants/{id}/stripe-onboarding`: creates the tenant's Express connected
/// account if it has none (idempotency key `account:<tenant id>`), links it as `pending`, and
/// returns a fresh onboarding link. `account.updated` enables the tenant once Stripe allows
/// charges.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/stripe-onboarding", operation_id = "post_admin_tenants_by_id_stripe_onboarding", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), request_body = Onboarding, responses((status = 200, body = OnboardingLink), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "Stripe or the database is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn stripe_onboarding(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Onboarding>,
) -> Result<Json<OnboardingLink>, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let country = body.country.as_deref().unwrap_or("US").to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AppError::Invalid {
            field: "country".into(),
            message: "must be a two-letter country code".into(),
        });
    }
    let email = body.email.map(|e| e.trim().to_lowercase());
    if let Some(e) = &email {
        if !crate::giving::valid_email(e) {
            return Err(AppError::Invalid {
                field: "email".into(),
                message: "must be an email address".into(),
            });
        }
    }
    let stripe = state.payments.stripe()?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let row = tx
        .query_opt(
            "SELECT stripe_account_id FROM tenants WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let existing: Option<String> = row.get(0);
    let account = match existing {
        Some(a) => a,
        None => {
            let mut form = payments::Form::new()
                .set("type", "express")
                .set("country", &country)
                .set("capabilities[card_payments][requested]", "true")
                .set("capabilities[transfers][requested]", "true")
                .set("metadata[tenant_id]", id);
            if let Some(e) = &email {
                form = form.set("email", e);
            }
            let key = format!("account:{id}");
            let created: payments::client::Created = stripe
                .client
                .post(
                    "accounts",
                    &form,
                    payments::Opts {
                        account: None,
                        idempotency_key: Some(&key),
                    },
                )
                .await
                .map_err(crate::giving::stripe_error)?;
            let tx = begin(&mut conn).await?;
            tx.execute(
                "UPDATE tenants SET stripe_account_id = $2, stripe_account_status = 'pending',
                        stripe_account_event_at = NULL, updated_at = now()
                 WHERE id = $1 AND stripe_account_id IS NULL",
                &[&id, &created.id],
            )
            .await?;
            audit(
                &tx,
                &admin.actor,
                "tenant.stripe_account_created",
                Some(id),
                ("tenant", &id.to_string()),
                serde_json::json!({ "account_id": created.id }),
            )
            .await?;
            tx.commit().await?;
            state.profiles.invalidate(TenantId(id)).await;
            created.id
        }
    };
    let back = format!(
        "https://{}/tenants/{id}/stripe",
        state.domains.rules.admin()
    );
    let link_key = format!("account-link:{id}:{}", uuid::Uuid::new_v4());
    let link: AccountLink = stripe
        .client
        .post(
            "account_links",
            &payments::Form::new()
                .set("account", &account)
                .set("type", "account_onboarding")
                .set("refresh_url", format!("{back}?refresh=1"))
                .set("return_url", format!("{back}?done=1")),
            payments::Opts {
                account: None,
                idempotency_key: Some(&link_key),
            },
        )
        .await
        .map_err(crate::giving::stripe_error)?;
    Ok(Json(OnboardingLink {
        account_id: account,
        url: link.url,
        expires_at: link.expires_at,
    }))
}

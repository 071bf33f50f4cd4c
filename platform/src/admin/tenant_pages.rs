//! The admin console's tenant page (`/tenants/{id}`) and the changes made from it: suspend
//! and resume, plan, custom domains, and the Stripe account (linked by id, or created and
//! onboarded through Stripe's hosted flow). Each form posts back here and answers with a 303
//! to the tenant page, or the page again with the form's errors beside their fields.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::domains::DomainView;
use super::pages::{plans, AdminPage};
use super::tenants::TenantView;
use crate::error::AppError;
use crate::input::{ApiForm, ApiJson};
use crate::state::AppState;
use crate::web::{private_page as page, see_other, FieldErrors};

#[derive(Template)]
#[template(path = "admin/tenant.html")]
struct TenantPage {
    csrf: String,
    t: TenantView,
    plans: Vec<String>,
    domains: Vec<DomainView>,
    hostname: String,
    account_id: String,
    errors: FieldErrors,
}

async fn tenant_page(
    state: AppState,
    p: AdminPage,
    id: String,
    hostname: String,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, AppError> {
    let Json(t) =
        super::tenants::show(State(state.clone()), p.session.clone(), Path(id.clone())).await?;
    let Json(domains) =
        super::domains::list(State(state.clone()), p.session.clone(), Path(id)).await?;
    let plans = plans(&state).await?;
    Ok(page(
        status,
        &TenantPage {
            csrf: p.csrf,
            plans,
            account_id: t.stripe_account_id.clone().unwrap_or_default(),
            t,
            domains,
            hostname,
            errors,
        },
    ))
}

/// `GET /tenants/{id}`.
pub async fn tenant(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    tenant_page(
        state,
        p,
        id,
        String::new(),
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// The suspend form.
#[derive(Debug, Deserialize)]
pub struct SuspendForm {
    #[serde(default)]
    reason: String,
}

/// Shows the tenant page again: after a change (303), or with the form's errors (422).
async fn back_to_tenant(
    state: AppState,
    p: AdminPage,
    id: String,
    result: Result<(), AppError>,
    hostname: String,
) -> Result<Response, AppError> {
    match result {
        Ok(()) => Ok(see_other(&format!("/tenants/{id}"))),
        Err(e) => {
            let errors = FieldErrors::from_error(e, &[("domain", "hostname")])?;
            tenant_page(
                state,
                p,
                id,
                hostname,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// `POST /tenants/{id}/suspend`.
pub async fn suspend(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
    ApiForm(f): ApiForm<SuspendForm>,
) -> Result<Response, AppError> {
    let r = super::tenants::suspend(
        State(state.clone()),
        p.session.clone(),
        Path(id.clone()),
        ApiJson(super::tenants::Suspend { reason: f.reason }),
    )
    .await
    .map(|_| ());
    back_to_tenant(state, p, id, r, String::new()).await
}

/// `POST /tenants/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let r = super::tenants::resume(State(state.clone()), p.session.clone(), Path(id.clone()))
        .await
        .map(|_| ());
    back_to_tenant(state, p, id, r, String::new()).await
}

/// The add-domain form.
#[derive(Debug, Deserialize)]
pub struct DomainForm {
    #[serde(default)]
    hostname: String,
}

/// `POST /tenants/{id}/domains`.
pub async fn add_domain(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
    ApiForm(f): ApiForm<DomainForm>,
) -> Result<Response, AppError> {
    let r = super::domains::add(
        State(state.clone()),
        p.session.clone(),
        Path(id.clone()),
        ApiJson(super::domains::NewDomain {
            domain: f.hostname.clone(),
        }),
    )
    .await
    .map(|_| ())
    // "Already attached to a tenant" is about the name typed: say so next to it.
    .map_err(|e| match e {
        AppError::Conflict(what) => AppError::Invalid {
            field: "domain".into(),
            message: what,
        },
        e => e,
    });
    back_to_tenant(state, p, id, r, f.hostname).await
}

/// `POST /domains/{id}/verify`: checks the TXT record now and shows the domain's tenant.
pub async fn verify_domain(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let Json(d) = super::domains::verify(State(state), p.session.clone(), Path(id)).await?;
    Ok(see_other(&format!("/tenants/{}", d.tenant_id)))
}

/// The Stripe account form.
#[derive(Debug, Deserialize)]
pub struct StripeForm {
    #[serde(default)]
    account_id: String,
}

/// `POST /tenants/{id}/stripe-account`.
pub async fn stripe_account(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
    ApiForm(f): ApiForm<StripeForm>,
) -> Result<Response, AppError> {
    let account = f.account_id.trim().to_owned();
    let r = super::tenants::set_stripe_account(
        State(state.clone()),
        p.session.clone(),
        Path(id.clone()),
        ApiJson(super::tenants::StripeAccount {
            account_id: (!account.is_empty()).then_some(account),
        }),
    )
    .await
    .map(|_| ());
    back_to_tenant(state, p, id, r, String::new()).await
}

/// The plan form.
#[derive(Debug, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    plan_id: String,
}

/// `POST /tenants/{id}/plan`.
pub async fn set_plan(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
    ApiForm(f): ApiForm<PlanForm>,
) -> Result<Response, AppError> {
    let r = super::plans::set_plan(
        State(state.clone()),
        p.session.clone(),
        Path(id.clone()),
        ApiJson(super::plans::PlanChange { plan_id: f.plan_id }),
    )
    .await
    .map(|_| ());
    back_to_tenant(state, p, id, r, String::new()).await
}

/// The Stripe onboarding form.
#[derive(Debug, Deserialize)]
pub struct OnboardingForm {
    #[serde(default)]
    country: String,
    #[serde(default)]
    email: String,
}

/// `POST /tenants/{id}/stripe-onboarding`: creates the tenant's connected account if it has
/// none and sends the browser to Stripe's hosted onboarding (a 303 to Stripe's link).
pub async fn stripe_onboarding(
    State(state): State<AppState>,
    p: AdminPage,
    Path(id): Path<String>,
    ApiForm(f): ApiForm<OnboardingForm>,
) -> Result<Response, AppError> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let r = super::tenants::stripe_onboarding(
        State(state.clone()),
        p.session.clone(),
        Path(id.clone()),
        ApiJson(super::tenants::Onboarding {
            country: text(&f.country),
            email: text(&f.email),
        }),
    )
    .await;
    match r {
        Ok(Json(link)) => Ok(see_other(&link.url)),
        Err(e) => back_to_tenant(state, p, id, Err(e), String::new()).await,
    }
}

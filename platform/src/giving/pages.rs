//! The donation site on a tenant's hosts: the landing page with the donation form, the form's
//! submission (`POST /give`, the same [`super::service::start_gift`] the JSON API calls), the
//! thank-you page, and the tenant's colours as a stylesheet (pages carry no inline styles, so
//! the Content-Security-Policy needs no `unsafe-inline`).

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::create::{Frequency, NewDonation};
use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::input::{ApiForm, ApiQuery};
use crate::state::AppState;
use crate::tenant::profile::Profile;
use crate::web::{csp, money, render, see_other, FieldErrors};

/// Preset amounts on the form, in minor units.
const PRESETS: [i64; 4] = [1000, 2500, 5000, 10000];

/// One preset choice.
struct Preset {
    minor: i64,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "site/landing.html")]
struct Landing {
    p: Profile,
    presets: Vec<Preset>,
    currency: String,
    form: GiveForm,
    errors: FieldErrors,
    fee_percent: String,
    fee_bps: u32,
    /// Decimal places of the currency (ISO 4217), for the fee preview.
    exponent: u32,
    stripe_key: String,
    stripe_account: String,
    stripe_js: String,
    can_give: bool,
    min: String,
    max: String,
}

/// The donation form's fields (kept to show them again with errors).
#[derive(Debug, Default, Deserialize)]
pub struct GiveForm {
    #[serde(default)]
    preset: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    fund: String,
    #[serde(default)]
    frequency: String,
    #[serde(default)]
    donor_name: String,
    #[serde(default)]
    donor_email: String,
    #[serde(default)]
    card_token: String,
}

/// The tenant's connected account, when it can take gifts.
async fn payable_account(
    state: &AppState,
    req: &TenantRequest,
) -> Result<Option<String>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    let row = tx
        .query_opt(
            "SELECT stripe_account_id FROM tenants WHERE stripe_account_status = 'enabled'",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(row.and_then(|r| r.get(0)))
}

async fn landing_page(
    state: &AppState,
    req: &TenantRequest,
    form: GiveForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, AppError> {
    let p = (*crate::tenant::profile::load(state, req.tenant).await?).clone();
    let account = payable_account(state, req).await?;
    let stripe = state.payments.stripe.as_ref();
    let currency = p
        .donations
        .currencies
        .first()
        .cloned()
        .unwrap_or_else(|| "usd".into());
    let chosen = form.preset.parse::<i64>().ok();
    let presets = PRESETS
        .iter()
        .filter(|m| **m >= p.donations.min_minor && **m <= p.donations.max_minor)
        .map(|m| Preset {
            minor: *m,
            label: money(*m, &currency),
            checked: chosen == Some(*m) || (chosen.is_none() && *m == 2500),
        })
        .collect();
    let bps = stripe.map_or(0, |s| s.fee_basis_points);
    let page = Landing {
        min: money(p.donations.min_minor, &currency),
        max: money(p.donations.max_minor, &currency),
        exponent: tenant_config::money::exponent(&currency),
        presets,
        currency,
        form,
        errors,
        fee_percent: format!("{}.{:02}", bps / 100, bps % 100),
        fee_bps: bps,
        stripe_key: stripe
            .and_then(|s| s.publishable_key.clone())
            .unwrap_or_default(),
        can_give: account.is_some() && stripe.is_some(),
        stripe_account: account.unwrap_or_default(),
        stripe_js: state.domains.stripe_js_url.clone(),
        p,
    };
    Ok(render(
        status,
        &page,
        &csp(Some(&state.domains.stripe_js_url)),
        false,
    ))
}

/// `GET /` on a tenant host: who the tenant is and the donation form.
pub async fn landing(state: &AppState, req: &TenantRequest) -> Result<Response, AppError> {
    landing_page(
        state,
        req,
        GiveForm::default(),
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /give`: starts the gift and shows the thank-you page, or the form with its errors.
pub async fn give(
    State(state): State<AppState>,
    req: TenantRequest,
    ApiForm(form): ApiForm<GiveForm>,
) -> Result<Response, AppError> {
    let profile = crate::tenant::profile::load(&state, req.tenant).await?;
    let currency = profile
        .donations
        .currencies
        .first()
        .cloned()
        .unwrap_or_else(|| "usd".into());
    let amount = if form.amount.trim().is_empty() {
        form.preset.parse::<i64>().ok()
    } else {
        tenant_config::money::parse(&form.amount, &currency)
    };
    let Some(amount) = amount else {
        return landing_page(
            &state,
            &req,
            form,
            FieldErrors::one("amount", "Enter an amount such as 25 or 25.50."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let frequency = match form.frequency.as_str() {
        "month" => Frequency::Month,
        "" | "one_time" => Frequency::OneTime,
        _ => {
            return landing_page(
                &state,
                &req,
                form,
                FieldErrors::one("frequency", "Choose one time or monthly."),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let profile = crate::tenant::profile::load(&state, req.tenant).await?;
    let body = NewDonation {
        amount_minor: amount,
        currency: profile
            .donations
            .currencies
            .first()
            .cloned()
            .unwrap_or_else(|| "usd".into()),
        fund: (!form.fund.is_empty()).then(|| form.fund.clone()),
        donor_name: form.donor_name.clone(),
        donor_email: form.donor_email.clone(),
        frequency,
        payment_method: None,
        card_token: Some(form.card_token.clone()).filter(|t| !t.is_empty()),
    };
    if body.card_token.is_none() {
        return landing_page(
            &state,
            &req,
            form,
            FieldErrors::one("card", "Enter your card details."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match super::service::start_gift(&state, &req, body).await {
        Ok(started) => {
            let to = match (started.donation_id, started.recurring_donation_id) {
                (Some(id), _) => format!("/give/thanks?gift={id}"),
                (None, Some(id)) => format!(
                    "/give/thanks?recurring={id}&token={}",
                    super::cancel_token(&state, id)
                ),
                (None, None) => "/give/thanks".into(),
            };
            if card_failed(&started) {
                // The first payment of a monthly gift was declined (the subscription waits,
                // incomplete, and Stripe expires it): no thank-you page for money not given.
                return landing_page(
                    &state,
                    &req,
                    form,
                    FieldErrors::one("card", "Your card was declined. Please try another card."),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            if needs_bank_confirmation(&started) {
                if let Some(secret) = started.client_secret.clone() {
                    let page = Authenticate {
                        name: profile.name.clone(),
                        summary: money(started.amount_minor, &started.currency),
                        stripe_key: started.publishable_key.clone().unwrap_or_default(),
                        stripe_account: started.stripe_account.clone(),
                        stripe_js: state.domains.stripe_js_url.clone(),
                        client_secret: secret,
                        next: to,
                    };
                    // The client secret is on the page: never stored by a cache.
                    return Ok(render(
                        StatusCode::OK,
                        &page,
                        &csp(Some(&state.domains.stripe_js_url)),
                        true,
                    ));
                }
            }
            Ok(see_other(&to))
        }
        Err(AppError::Unavailable(cause)) if cause.starts_with("stripe") => {
            tracing::warn!(%cause, "gift refused by the payment provider");
            landing_page(
                &state,
                &req,
                form,
                FieldErrors::one(
                    "card",
                    "Your card was not accepted. Please try another card.",
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => {
            let errors = FieldErrors::from_error(
                e,
                &[
                    ("amount_minor", "amount"),
                    ("card_token", "card"),
                    // A card Stripe declined (402) or a payment method it refused (400).
                    ("payment", "card"),
                    ("currency", "_"),
                ],
            )?;
            landing_page(&state, &req, form, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// The 3-D Secure step between the form and the thank-you page.
#[derive(Template)]
#[template(path = "site/authenticate.html")]
struct Authenticate {
    name: String,
    summary: String,
    stripe_key: String,
    stripe_account: String,
    stripe_js: String,
    client_secret: String,
    /// The thank-you page to go on to once the bank has confirmed.
    next: String,
}

/// Whether the card's bank must confirm the (first) payment in the browser (3-D Secure): the
/// one-time PaymentIntent, or the subscription's first invoice's, is in `requires_action`.
fn needs_bank_confirmation(started: &super::create::Started) -> bool {
    started.payment_status.as_deref() == Some("requires_action")
}

/// Whether the card was declined for the (first) payment: a subscription created with its
/// first invoice unpaid leaves that invoice's PaymentIntent in `requires_payment_method`.
fn card_failed(started: &super::create::Started) -> bool {
    started.payment_status.as_deref() == Some("requires_payment_method")
}

#[derive(Template)]
#[template(path = "site/thanks.html")]
struct Thanks {
    name: String,
    summary: Option<String>,
    status: Option<String>,
    cancel_url: Option<String>,
}

/// The thank-you page's query: a one-time gift, or a recurring gift with its cancel token.
#[derive(Debug, Default, Deserialize)]
pub struct ThanksQuery {
    #[serde(default)]
    gift: Option<String>,
    #[serde(default)]
    recurring: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// `GET /give/thanks`.
pub async fn thanks(
    State(state): State<AppState>,
    req: TenantRequest,
    ApiQuery(q): ApiQuery<ThanksQuery>,
) -> Result<Response, AppError> {
    let profile = crate::tenant::profile::load(&state, req.tenant).await?;
    let mut page = Thanks {
        name: profile.name.clone(),
        summary: None,
        status: None,
        cancel_url: None,
    };
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    if let Some(id) = q.gift.as_deref().and_then(|g| g.parse::<Uuid>().ok()) {
        if let Some(r) = tx
            .query_opt(
                "SELECT amount_minor, currency, fund, status FROM donations WHERE id = $1",
                &[&id],
            )
            .await?
        {
            page.summary = Some(format!(
                "{} to {}",
                money(r.get(0), r.get::<_, &str>(1)),
                r.get::<_, &str>(2)
            ));
            page.status = Some(r.get(3));
        }
    }
    if let (Some(id), Some(token)) = (
        q.recurring.as_deref().and_then(|g| g.parse::<Uuid>().ok()),
        q.token.as_deref(),
    ) {
        if super::check_cancel_token(&state, id, token) {
            if let Some(r) = tx
                .query_opt(
                    "SELECT amount_minor, currency, fund, status FROM recurring_donations WHERE id = $1",
                    &[&id],
                )
                .await?
            {
                page.summary = Some(format!(
                    "{} every month to {}",
                    money(r.get(0), r.get::<_, &str>(1)),
                    r.get::<_, &str>(2)
                ));
                page.status = Some(r.get(3));
                page.cancel_url = Some(super::cancel_url(&state, &req.edge.host, id, token));
            }
        }
    }
    tx.commit().await?;
    Ok(render(StatusCode::OK, &page, &csp(None), true))
}

/// `GET /brand.css`: the tenant's colour for its pages.
pub async fn brand_css(
    State(state): State<AppState>,
    req: TenantRequest,
) -> Result<Response, AppError> {
    let p = crate::tenant::profile::load(&state, req.tenant).await?;
    // from_settings only lets `#rgb`/`#rrggbb` through, so the colour cannot break out.
    let css = format!(
        ".brand-bar{{background:{c}}}.site h1{{color:{c}}}button.give{{background:{c}}}",
        c = p.branding.primary_color
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        css,
    )
        .into_response())
}

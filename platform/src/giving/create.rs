//! `POST /api/donations`: the JSON form of starting a gift; the work is
//! [`super::service::start_gift`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::input::ApiJson;
use crate::state::AppState;

/// How often a gift repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// A single gift (PaymentIntent).
    OneTime,
    /// Every week (Subscription).
    Week,
    /// Every month (Subscription).
    Month,
    /// Every year (Subscription).
    Year,
}

impl Frequency {
    pub(crate) fn interval(self) -> Option<&'static str> {
        match self {
            Frequency::OneTime => None,
            Frequency::Week => Some("week"),
            Frequency::Month => Some("month"),
            Frequency::Year => Some("year"),
        }
    }
}

/// The donation form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDonation {
    /// Gift in minor units (cents), within the tenant's limits.
    pub amount_minor: i64,
    /// One of the tenant's currencies (ISO 4217, any case).
    pub currency: String,
    /// One of the tenant's funds; the first one when absent.
    #[serde(default)]
    pub fund: Option<String>,
    /// Donor's name as it should appear on the receipt.
    pub donor_name: String,
    /// Where the receipt goes.
    pub donor_email: String,
    /// `one_time` (default), `week`, `month` or `year`.
    #[serde(default = "one_time")]
    pub frequency: Frequency,
    /// For recurring gifts: the PaymentMethod Stripe.js created in the donor's browser
    /// (`pm_…`); it becomes the customer's default for the subscription's invoices.
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Instead of `payment_method`: a card token Stripe.js made in the donor's browser
    /// (`tok_…`, `stripe.createToken`). The server saves it on the donor's customer and confirms
    /// the payment itself; a one-time gift that needs 3-D Secure answers `requires_action`
    /// with the client secret.
    #[serde(default)]
    pub card_token: Option<String>,
}

fn one_time() -> Frequency {
    Frequency::OneTime
}

/// What the browser needs to finish the payment with Stripe.js.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Started {
    /// Our donation id (one-time gifts), for `GET /api/donations/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub donation_id: Option<Uuid>,
    /// Our recurring gift id (recurring gifts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_donation_id: Option<Uuid>,
    /// Gift in minor units.
    pub amount_minor: i64,
    /// Platform fee in minor units (rounded down; see `payments::fee`).
    pub fee_minor: i64,
    /// Currency.
    pub currency: String,
    /// Fund.
    pub fund: String,
    /// PaymentIntent client secret for `stripe.confirmPayment`; for a recurring gift, the first
    /// invoice's, when it still needs the donor (3-D Secure).
    pub client_secret: Option<String>,
    /// Stripe.js publishable key.
    pub publishable_key: Option<String>,
    /// The connected account Stripe.js must be initialised with (`stripeAccount`).
    pub stripe_account: String,
    /// Status of the payment confirmed on the server with the card token (`succeeded`,
    /// `requires_action` when the bank asks for 3-D Secure, …): the one-time gift's
    /// PaymentIntent or a recurring gift's first invoice's; absent when the browser confirms it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    /// Subscription status for recurring gifts (`active`, `incomplete`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_status: Option<String>,
    /// Where the donor cancels a recurring gift (also sent with each receipt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
}

/// `POST /api/donations`.
#[utoipa::path(post, path = "/api/donations", operation_id = "post_donations", tag = "tenant", request_body = NewDonation, responses((status = 201, description = "Started; finish with Stripe.js", body = Started), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn create(
    State(state): State<AppState>,
    req: TenantRequest,
    ApiJson(body): ApiJson<NewDonation>,
) -> Result<(StatusCode, Json<Started>), AppError> {
    let started = super::service::start_gift(&state, &req, body).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

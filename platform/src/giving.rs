//! Donations on the tenant host: `POST /api/donations` starts a one-time or recurring gift as a
//! direct charge on the tenant's Stripe connected account with the platform's fee, and
//! `POST /api/recurring/{id}/cancel` lets a donor stop a recurring gift through the link in
//! their receipt.
//!
//! Order of writes, chosen so nothing is lost or doubled:
//! 1. one tenant-scoped transaction writes the donor, the donation (`pending`) and its audit
//!    entry, and commits — the gift exists before any money moves;
//! 2. Stripe calls, each with an idempotency key derived from our ids (`donation:<id>`), so a
//!    retry after a timeout returns the same PaymentIntent instead of a second one;
//! 3. a second transaction stores Stripe's ids on our rows.
//!
//! If the process dies between 2 and 3, the webhook still finds the donation through the
//! `donation_id` metadata on the PaymentIntent; if Stripe refuses, the row is marked `failed`
//! with the reason. No transaction is held open across a Stripe call.

pub mod cancel;
mod charge;
pub mod create;
pub mod pages;
pub mod service;
mod validate;

pub use validate::valid_email;

use axum::{Extension, Router};

use crate::access::{Access::Edge, RouteSpec};

routes! {
  api {
    post "/api/donations" => create::create, Edge;
    post "/api/recurring/{id}/cancel" => cancel::api, Edge;
    get "/give/cancel" => cancel::page, Edge;
    post "/give/cancel" => cancel::confirm, Edge;
  }
  pages {
    post "/give" => pages::give, Edge;
    get "/give/thanks" => pages::thanks, Edge;
    get "/brand.css" => pages::brand_css, Edge;
  }
}

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// The token in a recurring gift's cancel link: HMAC-SHA256 of the gift id under a key derived
/// from the edge secret. Signed rather than stored, so every receipt (written later by the
/// webhook handler) can carry a working link; rotating the edge secret invalidates old links,
/// which donors can still use by replying to the receipt.
pub fn cancel_token(state: &AppState, id: Uuid) -> String {
    hex::encode(cancel_mac(state.payments.link_key.as_slice(), id))
}

fn cancel_mac(key: &[u8], id: Uuid) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(b"recurring-cancel:v1:");
    m.update(id.as_bytes());
    m.finalize().into_bytes().into()
}

/// Whether `token` is the cancel token of gift `id` (constant-time).
pub fn check_cancel_token(state: &AppState, id: Uuid, token: &str) -> bool {
    let mut given = [0u8; 32];
    if hex::decode_to_slice(token, &mut given).is_err() {
        return false;
    }
    bool::from(cancel_mac(state.payments.link_key.as_slice(), id).ct_eq(&given))
}

/// The donor-facing cancel link on the tenant's host, with the public scheme and port.
pub fn cancel_url(state: &AppState, host: &str, id: Uuid, token: &str) -> String {
    format!(
        "{}/give/cancel?gift={id}&token={token}",
        state.domains.public.origin(host)
    )
}

/// Turns a Stripe failure into what the donor sees: a 502-class "try again" for outages and a
/// 422 naming the problem for requests Stripe refused (a declined card, a bad payment method).
pub fn stripe_error(e: payments::StripeError) -> AppError {
    match e {
        payments::StripeError::Api {
            status: 400 | 402,
            message,
            ..
        } => AppError::Invalid {
            field: "payment".into(),
            message,
        },
        other => AppError::Unavailable(format!("stripe: {other}")),
    }
}

//! `GET /api/donations/{id}`: the status a donor's browser polls after Stripe.js confirms a
//! payment. Scoped to the tenant: another tenant's donation id is simply not found.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::state::AppState;

/// Public view of one donation (no donor data).
#[derive(Debug, Serialize)]
pub struct DonationStatus {
    /// Donation id.
    pub id: Uuid,
    /// Gift in minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Fund given to.
    pub fund: String,
    /// `pending`, `succeeded`, `failed`, …
    pub status: String,
}

/// `GET /api/donations/{id}`.
pub async fn status(
    State(state): State<AppState>,
    req: TenantRequest,
    Path(id): Path<String>,
) -> Result<Json<DonationStatus>, AppError> {
    let id: Uuid = id.parse().map_err(|_| AppError::Invalid {
        field: "id",
        message: "must be a UUID".into(),
    })?;
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    // No tenant filter here on purpose: row-level security supplies it.
    let row = tx
        .query_opt(
            "SELECT id, amount_minor, currency, fund, status FROM donations WHERE id = $1",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    let r = row.ok_or(AppError::NotFound)?;
    Ok(Json(DonationStatus {
        id: r.get(0),
        amount_minor: r.get(1),
        currency: r.get(2),
        fund: r.get(3),
        status: r.get(4),
    }))
}

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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[utoipa::path(get, path = "/api/donations/{id}", operation_id = "get_donations_by_id", tag = "tenant", params(("id" = String, Path, description = "Donation id (UUID)")), responses((status = 200, body = DonationStatus), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn status(
    State(state): State<AppState>,
    req: TenantRequest,
    Path(id): Path<String>,
) -> Result<Json<DonationStatus>, AppError> {
    let id = crate::error::path_uuid(&id)?;
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

/// Staff list filters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this fund.
    pub fund: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Keyset cursor: the `next` value of the previous page.
    pub after: Option<String>,
}

/// A donation as the tenant's staff see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffDonation {
    /// Id.
    pub id: Uuid,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Donor email.
    pub donor_email: String,
    /// Donor name.
    pub donor_name: String,
    /// `one_time` or `recurring`.
    pub kind: String,
    /// Gift in minor units.
    pub amount_minor: i64,
    /// Platform fee in minor units.
    pub fee_minor: i64,
    /// Net to the tenant.
    pub net_minor: i64,
    /// Currency.
    pub currency: String,
    /// Fund.
    pub fund: String,
    /// Status.
    pub status: String,
}

/// One page of donations plus the cursor for the next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// Rows, newest first.
    pub items: Vec<StaffDonation>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// `GET /api/staff/donations`: newest first, keyset pagination.
#[utoipa::path(get, path = "/api/staff/donations", operation_id = "get_staff_donations", tag = "staff", params(ListQuery), responses((status = 200, body = Page), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    staff: crate::tenant::staff::StaffSession,
    crate::input::ApiQuery(q): crate::input::ApiQuery<ListQuery>,
) -> Result<Json<Page>, AppError> {
    if let Some(st) = &q.status {
        st.parse::<tenant_config::DonationStatus>()
            .map_err(|_| AppError::Invalid {
                field: "status".into(),
                message: "unknown status".into(),
            })?;
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::Invalid {
            field: "limit".into(),
            message: "must be between 1 and 200".into(),
        });
    }
    let cursor: Option<(chrono::DateTime<chrono::Utc>, Uuid)> = match &q.after {
        None => None,
        Some(c) => {
            let (ts, id) = c.split_once('_').ok_or(AppError::Invalid {
                field: "after".into(),
                message: "malformed cursor".into(),
            })?;
            let ts = ts
                .parse::<i64>()
                .ok()
                .and_then(chrono::DateTime::from_timestamp_micros);
            let id = id.parse::<Uuid>().ok();
            match (ts, id) {
                (Some(ts), Some(id)) => Some((ts, id)),
                _ => {
                    return Err(AppError::Invalid {
                        field: "after".into(),
                        message: "malformed cursor".into(),
                    })
                }
            }
        }
    };
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, staff.tenant).await?;
    let rows = tx
        .query(
            "SELECT d.id, d.created_at, o.email, o.name, d.kind, d.amount_minor, d.fee_minor, d.net_minor,
                    d.currency, d.fund, d.status
             FROM donations d JOIN donors o ON o.id = d.donor_id
             WHERE ($1::text IS NULL OR d.status = $1) AND ($2::text IS NULL OR d.fund = $2)
               AND ($3::timestamptz IS NULL OR d.created_at >= $3) AND ($4::timestamptz IS NULL OR d.created_at < $4)
               AND ($5::timestamptz IS NULL OR (d.created_at, d.id) < ($5, $6::uuid))
             ORDER BY d.created_at DESC, d.id DESC LIMIT $7",
            &[&q.status, &q.fund, &q.from, &q.to, &cursor.map(|c| c.0), &cursor.map(|c| c.1), &(limit + 1)],
        )
        .await?;
    tx.commit().await?;
    let mut items: Vec<StaffDonation> = rows
        .iter()
        .map(|r| StaffDonation {
            id: r.get(0),
            created_at: r.get(1),
            donor_email: r.get(2),
            donor_name: r.get(3),
            kind: r.get(4),
            amount_minor: r.get(5),
            fee_minor: r.get(6),
            net_minor: r.get(7),
            currency: r.get(8),
            fund: r.get(9),
            status: r.get(10),
        })
        .collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|d| format!("{}_{}", d.created_at.timestamp_micros(), d.id))
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}

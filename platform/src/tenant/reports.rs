//! Reports for the tenant's staff: the list, and CSV downloads.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;
use crate::tenant::staff::StaffSession;

/// A stored report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportItem {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// First day covered.
    pub period_start: chrono::NaiveDate,
    /// Day after the last day covered.
    pub period_end: chrono::NaiveDate,
    /// Totals.
    pub summary: serde_json::Value,
}

/// `GET /api/staff/reports`.
#[utoipa::path(get, path = "/api/staff/reports", operation_id = "get_staff_reports", tag = "staff", responses((status = 200, body = Vec<ReportItem>), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    staff: StaffSession,
) -> Result<Json<Vec<ReportItem>>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, staff.tenant).await?;
    let rows = tx
        .query(
            "SELECT id, kind, period_start, period_end, summary FROM reports ORDER BY period_start DESC LIMIT 200",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(
        rows.iter()
            .map(|r| ReportItem {
                id: r.get(0),
                kind: r.get(1),
                period_start: r.get(2),
                period_end: r.get(3),
                summary: r.get(4),
            })
            .collect(),
    ))
}

/// `GET /api/staff/reports/{id}/csv`: the report as a CSV attachment.
#[utoipa::path(get, path = "/api/staff/reports/{id}/csv", operation_id = "get_staff_reports_by_id_csv", tag = "staff", params(("id" = String, Path, description = "Report id (UUID)")), responses((status = 200, description = "The report as CSV", body = String, content_type = "text/csv"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [])))]
pub async fn csv(
    State(state): State<AppState>,
    staff: StaffSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, staff.tenant).await?;
    let row = tx
        .query_opt(
            "SELECT csv, period_start FROM reports WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let body: String = row.get(0);
    let start: chrono::NaiveDate = row.get(1);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"report-{start}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

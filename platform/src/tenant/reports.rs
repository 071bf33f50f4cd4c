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
#[derive(Debug, Serialize)]
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

//! Read-only admin views: platform metrics (the seeds' business dashboard), the jobs overview
//! and the audit log.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::AdminSession;
use super::begin;
use crate::error::AppError;
use crate::state::AppState;

/// `GET /api/admin/metrics`: tenants by status, MRR/ARR per currency from live subscriptions,
/// and this calendar month's (UTC) succeeded donations per currency.
#[utoipa::path(get, path = "/api/admin/metrics", operation_id = "get_admin_metrics", tag = "admin", responses((status = 200, description = "Tenants, MRR/ARR, donations this month", body = Object), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn platform_metrics(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> Result<Json<Value>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let t = tx
        .query_one(
            "SELECT count(*),
                    count(*) FILTER (WHERE status = 'active'),
                    count(*) FILTER (WHERE status = 'trial'),
                    count(*) FILTER (WHERE status = 'suspended'),
                    count(*) FILTER (WHERE status = 'cancelled')
             FROM tenants",
            &[],
        )
        .await?;
    // Monthly recurring revenue: yearly plans count for a twelfth (integer minor units,
    // rounded down per subscription).
    let mrr: Vec<Value> = tx
        .query(
            "SELECT currency,
                    sum(CASE billing_interval WHEN 'year' THEN amount_minor / 12 ELSE amount_minor END)::bigint
             FROM tenant_subscriptions WHERE status IN ('active', 'past_due')
             GROUP BY currency ORDER BY currency",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let m: i64 = r.get(1);
            json!({ "currency": r.get::<_, String>(0), "mrr_minor": m, "arr_minor": m * 12 })
        })
        .collect();
    let donations: Vec<Value> = tx
        .query(
            "SELECT currency, count(*), sum(amount_minor)::bigint, (sum(amount_minor) / count(*))::bigint,
                    count(*) FILTER (WHERE kind = 'recurring')
             FROM donations
             WHERE status = 'succeeded' AND succeeded_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
             GROUP BY currency ORDER BY currency",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let count: i64 = r.get(1);
            let recurring: i64 = r.get(4);
            json!({
                "currency": r.get::<_, String>(0),
                "count": count,
                "sum_minor": r.get::<_, i64>(2),
                "average_minor": r.get::<_, i64>(3),
                "recurring_count": recurring,
                "recurring_share": if count > 0 { recurring as f64 / count as f64 } else { 0.0 },
            })
        })
        .collect();
    tx.commit().await?;
    Ok(Json(json!({
        "tenants": {
            "total": t.get::<_, i64>(0),
            "active": t.get::<_, i64>(1),
            "trial": t.get::<_, i64>(2),
            "suspended": t.get::<_, i64>(3),
            "churned": t.get::<_, i64>(4),
        },
        "revenue": mrr,
        "donations_this_month": donations,
    })))
}

/// `GET /api/admin/jobs`: queue depth by state and kind, and the age of the oldest runnable job.
#[utoipa::path(get, path = "/api/admin/jobs", operation_id = "get_admin_jobs", tag = "admin", responses((status = 200, description = "Queue and cron overview", body = Object), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn jobs(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> Result<Json<Value>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let by: Vec<Value> = tx
        .query("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state", &[])
        .await?
        .iter()
        .map(|r| json!({ "kind": r.get::<_, String>(0), "state": r.get::<_, String>(1), "count": r.get::<_, i64>(2) }))
        .collect();
    let oldest: Option<f64> = tx
        .query_one(
            "SELECT extract(epoch FROM now() - min(run_at))::float8 FROM jobs
             WHERE state IN ('available', 'retryable') AND run_at <= now()",
            &[],
        )
        .await?
        .get(0);
    let runs: Vec<Value> = tx
        .query(
            "SELECT DISTINCT ON (job) job, outcome, started_at, finished_at FROM cron_runs ORDER BY job, started_at DESC",
            &[],
        )
        .await?
        .iter()
        .map(|r| json!({
            "job": r.get::<_, String>(0),
            "outcome": r.get::<_, String>(1),
            "started_at": r.get::<_, DateTime<Utc>>(2),
            "finished_at": r.get::<_, Option<DateTime<Utc>>>(3),
        }))
        .collect();
    tx.commit().await?;
    Ok(Json(
        json!({ "queue": by, "oldest_runnable_age_seconds": oldest, "last_cron_runs": runs }),
    ))
}

/// Audit log filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries about this tenant.
    pub tenant_id: Option<Uuid>,
    /// Only this action (e.g. `tenant.suspend`).
    pub action: Option<String>,
    /// Entries older than this id (pagination).
    pub before: Option<i64>,
    /// Page size (1–500, default 100).
    pub limit: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// `admin`, `tenant_staff`, `system`, `stripe`.
    pub actor_type: String,
    /// Who.
    pub actor_id: Option<String>,
    /// Tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Details.
    pub details: Value,
}

/// `GET /api/admin/audit`: newest first.
#[utoipa::path(get, path = "/api/admin/audit", operation_id = "get_admin_audit", tag = "admin", params(AuditQuery), responses((status = 200, body = Vec<AuditEntry>), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: AdminSession,
    crate::input::ApiQuery(q): crate::input::ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, AppError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Invalid {
            field: "limit".into(),
            message: "must be between 1 and 500".into(),
        });
    }
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let rows = tx
        .query(
            "SELECT id, occurred_at, actor_type, actor_id, tenant_id, action,
                    target_type || ':' || target_id, host(ip), request_id, details
             FROM audit_log
             WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR action = $2)
               AND ($3::bigint IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&q.tenant_id, &q.action, &q.before, &limit],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(
        rows.iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                occurred_at: r.get(1),
                actor_type: r.get(2),
                actor_id: r.get(3),
                tenant_id: r.get(4),
                action: r.get(5),
                target: r.get(6),
                ip: r.get(7),
                request_id: r.get(8),
                details: r.get(9),
            })
            .collect(),
    ))
}

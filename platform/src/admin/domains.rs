//! Custom domains on the admin host: add (returns the TXT record the tenant must publish),
//! verify (a DNS TXT lookup through the configured resolver), list and remove. The router only
//! routes `verified`/`active` domains, and a trigger tells every router when a row changes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use serde::{Deserialize, Serialize};
use tenant_config::domain::validate_custom_domain;
use tenant_config::model::DomainStatus;
use uuid::Uuid;

use super::auth::AdminSession;
use super::{audit, begin};
use crate::error::AppError;
use crate::input::ApiJson;
use crate::state::AppState;

/// Label under the domain where the verification TXT record lives.
pub const TXT_LABEL: &str = "_platform-verify";

/// Builds the resolver: the configured `ip:port`, else the system's.
pub fn resolver(addr: Option<&str>) -> Result<Arc<TokioResolver>, String> {
    let builder = match addr {
        Some(a) => {
            let a: SocketAddr = a
                .parse()
                .map_err(|_| format!("dns.resolver: {a:?} is not ip:port"))?;
            let group = NameServerConfigGroup::from_ips_clear(&[a.ip()], a.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
        None => {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
        }
    };
    let mut builder = builder;
    // Verification must see fresh answers: a tenant fixing a typo retries within seconds.
    builder.options_mut().cache_size = 0;
    Ok(Arc::new(builder.build()))
}

/// A domain as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DomainView {
    /// Id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Normalised name.
    pub domain: String,
    /// Verification lifecycle.
    pub status: String,
    /// Certificate status, separate from ownership (Cloudflare's custom-hostname model):
    /// `none`, `pending` (first order under way or waiting), `issued`, `renewing`, `failed`
    /// or `expired`. Written by the routers' ACME issuer (`acme_names`, `certificates`).
    pub cert_status: String,
    /// The certificate's details (`last_error`, `not_after`, `next_attempt_at`).
    pub certificate: CertificateView,
    /// Why the last verification failed.
    pub failure_reason: Option<String>,
    /// When ownership was proven.
    pub verified_at: Option<DateTime<Utc>>,
    /// The record to publish.
    pub txt_record: TxtRecord,
}

/// A domain's certificate as the routers' ACME issuer left it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// Why the last order failed (cleared when one succeeds).
    pub last_error: Option<String>,
    /// End of validity of the certificate being served.
    pub not_after: Option<DateTime<Utc>>,
    /// When the issuer acts next: the renewal point of an issued certificate, else the next
    /// retry (after backoff, a rate limit or a pause).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The DNS record a tenant publishes to prove ownership.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TxtRecord {
    /// Record name.
    pub name: String,
    /// Record value.
    pub value: String,
}

/// The domain's columns and, from the routers' ACME state, its certificate. Scalar
/// subqueries on `tenant_domains.domain` so the same list works in `RETURNING`.
const COLUMNS: &str = "id, tenant_id, domain, status,
    CASE
        WHEN (SELECT c.not_after <= now() FROM certificates c
              WHERE c.domain = tenant_domains.domain AND c.status = 'issued') THEN 'expired'
        WHEN (SELECT a.state FROM acme_names a WHERE a.name = tenant_domains.domain) IS NOT NULL
            THEN (SELECT a.state FROM acme_names a WHERE a.name = tenant_domains.domain)
        WHEN EXISTS (SELECT 1 FROM certificates c
                     WHERE c.domain = tenant_domains.domain AND c.status = 'issued') THEN 'issued'
        ELSE 'none'
    END,
    failure_reason, verified_at, verification_token,
    (SELECT a.last_error FROM acme_names a WHERE a.name = tenant_domains.domain),
    (SELECT c.not_after FROM certificates c
     WHERE c.domain = tenant_domains.domain AND c.status = 'issued'),
    (SELECT CASE WHEN a.state = 'issued' THEN a.renew_at
                 ELSE GREATEST(a.next_attempt_at, a.paused_until) END
     FROM acme_names a WHERE a.name = tenant_domains.domain)";

fn view(r: &tokio_postgres::Row) -> DomainView {
    let domain: String = r.get(2);
    let token: String = r.get(7);
    DomainView {
        id: r.get(0),
        tenant_id: r.get(1),
        txt_record: TxtRecord {
            name: format!("{TXT_LABEL}.{domain}"),
            value: format!("platform-verify={token}"),
        },
        domain,
        status: r.get(3),
        cert_status: r.get(4),
        certificate: CertificateView {
            last_error: r.get(8),
            not_after: r.get(9),
            next_attempt_at: r.get(10),
        },
        failure_reason: r.get(5),
        verified_at: r.get(6),
    }
}

/// New domain.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The name to attach, e.g. `give.gracechurch.org`.
    pub domain: String,
}

/// `POST /api/admin/tenants/{id}/domains`.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/domains", operation_id = "post_admin_tenants_by_id_domains", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), request_body = NewDomain, responses((status = 201, body = DomainView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn add(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(tenant): Path<String>,
    ApiJson(d): ApiJson<NewDomain>,
) -> Result<(StatusCode, Json<DomainView>), AppError> {
    let tenant = crate::error::path_uuid(&tenant)?;
    if !state.domains.enabled {
        return Err(AppError::Invalid {
            field: "domain".into(),
            message: "custom domains are disabled".into(),
        });
    }
    let domain = validate_custom_domain(&d.domain, &state.domains.rules, state.domains.policy)
        .map_err(|e| AppError::Invalid {
            field: "domain".into(),
            message: e.to_string(),
        })?;
    let mut token = [0u8; 16];
    getrandom::getrandom(&mut token).map_err(|e| AppError::Internal(format!("rng: {e}")))?;
    let token = hex::encode(token);
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let limits = tx
        .query_opt(
            "SELECT p.max_custom_domains,
                    (SELECT count(*) FROM tenant_domains d WHERE d.tenant_id = t.id AND d.status <> 'removed')
             FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = $1 FOR UPDATE OF t",
            &[&tenant],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let (max, used): (i32, i64) = (limits.get(0), limits.get(1));
    if used >= i64::from(max) {
        return Err(AppError::Invalid {
            field: "domain".into(),
            message: format!("the tenant's plan allows {max} custom domain(s)"),
        });
    }
    let row = tx
        .query_one(
            &format!("INSERT INTO tenant_domains (tenant_id, domain, verification_token) VALUES ($1, $2, $3) RETURNING {COLUMNS}"),
            &[&tenant, &domain, &token],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                AppError::Conflict("this domain is already attached to a tenant".into())
            }
            _ => e.into(),
        })?;
    let v = view(&row);
    audit(
        &tx,
        &admin.actor,
        "domain.add",
        Some(tenant),
        ("tenant_domain", &v.id.to_string()),
        serde_json::json!({ "domain": v.domain }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/admin/tenants/{id}/domains`.
#[utoipa::path(get, path = "/api/admin/tenants/{id}/domains", operation_id = "get_admin_tenants_by_id_domains", tag = "admin", params(("id" = String, Path, description = "Tenant id (UUID)")), responses((status = 200, body = Vec<DomainView>), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<DomainView>>, AppError> {
    let tenant = crate::error::path_uuid(&tenant)?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let rows = tx
        .query(
            &format!("SELECT {COLUMNS} FROM tenant_domains WHERE tenant_id = $1 AND status <> 'removed' ORDER BY created_at"),
            &[&tenant],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(rows.iter().map(view).collect()))
}

/// Whether `expected` is among the TXT values published at `name`. `Ok(false)` for "no such
/// record"; `Err` when DNS itself failed (so the caller does not mark the domain failed).
async fn txt_present(resolver: &TokioResolver, name: &str, expected: &str) -> Result<bool, String> {
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(lookup) => Ok(lookup.iter().any(|txt| {
            let joined: Vec<u8> = txt
                .txt_data()
                .iter()
                .flat_map(|part| part.iter().copied())
                .collect();
            joined == expected.as_bytes()
        })),
        Err(e) if e.is_no_records_found() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// `POST /api/admin/domains/{id}/verify`.
#[utoipa::path(post, path = "/api/admin/domains/{id}/verify", operation_id = "post_admin_domains_by_id_verify", tag = "admin", params(("id" = String, Path, description = "Domain id (UUID)")), responses((status = 200, body = DomainView), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
) -> Result<Json<DomainView>, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let mut conn = state.db.get().await?;
    let current = {
        let tx = begin(&mut conn).await?;
        let row = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM tenant_domains WHERE id = $1"),
                &[&id],
            )
            .await?
            .ok_or(AppError::NotFound)?;
        tx.commit().await?;
        view(&row)
    };
    let status: DomainStatus = current
        .status
        .parse()
        .map_err(|e| AppError::Internal(format!("{e}")))?;
    if !status.can_transition_to(DomainStatus::Verified) && status != DomainStatus::Failed {
        return Ok(Json(current));
    }
    // The lookup happens outside any transaction: DNS can take seconds.
    let found = txt_present(
        &state.domains.resolver,
        &current.txt_record.name,
        &current.txt_record.value,
    )
    .await
    .map_err(|e| AppError::Unavailable(format!("DNS lookup: {e}")))?;
    let tx = begin(&mut conn).await?;
    let (next, reason) = if found {
        (DomainStatus::Verified, None)
    } else {
        (
            status,
            Some(format!("TXT record {} not found", current.txt_record.name)),
        )
    };
    let row = tx
        .query_one(
            &format!(
                "UPDATE tenant_domains SET status = $2, failure_reason = $3, last_checked_at = now(),
                     verified_at = CASE WHEN $2 = 'verified' THEN now() ELSE verified_at END, updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &next.as_str(), &reason],
        )
        .await?;
    let v = view(&row);
    audit(
        &tx,
        &admin.actor,
        "domain.verify",
        Some(v.tenant_id),
        ("tenant_domain", &id.to_string()),
        serde_json::json!({ "domain": v.domain, "found": found }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// `DELETE /api/admin/domains/{id}`.
#[utoipa::path(delete, path = "/api/admin/domains/{id}", operation_id = "delete_admin_domains_by_id", tag = "admin", params(("id" = String, Path, description = "Domain id (UUID)")), responses((status = 204, description = "Removed"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = crate::error::path_uuid(&id)?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let row = tx
        .query_opt(
            "UPDATE tenant_domains SET status = 'removed', removed_at = now(), updated_at = now()
             WHERE id = $1 AND status <> 'removed' RETURNING tenant_id, domain",
            &[&id],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let (tenant, domain): (Uuid, String) = (row.get(0), row.get(1));
    audit(
        &tx,
        &admin.actor,
        "domain.remove",
        Some(tenant),
        ("tenant_domain", &id.to_string()),
        serde_json::json!({ "domain": domain }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
